"""A task as a status view shows it (MCP `get_task`): read in one round trip, because a client
polling a task's state pays for every query on every poll."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from lugh.db import queries
from lugh.tasks.events import TaskEvent
from lugh.tasks.model import Task

Q = queries.load(__file__, "view")


@dataclass(frozen=True)
class Review:
    """The task's latest review: its approval and the diff counts stored when it was submitted."""

    approval_id: int
    status: str  # pending, approved, rejected, expired …
    diff: dict[str, Any]  # summary, added, deleted, file_count, files: [{path, status, …}]


@dataclass(frozen=True)
class TaskView:
    task: Task
    project: str
    agent: str | None
    events: list[TaskEvent]  # the newest, oldest first, without the records of MCP calls
    review: Review | None


async def task_view(pool: asyncpg.Pool, task_id: int, *, events: int = 5) -> TaskView | None:
    """The task with its names, newest events and latest review; None if there is no such task."""
    row = await pool.fetchrow(Q.task_view, task_id, events)
    if row is None:
        return None
    review = None
    if row["review_id"] is not None:
        review = Review(row["review_id"], row["review_status"], _json(row["review_diff"]) or {})
    return TaskView(
        task=Task.from_row(row),
        project=row["project_name"],
        agent=row["agent_name"],
        events=[
            TaskEvent(e["id"], task_id, e["kind"], e["data"] or {},
                      datetime.fromisoformat(e["at"]).replace(tzinfo=UTC))
            for e in _json(row["recent_events"])
        ],
        review=review,
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
