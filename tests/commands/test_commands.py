import asyncio

import pytest

from lugh.commands.catalog import COMMANDS, parse
from lugh.tasks import ExecutionResult, Task, TaskContext, WorkerPool

DESIGN_COMMANDS = {
    "start", "help", "project", "task", "tasks", "status", "agents", "spawn", "diff", "approve",
    "reject", "cancel", "retry", "why", "ask",
}


def test_every_command_of_the_design_is_registered():
    assert DESIGN_COMMANDS <= set(COMMANDS)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("/task fix the tests", ("task", "fix the tests")),
        ("/status@LughBot 12", ("status", "12")),
        ("  /HELP  ", ("help", "")),
        ("hello there", None),
        ("/", None),
        ("/rm;ls x", None),
    ],
)
def test_a_message_is_parsed_into_a_command_only_when_it_is_one(text, parsed):
    assert parse(text) == parsed


class Holding:
    """An executor that keeps every task running until told to let go."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult:
        await self.release.wait()
        return ExecutionResult("done")


async def test_a_task_taken_at_once_by_a_free_slot_of_the_pool_is_said_started(
    chat, repo, services
):
    holding = Holding()
    workers = WorkerPool(services.tasks, holding, slots=1, poll_s=0.05, sweep_s=None)
    running = asyncio.create_task(workers.run())
    try:
        services.tasks.hand_to(workers)
        await asyncio.wait_for(workers.serving.wait(), 10)
        await chat(f"/project new demo {repo}")

        first = await chat("/task add a health endpoint")
        second = await chat("/task add a readiness endpoint")

        assert first.text.startswith(f"Started #{first.task_id} in demo")
        assert second.text.startswith(f"Queued #{second.task_id} in demo")  # the slot is taken
    finally:
        holding.release.set()
        await workers.stop()
        await running


async def test_registering_a_project_makes_it_current_and_a_task_is_queued_in_it(chat, repo, services):
    registered = await chat(f"/project new demo {repo}")
    queued = await chat("/task add a health endpoint\nIt should answer 200.")

    assert registered.ok and "Registered project demo" in registered.text
    assert queued.ok and queued.text.startswith("Queued #")
    [task] = await services.tasks.list()
    assert queued.task_id == task.id
    assert (task.title, task.source) == ("add a health endpoint", "console")
    assert task.body == "add a health endpoint\nIt should answer 200."
    agent = await services.agents.get(task.agent_id)
    assert agent.name == "default"
    assert f"#{task.id}" in queued.text
    assert [b.action for row in queued.buttons for b in row] == ["status", "cancel"]


async def test_a_task_without_any_project_is_refused_with_one_sentence(chat, services):
    reply = await chat("/task do something")

    assert not reply.ok
    assert reply.text == "There is no project yet; register one with /project new <name> <repo>."
    assert await services.tasks.list() == []


async def test_status_and_why_show_a_tasks_state_and_its_trail(chat, repo):
    await chat(f"/project new demo {repo}")
    queued = await chat("/task write docs")
    await chat(f"/cancel {queued.task_id}")

    status = await chat(f"/status #{queued.task_id}")
    why = await chat(f"/why {queued.task_id}")

    assert f"#{queued.task_id} write docs — cancelled" in status.text
    assert "Agent: default (engineer)" in status.text
    assert "cancelled" in why.code[0].text


async def test_approving_a_task_that_is_not_in_review_changes_nothing(chat, repo, services):
    await chat(f"/project new demo {repo}")
    queued = await chat("/task write docs")

    reply = await chat(f"/approve {queued.task_id}")

    assert not reply.ok
    assert (await services.tasks.get(queued.task_id)).status == "queued"


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("/nope", "There is no command /nope; /help lists them."),
        ("/status twelve", "Name the task by its number, e.g. #12 (got 'twelve')."),
        ("/cancel 999", "There is no task #999."),
        ("/project new 'unclosed", "A quote is not closed in that command; check it and send it again."),
    ],
)
async def test_bad_input_gets_one_clear_sentence(chat, text, sentence):
    reply = await chat(text)

    assert not reply.ok
    assert reply.text == sentence


async def test_the_session_remembers_what_was_asked_and_created(chat, repo, services):
    await chat(f"/project new demo {repo}")
    queued = await chat("/task write docs")

    session = await services.sessions.get(chat.ctx.session.id)

    assert [a["action"] for a in session.asked] == ["project", "task"]
    assert {"kind": "task", "id": queued.task_id} in [
        {"kind": c["kind"], "id": c["id"]} for c in session.created
    ]


async def test_spawned_agents_are_listed_and_help_lists_every_command(chat, repo):
    await chat(f"/project new demo {repo}")
    spawned = await chat("/spawn rita reviewer")
    listed = await chat("/agents")
    help_text = (await chat("/help")).text

    assert spawned.text == "Spawned rita (reviewer) in demo."
    assert "rita — reviewer, idle" in listed.text
    for name in DESIGN_COMMANDS - {"start", "help"}:
        assert f"/{name}" in help_text
