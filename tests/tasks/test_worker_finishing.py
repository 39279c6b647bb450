"""An executor that moves its task out of `running` itself (an agent submitting its work for
review): the pool neither cancels it nor records a completion of its own, and a lease really lost
before that move still refuses it."""

import asyncio

from structlog.testing import capture_logs

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

from .conftest import WAIT_S, running, wait_for_statuses

NEVER_S = 600.0
QUIET_S = 0.5  # how long a wrong cancellation has to show up: 25 heartbeats at 20 ms


class SubmitsItself:
    """Says it is finishing, waits for `go`, moves its task to review under its own lease, then
    stays a while, as an agent removing a worktree would."""

    def __init__(self, queue: TaskQueue) -> None:
        self.queue = queue
        self.finishing = asyncio.Event()
        self.go = asyncio.Event()
        self.go.set()
        self.moved: bool | None = None
        self.cancelled = False
        self.ended = asyncio.Event()

    async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult:
        try:
            ctx.finish_here()
            self.finishing.set()
            await self.go.wait()
            self.moved = await self.queue.complete(
                task.id, ctx.token, TaskStatus.AWAITING_REVIEW, result={"diff": "+1 −0"}
            )
            if not self.moved:
                raise TaskFailed("the lease was lost before the work was submitted", retry=False)
            lost = asyncio.create_task(ctx.lost.wait())
            await asyncio.wait({lost}, timeout=QUIET_S)
            lost.cancel()
            return ExecutionResult("awaiting_review", {"diff": "+1 −0"}, recorded=True)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.ended.set()


def workers(queue: TaskQueue, executor, listener: Listener, events: Events) -> WorkerPool:
    return WorkerPool(
        queue, executor, listener=listener, events=events, slots=1, poll_s=NEVER_S,
        sweep_s=None, heartbeat_s=0.02,
    )


def lease_complaints(logs: list[dict]) -> list[dict]:
    return [line for line in logs if "lease was lost" in line["event"]]


async def test_a_task_its_executor_moved_to_review_is_not_cancelled_or_refused(
    queue: TaskQueue, listener: Listener, events: Events, project_id
):
    executor = SubmitsItself(queue)
    task = await queue.enqueue(project_id, "agent work")
    with capture_logs() as logs:
        async with running(workers(queue, executor, listener, events)):
            await wait_for_statuses(events, {task.id: "awaiting_review"})
            await asyncio.wait_for(executor.ended.wait(), WAIT_S)

    assert executor.moved and not executor.cancelled
    assert lease_complaints(logs) == []
    reviewed = await queue.get(task.id)
    assert reviewed.status is TaskStatus.AWAITING_REVIEW and reviewed.result == {"diff": "+1 −0"}
    kinds = [e.kind for e in await events.read_since(0, task_id=task.id)]
    assert kinds == ["queued", "running", "awaiting_review"]


async def test_a_finishing_executor_whose_task_was_cancelled_cannot_move_it(
    queue: TaskQueue, listener: Listener, events: Events, project_id
):
    executor = SubmitsItself(queue)
    executor.go.clear()
    task = await queue.enqueue(project_id, "agent work")
    with capture_logs() as logs:
        async with running(workers(queue, executor, listener, events)):
            await asyncio.wait_for(executor.finishing.wait(), WAIT_S)
            await queue.cancel(task.id, reason="changed my mind")
            executor.go.set()
            await asyncio.wait_for(executor.ended.wait(), WAIT_S)

    assert executor.moved is False
    assert (await queue.get(task.id)).status is TaskStatus.CANCELLED
    assert [line["event"] for line in lease_complaints(logs)] == [
        "failure not recorded: the lease was lost"
    ]


async def test_an_executor_that_is_not_finishing_still_stops_when_its_task_is_cancelled(
    queue: TaskQueue, listener: Listener, events: Events, project_id
):
    started, stopped = asyncio.Event(), asyncio.Event()

    class Working:
        async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult:
            started.set()
            try:
                await asyncio.sleep(NEVER_S)
            finally:
                stopped.set()
            return ExecutionResult()

    task = await queue.enqueue(project_id, "agent work")
    async with running(workers(queue, Working(), listener, events)):
        await asyncio.wait_for(started.wait(), WAIT_S)
        await queue.cancel(task.id)
        await asyncio.wait_for(stopped.wait(), WAIT_S)

    assert (await queue.get(task.id)).status is TaskStatus.CANCELLED
