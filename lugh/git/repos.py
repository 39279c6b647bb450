"""Repositories on the host: is this a repo, its default branch, branches, and safe clones."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from lugh.errors import UserError
from lugh.git.refs import validate_branch_name
from lugh.git.runner import GitError, redact_url, run

CLONE_TIMEOUT_S = 600.0

# Clones may only use these transports, whatever the URL says; submodules and helpers included.
CLONE_PROTOCOLS = (
    "protocol.allow=never",
    "protocol.https.allow=always",
    "protocol.ssh.allow=always",
    "protocol.file.allow=always",
)

_SCP_LIKE = re.compile(r"(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+):(?P<path>[^:].*)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)(://|::)")
ALLOWED_SOURCES = (
    "https://, ssh (git@host:path or ssh://) or local (file:// or an absolute path) repositories"
)


class InvalidCloneSource(UserError):
    """The clone URL is refused before git sees it."""


def clone_source_problem(url: str) -> str | None:
    """Why Lugh will not clone from `url`, or None when it will."""
    if not url:
        return "the address is empty"
    if _CONTROL.search(url) or url != url.strip():
        return "the address contains spaces at its ends or control characters"
    if url.startswith("-"):
        return "the address starts with '-'"
    if url.startswith(("https://", "ssh://")):
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not host or host.startswith("-") or (parts.username or "").startswith("-"):
            return "the address has no valid host name"
        return None
    if url.startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            return "a file:// address must name an absolute path on this machine"
        return None
    if url.startswith("/"):
        return None
    scp = _SCP_LIKE.fullmatch(url)
    if scp and not scp["user"].startswith("-") and not scp["host"].startswith("-"):
        return None if not scp["path"].startswith("-") else "the repository path starts with '-'"
    scheme = _SCHEME.match(url)
    what = f"'{scheme[1]}{scheme[2]}' addresses are" if scheme else "this address is"
    return f"Lugh clones only from {ALLOWED_SOURCES}; {what} not among them"


def validate_clone_source(url: str) -> str:
    """Return `url` if Lugh may clone from it, else raise InvalidCloneSource with one sentence."""
    problem = clone_source_problem(url)
    if problem is None:
        return url
    if problem.startswith("Lugh"):
        raise InvalidCloneSource(problem + ".")
    raise InvalidCloneSource(f"The repository address is refused because {problem}.")


async def work_tree_root(path: Path) -> Path | None:
    """The top directory of the git work tree `path` is in, or None."""
    if not path.is_dir():
        return None
    result = await run("rev-parse", "--show-toplevel", cwd=path, check=False)
    return Path(result.out).resolve() if result.ok and result.out else None


async def is_repo(path: Path) -> bool:
    """Whether `path` is the top directory of a git work tree."""
    root = await work_tree_root(path)
    return root is not None and root == path.resolve()


async def has_commits(repo: Path) -> bool:
    result = await run("rev-parse", "--verify", "--quiet", "HEAD^{commit}", cwd=repo, check=False)
    return result.ok


async def resolve_commit(repo: Path, rev: str) -> str:
    """The full commit id `rev` names in `repo`; GitError if it names none."""
    result = await run(
        "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}",
        cwd=repo, check=False,
    )
    if not result.ok:
        raise GitError(f"{rev!r} does not name a commit in {repo}.", args=result.args)
    return result.out


async def default_branch(repo: Path, *, remote: str | None = None) -> str:
    """The branch checked out in `repo`; with `remote`, that remote's HEAD branch (falling back
    to the checked-out one when the remote does not say)."""
    if remote is not None:
        result = await run(
            "symbolic-ref", "--quiet", "--short", f"refs/remotes/{remote}/HEAD",
            cwd=repo, check=False,
        )
        if result.ok and result.out.startswith(f"{remote}/"):
            return result.out.removeprefix(f"{remote}/")
    result = await run("symbolic-ref", "--quiet", "--short", "HEAD", cwd=repo, check=False)
    if not result.ok or not result.out:
        raise GitError(
            f"The repository {repo} has no branch checked out (detached HEAD); "
            "check out its main branch and try again.",
            args=result.args,
            returncode=result.returncode,
        )
    return result.out


async def branch_exists(repo: Path, name: str) -> bool:
    validate_branch_name(name)
    result = await run(
        "show-ref", "--verify", "--quiet", "--end-of-options", f"refs/heads/{name}",
        cwd=repo, check=False,
    )
    return result.ok


async def create_branch(repo: Path, name: str, start: str = "HEAD") -> None:
    """Create branch `name` at `start` (without checking it out)."""
    validate_branch_name(name)
    await run("branch", "--end-of-options", name, start, cwd=repo)


async def clone(url: str, dest: Path, *, timeout_s: float = CLONE_TIMEOUT_S) -> Path:
    """Clone `url` into `dest` (which must not exist); on any failure nothing is left at `dest`.

    Only https://, ssh and local sources are accepted (see `validate_clone_source`), and only
    those transports are enabled while git runs.
    """
    validate_clone_source(url)
    dest = Path(os.path.abspath(dest))
    if dest.exists():
        raise UserError(f"Cannot clone into {dest} because it already exists.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        await run(
            "clone", "--quiet", "--", url, str(dest),
            cwd=dest.parent, timeout_s=timeout_s, config=CLONE_PROTOCOLS,
        )
    except BaseException as exc:
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, dest, ignore_errors=True))
        if isinstance(exc, GitError):
            reason = str(exc).partition(": ")[2] or str(exc)
            raise GitError(
                f"Cloning {redact_url(url)} failed: {reason}",
                args=exc.command, returncode=exc.returncode, stderr=exc.stderr,
            ) from None
        raise
    bare = without_credentials(url)
    if bare != url:
        # The clone's .git/config would keep the token, and agents' sandboxes can read .git.
        # Lugh never fetches from origin again, so nothing needs it there.
        await run("remote", "set-url", "origin", bare, cwd=dest, timeout_s=timeout_s)
    return dest


def without_credentials(url: str) -> str:
    """`url` without the secrets it carries: an https address loses its whole `user:password@`
    (a token often stands where the user name goes), an ssh:// address its password."""
    if not url.startswith(("https://", "ssh://")):
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    if url.startswith("ssh://") and parts.username:
        host = f"{parts.username}@{host}"
    return parts._replace(netloc=host).geturl()
