"""Fixtures the Telegram tests share: the fake Bot API and services pointed at it."""

from __future__ import annotations

import pytest

from tests.fakes.telegram import FakeTelegram
from tests.transport.telegram.botkit import make_services


@pytest.fixture
def fake():
    """The fake Bot API (files that need Telegram's rate limits define their own)."""
    with FakeTelegram() as server:
        yield server


@pytest.fixture
async def services(make_settings, fake, pool, database):
    """Services configured for the bot against `fake` (files needing model APIs define their own)."""
    services = make_services(make_settings, fake, pool, database)
    yield services
    await services.aclose()
