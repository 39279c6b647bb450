"""The task queue in Postgres: enqueue, claim with a lease and a fencing token, finish, retry."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from lugh.db import queries
from lugh.tasks.bus import Announcer, Bus, Note, needs_relay, notes_of, relay
from lugh.tasks.events import EVENTS_CHANNEL
from lugh.tasks.model import (
    CANCELLABLE,
    RETRYABLE,
    REVIEWABLE,
    IllegalTransition,
    Task,
    TaskError,
    TaskNotFound,
    TaskSource,
    TaskStatus,
)

Q = queries.load(__file__, "queue")
TASKS_CHANNEL = "lugh_tasks"
# The columns in which each statement returns its notes, and the channel of each.
NOTES = {"task_note": TASKS_CHANNEL, "event_note": EVENTS_CHANNEL}

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
COMPLETIONS = frozenset({TaskStatus.AWAITING_REVIEW, TaskStatus.DONE, TaskStatus.FAILED})


@dataclass(frozen=True)
class Outcome:
    """How a worker ended a task it held under lease `token`."""

    task_id: int
    token: int
    status: TaskStatus = TaskStatus.DONE
    result: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Backoff:
    """Delay before retry n (1-based): base·2^(n-1) seconds, capped, spread by ± jitter."""

    base_s: float = 5.0
    max_s: float = 600.0
    jitter: float = 0.2

    def params(self) -> tuple[float, float, float]:
        return (self.base_s, self.max_s, self.jitter)


class LocalTaker(Protocol):
    """A worker pool of this process that takes tasks straight from their enqueue (a WorkerPool).

    `reserve_slot` holds a free slot for a task about to be enqueued (False: none free, or the
    pool is stopping); the queue then enqueues it on `connection()` and either hands it the task,
    leased to `worker_id`, with `take`, or gives the slot back with `unreserve_slot`.
    """

    worker_id: str
    lease_s: float

    def reserve_slot(self) -> bool: ...

    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]: ...

    def unreserve_slot(self) -> None: ...

    def take(self, task: Task, last_event_id: int) -> None: ...


class TaskQueue:
    """Tasks in Postgres: every move is one atomic statement that also records and announces it.

    Rare moves NOTIFY in their statement; claims and completions are announced just after their
    commit (see sql/queue.sql). With a `bus` that does not hear NOTIFY (Redis), every note is
    published there instead, once its statement has committed.
    """

    def __init__(
        self, pool: asyncpg.Pool, *, backoff: Backoff | None = None, bus: Bus | None = None
    ) -> None:
        self.pool = pool
        self.backoff = backoff or Backoff()
        self.bus = bus
        self._relay_to = bus if needs_relay(bus) else None
        self._announcer = Announcer(self._send_notes)
        self._taker: LocalTaker | None = None

    def hand_to(self, taker: LocalTaker | None) -> None:
        """Let `taker`, a pool of this process, run what is enqueued here when it has a free slot:
        no NOTIFY wake-up, no claim round trip (None: every task goes through the queue)."""
        self._taker = taker

    async def enqueue(
        self,
        project_id: int,
        title: str,
        body: str = "",
        *,
        agent_id: int | None = None,
        parent_id: int | None = None,
        priority: int = 0,
        source: TaskSource = "cli",
        dedupe_key: str | None = None,
        depends_on: Iterable[int] = (),
        max_attempts: int = 3,
        delay_s: float = 0.0,
        options: dict[str, Any] | None = None,
        conn: Connection | None = None,
    ) -> Task:
        """Queue a task and wake the workers, atomically; inside `conn`'s transaction if given.

        With a `dedupe_key` already used, nothing is queued and the existing task is returned.
        Inside `conn`'s transaction a bus other than Postgres is not told (the commit is the
        caller's): workers find the task at their next poll.
        When the pool given to `hand_to` has a free slot and the task may run at once, the
        statement hands it to that pool instead of queuing it (see sql/queue.sql `enqueue`);
        never inside `conn`'s transaction, which the pool could not see before its commit.
        """
        args = (
            project_id, title, body, agent_id, parent_id, priority, source, dedupe_key,
            max_attempts, delay_s, json.dumps(options or {}), sorted(set(depends_on)),
        )  # fmt: skip
        taker = self._taker
        if conn is not None or delay_s > 0 or (options or {}).get("paused"):
            taker = None
        if taker is not None and not taker.reserve_slot():
            taker = None
        hand = (taker.worker_id, taker.lease_s) if taker is not None else (None, 0.0)
        row = task = None
        handed = False
        try:
            on = _connection(conn, self.pool) if taker is None else taker.connection()
            async with on as db:
                row = await db.fetchrow(Q.enqueue, *args, *hand)
                task = None if row is None else Task.from_row(row)
                handed = task is not None and task.status is TaskStatus.RUNNING
                if taker is not None and handed:
                    taker.take(task, row["last_event_id"])  # type: ignore[index]
                    try:  # the executor's first step before this enqueue's ending: 0.05 ms
                        await asyncio.sleep(0)  # sooner (bench/dispatch.py)
                    finally:
                        self._announce([row])  # its events, after the commit (sql/queue.sql)
        except asyncpg.ForeignKeyViolationError as exc:
            raise _missing_reference(exc, project_id, agent_id, parent_id) from None
        finally:
            # A hand-off committed but cut short here (cancelled, or the process dying) leaves
            # the task running under a lease nobody renews: the sweeper requeues it once the
            # lease expires, as it does for any claim whose worker vanished.
            if taker is not None and not handed:
                taker.unreserve_slot()
        db = conn if conn is not None else self.pool
        if row is not None and task is not None:
            if not handed and conn is None:
                await self._relay(row)
            return task
        row = await db.fetchrow(Q.by_dedupe_key, dedupe_key)  # the dedupe key is taken
        if row is None:
            raise TaskError(f"The task with key {dedupe_key!r} vanished; enqueue it again.")
        return Task.from_row(row)

    async def claim(self, worker_id: str, lease_s: float) -> Task | None:
        """Take the most urgent claimable task, leased to `worker_id` for `lease_s` seconds."""
        claimed = await self.claim_many(worker_id, lease_s, 1)
        return claimed[0] if claimed else None

    async def claim_many(
        self, worker_id: str, lease_s: float, limit: int, *, conn: Connection | None = None
    ) -> list[Task]:
        """Take up to `limit` claimable tasks at once, most urgent first."""
        db = conn if conn is not None else self.pool
        rows = await db.fetch(Q.claim, worker_id, lease_s, limit)
        self._announce(rows)
        return [Task.from_row(r) for r in rows]

    async def next_due_in(self, *, conn: Connection | None = None) -> float | None:
        """Seconds until the next queued task with its dependencies done is due (≤ 0: now)."""
        return await (conn if conn is not None else self.pool).fetchval(Q.next_due)

    async def heartbeat(self, task_id: int, token: int, lease_s: float) -> bool:
        """Extend the lease; False when it is no longer this token's (expired and requeued,
        cancelled, finished)."""
        return (task_id, token) in await self.heartbeat_many([(task_id, token)], lease_s)

    async def heartbeat_many(
        self, leases: Sequence[tuple[int, int]], lease_s: float
    ) -> set[tuple[int, int]]:
        """Extend several leases (task, token) in one statement; returns those still held."""
        if not leases:
            return set()
        ids, tokens = zip(*leases)
        rows = await self.pool.fetch(Q.heartbeat, list(ids), list(tokens), lease_s)
        return {(r["id"], r["lease_token"]) for r in rows}

    async def complete(
        self,
        task_id: int,
        token: int,
        status: TaskStatus | str = TaskStatus.DONE,
        *,
        result: Any = None,
        error: str | None = None,
    ) -> bool:
        """Finish a running task; refused (False, nothing changed) when the token is stale."""
        outcome = Outcome(task_id, token, TaskStatus(status), result, error)
        return (task_id, token) in await self.complete_many([outcome])

    async def complete_many(
        self, outcomes: Sequence[Outcome], *, conn: Connection | None = None
    ) -> set[tuple[int, int]]:
        """Finish several running tasks in one statement; returns the (task, token) pairs that
        were accepted (the others' tokens were stale, and nothing of theirs changed)."""
        for o in outcomes:
            if o.status not in COMPLETIONS:
                raise ValueError(f"a task cannot be completed as {o.status}")
        if not outcomes:
            return set()
        db = conn if conn is not None else self.pool
        rows = await db.fetch(
            Q.complete,
            [o.task_id for o in outcomes],
            [o.token for o in outcomes],
            [TaskStatus(o.status).value for o in outcomes],
            [None if o.result is None else json.dumps(o.result) for o in outcomes],
            [o.error for o in outcomes],
        )
        self._announce(rows)
        return {(r["id"], r["lease_token"]) for r in rows}

    async def fail_attempt(
        self, task_id: int, token: int, error: str, *, retry: bool = True
    ) -> Task | None:
        """Record a failed attempt: queued again after a backoff, or failed past max_attempts
        (or when `retry` is False). None when the token is stale."""
        row = await self.pool.fetchrow(
            Q.fail_attempt, task_id, token, error, retry, *self.backoff.params()
        )
        await self._relay(row)
        return None if row is None else Task.from_row(row)

    async def release(self, task_id: int, token: int) -> bool:
        """Give a running task back to the queue for another worker, attempt not counted."""
        row = await self.pool.fetchrow(Q.release, task_id, token)
        await self._relay(row)
        return row is not None

    async def requeue_expired(self) -> list[Task]:
        """Requeue (with backoff) or fail the tasks whose worker stopped renewing its lease."""
        rows = await self.pool.fetch(Q.requeue_expired, *self.backoff.params())
        await self._relay(*rows)
        return [Task.from_row(r) for r in rows]

    async def cancel(self, task_id: int, *, reason: str | None = None) -> Task:
        """Cancel a queued, running or in-review task; a running one stops within seconds."""
        return await self._move(
            task_id, CANCELLABLE, TaskStatus.CANCELLED, "cancelled", {"reason": reason}
        )

    async def retry(self, task_id: int) -> Task:
        """Queue a finished (or in-review) task again, with its attempts counted afresh."""
        return await self._move(
            task_id, RETRYABLE, TaskStatus.QUEUED, "retried", {"reason": "retry"}
        )

    async def approve(self, task_id: int, *, result: Any = None) -> Task:
        """The owner accepts the work of a task awaiting review."""
        return await self._move(task_id, REVIEWABLE, TaskStatus.DONE, "approved", {}, result)

    async def reject(self, task_id: int, *, reason: str | None = None) -> Task:
        """The owner turns down the work of a task awaiting review."""
        return await self._move(
            task_id, REVIEWABLE, TaskStatus.REJECTED, "rejected", {"reason": reason}
        )

    async def raise_priority(self, task_id: int) -> Task:
        """Move an open task ahead of the others (the owner's 🔥): priority one higher."""
        return await self._adjust(task_id, "raise", "raise the priority of")

    async def pause(self, task_id: int) -> Task:
        """Hold a queued task (the owner's 😴): it stays queued but is not claimed until resumed."""
        return await self._adjust(task_id, "pause", "pause")

    async def resume(self, task_id: int) -> Task:
        """Let a paused task be claimed again."""
        return await self._adjust(task_id, "resume", "resume")

    async def _adjust(self, task_id: int, change: str, verb: str) -> Task:
        row = await self.pool.fetchrow(Q.adjust, task_id, change)
        if row is not None:
            await self._relay(row)
            return Task.from_row(row)
        current = await self.get(task_id)
        if current is None:
            raise TaskNotFound(task_id)
        state = current.status.value.replace("_", " ")
        if current.options.get("paused"):
            state = "paused"
        raise TaskError(f"Cannot {verb} #{task_id}: it is {state}.")

    async def get(self, task_id: int) -> Task | None:
        row = await self.pool.fetchrow(Q.get, task_id)
        return None if row is None else Task.from_row(row)

    async def list(
        self,
        *,
        project_id: int | None = None,
        status: TaskStatus | str | Sequence[TaskStatus | str] | None = None,
        agent_id: int | None = None,
        parent_id: int | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[Task]:
        """Tasks newest first, filtered by whichever of the arguments are given."""
        statuses = None
        if status is not None:
            many = [status] if isinstance(status, str) else list(status)
            statuses = [TaskStatus(s).value for s in many]
        rows = await self.pool.fetch(
            Q.list, project_id, statuses, agent_id, parent_id, before_id, limit
        )
        return [Task.from_row(r) for r in rows]

    async def announced(self) -> None:
        """Wait until the claims and completions made so far have been announced."""
        await self._announcer.flush()

    async def _relay(self, *rows: asyncpg.Record | None) -> None:
        """Tell a bus that does not hear NOTIFY what a committed statement NOTIFYed."""
        if self._relay_to is not None:
            await relay(self._relay_to, notes_of([r for r in rows if r is not None], NOTES))

    def _announce(self, rows: list[asyncpg.Record]) -> None:
        """Announce the notes of a committed claim or completion, which did not NOTIFY."""
        self._announcer.announce(notes_of(rows, NOTES))

    async def _send_notes(self, notes: list[Note]) -> None:
        batched = batch_notes(notes)
        if self._relay_to is not None:
            await relay(self._relay_to, batched)
        else:
            await self.pool.execute(Q.notify, [c for c, _ in batched], [p for _, p in batched])

    async def _move(
        self,
        task_id: int,
        allowed: frozenset[TaskStatus],
        to: TaskStatus,
        action: str,
        data: dict[str, Any],
        result: Any = None,
    ) -> Task:
        data = {k: v for k, v in data.items() if v is not None}
        encoded = None if result is None else json.dumps(result)
        row = await self.pool.fetchrow(
            Q.move, task_id, sorted(allowed), to.value, json.dumps(data), encoded
        )
        if row is not None:
            await self._relay(row)
            return Task.from_row(row)
        current = await self.get(task_id)
        if current is None:
            raise TaskNotFound(task_id)
        raise IllegalTransition(task_id, current.status, to, action)


def _missing_reference(
    exc: asyncpg.ForeignKeyViolationError,
    project_id: int,
    agent_id: int | None,
    parent_id: int | None,
) -> TaskError:
    constraint = exc.constraint_name or ""
    if "project" in constraint:
        return TaskError(f"There is no project #{project_id}; register the project first.")
    if "agent" in constraint:
        return TaskError(f"There is no agent #{agent_id}; spawn it first or leave it out.")
    if "parent" in constraint:
        return TaskError(f"There is no task #{parent_id} to be this task's parent.")
    return TaskError(f"A task this one depends on does not exist ({exc.detail}).")


@contextlib.asynccontextmanager
async def _connection(conn: Connection | None, pool: asyncpg.Pool) -> AsyncIterator[Connection]:
    """`conn` when given (the caller's transaction), else a connection of the pool."""
    if conn is not None:
        yield conn
    else:
        async with pool.acquire() as held:
            yield held


def batch_notes(notes: list[Note], max_bytes: int = 7000) -> list[Note]:
    """Notes announced together, as one notification per channel (a JSON array of the notes'
    payloads) where they fit a NOTIFY payload: fewer to send, to queue and to wake for."""
    by_channel: dict[str, list[str]] = {}
    for channel, payload in notes:
        by_channel.setdefault(channel, []).append(payload)
    batched: list[Note] = []
    for channel, payloads in by_channel.items():
        if channel == TASKS_CHANNEL:
            batched.append((channel, payloads[0]))  # a wake-up: one says it all
            continue
        chunk: list[str] = []
        size = 2
        for payload in payloads:
            if chunk and size + len(payload) + 1 > max_bytes:
                batched.append((channel, f"[{','.join(chunk)}]"))
                chunk, size = [], 2
            chunk.append(payload)
            size += len(payload) + 1
        batched.append((channel, f"[{','.join(chunk)}]" if len(chunk) > 1 else chunk[0]))
    return batched
