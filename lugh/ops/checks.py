"""Checks of what Lugh reaches outside its database, for `lugh doctor`: the Telegram Bot API,
Redis, the local embedding model, and whether agents can run.

Each returns (level, detail) with level ok | warn | fail. Details never carry a secret: no
token, no key, no URL with a password (exceptions from HTTP clients quote the URL, which holds
the bot token, so only the exception's class name is shown).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx

from lugh.config import Settings

TELEGRAM_TIMEOUT_S = 5.0
REDIS_TIMEOUT_S = 3.0
# A deployed instance exists to run agents; a dev checkout may be used for the console alone.
AGENTS_EXPECTED = ("staging", "prod")


async def telegram(settings: Settings) -> tuple[str, str]:
    """getMe with the configured token: is the Bot API reachable, and does it accept the token?"""
    if settings.telegram_bot_token is None:
        return "warn", "no Telegram bot, console chat only"
    base = settings.telegram_api_base_url
    url = f"{base}/bot{settings.telegram_bot_token.get_secret_value()}/getMe"
    try:
        async with httpx.AsyncClient(timeout=TELEGRAM_TIMEOUT_S) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        return "fail", (
            f"The Telegram Bot API at {base} cannot be reached ({type(exc).__name__}); "
            "check the network or TELEGRAM_API_BASE_URL."
        )
    if response.status_code in (401, 404):
        return "fail", (
            f"The Telegram Bot API rejected TELEGRAM_BOT_TOKEN ({response.status_code}); "
            "copy the token @BotFather gave for this instance's bot again."
        )
    try:
        body = response.json()
        username = body["result"]["username"] if body.get("ok") else None
    except (ValueError, KeyError, TypeError):
        username = None
    if username is None:
        return "fail", (
            f"The Telegram Bot API at {base} answered getMe with HTTP {response.status_code}, "
            "not a bot; check TELEGRAM_API_BASE_URL."
        )
    return "ok", f"the token belongs to @{username}"


async def redis(settings: Settings) -> tuple[str, str] | None:
    """PING the Redis bus when LUGH_BUS=redis; None when Redis is not used."""
    if settings.bus != "redis" or settings.redis_url is None:
        return None
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    url = settings.redis_url.get_secret_value()
    parts = urlsplit(url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    client = Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    try:
        await asyncio.wait_for(client.ping(), REDIS_TIMEOUT_S * 2)
    except (RedisError, OSError, TimeoutError) as exc:
        return "fail", (
            f"Redis at {where} cannot be reached ({type(exc).__name__}), and LUGH_BUS=redis "
            "needs it; start Redis, fix REDIS_URL, or set LUGH_BUS=postgres."
        )
    finally:
        await client.aclose()
    return "ok", f"Redis at {where} answers"


async def embedder(settings: Settings) -> tuple[str, str]:
    """Load the local model (weights checked against their sha256), as the first ingest would."""
    if settings.embedder != "local":
        return "ok", "OpenAI embeddings (LUGH_EMBEDDER=openai)"
    from lugh.knowledge.embedders.base import EmbedderError
    from lugh.knowledge.embedders.local import MODEL_NAME, LocalEmbedder

    def load() -> None:
        LocalEmbedder(threads=1).load()

    try:
        await asyncio.to_thread(load)
    except EmbedderError as exc:
        return "fail", str(exc)
    return "ok", f"{MODEL_NAME} installed, weights verified"


def agents(settings: Settings) -> tuple[str, str] | None:
    """An instance that should run agents without a key to run them with."""
    if settings.anthropic_api_key is not None:
        return None
    if settings.instance in AGENTS_EXPECTED:
        return "fail", (
            f"ANTHROPIC_API_KEY is empty, so the {settings.instance} instance cannot run agents "
            "or read photos; set it in this instance's env file."
        )
    return "warn", "agents cannot run and photos cannot be read"
