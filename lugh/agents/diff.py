"""A task's diff: what its commits changed against their base, counted per file, with the text
cut at a size cap. Shown to the owner before a merge and stored with the review."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lugh.errors import UserError
from lugh.git import run

DIFF_CAP_BYTES = 200_000
MAX_FILES_STORED = 200
_OID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_STATUS = {"A": "added", "M": "modified", "D": "deleted", "T": "type changed"}


class ReviewError(UserError):
    """A review action cannot be done; nothing was changed."""


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str  # added | modified | deleted | type changed
    added: int
    deleted: int
    binary: bool = False


@dataclass(frozen=True)
class Diff:
    """What a task changed between its base commit and its head: counts per file and the text."""

    base: str
    head: str
    files: tuple[FileChange, ...]
    text: str = ""
    truncated: bool = False  # the text was cut at the size cap (the counts never are)

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def deleted(self) -> int:
        return sum(f.deleted for f in self.files)

    @property
    def summary(self) -> str:
        count = len(self.files)
        return f"+{self.added} −{self.deleted} in {count} file{'' if count == 1 else 's'}"

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base, "head": self.head, "summary": self.summary,
            "added": self.added, "deleted": self.deleted, "file_count": len(self.files),
            "files": [vars(f) for f in self.files[:MAX_FILES_STORED]],
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any], note: str = "") -> Diff:
        return cls(data["base"], data["head"], tuple(FileChange(**f) for f in data["files"]), note)


async def compute_diff(
    repo: Path, base: str, head: str, *, cap_bytes: int = DIFF_CAP_BYTES
) -> Diff:
    """The diff from `base` to `head`; the text is cut at `cap_bytes`, on a line boundary."""
    for oid in (base, head):
        if not _OID.fullmatch(oid):
            raise ReviewError(f"{oid[:50]!r} is not a commit id, so there is no diff to show.")
    # No external diff programs or textconv filters: a repository's config never runs here.
    common = ("--no-renames", "--no-ext-diff", "--no-textconv", "--end-of-options", base, head)
    numstat = await run("diff", "--numstat", "-z", *common, cwd=repo)
    names = (await run("diff", "--name-status", "-z", *common, cwd=repo)).stdout.split("\0")
    status = dict(zip(names[1::2], names[0::2]))
    files = []
    for record in filter(None, numstat.stdout.split("\0")):
        added, deleted, path = record.split("\t", 2)
        binary = added == "-"
        files.append(FileChange(
            shown(path), _STATUS.get(status.get(path, "M"), "modified"),
            0 if binary else int(added), 0 if binary else int(deleted), binary,
        ))  # fmt: skip
    text = await run("diff", "--no-color", *common, cwd=repo, config=("core.quotePath=false",))
    raw = text.stdout.encode("utf-8", "surrogateescape")
    truncated = len(raw) > cap_bytes
    if truncated:
        cut = raw[:cap_bytes]
        raw = cut[: cut.rfind(b"\n") + 1] or cut
    return Diff(base, head, tuple(files), raw.decode("utf-8", "replace"), truncated)


def shown(path: str) -> str:
    """A path as text: bytes that are not UTF-8 become U+FFFD (JSON and Postgres need text)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
