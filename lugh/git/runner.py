"""Host-side git: an argument list (never a shell), no hooks, a scrubbed environment, a timeout."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lugh.errors import UserError

DEFAULT_TIMEOUT_S = 60.0

# Set on every invocation: a repository (or an agent writing into one) must never make Lugh run
# its code. The ext:: transport runs arbitrary commands, so it is off even when a URL slips by.
SAFETY_CONFIG = (
    "-c", "core.hooksPath=/dev/null",
    "-c", "core.fsmonitor=false",
    "-c", "protocol.ext.allow=never",
)

# Besides these, git only gets PATH, HOME and a fixed locale; never GIT_* from our own
# environment, nor any secret Lugh holds.
PASSED_THROUGH = (
    "XDG_CONFIG_HOME",
    "SSH_AUTH_SOCK",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
)

_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_MAX_REASON = 300


class GitError(UserError):
    """A git command failed or timed out; `str()` is one sentence, the details are attributes
    (with credentials in URLs redacted, so they are safe to log)."""

    def __init__(
        self, message: str, *, args: Sequence[str] = (), returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.command = tuple(redact_url(arg) for arg in args)
        self.returncode = returncode
        self.stderr = redact_url(stderr)


@dataclass(frozen=True)
class GitResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str  # decoded with surrogateescape, so paths survive os.fsencode()
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def out(self) -> str:
        return self.stdout.strip()


def redact_url(text: str) -> str:
    """`text` with any `user:password@` in URLs replaced by `***@`."""
    return _CREDENTIALS.sub(r"\g<scheme>***@", text)


def git_environment() -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH") or os.defpath,
        "HOME": os.environ.get("HOME") or str(Path.home()),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "GIT_TERMINAL_PROMPT": "0",
    }
    for name in PASSED_THROUGH:
        if name in os.environ:
            env[name] = os.environ[name]
    return env


async def run(
    *args: str,
    cwd: Path | str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    check: bool = True,
    input: bytes | None = None,
    config: Sequence[str] = (),
) -> GitResult:
    """Run `git <args>` in `cwd`; raise GitError when it fails (with `check`) or times out.

    `config` adds `key=value` settings for this one command (each passed as `-c key=value`).
    Names that come from outside must follow `--end-of-options` (or `--`) in `args`.
    """
    extra = [part for item in config for part in ("-c", item)]
    argv = ["git", *SAFETY_CONFIG, *extra, *args]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=None if cwd is None else os.fspath(cwd),
            env=git_environment(),
            stdin=asyncio.subprocess.DEVNULL if input is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own session: no terminal to prompt on, and a timeout kills every child with it.
            start_new_session=True,
        )
    except OSError as exc:
        where = f" in {cwd}" if cwd is not None else ""
        raise GitError(
            f"git {_verb(args)} could not start{where} ({exc.strerror or type(exc).__name__}); "
            "check that git is installed and the directory exists.",
            args=args,
        ) from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout_s)
    except TimeoutError:
        raise GitError(
            f"git {_verb(args)} did not finish within {timeout_s:g} s and was stopped; "
            "try again, or check the repository or network.",
            args=args,
        ) from None
    finally:
        if proc.returncode is None:
            _kill_group(proc.pid)
            await proc.wait()
    result = GitResult(
        tuple(args),
        proc.returncode,
        out.decode("utf-8", "surrogateescape"),
        err.decode("utf-8", "replace"),
    )
    if check and not result.ok:
        raise GitError(
            f"git {_verb(args)} failed: {_reason(result.stderr)}",
            args=args,
            returncode=result.returncode,
            stderr=result.stderr,
        )
    return result


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _verb(args: Sequence[str]) -> str:
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
        elif arg in ("-C", "-c"):
            skip_next = True
        elif not arg.startswith("-"):
            return arg
    return "command"


def _reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    chosen = next(
        (line for line in lines if line.startswith(("fatal:", "error:"))),
        lines[-1] if lines else "no error message",
    )
    for prefix in ("fatal:", "error:"):
        chosen = chosen.removeprefix(prefix).strip()
    chosen = redact_url(chosen)
    if len(chosen) > _MAX_REASON:
        chosen = chosen[: _MAX_REASON - 1] + "…"
    return chosen if chosen.endswith((".", "…")) else chosen + "."
