"""A task from the console to a merge on main: the composition root's components, a real agent
run against the fake Anthropic API, real git and Postgres."""

import asyncio
import os

import pytest

from lugh.app import build_components, run_components
from lugh.services import build_services
from tests.conftest import git, make_repo
from tests.fakes.anthropic import API_KEY, FakeAnthropic, tool_use, turn
from tests.transport.test_console import Screen

BOUND_S = 30


@pytest.fixture
def fake():
    with FakeAnthropic() as server:
        yield server


async def test_the_console_runs_a_task_end_to_end_and_merges_it_on_approval(
    pool, database, make_settings, tmp_path, fake
):
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n"})
    fake.script(
        turn("I'll add the greeting file.",
             tool_use("write_file", {"path": "hello.txt", "content": "hello\n"})),
        turn(tool_use("finish", {"summary": "Added hello.txt."})),
    )
    settings = make_settings(ANTHROPIC_API_KEY=API_KEY, ANTHROPIC_BASE_URL=fake.base_url)
    services = build_services(settings, pool, database)
    stop = asyncio.Event()
    components = build_components(services, console=True, stop=stop)
    console = next(c for c in components if c.name == "console")
    read_fd, write_fd = os.pipe()
    screen = Screen()
    console.stdin = os.fdopen(read_fd, "rb")
    console.console.file = screen
    keyboard = os.fdopen(write_fd, "wb", buffering=0)
    running = asyncio.create_task(run_components(components, stop, grace_s=5))

    def type_line(line: str) -> int:
        mark = len(screen.getvalue())
        keyboard.write(line.encode() + b"\n")
        return mark

    try:
        await screen.wait_for("Lugh is listening")
        mark = type_line(f"/project new demo {repo}")
        await screen.wait_for("Registered project demo", mark)
        mark = type_line("/task add a greeting file")
        await asyncio.wait_for(screen.wait_for("is ready for review", mark), BOUND_S)
        review = await screen.wait_for("[1] Approve & merge", mark)
        mark = type_line("1")
        merged = await screen.wait_for("Merged #", mark)
    finally:
        keyboard.close()
        stop.set()
        await asyncio.wait_for(running, BOUND_S)
        await services.aclose()

    assert "+1 −0 in 1 file" in review
    assert "A hello.txt (+1 −0)" in review
    assert "Merged #1" in merged
    assert git(repo, "show", "main:hello.txt") == "hello"
    [task] = await services.tasks.list()
    assert task.status == "done"
    assert not any((tmp_path / "data" / "worktrees").rglob("hello.txt"))
