from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client
from mcp_types import CallToolResult

from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from lugh.mcp.audit import READ_SCOPE, WRITE_SCOPE
from lugh.mcp.http import McpHttp
from lugh.mcp.server import build_server
from lugh.mcp.tokens import Grant, StaticTokenVerifier


@pytest.fixture
def server(services):
    return build_server(services)


def payload(result: CallToolResult) -> Any:
    """A tool result's JSON (structured content when the tool declares it, else the text)."""
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result
    return result.content[0].text


@contextlib.asynccontextmanager
async def running(component: McpHttp) -> AsyncIterator[McpHttp]:
    """The component serving on its port until the block ends, then stopped as `lugh run` does."""
    task = asyncio.create_task(component.run())
    ready = asyncio.create_task(component.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        ready.cancel()
        await task if task.done() else None
        raise TimeoutError("the MCP HTTP server did not start")
    try:
        yield component
    finally:
        await component.stop()
        await asyncio.wait_for(task, timeout=30)


@contextlib.asynccontextmanager
async def http_client(component: McpHttp, token: str) -> AsyncIterator[Client]:
    """The SDK's client over real streamable HTTP with a bearer token."""
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(component.url, http_client=http)) as client:
        yield client


@pytest.fixture
def tokens():
    return {"owner": "owner-" + "x" * 40, "readonly": "reader-" + "y" * 40}


@pytest.fixture
def make_http(services, tokens):
    def make(**options: Any) -> McpHttp:
        options.setdefault("verifier", StaticTokenVerifier([
            Grant("owner", tokens["owner"], (READ_SCOPE, WRITE_SCOPE)),
            Grant("readonly", tokens["readonly"], (READ_SCOPE,)),
        ]))  # fmt: skip
        return McpHttp(services, host="127.0.0.1", port=0, **options)

    return make
