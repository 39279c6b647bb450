"""Issue #6: a task assigned over MCP reaches the owner on Telegram like any other task."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from mcp import Client

from lugh.mcp.server import build_server
from lugh.services import Services, build_services
from tests.fakes.telegram import FakeTelegram
from tests.transport.telegram.notify_kit import BOUND_S, FAKE_LIMITS, OWNER_CHAT, labels, notifying

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*retry_after:telegram.warnings.PTBDeprecationWarning"
)


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(rate_limits=FAKE_LIMITS) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def services(pool, database, make_settings) -> AsyncIterator[Services]:
    built = build_services(make_settings(), pool, database)
    yield built
    await built.aclose()


async def test_a_task_assigned_over_mcp_notifies_the_owner_and_so_does_its_outcome(
    services, repo, fake
):
    await services.projects.register("demo", str(repo))
    async with notifying(services, fake):
        async with Client(build_server(services)) as client:
            result = await client.call_tool("assign_task", {"project": "demo", "title": "Fix CI"})
        task_id = result.structured_content["id"]
        [queued] = await fake.wait_sent(OWNER_CHAT, 1, BOUND_S)
        task = await services.tasks.claim("test-worker", 60)
        await services.tasks.complete(task.id, task.lease_token, "done", result={"summary": "ok"})
        await fake.wait_for(lambda: any(m.text == f"#{task_id} Fix CI is done. ok"
                                        for m in fake.sent(OWNER_CHAT)), BOUND_S)  # fmt: skip

    assert queued.text == f"#{task_id} Fix CI was queued by an MCP client."
    assert queued.silent and labels(queued.reply_markup) == ["Status", "Cancel"]
