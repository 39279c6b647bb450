"""200 calls with arguments drawn from the tools' own input schemas, many of them hostile, over
real streamable HTTP: every answer is a result or a tool error, never a 500 or a crash."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mcp import Client

from lugh.mcp.audit import INTERNAL
from lugh.mcp.server import build_server
from tests.mcp.conftest import http_client, running

HOSTILE = st.sampled_from([
    "", " ", "demo", "default", "\x00", "a\x00b", "../../../etc/passwd", "/etc/shadow",
    "'; DROP TABLE tasks; --", "%s%s%n", "${jndi:ldap://x}", "file:///nonexistent/repo",
    "é" * 300, "x" * 5000, "#12", "-1", "1e309", "null", "{{7*7}}", "\u202e", "lugh://tasks/1",
])  # fmt: skip
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), HOSTILE,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)  # fmt: skip


def value_for(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value the schema describes (edges included), or now and then one it forbids."""
    options = schema.get("anyOf", [schema])
    strategies: list[st.SearchStrategy[Any]] = [JUNK]
    for option in options:
        kind = option.get("type")
        if "enum" in option:
            strategies.append(st.sampled_from(option["enum"]))
        elif kind == "string":
            strategies += [HOSTILE, st.text(max_size=min(option.get("maxLength", 100) + 5, 300))]
        elif kind == "integer":
            low, high = option.get("minimum", -(2**63)), option.get("maximum", 2**63)
            strategies += [st.integers(low, high), st.integers(low - 3, high + 3),
                           st.sampled_from([1, 2, 2**31 - 1])]  # fmt: skip
        elif kind == "null":
            strategies.append(st.none())
    return st.one_of(strategies)


def arguments_for(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    fields = {name: value_for(sub) for name, sub in properties.items()}
    drawn = st.fixed_dictionaries({}, optional=fields) if fields else st.just({})
    extra = st.dictionaries(st.text(max_size=8), JUNK, max_size=2)
    return st.tuples(drawn, extra, st.booleans()).map(lambda t: {**t[0], **t[1]} if t[2] else t[0])


async def tool_schemas(services) -> dict[str, dict[str, Any]]:
    async with Client(build_server(services)) as client:
        return {t.name: t.input_schema for t in (await client.list_tools()).tools}


@pytest.fixture
async def schemas(services, repo):
    await services.projects.register("demo", str(repo))
    return await tool_schemas(services)


@pytest.fixture
def calls(schemas):
    return st.sampled_from(sorted(schemas)).flatmap(
        lambda name: arguments_for(schemas[name]).map(lambda args: (name, args))
    )


BATCHES, PER_BATCH = 10, 20


@pytest.fixture
async def live(make_http):
    async with running(make_http(rate_per_s=1000)) as server:
        yield server


@settings(max_examples=BATCHES, deadline=None, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_hostile_arguments_get_a_result_or_a_tool_error_never_a_crash(
    data, live, tokens, calls
):
    batch = data.draw(st.lists(calls, min_size=PER_BATCH, max_size=PER_BATCH))
    async with http_client(live, tokens["owner"]) as client:
        for name, arguments in batch:
            result = await asyncio.wait_for(client.call_tool(name, arguments), 30)
            if result.is_error:
                assert INTERNAL not in result.content[0].text, (name, arguments)
