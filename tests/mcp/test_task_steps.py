"""The steps of a task's agent runs in the MCP resource `lugh://tasks/{id}`, read through the
SDK's in-memory client after a real run against the fake Messages API."""

from __future__ import annotations

import json

from mcp import Client

from lugh.mcp.server import build_server
from lugh.services import build_services
from tests.agents.test_loop import fake, stack  # noqa: F401 (fixtures)
from tests.agents.test_replay import KEY, three_steps
from tests.fakes.anthropic import tool_use, turn


async def read_task(stack, make_settings, task_id: int) -> dict:
    services = build_services(make_settings(), stack.pool, stack.database)
    async with Client(build_server(services)) as client:
        [content] = (await client.read_resource(f"lugh://tasks/{task_id}")).contents
    await services.aclose()
    return json.loads(content.text)


async def test_the_task_resource_lists_each_step_with_its_calls_and_the_files_so_far(
    stack, fake, make_settings
):
    three_steps(fake)
    task = await stack.run_task(KEY)

    shown = await read_task(stack, make_settings, task.id)

    assert shown["id"] == task.id and shown["events"]  # what it held before stays
    assert shown["step_count"] == 3
    assert [(s["step"], s["text"], s["messages_sent"]) for s in shown["steps"]] == [
        (1, "First the greeting.", 1), (2, "Then louder.", 3), (3, "", 5),
    ]
    second = shown["steps"][1]
    assert second["last_sent"]["role"] == "user"
    assert second["last_sent"]["text"] == "← result: Created 'hello.txt' (6 bytes)."
    assert second["calls"][0] == {
        "tool": "edit_file", "input": {"path": "hello.txt", "old": "hello", "new": "HELLO"},
        "ok": True, "result": "Edited 'hello.txt' at line 1.",
    }
    assert shown["files"] == {
        "changed": [
            {"path": "app.py", "status": "modified", "added": 1, "deleted": 1},
            {"path": "hello.txt", "status": "added", "added": 1, "deleted": 0},
        ],
        "commands_at": [], "unavailable": None,
    }


async def test_long_arguments_and_results_are_cut_to_bounded_excerpts(stack, fake, make_settings):
    fake.script(
        turn("x" * 2000, tool_use("write_file", {"path": "big.txt", "content": "y" * 50_000})),
        turn(tool_use("read_file", {"path": "big.txt"})),
        turn(tool_use("finish", {"summary": "Big."})),
    )
    task = await stack.run_task("Write a big file")

    shown = await read_task(stack, make_settings, task.id)

    first, second = shown["steps"][:2]
    assert first["text"].endswith("… [1500 more characters]")
    assert first["calls"][0]["input"]["content"].endswith("… [49700 more characters]")
    assert second["calls"][0]["result"].endswith("more characters]")
    assert len(json.dumps(shown)) < 20_000


async def test_a_task_that_never_ran_has_no_steps(stack, make_settings):
    task = await stack.enqueue("Not yet")

    shown = await read_task(stack, make_settings, task.id)

    assert (shown["step_count"], shown["steps"], shown["files"]["changed"]) == (0, [], [])
