"""Replay and fork of agent runs, through the real worker pool and AgentExecutor against the
fake Messages API, with real Postgres and real git."""

from __future__ import annotations

import pytest

from lugh.errors import UserError
from lugh.replay import ReplayService
from lugh.tasks import TaskStatus
from tests.agents.test_loop import bodies, fake, stack  # noqa: F401 (fixtures)
from tests.conftest import git
from tests.fakes.anthropic import tool_use, turn

KEY = "Greet loudly"


def replay(stack) -> ReplayService:
    return ReplayService(stack.pool, stack.projects, stack.queue, stack.worktrees)


def three_steps(fake, key: str = KEY) -> None:
    fake.script(
        turn("First the greeting.",
             tool_use("write_file", {"path": "hello.txt", "content": "hello\n"})),
        turn("Then louder.",
             tool_use("edit_file", {"path": "hello.txt", "old": "hello", "new": "HELLO"}),
             tool_use("edit_file", {"path": "app.py", "old": '"Hello, "', "new": '"Hi, "'})),
        turn(tool_use("finish", {"summary": "Greeted loudly."})),
        key=key,
    )  # fmt: skip


async def test_a_step_shows_what_was_sent_the_calls_with_results_and_the_files_so_far(stack, fake):
    three_steps(fake)
    task = await stack.run_task(KEY)

    shown = await replay(stack).show(task.id, 2)

    assert shown.total == 3 and shown.step is not None
    step = shown.step
    assert (step.number, step.run_step, step.text) == (2, 2, "Then louder.")
    assert [m["role"] for m in step.sent] == ["user", "assistant", "user"]
    assert KEY in step.sent[0]["content"][0]["text"] and KEY in step.system
    assert [(c.name, c.ok) for c in step.calls] == [("edit_file", True), ("edit_file", True)]
    assert step.calls[0].result == "Edited 'hello.txt' at line 1."
    assert [(f.path, f.status, f.content) for f in shown.files.changes] == [
        ("app.py", "modified", 'def greet(name):\n    return "Hi, " + name\n'),
        ("hello.txt", "added", "HELLO\n"),
    ]
    assert "+    return \"Hi, \" + name" in shown.files.changes[0].diff


async def test_the_files_at_step_one_hold_only_what_step_one_wrote(stack, fake):
    three_steps(fake)
    task = await stack.run_task(KEY)

    shown = await replay(stack).show(task.id, 1)

    assert [m["role"] for m in shown.step.sent] == ["user"]
    assert shown.files.contents == {"hello.txt": "hello\n"}


async def test_without_a_step_the_last_one_is_shown(stack, fake):
    three_steps(fake)
    task = await stack.run_task(KEY)

    shown = await replay(stack).show(task.id)

    assert shown.step.number == 3 and shown.step.calls[0].name == "finish"


async def test_a_step_that_was_not_taken_is_refused_in_one_sentence(stack, fake):
    three_steps(fake)
    task = await stack.run_task(KEY)

    with pytest.raises(UserError, match=r"has steps 1 to 3; step 7 is not one of them"):
        await replay(stack).show(task.id, 7)


async def test_steps_that_ran_commands_are_named_because_their_file_changes_are_not_known(
    stack, fake
):
    fake.script(
        turn(tool_use("run_command", {"command": "echo hi > made.txt"})),
        turn(tool_use("finish", {"summary": "Made a file."})),
    )
    task = await stack.run_task("Make a file by command")

    shown = await replay(stack).show(task.id)

    assert shown.files.commands_at == [1]


async def test_a_fork_from_step_two_with_a_new_instruction_ends_with_a_different_diff(
    stack, fake
):
    three_steps(fake)
    original = await stack.run_task(KEY)
    before = await stack.review.diff(original.id)
    fake.script(
        turn("First the greeting.",
             tool_use("write_file", {"path": "hello.txt", "content": "hello\n"})),
        turn("Softly, then.",
             tool_use("edit_file", {"path": "hello.txt", "old": "hello", "new": "hello, quietly"})),
        turn(tool_use("finish", {"summary": "Greeted quietly."})),
        key="Greet quietly",
    )  # fmt: skip

    fork = await replay(stack).fork(original.id, 2, "Greet quietly instead")
    executor = stack.executor()
    async with stack.running(stack.workers(executor)):
        settled = await stack.wait_status(fork.task.id)

    assert settled.status is TaskStatus.AWAITING_REVIEW
    assert (fork.step, fork.files, settled.parent_id) == (2, ["hello.txt"], original.id)
    sent = [b for b in bodies(fake) if "Greet quietly" in str(b["messages"][0])]
    assert [m["role"] for m in sent[0]["messages"]] == ["user", "assistant", "user"]
    first = sent[0]["messages"][0]["content"][0]["text"]
    assert f"Task #{fork.task.id}: Greet quietly instead" in first and KEY not in first
    assert "Greet quietly instead" in str(sent[0]["system"]) and KEY not in str(sent[0]["system"])
    after = await stack.review.diff(fork.task.id)
    assert after.text != before.text
    assert [f.path for f in after.files] == ["hello.txt"]
    assert "+hello, quietly" in after.text
    assert settled.result["summary"] == "Greeted quietly."


async def test_a_fork_replays_the_earlier_steps_without_asking_the_model_again(stack, fake):
    three_steps(fake)
    original = await stack.run_task(KEY)
    asked_first = fake.requests_at(0, key=KEY)

    fork = await replay(stack).fork(original.id, 3)
    async with stack.running(stack.workers(stack.executor())):
        settled = await stack.wait_status(fork.task.id)

    assert fake.requests_at(0, key=KEY) == asked_first and fake.requests_at(2, key=KEY) == 2
    assert settled.status is TaskStatus.AWAITING_REVIEW
    diff = await stack.review.diff(fork.task.id)
    assert sorted(f.path for f in diff.files) == ["app.py", "hello.txt"]
    steps = await replay(stack).steps(fork.task.id)
    assert [s.number for s in steps] == [1, 2, 3]
    assert [e.data for e in await stack.history(original.id, "fork")] == [
        {"task": fork.task.id, "step": 3}
    ]


async def test_forking_a_task_that_never_ran_is_refused_and_queues_nothing(stack, fake):
    task = await stack.enqueue("Never ran")

    with pytest.raises(UserError, match="no recorded steps"):
        await replay(stack).fork(task.id, 1)
    assert [t.id for t in await stack.queue.list()] == [task.id]
    assert git(stack.repo, "for-each-ref", "refs/heads/lugh/") == ""


async def test_a_failed_edit_changes_no_file_and_a_file_made_by_a_command_is_marked_unknown(
    stack, fake
):
    fake.script(
        turn(tool_use("run_command", {"command": "printf 'a\\n' > gen.txt"})),
        turn(tool_use("edit_file", {"path": "gen.txt", "old": "a", "new": "b"})),
        turn(tool_use("edit_file", {"path": "app.py", "old": "not there", "new": "x"})),
        turn(tool_use("finish", {"summary": "Generated and edited."})),
    )
    task = await stack.run_task("Generate a file")

    shown = await replay(stack).show(task.id, 3)
    fork = await replay(stack).fork(task.id, 4)

    assert [(c.name, c.ok) for c in shown.step.calls] == [("edit_file", False)]
    assert [(c.path, c.status, c.content) for c in shown.files.changes] == [
        ("gen.txt", "unknown", None)
    ]
    assert shown.files.commands_at == [1]
    assert (fork.files, fork.unknown) == ([], ["gen.txt"])
