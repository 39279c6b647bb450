"""/approve and /reject answer a plan or a high-risk step when the task waits on one."""

import pytest

from lugh.tasks import TaskStatus

PLAN = {"summary": "Add hello.txt", "files": ["hello.txt"], "commands": [], "risk": "low"}


@pytest.fixture
async def parked(services, chat, repo):
    """A task whose agent proposed a plan (or asked for a step) and waits for the owner."""

    async def park(kind: str, payload: dict):
        await chat(f"/project new demo {repo}")
        await chat("/task add a greeting")
        task = await services.tasks.claim("test-worker", lease_s=60)
        await services.approvals.park(task, kind, payload, reason=kind)
        return task

    return park


async def test_approve_on_a_task_waiting_with_a_plan_approves_the_plan_and_queues_it(
    services, chat, parked
):
    task = await parked("plan", {"plan": PLAN})

    reply = await chat(f"/approve {task.id}")

    assert reply.ok and reply.text.startswith("Plan approved")
    assert (await services.tasks.get(task.id)).status is TaskStatus.QUEUED
    assert await services.approvals.approved_plan(task.id) == {"plan": PLAN}


async def test_reject_on_a_task_waiting_with_a_plan_closes_the_task(services, chat, parked):
    task = await parked("plan", {"plan": PLAN})

    reply = await chat(f"/reject {task.id}")

    assert reply.ok and reply.text.startswith("Plan rejected")
    assert (await services.tasks.get(task.id)).status is TaskStatus.REJECTED


async def test_reject_on_a_task_waiting_for_a_step_refuses_the_step_and_the_run_goes_on(
    services, chat, parked
):
    task = await parked("step", {"tool_use_id": "toolu_1", "tool": "run_command"})

    reply = await chat(f"/reject {task.id}")

    assert reply.ok and reply.text.startswith("Step refused")
    assert (await services.tasks.get(task.id)).status is TaskStatus.QUEUED


async def test_a_second_answer_to_the_same_plan_changes_nothing(services, chat, parked):
    task = await parked("plan", {"plan": PLAN})
    await chat(f"/approve {task.id}")

    again = await chat(f"/reject {task.id}")

    assert not again.ok
    assert (await services.tasks.get(task.id)).status is TaskStatus.QUEUED
