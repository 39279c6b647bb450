"""The bot answers its owner's commands through the real PTB, the outbox and the fake Bot API."""

from __future__ import annotations

import pytest

from tests.fakes.telegram import FakeTelegram
from tests.transport.telegram.botkit import OWNER, make_services, running_bot, say


@pytest.fixture
def fake():
    with FakeTelegram() as server:
        yield server


@pytest.fixture
async def services(make_settings, fake, pool, database):
    services = make_services(make_settings, fake, pool, database)
    yield services
    await services.aclose()


async def test_help_lists_the_commands_and_the_menu_is_set(services, fake):
    async with running_bot(services):
        answer = await say(fake, "/help")
    assert "/task <text>" in answer.text
    assert {c["command"] for c in fake.commands} >= {"task", "tasks", "status", "approve", "help"}
