"""A running Lugh bot for tests: the real TelegramBot component (PTB polling, the outbox sender)
and the listener, under the composition root's `run_components`, against the fake Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from lugh.app import run_components
from lugh.services import Services, build_services
from lugh.transport.telegram.bot import TelegramBot
from lugh.transport.telegram.pacing import Limits
from tests.fakes.telegram import TOKEN, FakeTelegram, SentMessage

OWNER = 1001
STRANGER = 2002
BOUND_S = 20.0
FAST = Limits(per_chat_per_s=50, overall_per_s=100)


def bot_settings(make_settings: Any, fake: FakeTelegram, **env: Any) -> Any:
    env.setdefault("TELEGRAM_ALLOWED_USER_IDS", str(OWNER))
    return make_settings(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE_URL=fake.url, **env)


@asynccontextmanager
async def running_bot(services: Services, **kw: Any) -> AsyncIterator[TelegramBot]:
    """The bot polling until the block ends, then stopped the way `lugh run` stops it."""
    kw.setdefault("poll_timeout_s", 1.0)
    kw.setdefault("limits", FAST)
    bot = TelegramBot(services, **kw)
    stop = asyncio.Event()
    task = asyncio.create_task(run_components([services.listener, bot], stop, grace_s=BOUND_S))
    try:
        await asyncio.wait_for(bot.started.wait(), BOUND_S)
        yield bot
    finally:
        stop.set()
        await asyncio.wait_for(task, BOUND_S)


def make_services(
    make_settings: Any, fake: FakeTelegram, pool: Any, dsn: str, **env: Any
) -> Services:
    return build_services(bot_settings(make_settings, fake, **env), pool, dsn)


async def say(fake: FakeTelegram, text: str, chat_id: int = OWNER, **kw: Any) -> SentMessage:
    """Send `text` as the owner and wait for the next message the bot sends to that chat."""
    before = len(fake.sent(chat_id))
    fake.push_message(chat_id, text, **kw)
    sent = await fake.wait_sent(chat_id, before + 1, BOUND_S)
    return sent[before]
