"""A checkpoint on disk: a directory written beside its final place and renamed into it.

Every file is fsynced, then `manifest.json` (each file's size and sha256) is written and
fsynced, then the directory is renamed to its final name and the parent directory fsynced. A
crash before the rename leaves a `.tmp-*` directory that no `checkpoints` row names (clean-up
removes it); after it, the directory is complete. The row is inserted last, so a listed
checkpoint is always complete; verify() proves it has not been damaged since.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from lugh.errors import UserError

FORMAT = "lugh-checkpoint/1"
MANIFEST = "manifest.json"
TEMP_PREFIX = ".tmp-"
_CHUNK = 1 << 20


class DamagedCheckpoint(UserError):
    """A checkpoint's files do not match its manifest; it is refused."""


class HashingWriter:
    """A file written in pieces (an asyncpg COPY's output, say) whose size and sha256 are
    computed on the way, so nothing is read back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115 (closed by close())
        self._hash = hashlib.sha256()
        self.size = 0

    async def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def close(self) -> tuple[int, str]:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self.size, self._hash.hexdigest()


class Staging:
    """The directory a checkpoint is built in; `commit()` makes it the final one."""

    def __init__(self, parent: Path, name: str) -> None:
        self.parent = parent
        self.name = name
        self.path = parent / f"{TEMP_PREFIX}{name}"
        self.files: dict[str, dict[str, Any]] = {}

    @classmethod
    def open(cls, parent: Path, kind: str, now: datetime) -> Staging:
        parent.mkdir(parents=True, exist_ok=True)
        name = f"{now:%Y%m%dT%H%M%SZ}-{kind}-{secrets.token_hex(4)}"
        staging = cls(parent, name)
        staging.path.mkdir()
        return staging

    @property
    def final(self) -> Path:
        return self.parent / self.name

    def file(self, relative: str) -> Path:
        path = self.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def writer(self, relative: str) -> HashingWriter:
        return HashingWriter(self.file(relative))

    def added(self, relative: str, size: int, sha256: str) -> None:
        self.files[relative] = {"size": size, "sha256": sha256}

    def add_existing(self, relative: str) -> None:
        """Record a file something else wrote (git): fsync it and hash it."""
        path = self.path / relative
        size, digest = _hash_file(path, sync=True)
        self.added(relative, size, digest)

    def commit(self, manifest: dict[str, Any]) -> tuple[Path, int, dict[str, Any]]:
        """Write the manifest, fsync everything, rename into place: (path, bytes, manifest)."""
        manifest = {"format": FORMAT, **manifest, "files": dict(sorted(self.files.items()))}
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        with open(self.path / MANIFEST, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        for directory in sorted({self.path / f for f in self.files} | {self.path / MANIFEST}):
            _fsync_dir(directory.parent)
        os.rename(self.path, self.final)
        _fsync_dir(self.parent)
        size = len(data) + sum(f["size"] for f in self.files.values())
        return self.final, size, manifest

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def verify(path: Path, expected: dict[str, Any], shown: str) -> None:
    """Raise DamagedCheckpoint unless every file under `path` matches `expected` (the manifest
    kept in the database) and manifest.json says the same."""
    if not path.is_dir():
        raise DamagedCheckpoint(
            f"Checkpoint {shown} is missing from disk ({path}); delete it with /checkpoints."
        )
    try:
        on_disk = json.loads((path / MANIFEST).read_bytes())
    except (OSError, ValueError):
        on_disk = None
    if on_disk != expected:
        raise DamagedCheckpoint(
            f"Checkpoint {shown} is damaged (its manifest does not match the one recorded), "
            "so it was not used; choose another checkpoint."
        )
    for relative, recorded in expected.get("files", {}).items():
        try:
            size, digest = _hash_file(path / relative)
        except OSError:
            size, digest = -1, ""
        if size != recorded["size"] or digest != recorded["sha256"]:
            raise DamagedCheckpoint(
                f"Checkpoint {shown} is damaged ({relative} does not match its recorded "
                "sha256), so it was not used; choose another checkpoint."
            )


def _hash_file(path: Path, *, sync: bool = False) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        if sync:
            os.fsync(f.fileno())
    return size, digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    """Delete a checkpoint's directory: renamed to a temporary name first, so a crash halfway
    leaves something clean-up removes, never a half-deleted checkpoint under its real name."""
    if not path.exists():
        return
    doomed = path.with_name(f"{TEMP_PREFIX}{path.name}-deleted")
    os.rename(path, doomed)
    _fsync_dir(path.parent)
    shutil.rmtree(doomed, ignore_errors=True)

