"""What the owner is told about each task event, and how loudly: the text every front door
shows (lugh.commands.notifications)."""

from __future__ import annotations

import pytest

from lugh.agents.plan import Approvals
from lugh.commands.notifications import notification_for


@pytest.fixture
async def project(services, repo):
    return await services.projects.register("demo", str(repo))


async def claimed(services, project, title, **kw):
    kw.setdefault("source", "console")
    await services.tasks.enqueue(project.id, title, **kw)
    return await services.tasks.claim("test-worker", 60)


async def newest(services, task_id):
    [event] = await services.events.latest(task_id, limit=1)
    return event


async def test_a_plan_to_approve_shows_the_plan_and_the_approval_buttons(services, project):
    task = await claimed(services, project, "Rework login")
    plan = {"summary": "Split the view.", "files": ["login.py"], "commands": ["pytest"],
            "risk": "medium", "estimated_steps": 12, "estimated_cost_usd": 0.36}  # fmt: skip
    approvals = Approvals(services.pool, services.projects, services.worktrees)
    approval = await approvals.park(task, "plan", {"plan": plan}, "plan")

    reply = await notification_for(services, await newest(services, task.id))

    assert reply.priority == "high" and reply.approval_id == approval
    assert reply.text.splitlines() == [
        f"#{task.id} Rework login: the agent proposes a plan (risk medium).",
        "Split the view.", "Files: login.py", "Commands: pytest", "About 12 steps, ≈ $0.36.",
        "Approve to let it start, or reject.",
    ]  # fmt: skip
    assert [(b.label, b.action) for row in reply.buttons for b in row] == [
        ("Approve plan", "approve"), ("Reject plan", "reject"), ("Why", "why"), ("Cancel", "cancel"),
    ]


async def test_a_high_risk_step_names_the_command_it_waits_on(services, project):
    task = await claimed(services, project, "Clean the build")
    approvals = Approvals(services.pool, services.projects, services.worktrees)
    step = {"tool_use_id": "tu_1", "tool": "run_command", "input": {"command": "rm -rf build"},
            "risk": "high"}  # fmt: skip
    await approvals.park(task, "step", step, "step")

    reply = await notification_for(services, await newest(services, task.id))

    assert reply.priority == "high"
    assert [b.label for row in reply.buttons for b in row][:2] == ["Allow", "Refuse"]
    assert reply.text.startswith(
        f"#{task.id} Clean the build: the agent wants to run a high-risk step, "
        "run_command: rm -rf build"
    )


async def test_a_run_stopped_by_its_budget_is_told_silently(services, project):
    task = await claimed(services, project, "Big refactor")
    event = await services.events.publish(
        task.id, "run_stopped", {"reason": "The run used all 50 of its steps."}
    )

    reply = await notification_for(services, event)

    assert reply.priority == "normal"
    assert reply.text == f"#{task.id} Big refactor stopped: The run used all 50 of its steps."


async def test_a_task_from_an_mcp_client_is_announced_and_one_from_the_chat_is_not(
    services, project
):
    from_mcp = await services.tasks.enqueue(project.id, "From a client", source="mcp")
    from_chat = await services.tasks.enqueue(project.id, "From the chat", source="telegram")

    told = await notification_for(services, await newest(services, from_mcp.id))
    quiet = await notification_for(services, await newest(services, from_chat.id))

    assert told.text == f"#{from_mcp.id} From a client was queued by an MCP client."
    assert told.priority == "normal"
    assert quiet is None


async def test_a_retried_attempt_is_low_and_an_urgent_task_is_one_level_louder(
    services, project
):
    task = await claimed(services, project, "Flaky", max_attempts=3)
    await services.tasks.fail_attempt(task.id, task.lease_token, "network down")
    urgent = await claimed(services, project, "Hotfix", priority=3)
    await services.tasks.complete(urgent.id, urgent.lease_token, "failed", error="boom")

    retry = await notification_for(services, await newest(services, task.id))
    failure = await notification_for(services, await newest(services, urgent.id))

    assert retry.priority == "low"
    assert retry.text.startswith(f"#{task.id} Flaky: attempt 1 failed (network down); retrying")
    assert failure.priority == "critical" and failure.text == f"#{urgent.id} Hotfix failed: boom"


async def test_progress_events_are_not_messages_of_their_own(services, project):
    task = await claimed(services, project, "Busy")
    event = await services.events.publish(task.id, "tool_call", {"step": 1, "tool": "read_file"})

    assert await notification_for(services, event) is None
