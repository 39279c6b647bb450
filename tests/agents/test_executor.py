"""AgentExecutor end to end: the worker pool runs the agent, review merges or discards."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from lugh.agents.worktrees import list_worktrees
from lugh.tasks import ExecutionResult, TaskStatus
from tests.agents.test_loop import WAIT_S, bodies, fake, stack  # noqa: F401 (fixtures)
from tests.conftest import git
from tests.fakes.anthropic import tool_use, turn


async def test_a_task_that_creates_a_file_ends_merged_on_main(stack, fake):
    fake.script(
        turn("I will add the greeting.",
             tool_use("write_file", {"path": "hello.txt", "content": "hello\n"})),
        turn(tool_use("finish", {"summary": "Added hello.txt."})),
    )  # fmt: skip

    task = await stack.run_task("Add a greeting")
    assert task.status is TaskStatus.AWAITING_REVIEW
    approval = await stack.pool.fetchrow(
        "SELECT kind, status FROM approvals WHERE task_id = $1", task.id
    )
    assert tuple(approval) == ("review", "pending")

    merged = await stack.review.approve(task.id, "button")

    assert merged.merged
    assert git(stack.repo, "show", "main:hello.txt") == "hello"
    assert "Added hello.txt." in git(stack.repo, "log", "-1", "--format=%B", "main")
    assert git(stack.repo, "log", "-1", "--format=%an", "main") == "Lugh agent default"
    assert (await stack.queue.get(task.id)).status is TaskStatus.DONE
    assert not stack.worktree(task).exists()


async def test_an_agent_task_goes_to_review_with_no_lease_complaint_and_no_cancellation(
    stack, fake
):
    fake.script(
        turn(tool_use("write_file", {"path": "hello.txt", "content": "hello\n"})),
        turn(tool_use("finish", {"summary": "Added hello.txt."})),
    )
    executor = stack.executor()
    with capture_logs() as logs:
        async with stack.running(stack.workers(executor)):
            task = await stack.enqueue("Add a greeting")
            settled = await stack.wait_status(task.id)
            await asyncio.wait_for(executor.ended_event(task.id).wait(), WAIT_S)

    assert settled.status is TaskStatus.AWAITING_REVIEW
    [outcome] = executor.outcomes
    assert isinstance(outcome, ExecutionResult) and outcome.recorded
    assert [line for line in logs if "lease was lost" in line["event"]] == []
    assert [line for line in logs if line["event"] == "task stopped"] == []


async def test_a_task_that_edits_a_file_ends_with_the_right_diff(stack, fake):
    fake.script(
        turn(tool_use("read_file", {"path": "app.py"})),
        turn(tool_use("edit_file", {
            "path": "app.py", "old": '"Hello, " + name', "new": 'f"Hello, {name}!"'})),
        turn(tool_use("finish", {"summary": "Used an f-string."})),
    )  # fmt: skip

    task = await stack.run_task("Use an f-string in greet")

    diff = await stack.review.diff(task.id)
    assert diff.summary == "+1 −1 in 1 file"
    assert [(f.path, f.status) for f in diff.files] == [("app.py", "modified")]
    assert '-    return "Hello, " + name\n+    return f"Hello, {name}!"\n' in diff.text
    assert task.result["summary"] == "Used an f-string."


async def test_a_rejected_task_leaves_main_untouched_and_no_worktree(stack, fake):
    before = git(stack.repo, "rev-parse", "main")
    fake.script(
        turn(tool_use("write_file", {"path": "app.py", "content": "broken(\n"})),
        turn(tool_use("finish", {"summary": "Rewrote everything."})),
    )

    task = await stack.run_task("Rewrite the app")
    rejected = await stack.review.reject(task.id, "reaction")

    assert rejected.status is TaskStatus.REJECTED
    assert git(stack.repo, "rev-parse", "main") == before
    assert stack.worktree(task).resolve() not in await list_worktrees(stack.repo)
    assert not stack.worktree(task).exists()
    assert git(stack.repo, "for-each-ref", "refs/heads/lugh/") == ""


async def test_a_run_that_changes_nothing_is_done_without_a_review(stack, fake):
    fake.script(turn(tool_use("finish", {"summary": "Nothing needed changing."})))

    task = await stack.run_task("Check the README")

    assert task.status is TaskStatus.DONE
    assert "changed no files" in task.result["note"]
    assert not stack.worktree(task).exists()


async def test_the_owners_retry_with_feedback_starts_a_new_run_on_the_reviewed_work(stack, fake):
    fake.script(
        turn(tool_use("write_file", {"path": "hello.txt", "content": "hello\n"})),
        turn(tool_use("finish", {"summary": "Added hello.txt."})),
    )
    task = await stack.run_task("Add a greeting")
    fake.script(
        turn(tool_use("edit_file", {"path": "hello.txt", "old": "hello", "new": "hello world"})),
        turn(tool_use("finish", {"summary": "Made it louder."})),
        key="Feedback from the owner",
    )

    seen = await stack.last_event_id()
    await stack.review.retry(task.id, "Say hello to the world.")
    executor = stack.executor()
    async with stack.running(stack.workers(executor)):
        again = await stack.wait_status(task.id, "awaiting_review", after=seen)

    first = [b for b in bodies(fake) if "Feedback" in str(b["messages"][0])][0]
    prompt = first["messages"][0]["content"][0]["text"]
    assert "Feedback from the owner: Say hello to the world." in prompt
    assert "An earlier run of this task ended with this summary" in prompt
    assert "Added hello.txt." in prompt
    diff = await stack.review.diff(again.id)
    assert diff.summary == "+1 −0 in 1 file"
    assert "+hello world" in diff.text


async def test_an_api_that_stays_overloaded_fails_the_attempt_and_the_next_goes_on(stack, fake):
    fake.script(
        turn(tool_use("write_file", {"path": "a.txt", "content": "a\n"})),
        turn(tool_use("finish", {"summary": "Done at last."})),
    )
    fake.fail(1, 529, times=4, retry_after_s=0.01)  # the client tries 4 times, then gives up

    task = await stack.run_task("Write under heavy load")

    assert task.status is TaskStatus.AWAITING_REVIEW and task.attempts == 2
    assert fake.requests_at(0) == 1 and fake.requests_at(1) == 5
    failed = [e for e in await stack.history(task.id, "queued") if e.data.get("error")]
    assert "The Anthropic API is overloaded (529)" in failed[0].data["error"]
    assert [e.data["tool"] for e in await stack.history(task.id, "tool_call")] == [
        "write_file", "finish",
    ]  # fmt: skip


async def test_a_refused_api_key_fails_the_task_at_once(stack, fake):
    fake.script(turn("never"))
    stack.chat._client.api_key = "sk-wrong"  # as if ANTHROPIC_API_KEY were wrong

    task = await stack.run_task("Anything")

    assert task.status is TaskStatus.FAILED and task.attempts == 1
    assert task.error == (
        "The Anthropic API refused the API key (401); set a valid ANTHROPIC_API_KEY."
    )


async def test_two_tasks_run_side_by_side_each_in_its_own_worktree(stack, fake):
    for n in (1, 2):
        fake.script(
            turn(tool_use("write_file", {"path": f"file{n}.txt", "content": f"{n}\n"})),
            turn(tool_use("finish", {"summary": f"Wrote file{n}."})),
            key=f"Task {n} of two",
        )
    executor = stack.executor()
    workers = stack.workers(executor)
    workers.slots = 2
    async with stack.running(workers):
        tasks = [await stack.enqueue(f"Task {n} of two") for n in (1, 2)]
        settled = await asyncio.gather(*(stack.wait_status(t.id, "awaiting_review") for t in tasks))

    for n, task in enumerate(settled, 1):
        diff = await stack.review.diff(task.id)
        assert [f.path for f in diff.files] == [f"file{n}.txt"]
