"""Only the owner is served: strangers get one refusal, groups are ignored, edited and forwarded
messages run nothing, an update is handled once even across a restart, and a pairing code makes
its first user the owner, once."""

from __future__ import annotations

import asyncio

import pytest

from tests.transport.telegram.botkit import (
    BOUND_S, OWNER, STRANGER, make_services, running_bot, say,
)  # fmt: skip


@pytest.fixture(autouse=True)
async def demo(services, repo):
    """Every test here runs with project demo registered (and current for new chats)."""
    await services.projects.register("demo", str(repo))


async def handled(services, update_id: int) -> None:
    """Wait until the bot has recorded `update_id` (handled or deliberately ignored)."""
    async def seen() -> None:
        while not await services.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM telegram_updates WHERE update_id = $1)", update_id
        ):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(seen(), BOUND_S)


async def task_count(services) -> int:
    return await services.pool.fetchval("SELECT count(*) FROM tasks")


async def test_a_stranger_is_refused_once_and_nothing_happens(services, fake):
    async with running_bot(services):
        refusal = await say(fake, "/task delete everything", chat_id=STRANGER)
        for text in ("/task again", "hello?", "/tasks"):
            update = fake.push_message(STRANGER, text)
        await handled(services, update["update_id"])
        await say(fake, "/help")  # the owner is still served, after all of it

    assert "private" in refusal.text
    assert len(fake.sent(STRANGER)) == 1
    assert await task_count(services) == 0


async def test_a_group_chat_is_ignored_even_for_the_owner(services, fake):
    async with running_bot(services):
        update = fake.push_message(-100123, "/task from the group", user_id=OWNER,
                                   chat_type="supergroup")  # fmt: skip
        await handled(services, update["update_id"])

    assert fake.sent(-100123) == []
    assert await task_count(services) == 0


async def test_an_edited_task_command_creates_nothing_and_gets_a_short_note(services, fake):
    async with running_bot(services):
        note = await say(fake, "/task add a health endpoint", edited=True)

    assert "Edited messages don't run commands" in note.text
    assert await task_count(services) == 0


async def test_a_forwarded_task_command_creates_nothing(services, fake):
    async with running_bot(services):
        note = await say(fake, "/task add a health endpoint", forwarded=True)

    assert "Forwarded messages don't run commands" in note.text
    assert await task_count(services) == 0


async def test_an_update_delivered_again_after_a_restart_runs_once(services, fake):
    async with running_bot(services):
        update = fake.push_message(OWNER, "/task add a health endpoint")
        await fake.wait_sent(OWNER, 1, BOUND_S)
    assert await task_count(services) == 1

    fake.push_update(update)  # the same update, id and all, delivered again after the restart
    async with running_bot(services):
        await say(fake, "/tasks")

    assert await task_count(services) == 1
    assert len([t for t in fake.texts(OWNER) if t.startswith("Queued #")]) == 1


async def test_a_pairing_code_makes_its_first_user_the_owner_once(
    make_settings, fake, pool, database
):
    services = make_services(make_settings, fake, pool, database, TELEGRAM_ALLOWED_USER_IDS="")
    codes: list[str] = []
    try:
        async with running_bot(services, on_pairing_code=codes.append):
            [code] = codes
            wrong = await say(fake, "/start WRONGCODE1", chat_id=OWNER)
            paired = await say(fake, f"/start {code}", chat_id=OWNER)
            served = await say(fake, "/help", chat_id=OWNER)
            update = fake.push_message(STRANGER, f"/start {code}")
            await handled(services, update["update_id"])
            stored = await pool.fetchval(
                "SELECT value FROM telegram_state WHERE key LIKE 'pairing%'")
        async with running_bot(services, on_pairing_code=codes.append):
            assert len(codes) == 1  # an owner exists: no new code at the next start
            again = await say(fake, "/tasks", chat_id=OWNER)
    finally:
        await services.aclose()

    assert "private" in wrong.text
    assert paired.text.startswith("Paired")
    assert "/task <text>" in served.text
    assert [m.text for m in fake.sent(STRANGER)][0].startswith("This is a private bot")
    assert stored is None  # the code was used up
    assert again.text
    assert await pool.fetchval("SELECT array_agg(user_id) FROM telegram_owners") == [OWNER]
