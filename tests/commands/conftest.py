"""What the command tests share (besides tests/conftest.py's `services`): a console chat that
runs commands as the owner."""

from __future__ import annotations

import pytest

from lugh.commands.catalog import Context, execute, parse


@pytest.fixture
async def chat(services):
    """Run commands as the owner in one console session; `chat.ctx` is its context."""
    session = await services.sessions.open("console", "owner")
    ctx = Context(services=services, session=session, source="console")

    async def say(text: str):
        return await execute(ctx, *parse(text))

    say.ctx = ctx
    return say
