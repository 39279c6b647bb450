"""The worker pool: claims tasks into N slots, runs them under a heartbeated lease, ends them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from lugh.logs import get_logger
from lugh.tasks.bus import Bus
from lugh.tasks.connections import HeldConnection
from lugh.tasks.events import EVENTS_CHANNEL, Events, parse_notes
from lugh.tasks.executor import ExecutionResult, Executor, TaskContext, TaskFailed
from lugh.tasks.listener import Listener
from lugh.tasks.model import Task, TaskStatus
from lugh.tasks.queue import TASKS_CHANNEL, Connection, Outcome, TaskQueue
from lugh.tasks.waiting import to_the_end, wait_event

log = get_logger("lugh.tasks.worker")
# Two lines per task: not even built when the configured level hides them (at thousands of
# tasks a second, formatting lines nobody sees cost a fifth of the pool's time).
_lines_per_task = logging.getLogger("lugh.tasks.worker")

RECORDERS = 2  # outcome recorders: one may record while another waits for its WAL flush
# The moves that take a running task from its worker (any but a progress note or a claim).
LEASE_ENDING = frozenset(TaskStatus) - {TaskStatus.RUNNING}


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Slot:
    task: Task
    ctx: TaskContext
    work: asyncio.Task[ExecutionResult] | None = None
    check: bool = False  # renew (and so verify) the lease at the next look, not at its time
    stop_reason: str | None = None  # why we cancelled the executor, when we did
    release: bool = False  # give the task back to the queue once the executor has stopped
    since_event: int = 0  # events up to this id were known when the slot started

    def moved_by(self, note: dict[str, object]) -> bool:
        """Whether a note (of a move out of `running`) is about this slot's task, and newer
        than the slot: a hand-off's own `queued` event is not."""
        event_id = note.get("id")
        return note.get("task_id") == self.task.id and (
            not isinstance(event_id, int) or event_id > self.since_event
        )

    @property
    def key(self) -> tuple[int, int]:
        return (self.task.id, self.task.lease_token)


class WorkerPool:
    """Runs queued tasks with `slots` at a time: woken through `listener` (the process's bus:
    a Listener or any Bus), polling every `poll_s` anyway.

    A slot is an executor running. One loop claims into every free slot in one statement, one
    records how executors ended (their completions in one statement, the slot already free for
    the next task), one renews every lease in one statement: under load, claims and completions
    batch themselves; idle, a NOTIFY wakes one query, not N. Given to its queue's `hand_to`,
    it also takes tasks enqueued in this process straight from their enqueue statement into a
    free slot (`reserve_slot`, `take`): no wake-up, no claim.
    `stop()` claims nothing more, gives running tasks `grace_s` to finish, then cancels them and
    releases them to the queue for another worker. Expired leases of any worker are swept here.
    """

    name = "workers"

    def __init__(
        self,
        queue: TaskQueue,
        executor: Executor,
        *,
        listener: Bus | Listener | None = None,
        events: Events | None = None,
        slots: int = 4,
        lease_s: float = 30.0,
        heartbeat_s: float | None = None,
        poll_s: float = 2.0,
        grace_s: float = 20.0,
        sweep_s: float | None = 5.0,
        worker_id: str | None = None,
    ) -> None:
        self.queue = queue
        self.executor = executor
        self.listener = listener
        self.events = events
        self.slots = slots
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else lease_s / 3
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.sweep_s = sweep_s
        self.worker_id = worker_id or default_worker_id()
        # By (task, token): after a starved heartbeat lets the lease lapse, this pool may claim
        # the same task again while its stale run is still winding down.
        self._running: dict[tuple[int, int], Slot] = {}  # leased here: executing or ending
        self._held: dict[int, int] = {}  # how many of `_running` each task id has
        self._executing = 0
        self._reserved = 0  # slots held for tasks being enqueued in this process
        self._claiming = 0  # slots a claim in flight may fill
        self.serving = asyncio.Event()  # run() has made its first claim: slots may be reserved
        self._wake = asyncio.Event()
        self._full = False  # the last claim filled every slot: the queue may hold more
        self._finished: list[Slot] = []  # executors done, outcome not yet recorded
        self._finishing = asyncio.Event()
        self._check = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._drained = asyncio.Event()
        self._claims = HeldConnection(queue.pool)
        self._handoffs = HeldConnection(queue.pool)  # see connection()
        self._handing_off = asyncio.Lock()
        self._records = [HeldConnection(queue.pool) for _ in range(RECORDERS)]

    @property
    def running(self) -> list[Task]:
        return [slot.task for slot in self._running.values()]

    @property
    def idle(self) -> bool:
        """No task is held: none running, none whose end is still being recorded, no slot
        reserved for a task being enqueued."""
        return self._idle.is_set()

    def reserve_slot(self) -> bool:
        """Hold a free slot for a task this process is enqueuing; False when none is free or the
        pool is not serving (not started, or stopping)."""
        if not self.serving.is_set() or self._stopping:
            return False
        if self._executing + self._reserved + self._claiming >= self.slots:
            return False
        self._reserved += 1
        self._idle.clear()
        return True

    def unreserve_slot(self) -> None:
        """The task was queued after all: the slot is free again."""
        self._reserved -= 1
        self._settle()
        if self._full:  # a wake-up found no free slot while this one was held: look again
            self._wake.set()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """The connection to enqueue a task on that has a slot reserved here: one this pool keeps
        for hand-offs, unless another enqueue is using it (then one of the database pool's).
        No acquire and release on the hand-off's path: 0.07 ms of its ~1.5 (bench/dispatch.py).
        """
        if self._handing_off.locked():
            async with self.queue.pool.acquire() as conn:
                yield conn
            return
        async with self._handing_off, self._handoffs.use() as conn:
            yield conn

    def take(self, task: Task, last_event_id: int) -> None:
        """Run a task its enqueue handed to this pool, leased to it, in the slot reserved for it."""
        self._reserved -= 1
        self._start(task, since_event=last_event_id)

    async def run(self) -> None:
        unsubscribe = []
        if self.listener is not None:
            unsubscribe = [
                self.listener.subscribe(TASKS_CHANNEL, self._on_tasks),
                self.listener.subscribe(EVENTS_CHANNEL, self._on_event),
            ]
        loops = [
            *(
                asyncio.create_task(self._record_outcomes(held), name=f"{self.worker_id}:outcomes")
                for held in self._records
            ),
            asyncio.create_task(self._keep_leases(), name=f"{self.worker_id}:leases"),
            asyncio.create_task(self._sweep(), name=f"{self.worker_id}:sweeper"),
        ]
        try:
            while not self._stopping:
                self._wake.clear()
                idle_s = await self._fill_slots()
                self.serving.set()
                await wait_event(self._wake, idle_s)
            await self._drained.wait()
        finally:
            for stop_listening in unsubscribe:
                stop_listening()
            await to_the_end(self._wind_down(loops))

    async def _wind_down(self, loops: list[asyncio.Task[None]]) -> None:
        await self._abandon_all()  # the outcomes loop still runs, to release them
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await self._claims.give_back()
        async with self._handing_off:  # idle, so no enqueue holds it: only for certain
            await self._handoffs.give_back()
        for held in self._records:
            await held.give_back()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self.queue.announced()  # the last claims' and completions' notes

    async def stop(self) -> None:
        """Claim nothing more; let running tasks finish for `grace_s`, then release them."""
        self._stopping = True
        self._wake.set()
        if not await wait_event(self._idle, self.grace_s):
            log.info("releasing unfinished tasks", tasks=[t.id for t in self.running])
            for slot in list(self._running.values()):
                self._stop_work(slot, "the worker is stopping", release=True)
            await self._idle.wait()
        self._drained.set()

    async def _fill_slots(self) -> float:
        """Claim into the free slots; return how long to wait before looking again."""
        self._full = False
        free = self.slots - self._executing - self._reserved
        if self._stopping or free <= 0:
            self._full = free <= 0
            return self.poll_s
        self._claiming = free  # no hand-off into these slots meanwhile
        try:
            async with self._claims.use() as conn:
                claimed = await self.queue.claim_many(self.worker_id, self.lease_s, free, conn=conn)
                self._claiming = 0
                for task in claimed:
                    self._start(task)
                if len(claimed) == free:
                    self._full = True
                    return self.poll_s
                if claimed:
                    await asyncio.sleep(0)  # the executors just started go first
                due = await self.queue.next_due_in(conn=conn)
        except Exception as exc:  # the loop must outlive any one failure; it retries
            log.warning("cannot claim tasks; will retry", error=repr(exc))
            return self.poll_s
        finally:
            self._claiming = 0  # also when the claim failed
        return self.poll_s if due is None else min(self.poll_s, max(due, 0.01))

    def _start(self, task: Task, *, since_event: int = 0) -> None:
        slot = Slot(task, TaskContext(task, self.queue, self.events, self.lease_s))
        slot.since_event = since_event
        if self._stopping:  # stop() came while the claim was in flight
            slot.stop_reason, slot.release = "the worker is stopping", True
            self._hold(slot)
            self._finish(slot)
            return
        if _lines_per_task.isEnabledFor(logging.INFO):
            log.info("task started", task=task.id, attempt=task.attempts, worker=self.worker_id)
        self._hold(slot)
        self._executing += 1
        slot.work = asyncio.create_task(
            self.executor.execute(task, slot.ctx), name=f"execute:{task.id}"
        )
        slot.work.add_done_callback(lambda _work: self._executed(slot))

    def _executed(self, slot: Slot) -> None:
        self._executing -= 1
        # Only when the last claim filled every slot may the queue hold more for this one;
        # otherwise new work comes with a notification (or the poll).
        if self._full:
            self._wake.set()
        self._finish(slot)

    def _finish(self, slot: Slot) -> None:
        self._finished.append(slot)
        self._finishing.set()

    async def _record_outcomes(self, held: HeldConnection) -> None:
        """Record how the finished executors ended: completions together, in one statement."""
        while True:
            await self._finishing.wait()
            self._finishing.clear()
            batch, self._finished = self._finished, []
            if not batch:
                continue  # another recorder took them
            try:
                completions: list[tuple[Slot, Outcome]] = []
                for slot in batch:
                    outcome = await self._outcome(slot)
                    if outcome is not None:
                        completions.append((slot, outcome))
                if completions:
                    await self._complete(held, completions)
            except Exception:  # the loop must outlive any one failure; leases cover the loss
                log.exception("cannot record how tasks ended")
            finally:
                for slot in batch:
                    self._end(slot)

    async def _outcome(self, slot: Slot) -> Outcome | None:
        """The completion to record for a finished slot; failures and releases are done here."""
        task, work = slot.task, slot.work
        try:
            if work is None or work.cancelled():
                if slot.stop_reason is None:
                    await self._fail(task, "The executor was cancelled.")
                    return None
                log.info("task stopped", task=task.id, reason=slot.stop_reason)
                if slot.release and await self.queue.release(task.id, task.lease_token):
                    log.info("task released to the queue", task=task.id)
                return None
            exc = work.exception()
            if isinstance(exc, TaskFailed):
                await self._fail(task, str(exc), retry=exc.retry)
                return None
            if exc is not None:
                log.error(
                    "task attempt failed", task=task.id, attempt=task.attempts, exc_info=exc
                )
                await self._fail(task, f"{type(exc).__name__}: {exc}")
                return None
        except Exception as exc:
            # The outcome is lost (with the connection, most likely); the lease will expire and
            # the sweeper requeues the task, so it runs again rather than vanishing.
            log.warning("cannot record the task's outcome", task=task.id, error=repr(exc))
            return None
        done = work.result()
        if done.recorded:
            if _lines_per_task.isEnabledFor(logging.INFO):
                log.info("task finished", task=task.id, status=done.status)
            return None
        return Outcome(task.id, task.lease_token, TaskStatus(done.status), done.result)

    async def _complete(
        self, held: HeldConnection, completions: list[tuple[Slot, Outcome]]
    ) -> None:
        try:
            async with held.use() as conn:
                accepted = await self.queue.complete_many([o for _, o in completions], conn=conn)
        except Exception as exc:  # lost outcomes: the leases expire and the tasks run again
            tasks = [slot.task.id for slot, _ in completions]
            log.warning("cannot record the tasks' outcomes", tasks=tasks, error=repr(exc))
            return
        for slot, outcome in completions:
            if slot.key not in accepted:
                log.warning(
                    "completion refused: the lease was lost", task=slot.task.id, token=slot.key[1]
                )
            elif _lines_per_task.isEnabledFor(logging.INFO):
                log.info("task finished", task=slot.task.id, status=outcome.status)

    async def _fail(self, task: Task, error: str, *, retry: bool = True) -> None:
        moved = await self.queue.fail_attempt(task.id, task.lease_token, error, retry=retry)
        if moved is None:
            log.warning("failure not recorded: the lease was lost", task=task.id)
        elif moved.status is TaskStatus.FAILED:
            log.warning("task failed", task=task.id, attempts=moved.attempts, error=error)

    def _hold(self, slot: Slot) -> None:
        self._running[slot.key] = slot
        self._held[slot.task.id] = self._held.get(slot.task.id, 0) + 1
        self._idle.clear()

    def _end(self, slot: Slot) -> None:
        if self._running.pop(slot.key, None) is not None:
            left = self._held.pop(slot.task.id) - 1
            if left:
                self._held[slot.task.id] = left
        self._settle()

    def _settle(self) -> None:
        if not self._running and not self._reserved:
            self._idle.set()

    async def _keep_leases(self) -> None:
        """Renew every lease together each `heartbeat_s`, and at once the ones a notification
        says may be gone; stop the executors whose lease is lost."""
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + self.heartbeat_s
        while True:
            await wait_event(self._check, max(renew_at - loop.time(), 0))
            self._check.clear()
            if loop.time() >= renew_at:
                renew_at = loop.time() + self.heartbeat_s
                due = list(self._running.values())
            else:
                due = [slot for slot in self._running.values() if slot.check]
            due = [s for s in due if s.stop_reason is None and s.work and not s.work.done()]
            for slot in due:
                slot.check = False
            if not due:
                continue
            try:
                held = await self.queue.heartbeat_many([s.key for s in due], self.lease_s)
            except Exception as exc:  # a passing fault; the leases outlive a few misses
                log.warning("heartbeat failed; will retry", error=repr(exc))
                continue
            for slot in due:
                # A finishing executor moves its task out of `running` itself: not a loss.
                if slot.key not in held and not slot.ctx.finishing:
                    slot.ctx.lost.set()
                    self._stop_work(slot, "the task was cancelled or its lease expired")

    def _stop_work(self, slot: Slot, reason: str, *, release: bool = False) -> None:
        if slot.stop_reason is None:
            slot.stop_reason = reason
            slot.release = release
        if slot.work is not None:
            slot.work.cancel()

    def _on_tasks(self, _payload: str | None) -> None:
        self._wake.set()

    def _on_event(self, payload: str | None) -> None:
        if payload is None:
            slots = list(self._running.values())  # notifications were lost: check every lease
        else:
            # Only a move of a task held here can mean its lease is gone (cancelled, requeued).
            moved = [
                note
                for note in parse_notes(payload)
                if note.get("kind") in LEASE_ENDING and note.get("task_id") in self._held
            ]
            if not moved:
                return
            slots = [
                s for s in self._running.values() if any(s.moved_by(note) for note in moved)
            ]
        for slot in slots:
            slot.check = True
        if slots:
            self._check.set()

    async def _sweep(self) -> None:
        if self.sweep_s is None:
            return
        while True:
            await asyncio.sleep(self.sweep_s)
            try:
                moved = await self.queue.requeue_expired()
            except Exception as exc:
                log.warning("cannot sweep expired leases", error=repr(exc))
                continue
            for task in moved:
                log.warning("lease expired", task=task.id, status=task.status, error=task.error)
            if moved:
                self._wake.set()  # to learn when the requeued tasks are due

    async def _abandon_all(self) -> None:
        """The pool is going away without a graceful stop: stop executors, release their tasks."""
        self._stopping = True  # or a claim would take the very task just released
        for slot in list(self._running.values()):
            self._stop_work(slot, "the worker was cancelled", release=True)
        if self._running:
            await wait_event(self._idle, 5.0)
