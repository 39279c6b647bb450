"""The server over real streamable HTTP on a loopback port: tokens, scopes, Host/Origin,
body limit, rate limit, health, and the component's lifecycle."""

from __future__ import annotations

import asyncio
import socket
import stat

import httpx
import pytest

from lugh.app import StartupError
from lugh.mcp.http import McpHttp
from lugh.mcp.tokens import mcp_token, readonly_token
from tests.mcp.conftest import error_text, http_client, payload, running

ASSIGN = {
    "jsonrpc": "2.0", "id": 1, "method": "tools/call",
    "params": {"name": "assign_task", "arguments": {"project": "demo", "title": "sneak in"}},
}  # fmt: skip
JSON = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@pytest.fixture
async def demo(services, repo):
    return await services.projects.register("demo", str(repo))


def bearer(token: str) -> dict[str, str]:
    return {**JSON, "authorization": f"Bearer {token}"}


async def test_the_owner_token_assigns_a_task_and_the_call_is_recorded_under_its_name(
    make_http, tokens, services, demo
):
    async with running(make_http()) as server, http_client(server, tokens["owner"]) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        task = payload(await client.call_tool("assign_task", {"project": "demo", "title": "do it"}))
        shown = payload(await client.call_tool("get_task", {"task_id": task["id"]}))

    assert {"spawn_agent", "assign_task", "query_knowledge"} <= names
    assert shown["status"] == "queued" and (await services.tasks.get(task["id"])).source == "mcp"
    [session] = await services.pool.fetch(
        "SELECT external_id FROM sessions WHERE transport = 'mcp'"
    )
    assert session["external_id"] == "owner"


@pytest.mark.parametrize(
    "headers", [JSON, bearer("wrong-token"), {**JSON, "authorization": "Basic eA=="}]
)
async def test_a_missing_or_wrong_token_is_refused_with_401_and_changes_nothing(
    make_http, services, demo, headers
):
    async with running(make_http()) as server, httpx.AsyncClient() as raw:
        response = await raw.post(server.url, json=ASSIGN, headers=headers)

    assert response.status_code == 401
    assert await services.tasks.list() == []
    assert await services.pool.fetchval("SELECT count(*) FROM sessions") == 0


async def test_a_read_only_token_can_query_but_not_assign(make_http, tokens, services, demo):
    async with running(make_http()) as server, http_client(server, tokens["readonly"]) as client:
        listed = payload(await client.call_tool("list_projects", {}))
        refused = await client.call_tool("assign_task", {"project": "demo", "title": "sneak in"})
        spawn = await client.call_tool("spawn_agent", {"project": "demo", "name": "sneaky"})

    assert [p["name"] for p in listed["projects"]] == ["demo"]
    assert "read-only" in error_text(refused) and "read-only" in error_text(spawn)
    assert await services.tasks.list() == []
    assert [a.name for a in await services.agents.list("demo")] == []


@pytest.mark.parametrize(
    ("forged", "status"),
    [({"host": "evil.example.com"}, 421), ({"origin": "http://evil.example.com"}, 403)],
)
async def test_a_forged_host_or_origin_is_refused(
    make_http, tokens, services, demo, forged, status
):
    async with running(make_http()) as server, httpx.AsyncClient() as raw:
        response = await raw.post(server.url, json=ASSIGN, headers=bearer(tokens["owner"]) | forged)
    assert response.status_code == status
    assert await services.tasks.list() == []


async def test_an_oversized_body_is_refused_with_413(make_http, tokens, services, demo):
    big = dict(ASSIGN, params={"name": "assign_task", "arguments": {
        "project": "demo", "title": "big", "description": "x" * (1024 * 1024 + 1)}})
    async with running(make_http()) as server, httpx.AsyncClient() as raw:
        response = await raw.post(server.url, json=big, headers=bearer(tokens["owner"]))
    assert response.status_code == 413
    assert await services.tasks.list() == []


async def test_a_token_over_its_rate_is_refused_with_429_while_another_token_is_not(
    make_http, tokens
):
    limited = make_http(rate_per_s=0.01, rate_burst=3)
    async with running(limited) as server, httpx.AsyncClient() as raw:
        owner = [(await raw.get(server.url, headers=bearer(tokens["owner"]))).status_code
                 for _ in range(4)]  # fmt: skip
        reader = await raw.get(server.url, headers=bearer(tokens["readonly"]))

    assert 429 not in owner[:3] and owner[3] == 429
    assert reader.status_code != 429


async def test_health_answers_without_a_token(make_http):
    async with running(make_http()) as server, httpx.AsyncClient() as raw:
        response = await raw.get(server.url.removesuffix("/mcp") + "/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_a_non_loopback_address_needs_allowed_hosts(services):
    with pytest.raises(StartupError, match="LUGH_MCP_ALLOWED_HOSTS"):
        McpHttp(services, host="0.0.0.0", port=0)
    assert McpHttp(services, host="0.0.0.0", port=0, allowed_hosts=["lugh.example.com"]).host


async def test_cancelling_the_component_closes_its_port(make_http):
    component = make_http()
    task = asyncio.create_task(component.run())
    await asyncio.wait_for(component.ready.wait(), timeout=30)
    port = component.port
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=30)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def test_the_token_is_generated_once_private_and_lugh_mcp_token_wins(make_settings):
    settings = make_settings()
    first = mcp_token(settings)
    path = settings.resolved_data_dir / "mcp_token"

    assert len(first) >= 40 and mcp_token(settings) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert readonly_token(settings) not in (first, "")
    assert mcp_token(make_settings(LUGH_MCP_TOKEN="from-env")) == "from-env"
