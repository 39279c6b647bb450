"""Reactions on a message about a task: 🔥 raises its priority, 😴 pauses it (taking 😴 away
resumes it), 🤔 shows why; on other messages, and from anyone but the owner, they do nothing."""

from __future__ import annotations

import pytest

from tests.transport.telegram.botkit import (
    BOUND_S, OWNER, STRANGER, running_bot, say,
)  # fmt: skip


@pytest.fixture(autouse=True)
async def demo(services, repo):
    """Every test here runs with project demo registered (and current for new chats)."""
    await services.projects.register("demo", str(repo))


async def react(fake, message_id: int, emoji: str, **kw) -> str:
    before = len(fake.sent(OWNER))
    fake.push_reaction(OWNER, message_id, emoji, **kw)
    return (await fake.wait_sent(OWNER, before + 1, BOUND_S))[before].text


async def test_fire_raises_priority_and_sleep_pauses_until_it_is_taken_away(services, fake):
    async with running_bot(services):
        queued = await say(fake, "/task add a health endpoint")
        raised = await react(fake, queued.message_id, "🔥")
        paused = await react(fake, queued.message_id, "😴", old="🔥")
        held = await services.tasks.get(1)
        resumed = await react(fake, queued.message_id, "", old="😴")
        why = await react(fake, queued.message_id, "🤔")

    assert raised == "#1 add a health endpoint now has priority 1."
    assert paused.startswith("Paused #1")
    assert held.options.get("paused") is True
    assert resumed == "Resumed #1 add a health endpoint."
    assert why.startswith("Why #1")
    task = await services.tasks.get(1)
    assert (task.priority, task.status, task.options.get("paused")) == (1, "queued", None)


async def test_reactions_on_unbound_messages_or_from_others_do_nothing(services, fake):
    async with running_bot(services):
        queued = await say(fake, "/task add a health endpoint")
        helped = await say(fake, "/help")
        fake.push_reaction(OWNER, helped.message_id, "🔥")
        fake.push_reaction(OWNER, queued.message_id, "🔥", user_id=STRANGER)
        fake.push_reaction(OWNER, queued.message_id, "❤")
        said = len(fake.sent(OWNER))
        raised = await react(fake, queued.message_id, "🔥", old="❤")  # the owner's, counted

    assert raised.endswith("now has priority 1.")
    assert len(fake.sent(OWNER)) == said + 1  # nothing answered the others
    assert (await services.tasks.get(1)).priority == 1
