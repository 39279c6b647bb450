"""The worker pool: claims tasks into N slots, runs them under a heartbeated lease, ends them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from dataclasses import dataclass, field

from lugh.logs import get_logger
from lugh.tasks.bus import Bus
from lugh.tasks.events import EVENTS_CHANNEL, Events, parse_notification
from lugh.tasks.executor import ExecutionResult, Executor, TaskContext, TaskFailed
from lugh.tasks.listener import Listener
from lugh.tasks.model import Task, TaskStatus
from lugh.tasks.queue import TASKS_CHANNEL, TaskQueue
from lugh.tasks.waiting import wait_event

log = get_logger("lugh.tasks.worker")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Slot:
    task: Task
    ctx: TaskContext
    work: asyncio.Task[ExecutionResult] | None = None
    check: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: str | None = None  # why we cancelled the executor, when we did
    release: bool = False  # give the task back to the queue once the executor has stopped


class WorkerPool:
    """Runs queued tasks with `slots` at a time: woken through `listener` (the process's bus:
    a Listener or any Bus), polling every `poll_s` anyway.

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
        self._running: dict[tuple[int, int], Slot] = {}
        self._slot_tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._full = False  # the claim loop found no free slot: wake it when one frees up
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._drained = asyncio.Event()

    @property
    def running(self) -> list[Task]:
        return [slot.task for slot in self._running.values()]

    @property
    def idle(self) -> bool:
        """No slot is busy (running a task or claiming the next)."""
        return self._idle.is_set()

    async def run(self) -> None:
        unsubscribe = []
        if self.listener is not None:
            unsubscribe = [
                self.listener.subscribe(TASKS_CHANNEL, self._on_tasks),
                self.listener.subscribe(EVENTS_CHANNEL, self._on_event),
            ]
        sweeper = asyncio.create_task(self._sweep(), name=f"{self.worker_id}:sweeper")
        try:
            while not self._stopping:
                self._wake.clear()
                idle_s = await self._fill_slots()
                await wait_event(self._wake, idle_s)
            await self._drained.wait()
        finally:
            for stop_listening in unsubscribe:
                stop_listening()
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await self._abandon_all()
            await self.queue.announced()  # the last completions' notes, before we go

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
        try:
            while not self._stopping and (free := self.slots - len(self._slot_tasks)) > 0:
                claimed = await self.queue.claim_many(self.worker_id, self.lease_s, free)
                for task in claimed:
                    if self._stopping:  # stop() came while the claim was in flight
                        await self.queue.release(task.id, task.lease_token)
                    else:
                        self._start(task)
                if len(claimed) < free:
                    due = await self.queue.next_due_in()
                    return self.poll_s if due is None else min(self.poll_s, max(due, 0.01))
            self._full = True
        except Exception as exc:  # the loop must outlive any one failure; it retries
            log.warning("cannot claim tasks; will retry", error=repr(exc))
        return self.poll_s

    def _start(self, task: Task) -> None:
        self._idle.clear()
        runner = asyncio.create_task(self._serve(task), name=f"slot:{task.id}")
        self._slot_tasks.add(runner)
        runner.add_done_callback(self._slot_done)

    def _slot_done(self, runner: asyncio.Task[None]) -> None:
        self._slot_tasks.discard(runner)
        if not self._slot_tasks:
            self._idle.set()
        # A slot ends when its own claim found nothing, so the claim loop need not look again,
        # unless it was woken while every slot was busy (that task may still be waiting).
        if self._full or runner.cancelled() or runner.exception() is not None:
            self._wake.set()

    async def _serve(self, task: Task | None) -> None:
        # A busy slot claims its next task itself, so under load claims run in parallel;
        # idle slots are filled by the one claim loop, so a NOTIFY wakes one query, not N.
        while task is not None:
            await self._run(task)
            task = await self._claim_next()

    async def _claim_next(self) -> Task | None:
        if self._stopping:
            return None
        try:
            task = await self.queue.claim(self.worker_id, self.lease_s)
            if task is not None and self._stopping:
                await self.queue.release(task.id, task.lease_token)
                return None
        except Exception as exc:
            log.warning("cannot claim tasks; will retry", error=repr(exc))
            return None
        return task

    async def _run(self, task: Task) -> None:
        slot = Slot(task, TaskContext(task, self.queue, self.events, self.lease_s))
        self._running[task.id, task.lease_token] = slot
        log.info("task started", task=task.id, attempt=task.attempts, worker=self.worker_id)
        slot.work = asyncio.create_task(
            self.executor.execute(task, slot.ctx), name=f"execute:{task.id}"
        )
        beat = asyncio.create_task(self._heartbeat(slot))
        try:
            await self._finish(slot)
        except Exception as exc:
            # The outcome is lost (with the connection, most likely); the lease will expire and
            # the sweeper requeues the task, so it runs again rather than vanishing.
            log.warning("cannot record the task's outcome", task=task.id, error=repr(exc))
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            del self._running[task.id, task.lease_token]

    async def _finish(self, slot: Slot) -> None:
        task, token = slot.task, slot.task.lease_token
        assert slot.work is not None
        try:
            outcome = await slot.work
        except asyncio.CancelledError:
            if slot.stop_reason is None:
                raise  # the pool itself is being cancelled
            log.info("task stopped", task=task.id, reason=slot.stop_reason)
            if slot.release and await self.queue.release(task.id, token):
                log.info("task released to the queue", task=task.id)
            return
        except TaskFailed as exc:
            await self._fail(task, str(exc), retry=exc.retry)
            return
        except Exception as exc:
            log.exception("task attempt failed", task=task.id, attempt=task.attempts)
            await self._fail(task, f"{type(exc).__name__}: {exc}")
            return
        if await self.queue.complete(task.id, token, outcome.status, result=outcome.result):
            log.info("task finished", task=task.id, status=outcome.status)
        else:
            log.warning("completion refused: the lease was lost", task=task.id, token=token)

    async def _fail(self, task: Task, error: str, *, retry: bool = True) -> None:
        moved = await self.queue.fail_attempt(task.id, task.lease_token, error, retry=retry)
        if moved is None:
            log.warning("failure not recorded: the lease was lost", task=task.id)
        elif moved.status is TaskStatus.FAILED:
            log.warning("task failed", task=task.id, attempts=moved.attempts, error=error)

    async def _heartbeat(self, slot: Slot) -> None:
        while True:
            await wait_event(slot.check, self.heartbeat_s)
            slot.check.clear()
            try:
                ours = await slot.ctx.heartbeat()
            except Exception as exc:  # a passing fault; the lease outlives a few misses
                log.warning("heartbeat failed; will retry", task=slot.task.id, error=repr(exc))
                continue
            if not ours:
                self._stop_work(slot, "the task was cancelled or its lease expired")
                return

    def _stop_work(self, slot: Slot, reason: str, *, release: bool = False) -> None:
        if slot.stop_reason is None:
            slot.stop_reason = reason
            slot.release = release
        if slot.work is not None:
            slot.work.cancel()

    def _on_tasks(self, _payload: str | None) -> None:
        self._wake.set()

    def _on_event(self, payload: str | None) -> None:
        note = parse_notification(payload)
        if payload is None:
            slots = list(self._running.values())  # notifications were lost: check every lease
        elif note is not None and note.get("kind") != TaskStatus.RUNNING:
            slots = [s for s in self._running.values() if s.task.id == note.get("task_id")]
        else:
            return
        for slot in slots:
            slot.check.set()

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
        self._stopping = True  # or a slot would claim the very task it just released
        for slot in list(self._running.values()):
            self._stop_work(slot, "the worker was cancelled", release=True)
        if self._slot_tasks:
            await asyncio.wait(set(self._slot_tasks), timeout=5.0)
