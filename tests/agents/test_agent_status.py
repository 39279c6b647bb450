"""An agent is busy while a task of its runs and idle once none does, in the agents table that
/agents shows: kept with each task's move, so a crash leaves nothing to correct by hand."""

from __future__ import annotations

import asyncio

from lugh.agents.executor import reconcile_agents
from lugh.tasks import TaskStatus
from tests.agents.test_loop import WAIT_S, fake, stack  # noqa: F401 (fixtures)
from tests.fakes.anthropic import tool_use, turn


async def status_of(stack, name: str = "default") -> tuple[str, int]:
    row = await stack.pool.fetchrow(
        "SELECT status, running_tasks FROM agents WHERE project_id = $1 AND name = $2",
        stack.project.id, name,
    )
    return row["status"], row["running_tasks"]


async def test_the_default_agent_is_busy_while_it_runs_a_task_and_idle_after_review(stack, fake):
    fake.script(
        turn(tool_use("write_file", {"path": "hello.txt", "content": "hello\n"})),
        turn(tool_use("finish", {"summary": "Added hello.txt."})),
    )
    fake.delay(1, 30.0)
    executor = stack.executor()
    async with stack.running(stack.workers(executor)):
        task = await stack.enqueue("Add a greeting")
        await asyncio.to_thread(fake.arrived(1).wait, WAIT_S)
        assert await status_of(stack) == ("busy", 1)
        [shown] = await stack.agents.list(stack.project.name)
        assert (shown.name, shown.status) == ("default", "busy")
        assert (await stack.queue.get(task.id)).agent_id == shown.id  # who did it, recorded

        await stack.queue.cancel(task.id, reason="enough")
        await asyncio.wait_for(executor.ended_event(task.id).wait(), WAIT_S)

    assert await status_of(stack) == ("idle", 0)


async def test_an_agent_is_idle_once_its_work_waits_for_review(stack, fake):
    fake.script(
        turn(tool_use("write_file", {"path": "hello.txt", "content": "hello\n"})),
        turn(tool_use("finish", {"summary": "Added hello.txt."})),
    )
    task = await stack.run_task("Add a greeting")

    assert task.status is TaskStatus.AWAITING_REVIEW
    assert await status_of(stack) == ("idle", 0)


async def test_after_a_crash_the_agent_is_busy_until_the_lease_expires_then_idle(stack):
    agent = await stack.agents.spawn(stack.project.name, "builder")
    task = await stack.queue.enqueue(stack.project.id, "Build", agent_id=agent.id)
    other = await stack.queue.enqueue(stack.project.id, "Build more", agent_id=agent.id)
    # A worker claims both and dies without a word: its leases are all that is left of it.
    claimed = await stack.queue.claim_many("dead-worker", 0.05, 2)
    assert {t.id for t in claimed} == {task.id, other.id}
    assert await status_of(stack, "builder") == ("busy", 2)

    async with asyncio.timeout(WAIT_S):
        while len(await stack.queue.requeue_expired()) < 2:  # what a restarted pool sweeps
            await asyncio.sleep(0.05)

    assert await status_of(stack, "builder") == ("idle", 0)
    assert (await stack.queue.get(task.id)).status is TaskStatus.QUEUED


async def test_a_stopped_agent_stays_stopped_while_its_run_ends_and_resumes_as_it_really_is(
    stack,
):
    agent = await stack.agents.spawn(stack.project.name, "builder")
    task = await stack.queue.enqueue(stack.project.id, "Build", agent_id=agent.id)
    [claimed] = await stack.queue.claim_many("worker", 60.0, 1)
    await stack.agents.stop(agent.id)
    assert await status_of(stack, "builder") == ("stopped", 1)

    assert (await stack.agents.resume(agent.id)).status == "busy"
    await stack.agents.stop(agent.id)
    assert await stack.queue.complete(task.id, claimed.lease_token, "done")
    assert await status_of(stack, "builder") == ("stopped", 0)
    assert (await stack.agents.resume(agent.id)).status == "idle"


async def test_a_start_sets_right_agents_that_went_around_the_triggers(stack):
    builder = await stack.agents.spawn(stack.project.name, "builder")
    idle = await stack.agents.spawn(stack.project.name, "idler")
    await stack.queue.enqueue(stack.project.id, "Build", agent_id=builder.id)
    await stack.queue.claim_many("worker", 60.0, 1)
    # What a restore copying rows back could leave: counts from another moment.
    await stack.pool.execute("UPDATE agents SET running_tasks = 0, status = 'busy'")
    assert await status_of(stack, "builder") == ("busy", 0)

    assert await reconcile_agents(stack.pool) == 2

    assert await status_of(stack, "builder") == ("busy", 1)
    assert await status_of(stack, "idler") == ("idle", 0)
    assert await reconcile_agents(stack.pool) == 0
    assert idle.status == "idle"
