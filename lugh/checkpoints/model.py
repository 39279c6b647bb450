"""What the checkpoint service hands back: checkpoints, restore plans and reports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import asyncpg

from lugh.checkpoints.gitstate import RefChanges

Kind = Literal["manual", "merge", "daily", "pre_operation"]
KINDS: tuple[Kind, ...] = ("manual", "merge", "daily", "pre_operation")


@dataclass(frozen=True)
class Checkpoint:
    id: int
    project_id: int | None  # None once the project was removed
    project: str
    kind: Kind
    label: str | None
    path: Path
    size_bytes: int
    created_at: datetime
    manifest: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Checkpoint:
        raw = row["manifest"] if "manifest" in row else {}
        manifest = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
        return cls(
            row["id"], row["project_id"], row["project_name"], row["kind"], row["label"],
            Path(row["path"]), row["size_bytes"], row["created_at"], manifest,
        )  # fmt: skip

    def shown(self) -> str:
        """`#12 (manual "before refactor")` — how messages name a checkpoint."""
        label = f' "{self.label}"' if self.label else ""
        return f"#{self.id} ({self.kind.replace('_', '-')}{label})"

    def age(self, now: datetime | None = None) -> str:
        now = now or datetime.now(timezone.utc)
        return human_age((now - self.created_at).total_seconds())


@dataclass(frozen=True)
class RestorePlan:
    """What restoring a checkpoint would change, in the owner's words."""

    checkpoint: Checkpoint
    tasks_removed: list[tuple[int, str]]  # made since: the restore removes them
    tasks_back: list[tuple[int, str]]  # gone since: the restore brings them back
    tasks_changed: list[tuple[int, str, str, str]]  # (id, title, status now, status after)
    refs: RefChanges
    documents_removed: list[str]
    documents_back: list[str]
    memories_removed: int
    memories_back: int
    running: list[int]  # tasks running now, which the restore stops
    requeued: list[int]  # tasks running in the checkpoint, which the restore queues again
    problem: str | None = None  # why the restore cannot go ahead now, in one sentence

    @property
    def changes_nothing(self) -> bool:
        return not (
            self.tasks_removed or self.tasks_back or self.tasks_changed or not self.refs.empty
            or self.documents_removed or self.documents_back or self.memories_removed
            or self.memories_back or self.running or self.requeued
        )  # fmt: skip

    def text(self) -> str:
        ck = self.checkpoint
        lines = [f"Restoring checkpoint {ck.shown()} of {ck.project}, taken {ck.age()} ago:"]
        if self.changes_nothing:
            lines.append("• nothing has changed since; the restore would change nothing.")
        lines += _listed("tasks removed", [f"#{i} {t}" for i, t in self.tasks_removed])
        lines += _listed("tasks brought back", [f"#{i} {t}" for i, t in self.tasks_back])
        lines += _listed(
            "tasks changed", [f"#{i} {t}: {a} → {b}" for i, t, a, b in self.tasks_changed]
        )
        lines += _listed("branches made", [_ref(r) for r in self.refs.made])
        lines += _listed("branches moved back", [_ref(r) for r in self.refs.moved])
        lines += _listed("branches deleted", [_ref(r) for r in self.refs.deleted])
        lines += _listed("knowledge documents removed", self.documents_removed)
        lines += _listed("knowledge documents brought back", self.documents_back)
        if self.memories_removed or self.memories_back:
            lines.append(
                f"• memories: {self.memories_removed} removed, {self.memories_back} brought back"
            )
        if self.running:
            stopped = ", ".join(f"#{i}" for i in self.running)
            lines.append(f"• running tasks stopped first: {stopped}")
        if self.requeued:
            requeued = ", ".join(f"#{i}" for i in self.requeued)
            lines.append(f"• queued again with their worktrees: {requeued}")
        lines.append("A checkpoint of the current state is taken first, so this can be undone.")
        if self.problem:
            lines.append(self.problem)
        return "\n".join(lines)


@dataclass(frozen=True)
class RestoreReport:
    checkpoint: Checkpoint
    pre_checkpoint_id: int | None  # the checkpoint taken just before (None: nothing to save)
    requeued: list[int]
    worktrees: list[int]

    def text(self) -> str:
        parts = [f"Restored {self.checkpoint.project} to checkpoint {self.checkpoint.shown()}."]
        if self.requeued:
            parts.append("Queued again: " + ", ".join(f"#{i}" for i in self.requeued) + ".")
        if self.pre_checkpoint_id is not None:
            parts.append(
                f"The state before is checkpoint #{self.pre_checkpoint_id} "
                f"(/restore {self.pre_checkpoint_id} undoes this)."
            )
        return " ".join(parts)


def human_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _ref(ref: str) -> str:
    return ref.removeprefix("refs/heads/").removeprefix("refs/tags/")


def _listed(what: str, items: list[str], limit: int = 8) -> list[str]:
    if not items:
        return []
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    shown = ", ".join(items[:limit]) + more
    return [f"• {what}: {shown}"]
