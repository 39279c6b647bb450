"""A task enqueued in the process of a pool with a free slot starts there straight from its
enqueue: no wake-up, no claim. Anything else is queued and notified as before."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from lugh.db.database import create_pool
from lugh.tasks import (
    EVENTS_CHANNEL,
    TASKS_CHANNEL,
    Bus,
    Events,
    Listener,
    TaskError,
    TaskQueue,
    TaskStatus,
    WorkerPool,
)

from .conftest import WAIT_S, BlockingExecutor, RecordingExecutor, running, wait_for_statuses

NEVER_S = 600.0  # no poll, no heartbeat: only a hand-off (or a notification) starts a task


class Heard:
    """Every notification on the task and event channels, in the order they arrive."""

    def __init__(self) -> None:
        self.woken: list[str] = []  # lugh_tasks payloads
        self.notes: list[dict] = []  # lugh_events notes, arrays unpacked
        self._ready = {TASKS_CHANNEL: asyncio.Event(), EVENTS_CHANNEL: asyncio.Event()}
        self._changed = asyncio.Event()

    @classmethod
    async def on(cls, listener: Listener | Bus) -> Heard:
        heard = cls()
        listener.subscribe(TASKS_CHANNEL, lambda p: heard._got(TASKS_CHANNEL, p))
        listener.subscribe(EVENTS_CHANNEL, lambda p: heard._got(EVENTS_CHANNEL, p))
        for ready in heard._ready.values():
            await asyncio.wait_for(ready.wait(), WAIT_S)
        return heard

    def _got(self, channel: str, payload: str | None) -> None:
        if payload is None:
            self._ready[channel].set()
        elif channel == TASKS_CHANNEL:
            self.woken.append(payload)
        else:
            notes = json.loads(payload)
            self.notes.extend(notes if isinstance(notes, list) else [notes])
        self._changed.set()

    async def event(self, task_id: int, kind: str) -> None:
        async def heard() -> None:
            while not any(n["task_id"] == task_id and n["kind"] == kind for n in self.notes):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(heard(), WAIT_S)


def deaf_pool(queue: TaskQueue, executor, **options) -> WorkerPool:
    """A pool that hears no notification and never polls: a task it runs was handed to it."""
    workers = WorkerPool(queue, executor, listener=None, poll_s=NEVER_S, sweep_s=None, **options)
    queue.hand_to(workers)
    return workers


async def serving(workers: WorkerPool) -> None:
    await asyncio.wait_for(workers.serving.wait(), WAIT_S)


async def kinds(pool: asyncpg.Pool, task_id: int) -> list[str]:
    rows = await pool.fetch("SELECT kind FROM task_events WHERE task_id = $1 ORDER BY id", task_id)
    return [r["kind"] for r in rows]


async def test_a_task_enqueued_beside_a_pool_with_a_free_slot_starts_there_without_wake_up_or_claim(
    queue: TaskQueue, pool, listener: Listener, events: Events, project_id, effects
):
    heard = await Heard.on(listener)
    workers = deaf_pool(queue, RecordingExecutor(pool), slots=2)
    async with running(workers):
        await serving(workers)
        task = await queue.enqueue(project_id, "now")
        assert (task.status, task.attempts, task.lease_owner) == (
            TaskStatus.RUNNING, 1, workers.worker_id
        )
        await wait_for_statuses(events, {task.id: "done"})
        await heard.event(task.id, "running")  # both events were announced, in one notification

    assert await kinds(pool, task.id) == ["queued", "running", "done"]
    running_event = await pool.fetchval(
        "SELECT data FROM task_events WHERE task_id = $1 AND kind = 'running'", task.id
    )
    assert json.loads(running_event) == {
        "from": "queued", "attempt": 1, "worker": workers.worker_id, "handed_off": True
    }
    assert str(task.id) not in heard.woken  # sent before the events' note, had it been sent
    assert task.lease_token > 0
    assert await pool.fetchval("SELECT writes FROM effects WHERE task_id = $1", task.id) == 1


async def test_when_every_slot_is_busy_the_task_is_queued_and_notified_then_claimed(
    queue: TaskQueue, pool, listener: Listener, events: Events, project_id
):
    heard = await Heard.on(listener)
    blocker = BlockingExecutor()
    workers = WorkerPool(queue, blocker, listener=listener, slots=1, poll_s=NEVER_S, sweep_s=None)
    queue.hand_to(workers)
    async with running(workers):
        await serving(workers)
        first = await queue.enqueue(project_id, "takes the slot")
        second = await queue.enqueue(project_id, "waits")
        assert (first.status, second.status) == (TaskStatus.RUNNING, TaskStatus.QUEUED)
        await heard.event(second.id, "queued")
        assert str(second.id) in heard.woken
        blocker.release.set()
        await wait_for_statuses(events, {first.id: "done", second.id: "done"})

    claimed = await pool.fetchval(
        "SELECT data FROM task_events WHERE task_id = $1 AND kind = 'running'", second.id
    )
    assert "handed_off" not in json.loads(claimed)


async def test_a_delayed_task_or_one_waiting_on_a_dependency_is_queued_not_handed_off(
    queue: TaskQueue, pool, project_id
):
    blocker = BlockingExecutor()
    workers = deaf_pool(queue, blocker, slots=4)
    async with running(workers):
        await serving(workers)
        later = await queue.enqueue(project_id, "later", delay_s=30)
        first = await queue.enqueue(project_id, "first")  # running, so not done
        after = await queue.enqueue(project_id, "after the first", depends_on=[first.id])
        paused = await queue.enqueue(project_id, "held", options={"paused": True})
        statuses = [t.status for t in (later, first, after, paused)]
        assert statuses == [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.QUEUED,
                            TaskStatus.QUEUED]  # fmt: skip
        assert [t.id for t in workers.running] == [first.id]
        blocker.release.set()


async def test_a_task_whose_dependencies_are_all_done_is_handed_off(
    queue: TaskQueue, pool, project_id, events: Events, effects
):
    workers = deaf_pool(queue, RecordingExecutor(pool), slots=1)
    async with running(workers):
        await serving(workers)
        first = await queue.enqueue(project_id, "first")
        await wait_for_statuses(events, {first.id: "done"})
        after = await queue.enqueue(project_id, "after", depends_on=[first.id])
        assert after.status is TaskStatus.RUNNING
        await wait_for_statuses(events, {after.id: "done"})


async def test_a_hand_off_never_jumps_a_claimable_task_of_the_same_or_a_higher_priority(
    queue: TaskQueue, pool, project_id
):
    elsewhere = TaskQueue(pool)  # another process's queue: nothing of it is handed here
    waiting = await elsewhere.enqueue(project_id, "waiting", priority=1)
    blocker = BlockingExecutor()
    workers = deaf_pool(queue, blocker, slots=8)
    async with pool.acquire() as other_worker, other_worker.transaction():
        # Another worker is claiming it: this pool's claims skip it, and it is still waiting.
        await other_worker.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", waiting.id)
        async with running(workers):
            await serving(workers)
            lower = await queue.enqueue(project_id, "lower", priority=0)
            same = await queue.enqueue(project_id, "same", priority=1)
            higher = await queue.enqueue(project_id, "higher", priority=2)
            blocker.release.set()

    assert [t.status for t in (lower, same, higher)] == [
        TaskStatus.QUEUED, TaskStatus.QUEUED, TaskStatus.RUNNING
    ]  # fmt: skip
    assert (await queue.get(waiting.id)).status is TaskStatus.QUEUED


async def test_an_enqueue_in_a_rolled_back_transaction_runs_nothing_even_with_a_slot_free(
    queue: TaskQueue, pool, listener: Listener, events: Events, project_id, effects
):
    workers = WorkerPool(
        queue, RecordingExecutor(pool), listener=listener, slots=2, poll_s=NEVER_S, sweep_s=None
    )
    queue.hand_to(workers)
    async with running(workers):
        await serving(workers)
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            ghost = await queue.enqueue(project_id, "never", conn=conn)
            assert ghost.status is TaskStatus.QUEUED and workers.idle
            await transaction.rollback()
        real = await queue.enqueue(project_id, "real")
        await wait_for_statuses(events, {real.id: "done"})

    assert await pool.fetchval("SELECT array_agg(task_id) FROM effects") == [real.id]
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 1


async def test_enqueues_at_once_are_all_handed_off_and_a_stopped_pool_holds_no_connection(
    queue: TaskQueue, pool: asyncpg.Pool, project_id
):
    in_use_before = pool.get_size() - pool.get_idle_size()
    blocker = BlockingExecutor()
    workers = deaf_pool(queue, blocker, slots=8)
    async with running(workers):
        await serving(workers)
        with pytest.raises(TaskError, match="There is no project #0"):
            await queue.enqueue(0, "nowhere")  # on the pool's own connection, given back
        at_once = [queue.enqueue(project_id, f"at once {n}") for n in range(8)]
        tasks = await asyncio.gather(*at_once)  # one on the pool's own connection, the rest not
        assert {t.status for t in tasks} == {TaskStatus.RUNNING}
        blocker.release.set()
    assert pool.get_size() - pool.get_idle_size() == in_use_before


async def test_after_the_database_cut_every_connection_the_next_enqueue_is_still_handed_off(
    pool: asyncpg.Pool, database: str, events: Events, project_id, effects
):
    tagged = f"{database}{'&' if '?' in database else '?'}application_name=cut-handoffs"
    workers_db = await create_pool(tagged)
    listener = Listener(tagged, backoff=(0.05, 0.2))
    here = TaskQueue(workers_db)
    workers = WorkerPool(
        here, RecordingExecutor(pool), listener=listener, slots=2, poll_s=NEVER_S, sweep_s=None
    )
    here.hand_to(workers)
    back = asyncio.Event()  # the listener's poll-now signal: on every (re)connection
    listener.subscribe(TASKS_CHANNEL, lambda payload: back.set() if payload is None else None)
    try:
        async with running(listener), running(workers):
            await serving(workers)
            before = await here.enqueue(project_id, "before the cut")
            await wait_for_statuses(events, {before.id: "done"})
            back.clear()
            assert await pool.fetchval(  # the hand-offs', the claims', the listener's...
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'cut-handoffs'"
            ) >= 2
            await asyncio.wait_for(back.wait(), WAIT_S)  # the cut is seen here
            # Queued if the pool's claim after the reconnection holds its slots, else handed off:
            # on a fresh connection either way.
            after = await here.enqueue(project_id, "after the cut")
            await wait_for_statuses(events, {after.id: "done"})
            again = await here.enqueue(project_id, "and again")
            assert again.status is TaskStatus.RUNNING
            await wait_for_statuses(events, {again.id: "done"})
    finally:
        await workers_db.close()


async def test_a_stopped_pool_offers_no_slot_and_the_task_is_queued(
    queue: TaskQueue, pool, project_id
):
    workers = deaf_pool(queue, BlockingExecutor(), slots=2)
    async with running(workers, stop_first=True):
        await serving(workers)
    task = await queue.enqueue(project_id, "after it stopped")
    assert (task.status, task.lease_owner) == (TaskStatus.QUEUED, None)


async def test_an_agent_is_busy_while_a_task_handed_off_to_it_runs_and_idle_after(
    queue: TaskQueue, pool, project_id, events: Events
):
    agent_id = await pool.fetchval(
        "INSERT INTO agents (project_id, name) VALUES ($1, 'ada') RETURNING id", project_id
    )
    blocker = BlockingExecutor()
    workers = deaf_pool(queue, blocker, slots=1)
    agent = "SELECT status, running_tasks FROM agents WHERE id = $1"
    async with running(workers):
        await serving(workers)
        task = await queue.enqueue(project_id, "for ada", agent_id=agent_id)
        assert task.status is TaskStatus.RUNNING
        assert tuple(await pool.fetchrow(agent, agent_id)) == ("busy", 1)
        blocker.release.set()
        await wait_for_statuses(events, {task.id: "done"})

    assert tuple(await pool.fetchrow(agent, agent_id)) == ("idle", 0)


async def test_over_the_redis_bus_a_hand_off_is_announced_there_and_wakes_no_worker(
    pool, redis_bus, project_id, effects
):
    heard = await Heard.on(redis_bus)
    queue = TaskQueue(pool, bus=redis_bus)
    workers = deaf_pool(queue, RecordingExecutor(pool), slots=1)
    async with running(workers):
        await serving(workers)
        task = await queue.enqueue(project_id, "over redis")
        assert task.status is TaskStatus.RUNNING
        await heard.event(task.id, "done")  # before the pool stops, which would release it

    assert [n["kind"] for n in heard.notes if n["task_id"] == task.id] == [
        "queued", "running", "done",
    ]  # fmt: skip
    assert str(task.id) not in heard.woken
