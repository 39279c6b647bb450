"""`/metrics` on the MCP HTTP server: Prometheus text with queue depth, running agents, the
outbox backlog and recent failures, read from the real database, without a token."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from lugh.mcp.http import McpHttp
from lugh.services import build_services
from lugh.transport.telegram.outbox import Outbox

SAMPLE = re.compile(r"^([a-z_][a-z0-9_]*)(\{[^}]*\})? (\S+)$")


@pytest.fixture
async def services(pool, database, make_settings):
    built = build_services(make_settings(LUGH_INSTANCE="staging"), pool, database)
    yield built
    await built.aclose()


@pytest.fixture
async def metrics_url(services):
    """The MCP component serving on a free loopback port, as `lugh run` hosts it."""
    component = McpHttp(services, host="127.0.0.1", port=0)
    task = asyncio.create_task(component.run())
    await asyncio.wait_for(component.ready.wait(), timeout=30)
    yield f"http://127.0.0.1:{component.port}/metrics"
    await component.stop()
    await asyncio.wait_for(task, timeout=30)


def samples(text: str) -> dict[str, float]:
    """`name{labels}` → value, every line not a comment parsed as the text format says."""
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


async def test_metrics_answer_without_a_token_in_the_prometheus_text_format(metrics_url):
    async with httpx.AsyncClient() as client:
        response = await client.get(metrics_url)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert "# TYPE lugh_tasks gauge" in text
    values = samples(text)
    assert values['lugh_info{instance="staging"}'] == 1
    assert values['lugh_tasks{status="queued"}'] == 0
    assert values["lugh_outbox_backlog"] == 0
    assert values["lugh_dispatch_p99_seconds"] > 0
    assert values["lugh_dispatch_floor_p99_seconds"] > 0


async def test_metrics_count_queued_running_and_failed_tasks_and_the_outbox_backlog(
    services, repo, metrics_url
):
    project = await services.projects.register("demo", str(repo))
    for n in range(3):
        await services.tasks.enqueue(project.id, f"task {n}")
    running = await services.tasks.claim("worker-1", 60)
    failing = await services.tasks.claim("worker-1", 60)
    await services.tasks.fail_attempt(failing.id, failing.lease_token, "boom", retry=False)
    outbox = Outbox(services.pool)
    await outbox.enqueue(42, "sendMessage", {"text": "hello"})
    await outbox.enqueue(42, "sendMessage", {"text": "again"})

    async with httpx.AsyncClient() as client:
        values = samples((await client.get(metrics_url)).text)

    assert running is not None
    assert values['lugh_tasks{status="queued"}'] == 1
    assert values['lugh_tasks{status="running"}'] == 1
    assert values['lugh_tasks{status="failed"}'] == 1
    assert values["lugh_agents_running"] == 1
    assert values["lugh_tasks_failed_recently"] == 1
    assert values["lugh_outbox_backlog"] == 2
    assert values["lugh_outbox_oldest_seconds"] >= 0
    assert values["lugh_outbox_failed"] == 0


async def test_metrics_reveal_no_task_title_or_message_text(services, repo, metrics_url):
    project = await services.projects.register("demo", str(repo))
    await services.tasks.enqueue(project.id, "secret-plan-title")
    await Outbox(services.pool).enqueue(42, "sendMessage", {"text": "private words"})

    async with httpx.AsyncClient() as client:
        text = (await client.get(metrics_url)).text

    assert "secret-plan-title" not in text
    assert "private words" not in text
    assert "demo" not in text
