"""Fixtures for the media handlers: a real PTB Bot against the fake Bot API, real messages
fetched with getUpdates, and a Chat over real services (fake OpenAI and Anthropic behind them)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import telegram

from lugh.commands.catalog import Context, execute
from lugh.commands.choose import model_chooser
from lugh.services import build_services
from lugh.transport.telegram.chat import Chat
from lugh.transport.telegram.outbox import Outbox
from tests.fakes import anthropic as fake_anthropic
from tests.fakes import openai as fake_openai
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai import FakeOpenAI
from tests.fakes.telegram import TOKEN, FakeTelegram

OWNER = 4242
BOUND_S = 10


@pytest.fixture
def telegram_api():
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def openai_api():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def anthropic_api():
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def media_env(openai_api, anthropic_api):
    """Settings with both model APIs configured (tests drop a key to see it missing)."""
    return {
        "OPENAI_API_KEY": fake_openai.API_KEY, "OPENAI_BASE_URL": openai_api.base_url,
        "ANTHROPIC_API_KEY": fake_anthropic.API_KEY, "ANTHROPIC_BASE_URL": anthropic_api.base_url,
        "LUGH_EMBEDDER": "openai", "LUGH_VISION_MODEL": "claude-vision-test",
    }  # fmt: skip


@pytest.fixture
async def bot(telegram_api):
    made = telegram.Bot(
        TOKEN, base_url=f"{telegram_api.url}/bot", base_file_url=f"{telegram_api.url}/file/bot"
    )
    await made.initialize()
    yield made
    await made.shutdown()


@pytest.fixture
async def make_chat(pool, database, make_settings, media_env, bot):
    made = []

    async def make(**env) -> Chat:
        settings = make_settings(**{**media_env, **env})
        services = build_services(settings, pool, database)
        made.append(services)
        session = await services.sessions.open("telegram", str(OWNER))
        ctx = Context(services=services, session=session, source="telegram")
        return Chat(services, bot, Outbox(pool), OWNER, OWNER, ctx, model_chooser(services))

    yield make
    for services in made:
        await services.aclose()


@pytest.fixture
async def chat(make_chat):
    return await make_chat()


@pytest.fixture
async def project(chat, repo):
    reply = await execute(chat.ctx, "project", f"new demo {repo}")
    assert reply.ok, reply.text
    return "demo"


async def arrived(bot: telegram.Bot) -> telegram.Message:
    """The newest message the fake holds for the bot, as PTB parses it."""
    async with asyncio.timeout(BOUND_S):
        updates = await bot.get_updates(timeout=0)
    assert updates, "the fake Telegram holds no update"
    await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    return updates[-1].message


async def press(chat: Chat, action: str, argument: str) -> object:
    """What the bot does when a button is pressed: run its hidden command."""
    return await execute(dataclasses.replace(chat.ctx, method="button"), action, argument)
