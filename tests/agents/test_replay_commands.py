"""`/replay` and `/fork` through the shared command layer, on a run made by the real worker
pool against the fake Messages API."""

from __future__ import annotations

import asyncio

import pytest
import typer
from typer.testing import CliRunner

from lugh.commands.catalog import Context, execute, parse
from lugh.replay import cli as replay_cli
from lugh.services import build_services
from tests.agents.test_loop import fake, stack  # noqa: F401 (fixtures)
from tests.agents.test_replay import KEY, three_steps


@pytest.fixture
async def chat(stack, make_settings):
    services = build_services(make_settings(), stack.pool, stack.database)
    session = await services.sessions.open("console", "owner")
    ctx = Context(services=services, session=session, source="console")

    async def say(text: str):
        action, argument = parse(text)
        return await execute(ctx, action, argument)

    say.services = services
    return say


async def test_replay_shows_the_step_the_files_so_far_and_buttons_to_move_and_fork(
    stack, fake, chat
):
    three_steps(fake)
    task = await stack.run_task(KEY)

    reply = await chat(f"/replay #{task.id} 2")

    assert reply.ok and reply.task_id == task.id
    assert reply.text.startswith(f"#{task.id} {KEY} — step 2 of 3 (work run, its step 2)")
    assert "The model answered: Then louder." in reply.text
    assert "edit_file(" in reply.text and "→ ok: Edited 'hello.txt' at line 1." in reply.text
    assert "  M app.py (+1 −1)\n  A hello.txt (+1 −0)" in reply.text
    assert reply.code[0].language == "diff" and "+HELLO" in reply.code[0].text
    assert [(b.label, b.action, b.argument) for b in reply.buttons[0]] == [
        ("◀ Step 1", "replay", f"{task.id} 1"),
        ("Step 3 ▶", "replay", f"{task.id} 3"),
        ("Fork from here", "fork", f"{task.id} 2"),
    ]


async def test_fork_queues_a_new_task_from_the_step_with_the_new_instruction(stack, fake, chat):
    three_steps(fake)
    task = await stack.run_task(KEY)

    reply = await chat(f"/fork {task.id} 2 Greet quietly instead")

    assert reply.ok, reply.text
    made = await chat.services.tasks.get(reply.task_id)
    assert (made.title, made.parent_id, made.status.value) == (
        "Greet quietly instead", task.id, "queued"
    )
    assert reply.text == (
        f"Queued #{made.id} Greet quietly instead, forked from step 2 of #{task.id}. "
        "Files it starts with: hello.txt."
    )


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("/replay", "Name the task by its number, e.g. #12 (got '')."),
        ("/replay 999", "There is no task #999."),
        ("/replay 1 two", "Name the step by its number, from 1 (got 'two')."),
        ("/fork 1", "Say which step to fork from: /fork <id> <step> [new instruction]."),
        ("/fork 999 1", "There is no task #999."),
    ],
)
async def test_bad_input_gets_one_clear_sentence(chat, text, sentence):
    reply = await chat(text)

    assert not reply.ok and reply.text == sentence


async def test_forking_from_a_step_that_was_not_taken_is_refused_and_queues_nothing(
    stack, fake, chat
):
    three_steps(fake)
    task = await stack.run_task(KEY)

    reply = await chat(f"/fork {task.id} 9 Something else")

    assert not reply.ok
    assert reply.text == f"Task #{task.id} has steps 1 to 3; step 9 is not one of them."
    assert len(await chat.services.tasks.list()) == 1


# `lugh replay`, registered here as `lugh/cli.py` registers it.

cli = typer.Typer()
cli.command()(replay_cli.replay)
cli.command("other")(lambda: None)  # two commands, so typer keeps the command name


@pytest.fixture
def lugh(stack, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no developer's .env
    monkeypatch.setenv("DATABASE_URL", stack.database)
    monkeypatch.setenv("LUGH_DATA_DIR", str(stack.data_dir))

    async def invoke(*args: str):
        return await asyncio.to_thread(CliRunner().invoke, cli, list(args))

    return invoke


async def test_lugh_replay_prints_the_step_and_the_diff_so_far(stack, fake, lugh):
    three_steps(fake)
    task = await stack.run_task(KEY)

    result = await lugh("replay", str(task.id), "--step", "1")

    assert result.exit_code == 0, result.output
    assert f"#{task.id} {KEY} — step 1 of 3" in result.output
    assert "Files changed so far:\n  A hello.txt (+1 −0)" in result.output
    assert "+++ b/hello.txt\n@@ -0,0 +1 @@\n+hello" in result.output


async def test_lugh_replay_fork_queues_the_fork_and_says_so(stack, fake, lugh):
    three_steps(fake)
    task = await stack.run_task(KEY)

    result = await lugh("replay", str(task.id), "--step", "2", "--fork", "-i", "Greet softly")

    assert result.exit_code == 0, result.output
    [fork] = [t for t in await stack.queue.list() if t.id != task.id]
    assert (
        f"✓ Queued #{fork.id} Greet softly, forked from step 2 of #{task.id}. "
        "Files it starts with: hello.txt.\n"
    ) in result.output


async def test_lugh_replay_of_an_unknown_task_fails_with_one_sentence(stack, lugh):
    result = await lugh("replay", "999")

    assert result.exit_code == 1
    assert "✗ There is no task #999.\n" in result.output
