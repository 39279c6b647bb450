"""Which files of a folder to ingest: git's view of it inside a work tree (tracked and untracked
files, minus ignored ones), else a walk; vendored directories and lock files left out."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from lugh import git
from lugh.knowledge.chunking import Unreadable
from lugh.knowledge.chunking.documents import human_size

VENDORED_DIRS = frozenset({
    ".git", ".hg", ".svn", "node_modules", "bower_components", "vendor", "third_party",
    ".venv", "venv", "site-packages", "__pycache__", ".tox", ".nox", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".next", ".nuxt", ".gradle", ".idea", ".cache",
})
LOCK_FILES = frozenset({
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb",
    "poetry.lock", "uv.lock", "pipfile.lock", "pdm.lock", "cargo.lock", "composer.lock",
    "gemfile.lock", "go.sum", "flake.lock",
})
LIST_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class FoundFile:
    path: Path  # absolute
    relative: str  # POSIX path from the folder ingested, used as the document's path


async def files_in(root: Path) -> list[FoundFile]:
    """The files under `root` worth ingesting, sorted by path."""
    root = root.resolve()
    if await git.work_tree_root(root) is not None:
        result = await git.run(
            "ls-files", "-z", "--cached", "--others", "--exclude-standard",
            cwd=root, timeout_s=LIST_TIMEOUT_S,
        )
        names = {name for name in result.stdout.split("\0") if name}
    else:
        names = await asyncio.to_thread(_walk, root)
    return await asyncio.to_thread(_found, root, names)


def excluded(relative: str) -> bool:
    """Vendored directories, lock files and dotfiles such as .gitignore: generated, someone
    else's or tool settings, never worth a chunk."""
    parts = relative.split("/")
    name = parts[-1]
    dotfile = name.startswith(".") and "." not in name[1:]
    return dotfile or name.lower() in LOCK_FILES or any(p in VENDORED_DIRS for p in parts[:-1])


def read_file(path: Path, root: Path | None, limit: int) -> bytes:
    """The bytes of a regular file, at most `limit` of them; Unreadable otherwise. A symbolic
    link may not lead outside `root`, so a repository cannot pull in files from elsewhere."""
    try:
        if root is not None and path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root.resolve()):
                raise Unreadable(
                    "is a symbolic link to a file outside the folder, so it was left out"
                )
        if not path.is_file():
            raise Unreadable("is not a regular file")
        size = path.stat().st_size
        if size > limit:
            raise Unreadable(
                f"is {human_size(size)}, over the {human_size(limit)} Lugh reads from one file"
            )
        with path.open("rb") as f:
            data = f.read(limit + 1)  # the file may have grown since stat()
    except OSError as e:
        raise Unreadable(f"cannot be read ({e.strerror or type(e).__name__})") from None
    if len(data) > limit:
        raise Unreadable(f"is over the {human_size(limit)} Lugh reads from one file")
    return data


def _found(root: Path, names: set[str]) -> list[FoundFile]:
    # Deleted files git still tracks are gone, not unreadable.
    return sorted(
        (
            FoundFile(root / name, name)
            for name in names
            if not excluded(name) and os.path.lexists(root / name)
        ),
        key=lambda f: f.relative,
    )


def _walk(root: Path) -> set[str]:
    names = set()
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in VENDORED_DIRS]
        base = Path(directory).relative_to(root)
        for name in files:
            names.add((base / name).as_posix())
    return names
