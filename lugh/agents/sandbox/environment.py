"""The environment a sandboxed command gets: a fixed allowlist, plus given variables that do not
look like secrets. Nothing comes from Lugh's own environment."""

from __future__ import annotations

import re
from collections.abc import Mapping

from lugh.agents.sandbox.base import SandboxError
from lugh.logs import redactor

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_NAME = re.compile(
    r"(?i)(key|token|secret|passw|credential|auth(?!or)|cookie|session|private|signature|dsn"
    r"|database_url|redis_url|_pat$)"
)


def command_environment(extra: Mapping[str, str], *, home: str = "/tmp") -> dict[str, str]:
    """The whole environment for one command; SandboxError if `extra` holds anything that looks
    like a secret (by its name, by its shape, or being one of Lugh's configured secrets)."""
    env = {
        "PATH": SAFE_PATH,
        "HOME": home,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        # git status in a read-only .git must not try (and fail) to refresh the index.
        "GIT_OPTIONAL_LOCKS": "0",
    }
    for name, value in extra.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SandboxError(f"The environment variable name {name!r} is not valid.")
        if not isinstance(value, str) or "\x00" in value:
            raise SandboxError(f"The environment variable {name} must be text without NUL bytes.")
        if _SECRET_NAME.search(name) or redactor(value) != value:
            raise SandboxError(
                f"The environment variable {name} looks like a secret, "
                "and secrets are never passed to sandboxed commands."
            )
        env[name] = value
    return env
