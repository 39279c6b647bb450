"""The events bus: every step and state change of a task, kept in task_events and announced."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, cast

import asyncpg

from lugh.db import queries
from lugh.tasks.bus import Bus, needs_relay, notes_of, relay
from lugh.tasks.listener import Listener
from lugh.tasks.model import TaskNotFound
from lugh.tasks.waiting import wait_event

Q = queries.load(__file__, "events")
EVENTS_CHANNEL = "lugh_events"
REPLAY_PAGE = 500


@dataclass(frozen=True)
class TaskEvent:
    id: int
    task_id: int
    kind: str  # a TaskStatus value for state changes; anything else is progress
    data: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> TaskEvent:
        data = row["data"]
        return cls(
            id=row["id"],
            task_id=row["task_id"],
            kind=row["kind"],
            data=json.loads(data) if isinstance(data, str) else dict(data or {}),
            created_at=row["created_at"],
        )


def parse_notification(payload: str | None) -> dict[str, Any] | None:
    """A `lugh_events` payload ({"id", "task_id", "kind"}), or None when it is not one."""
    if not payload:
        return None
    try:
        note = json.loads(payload)
    except ValueError:
        return None
    return note if isinstance(note, dict) else None


def parse_notes(payload: str | None) -> list[dict[str, Any]]:
    """The notes of a `lugh_events` payload: one {"id", "task_id", "kind"} object, or a JSON
    array of them (changes announced together); empty when it is neither."""
    if not payload:
        return []
    try:
        notes = json.loads(payload)
    except ValueError:
        return []
    if isinstance(notes, dict):
        return [notes]
    return [n for n in notes if isinstance(n, dict)] if isinstance(notes, list) else []


class Events:
    """Publish task events and follow them, with a replay that misses nothing after a reconnect.

    `listener` is the process's bus (a Listener, or any Bus): followers are woken through it.
    """

    def __init__(
        self, pool: asyncpg.Pool, listener: Bus | Listener | None = None, *, poll_s: float = 5.0
    ) -> None:
        self.pool = pool
        self.listener = listener
        self.poll_s = poll_s
        # A bus that does not hear NOTIFY is told of each committed event by hand.
        self._relay_to = cast(Bus, listener) if needs_relay(listener) else None

    async def publish(
        self,
        task_id: int,
        kind: str,
        data: Mapping[str, Any] | None = None,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> TaskEvent:
        """Append an event and announce it on `lugh_events`, in `conn`'s transaction if given
        (there, a bus other than Postgres is not told: followers see it at their next poll).
        TaskNotFound when there is no such task."""
        db = conn if conn is not None else self.pool
        row = await db.fetchrow(Q.publish, task_id, kind, json.dumps(dict(data or {})))
        if row is None:
            raise TaskNotFound(task_id)
        if conn is None:
            await self._announce(row)
        return TaskEvent.from_row(row)

    async def publish_fenced(
        self, task_id: int, token: int, kind: str, data: Mapping[str, Any] | None = None
    ) -> TaskEvent | None:
        """Publish only while the task runs under lease `token`; None when the lease is gone."""
        row = await self.pool.fetchrow(
            Q.publish_fenced, task_id, kind, json.dumps(dict(data or {})), token
        )
        await self._announce(row)
        return None if row is None else TaskEvent.from_row(row)

    async def read_since(
        self, event_id: int = 0, *, task_id: int | None = None, limit: int = 1000
    ) -> list[TaskEvent]:
        """Events after `event_id` in id order (a task's history, an audit trail, a replay)."""
        rows = await self.pool.fetch(Q.read_since, event_id, task_id, limit)
        return [TaskEvent.from_row(r) for r in rows]

    async def latest(self, task_id: int, limit: int = 20) -> list[TaskEvent]:
        """The newest `limit` events of a task, oldest first (`/status`, `/why`)."""
        rows = await self.pool.fetch(Q.latest_of_task, task_id, limit)
        return [TaskEvent.from_row(r) for r in rows]

    async def _announce(self, row: asyncpg.Record | None) -> None:
        if self._relay_to is not None and row is not None:
            await relay(self._relay_to, notes_of([row], {"event_note": EVENTS_CHANNEL}))

    def subscribe(
        self, after_id: int | None = None, *, task_id: int | None = None
    ) -> Subscription:
        """Follow events as they come: `async with bus.subscribe(n) as feed: async for e in feed`.

        With `after_id`, first replays every event after it; without, starts from now.
        """
        return Subscription(self, after_id, task_id)


class Subscription:
    """A live feed of events; each event is delivered once, even across listener reconnects."""

    def __init__(self, events: Events, after_id: int | None, task_id: int | None) -> None:
        self._events = events
        self._replay_after = after_id
        self._task_id = task_id
        self._snapshot = ""
        self._buffer: deque[TaskEvent] = deque()
        self._wake = asyncio.Event()
        self._unsubscribe = lambda: None

    async def __aenter__(self) -> Subscription:
        if self._events.listener is not None:
            self._unsubscribe = self._events.listener.subscribe(EVENTS_CHANNEL, self._notified)
        self._snapshot = await self._events.pool.fetchval(Q.snapshot)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._unsubscribe()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> TaskEvent:
        while not self._buffer:
            await self._fill()
        return self._buffer.popleft()

    def _notified(self, payload: str | None) -> None:
        notes = parse_notes(payload)
        if self._task_id is None or not notes or any(
            note.get("task_id") == self._task_id for note in notes
        ):
            self._wake.set()

    async def _fill(self) -> None:
        pool = self._events.pool
        if self._replay_after is not None:
            rows = await pool.fetch(
                Q.visible_in, self._replay_after, self._snapshot, self._task_id, REPLAY_PAGE
            )
            if rows:
                self._buffer.extend(TaskEvent.from_row(r) for r in rows)
                self._replay_after = rows[-1]["id"]
                return
            self._replay_after = None
        self._wake.clear()
        rows = await pool.fetch(Q.visible_since, self._snapshot, self._task_id)
        self._snapshot = rows[0]["snapshot"]
        self._buffer.extend(TaskEvent.from_row(r) for r in rows if r["id"] is not None)
        if not self._buffer:
            await wait_event(self._wake, self._events.poll_s)
