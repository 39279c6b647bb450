import asyncio

import asyncpg

from lugh.db.database import create_pool
from lugh.tasks import (
    Events,
    ExecutionResult,
    Listener,
    Task,
    TaskContext,
    TaskFailed,
    TaskQueue,
    TaskStatus,
    WorkerPool,
)

from .conftest import (
    WAIT_S,
    BlockingExecutor,
    RecordingExecutor,
    enqueue_many,
    ids,
    running,
    wait_for_statuses,
)

NEVER_S = 600.0  # a poll or heartbeat period long enough that it cannot be what a test sees


def pool_of(queue, executor, **options) -> WorkerPool:
    options.setdefault("poll_s", NEVER_S)
    options.setdefault("sweep_s", None)
    return WorkerPool(queue, executor, **options)


async def test_a_waiting_worker_is_woken_by_the_notification_long_before_its_poll(
    queue: TaskQueue, pool, listener: Listener, events: Events, project_id, effects
):
    workers = pool_of(queue, RecordingExecutor(pool), listener=listener, slots=2)
    async with running(workers):
        tasks = await enqueue_many(queue, project_id, 3)
        await wait_for_statuses(events, {t.id: "done" for t in tasks}, timeout=5)

    assert await pool.fetchval("SELECT sum(writes) FROM effects") == 3


async def test_without_any_notification_polling_still_runs_every_task(
    queue: TaskQueue, pool, events: Events, project_id, effects
):
    deaf = pool_of(queue, RecordingExecutor(pool), listener=None, poll_s=0.05, slots=3)
    tasks = await enqueue_many(queue, project_id, 10)
    async with running(deaf):
        await wait_for_statuses(events, {t.id: "done" for t in tasks})

    rows = await pool.fetch("SELECT task_id, writes FROM effects ORDER BY task_id")
    assert [(r["task_id"], r["writes"]) for r in rows] == [(i, 1) for i in ids(tasks)]


async def test_an_always_failing_task_is_tried_exactly_max_attempts_then_failed_with_its_error(
    queue: TaskQueue, pool, listener, events: Events, project_id
):
    class AlwaysBroken:
        async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult:
            raise RuntimeError("the build is always broken")

    workers = pool_of(queue, AlwaysBroken(), listener=listener)
    task = await queue.enqueue(project_id, "doomed", max_attempts=3)
    async with running(workers):
        await wait_for_statuses(events, {task.id: "failed"})

    failed = await queue.get(task.id)
    assert failed.attempts == 3
    assert failed.error == "RuntimeError: the build is always broken"
    history = await events.read_since(0, task_id=task.id)
    kinds = [e.kind for e in history]
    assert kinds == ["queued"] + ["running", "queued"] * 2 + ["running", "failed"]
    assert [e.data.get("retry_in_s") for e in history if e.kind == "queued"] == [None, 0.01, 0.02]


async def test_a_task_failed_without_retry_is_not_tried_again(
    queue: TaskQueue, listener, events: Events, project_id
):
    class NoRepo:
        async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult:
            raise TaskFailed("the project has no repository", retry=False)

    task = await queue.enqueue(project_id, "t", max_attempts=5)
    async with running(pool_of(queue, NoRepo(), listener=listener)):
        await wait_for_statuses(events, {task.id: "failed"})

    assert (await queue.get(task.id)).attempts == 1


async def test_an_executor_can_report_progress_and_ask_for_review(
    queue: TaskQueue, listener, events: Events, project_id
):
    class Reviewed:
        async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult:
            assert await ctx.progress("step", {"n": 1})
            assert await ctx.heartbeat()
            return ExecutionResult("awaiting_review", {"diff": "+1 -0"})

    task = await queue.enqueue(project_id, "t")
    async with running(pool_of(queue, Reviewed(), listener=listener, events=events)):
        await wait_for_statuses(events, {task.id: "awaiting_review"})

    kinds = [e.kind for e in await events.read_since(0, task_id=task.id)]
    assert kinds == ["queued", "running", "step", "awaiting_review"]
    assert (await queue.get(task.id)).result == {"diff": "+1 -0"}


async def test_cancelling_a_running_task_stops_its_executor_within_seconds(
    queue: TaskQueue, listener, events: Events, project_id
):
    executor = BlockingExecutor()
    workers = pool_of(queue, executor, listener=listener, lease_s=NEVER_S)
    task = await queue.enqueue(project_id, "long job")
    async with running(workers):
        await asyncio.wait_for(executor.started_event(task.id).wait(), WAIT_S)

        await queue.cancel(task.id)

        await asyncio.wait_for(executor.cancelled.wait(), 3)
    assert (await queue.get(task.id)).status is TaskStatus.CANCELLED


async def test_without_notifications_a_cancelled_task_is_stopped_by_its_heartbeat(
    queue: TaskQueue, project_id
):
    executor = BlockingExecutor()
    workers = pool_of(queue, executor, listener=None, poll_s=0.05, lease_s=0.3)
    task = await queue.enqueue(project_id, "long job")
    async with running(workers):
        await asyncio.wait_for(executor.started_event(task.id).wait(), WAIT_S)

        await queue.cancel(task.id)

        await asyncio.wait_for(executor.cancelled.wait(), 3)


async def test_a_worker_running_long_work_keeps_its_lease_by_heartbeating(
    queue: TaskQueue, listener, project_id
):
    executor = BlockingExecutor()
    workers = pool_of(queue, executor, listener=listener, lease_s=0.3)
    task = await queue.enqueue(project_id, "long job")
    async with running(workers):
        await asyncio.wait_for(executor.started_event(task.id).wait(), WAIT_S)
        first = (await queue.get(task.id)).lease_expires_at

        async def renewed() -> None:
            while (await queue.get(task.id)).lease_expires_at <= first:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(renewed(), WAIT_S)
        assert await queue.requeue_expired() == []


async def test_a_lease_abandoned_by_a_dead_worker_is_swept_and_run_again(
    queue: TaskQueue, pool, listener, events: Events, project_id, effects
):
    task = await queue.enqueue(project_id, "orphaned")
    await queue.claim("dead-worker", lease_s=0)
    workers = pool_of(queue, RecordingExecutor(pool), listener=listener, sweep_s=0.05)

    async with running(workers):
        await wait_for_statuses(events, {task.id: "done"})

    assert (await queue.get(task.id)).attempts == 2


async def test_stopping_lets_running_tasks_finish_within_the_grace_period(
    queue: TaskQueue, listener, project_id
):
    executor = BlockingExecutor()
    workers = pool_of(queue, executor, listener=listener, grace_s=WAIT_S)
    task = await queue.enqueue(project_id, "almost done")
    async with running(workers):
        await asyncio.wait_for(executor.started_event(task.id).wait(), WAIT_S)

        stopping = asyncio.create_task(workers.stop())
        later = await queue.enqueue(project_id, "arrives during shutdown")
        executor.release.set()
        await asyncio.wait_for(stopping, WAIT_S)

    assert (await queue.get(task.id)).status is TaskStatus.DONE
    assert (await queue.get(later.id)).status is TaskStatus.QUEUED


async def test_stopping_releases_unfinished_tasks_after_the_grace_period_for_another_worker(
    queue: TaskQueue, pool, listener, events: Events, project_id, effects
):
    executor = BlockingExecutor()
    first = pool_of(queue, executor, listener=listener, grace_s=0.1, slots=2)
    tasks = await enqueue_many(queue, project_id, 2)
    async with running(first):
        for task in tasks:
            await asyncio.wait_for(executor.started_event(task.id).wait(), WAIT_S)
        await asyncio.wait_for(first.stop(), WAIT_S)

    assert executor.cancelled.is_set()
    for task in tasks:
        released = await queue.get(task.id)
        assert (released.status, released.attempts, released.lease_owner) == ("queued", 0, None)

    async with running(pool_of(queue, RecordingExecutor(pool), listener=listener)):
        await wait_for_statuses(events, {t.id: "done" for t in tasks})


async def test_workers_lose_nothing_when_their_listen_connection_is_killed_under_load(
    queue: TaskQueue, pool: asyncpg.Pool, listener: Listener, events: Events, project_id, effects
):
    workers = pool_of(queue, RecordingExecutor(pool), listener=listener, slots=4)
    tasks = []
    async with running(workers):
        for round_ in range(3):
            tasks += await enqueue_many(queue, project_id, 10)
            await pool.execute("SELECT pg_terminate_backend($1)", listener.backend_pid)
            tasks += await enqueue_many(queue, project_id, 10)
            await asyncio.wait_for(listener.connected.wait(), WAIT_S)
        await wait_for_statuses(events, {t.id: "done" for t in tasks})

    assert listener.connections >= 2
    assert await pool.fetchval("SELECT count(*) FROM effects WHERE writes = 1") == len(tasks)


async def test_a_pool_cancelled_without_a_graceful_stop_still_releases_its_tasks(
    queue: TaskQueue, listener, project_id
):
    executor = BlockingExecutor()
    workers = pool_of(queue, executor, listener=listener)
    task = await queue.enqueue(project_id, "interrupted")
    async with running(workers):
        await asyncio.wait_for(executor.started_event(task.id).wait(), WAIT_S)

    released = await queue.get(task.id)
    assert (released.status, released.lease_owner, released.attempts) == ("queued", None, 0)


async def test_workers_lose_nothing_when_every_database_connection_is_cut_under_load(
    queue: TaskQueue, pool: asyncpg.Pool, database: str, events: Events, project_id, effects
):
    tagged = f"{database}{'&' if '?' in database else '?'}application_name=cut-workers"
    workers_db = await create_pool(tagged)
    listener = Listener(tagged, backoff=(0.05, 0.2))
    workers = pool_of(
        TaskQueue(workers_db, backoff=queue.backoff), RecordingExecutor(pool),
        listener=listener, slots=4, poll_s=0.2, lease_s=1.0, sweep_s=0.2,
    )  # fmt: skip
    tasks, cut = [], 0
    try:
        async with running(listener), running(workers):
            for _ in range(3):
                tasks += await enqueue_many(queue, project_id, 10)
                cut += await pool.fetchval(  # the claim loop's, the recorders', the listener's...
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'cut-workers'"
                )
                tasks += await enqueue_many(queue, project_id, 10)
            await wait_for_statuses(events, {t.id: "done" for t in tasks})
    finally:
        await workers_db.close()

    assert cut >= 3 and listener.connections >= 2
    done = await pool.fetch(
        "SELECT task_id, count(*) AS n FROM task_events WHERE kind = 'done' GROUP BY task_id"
    )
    assert sorted(r["task_id"] for r in done) == ids(tasks) and {r["n"] for r in done} == {1}
