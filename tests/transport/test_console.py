import asyncio
import io
import os

import pytest

from lugh.services import build_services
from lugh.transport.console.chat import ConsoleChat

BOUND_S = 10


class Screen(io.StringIO):
    """What the console printed; `wait_for` returns once `text` has appeared."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def write(self, text: str) -> int:
        self.changed.set()
        return super().write(text)

    async def wait_for(self, text: str, after: int = 0) -> str:
        async def seen() -> str:
            while text not in self.getvalue()[after:]:
                self.changed.clear()
                await self.changed.wait()
            return self.getvalue()

        return await asyncio.wait_for(seen(), BOUND_S)


@pytest.fixture
async def console(pool, database, make_settings):
    services = build_services(make_settings(), pool, database)
    read_fd, write_fd = os.pipe()
    screen = Screen()
    chat = ConsoleChat(services, stdin=os.fdopen(read_fd, "rb"), stdout=screen)
    running = asyncio.create_task(chat.run())
    keyboard = os.fdopen(write_fd, "wb", buffering=0)

    def type_line(line: str) -> int:
        mark = len(screen.getvalue())
        keyboard.write(line.encode() + b"\n")
        return mark

    await screen.wait_for("Lugh is listening")
    yield services, screen, type_line
    keyboard.close()
    await asyncio.wait_for(running, BOUND_S)


async def test_plain_language_is_confirmed_with_a_numbered_choice_before_a_task_is_created(
    console, repo
):
    services, screen, type_line = console
    mark = type_line(f"/project new demo {repo}")
    await screen.wait_for("Registered project demo", mark)

    mark = type_line("add a health endpoint")
    await screen.wait_for("[1] Yes, do it  [2] No", mark)
    nothing_yet = await services.tasks.list()
    mark = type_line("1")
    output = await screen.wait_for("Queued #", mark)

    [task] = await services.tasks.list()
    assert nothing_yet == []
    assert task.title == "add a health endpoint"
    assert task.source == "console"
    assert f"Queued #{task.id} in demo" in output


async def test_a_dismissed_proposal_creates_nothing_and_cannot_be_confirmed_later(console, repo):
    services, screen, type_line = console
    mark = type_line(f"/project new demo {repo}")
    await screen.wait_for("Registered project demo", mark)
    mark = type_line("refactor the parser")
    await screen.wait_for("[2] No", mark)
    proposal = await services.pool.fetchval("SELECT max(id) FROM approvals WHERE kind = 'confirm'")

    mark = type_line("2")
    await screen.wait_for("Fine, nothing was done.", mark)
    mark = type_line(f"/confirm {proposal}")
    await screen.wait_for("already answered or has expired", mark)

    assert await services.tasks.list() == []


async def test_read_only_phrases_run_at_once_and_bad_choices_get_a_sentence(console):
    services, screen, type_line = console
    mark = type_line("what can you do?")
    await screen.wait_for("/task <text> — create a task", mark)
    mark = type_line("status")
    await screen.wait_for("There is no project yet", mark)
    mark = type_line("/project")
    await screen.wait_for("No projects yet.", mark)
