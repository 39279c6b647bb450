"""approve_task and reject_task answer a proposed plan when that is what a task waits on."""

from __future__ import annotations

from mcp import Client

from lugh.tasks import TaskStatus
from tests.mcp.conftest import payload

PLAN = {"summary": "Add hello.txt", "files": ["hello.txt"], "commands": [], "risk": "low"}


async def planned(services, repo) -> int:
    project = await services.projects.register("demo", str(repo))
    await services.tasks.enqueue(project.id, "Add a greeting", source="mcp")
    task = await services.tasks.claim("test-worker", 60)
    await services.approvals.park(task, "plan", {"plan": PLAN}, reason="plan")
    return task.id


async def test_approve_task_on_a_proposed_plan_approves_the_plan_and_merges_nothing(
    server, services, repo
):
    task_id = await planned(services, repo)
    async with Client(server) as client:
        answered = payload(await client.call_tool("approve_task", {"task_id": task_id}))

    assert (answered["answered"], answered["merged"], answered["status"]) == (
        "plan", False, "queued")  # fmt: skip
    assert await services.approvals.approved_plan(task_id) == {"plan": PLAN}
    method = await services.pool.fetchval(
        "SELECT method FROM approvals WHERE task_id = $1 AND kind = 'plan'", task_id
    )
    assert method == "mcp"


async def test_reject_task_on_a_proposed_plan_closes_the_task(server, services, repo):
    task_id = await planned(services, repo)
    async with Client(server) as client:
        answered = payload(await client.call_tool("reject_task", {"task_id": task_id}))

    assert (answered["answered"], answered["status"]) == ("plan", "rejected")
    assert (await services.tasks.get(task_id)).status is TaskStatus.REJECTED
