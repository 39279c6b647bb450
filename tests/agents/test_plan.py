"""Dry runs (a plan approved before anything is written) and the high-risk step gate."""

from __future__ import annotations

import json

import pytest

from lugh.agents.plan import PLAN_TOOLS, Approvals
from lugh.errors import UserError
from lugh.tasks import TaskStatus
from tests.agents.test_loop import bodies, fake, results_in, stack  # noqa: F401 (fixtures)
from tests.conftest import git
from tests.fakes.anthropic import tool_use, turn

APPROVED = "The owner approved this plan"
PLAN = {
    "summary": "Add hello.txt with a greeting.",
    "files": ["hello.txt"],
    "commands": ["cat hello.txt"],
    "risk": "low",
    "estimated_steps": 4,
}


@pytest.fixture
def approvals(stack) -> Approvals:
    return Approvals(stack.pool, stack.projects, stack.worktrees)


async def settings(stack, **values) -> None:
    await stack.pool.execute(
        "UPDATE projects SET settings = settings || $2::jsonb WHERE id = $1",
        stack.project.id, json.dumps(values),
    )  # fmt: skip


def script_plan(fake) -> None:
    fake.script(
        turn("Exploring first.",
             tool_use("read_file", {"path": "app.py"}),
             tool_use("write_file", {"path": "sneaky.txt", "content": "no\n"})),
        turn(tool_use("propose_plan", PLAN)),
    )  # fmt: skip


async def test_a_task_asking_for_a_plan_writes_nothing_until_the_plan_is_approved(
    stack, fake, approvals
):
    script_plan(fake)
    fake.script(
        turn(tool_use("write_file", {"path": "hello.txt", "content": "hello\n"})),
        turn(tool_use("finish", {"summary": "Carried out the plan."})),
        key=APPROVED,
    )

    task = await stack.run_task("Add a greeting", plan=True)

    assert task.status is TaskStatus.AWAITING_REVIEW
    exploring = bodies(fake)[0]
    assert [t["name"] for t in exploring["tools"]] == list(PLAN_TOOLS)
    assert "This is a dry run" in exploring["system"][0]["text"]
    refused = results_in(bodies(fake)[1])[1]
    assert refused["is_error"] and "no tool named 'write_file'" in refused["content"]
    assert git(stack.worktree(task), "status", "--porcelain") == ""
    pending = await approvals.pending(task.id)
    plan = pending.payload["plan"]
    assert pending.kind == "plan"
    assert {k: plan[k] for k in PLAN} == PLAN
    assert plan["estimated_cost_usd"] > 0 and plan["exploration_cost_usd"] > 0
    parked = [e for e in await stack.history(task.id, "awaiting_review")][0]
    assert parked.data["reason"] == "plan" and parked.data["plan"]["files"] == ["hello.txt"]

    seen = await stack.last_event_id()
    queued = await approvals.approve(task.id, "button")
    assert queued.status is TaskStatus.QUEUED
    async with stack.running(stack.workers(stack.executor())):
        done = await stack.wait_status(task.id, "awaiting_review", after=seen)

    working = [b for b in bodies(fake) if APPROVED in str(b["messages"][0])][0]
    first = working["messages"][0]["content"][0]["text"]
    assert "Add hello.txt with a greeting." in first and "Files: hello.txt" in first
    assert "write_file" in [t["name"] for t in working["tools"]]
    assert done.result["summary"] == "Carried out the plan."
    assert (await stack.review.diff(task.id)).summary == "+1 −0 in 1 file"
    assert (await approvals.pending(task.id)) is None


async def test_a_declined_plan_rejects_the_task_and_removes_its_worktree(stack, fake, approvals):
    await settings(stack, plan_first=True)
    script_plan(fake)

    task = await stack.run_task("Add a greeting")
    declined = await approvals.reject(task.id, "reaction")

    assert declined.status is TaskStatus.REJECTED
    assert not stack.worktree(task).exists()
    assert git(stack.repo, "for-each-ref", "refs/heads/lugh/") == ""
    with pytest.raises(UserError, match="not waiting for a plan or step approval"):
        await approvals.approve(task.id, "button")


async def test_with_approval_required_a_command_waits_for_the_owner_even_across_a_restart(
    stack, fake, approvals
):
    await settings(stack, approve_high_risk=True)
    fake.script(
        turn(tool_use("write_file", {"path": "notes.txt", "content": "one\n"}),
             tool_use("run_command", {"command": "echo ran >> effects.log"})),
        turn(tool_use("finish", {"summary": "Ran it once."})),
    )  # fmt: skip

    task = await stack.run_task("Run something risky")

    assert task.status is TaskStatus.AWAITING_REVIEW
    pending = await approvals.pending(task.id)
    assert pending.kind == "step"
    assert pending.payload["tool"] == "run_command"
    assert pending.payload["input"] == {"command": "echo ran >> effects.log"}
    assert pending.payload["risk"] == "runs_commands"
    assert not (stack.worktree(task) / "effects.log").exists()

    seen = await stack.last_event_id()
    await approvals.approve(task.id, "button")  # a new worker pool: as after a restart
    async with stack.running(stack.workers(stack.executor())):
        done = await stack.wait_status(task.id, "awaiting_review", after=seen)

    assert done.result["summary"] == "Ran it once."
    assert fake.requests_at(0) == 1
    assert git(stack.repo, "show", f"{done.branch}:effects.log") == "ran"
    calls = [e.data["tool"] for e in await stack.history(task.id, "tool_call")]
    assert calls == ["write_file", "run_command", "finish"]


async def test_a_declined_command_is_reported_to_the_model_and_the_run_goes_on(
    stack, fake, approvals
):
    await settings(stack, approve_high_risk=True)
    fake.script(
        turn(tool_use("run_command", {"command": "rm -rf ."})),
        turn(tool_use("finish", {"summary": "Did without it."})),
    )
    task = await stack.run_task("Clean up")
    seen = await stack.last_event_id()

    again = await approvals.reject(task.id, "command")

    assert again.status is TaskStatus.QUEUED
    async with stack.running(stack.workers(stack.executor())):
        done = await stack.wait_status(task.id, "done", "awaiting_review", after=seen)
    declined = results_in(bodies(fake)[-1])[0]
    assert declined["is_error"] and "The owner did not allow this call" in declined["content"]
    assert done.status is TaskStatus.DONE  # nothing was changed
    assert git(stack.repo, "ls-files") == "README.md\napp.py"
