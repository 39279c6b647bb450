"""What a task is, the states it moves through, and which moves are legal."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

TaskSource = Literal["telegram", "voice", "photo", "mcp", "cli", "console"]


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_REVIEW = "awaiting_review"
    DONE = "done"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset(
    {TaskStatus.DONE, TaskStatus.REJECTED, TaskStatus.FAILED, TaskStatus.CANCELLED}
)

# Every legal move. running → queued is a retry after a failed attempt, an expired lease or a
# worker letting go at shutdown; the moves back to queued from a finished state are the owner's
# retry (and awaiting_review → queued is [Retry] on a review).
TRANSITIONS: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED}),
    TaskStatus.RUNNING: frozenset(
        {
            TaskStatus.QUEUED,
            TaskStatus.AWAITING_REVIEW,
            TaskStatus.DONE,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
        }
    ),
    TaskStatus.AWAITING_REVIEW: frozenset(
        {TaskStatus.DONE, TaskStatus.REJECTED, TaskStatus.CANCELLED, TaskStatus.QUEUED}
    ),
    TaskStatus.DONE: frozenset(),
    TaskStatus.REJECTED: frozenset({TaskStatus.QUEUED}),
    TaskStatus.FAILED: frozenset({TaskStatus.QUEUED}),
    TaskStatus.CANCELLED: frozenset({TaskStatus.QUEUED}),
}


# The owner's moves and the statuses each applies to; the others belong to workers and the sweeper.
CANCELLABLE = frozenset({TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.AWAITING_REVIEW})
RETRYABLE = frozenset(
    {TaskStatus.AWAITING_REVIEW, TaskStatus.REJECTED, TaskStatus.FAILED, TaskStatus.CANCELLED}
)
REVIEWABLE = frozenset({TaskStatus.AWAITING_REVIEW})


def can_move(current: TaskStatus | str, to: TaskStatus | str) -> bool:
    return TaskStatus(to) in TRANSITIONS[TaskStatus(current)]


class TaskError(Exception):
    """A task operation cannot be done; the message says why in one sentence."""


class TaskNotFound(TaskError):
    def __init__(self, task_id: int) -> None:
        super().__init__(f"There is no task #{task_id}.")
        self.task_id = task_id


class IllegalTransition(TaskError):
    def __init__(self, task_id: int, current: str, to: str, action: str) -> None:
        wording = current.replace("_", " ")
        super().__init__(f"Task #{task_id} is {wording}, so it cannot be {action}.")
        self.task_id, self.current, self.to = task_id, current, to


@dataclass(frozen=True)
class Task:
    id: int
    project_id: int
    title: str
    status: TaskStatus
    body: str = ""
    agent_id: int | None = None
    parent_id: int | None = None
    priority: int = 0
    source: TaskSource = "cli"
    dedupe_key: str | None = None
    attempts: int = 0
    max_attempts: int = 3
    run_after: datetime | None = None
    lease_owner: str | None = None
    lease_token: int = 0  # fencing token: each claim increments it, a worker's writes must name it
    lease_expires_at: datetime | None = None
    branch: str | None = None
    worktree: str | None = None
    base_commit: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    depends_on: tuple[int, ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Task:
        values = {name: value for name, value in row.items() if name in _NAMES}
        values["status"] = _STATUSES[values["status"]]
        for name in ("options", "result"):
            text = values.get(name)
            if isinstance(text, str):
                values[name] = {} if text == "{}" else json.loads(text)  # most options are {}
        values["options"] = values.get("options") or {}
        values["depends_on"] = tuple(values.get("depends_on") or ())
        # Not through __init__: a frozen dataclass sets its 28 fields one object.__setattr__ at
        # a time, which made building a claimed task a tenth of the pool's CPU per task.
        if not _REQUIRED <= values.keys():
            return cls(**values)  # raises, naming what is missing
        task = object.__new__(cls)
        task.__dict__.update(_DEFAULTS, **values)
        return task


_FIELDS = tuple(f.name for f in dataclasses.fields(Task))
_NAMES = frozenset(_FIELDS)
_DEFAULTS = {
    f.name: f.default for f in dataclasses.fields(Task) if f.default is not dataclasses.MISSING
}
_REQUIRED = frozenset(
    f.name
    for f in dataclasses.fields(Task)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)
_STATUSES = {status.value: status for status in TaskStatus}
