"""A task from Telegram to a merge: an agent runs against the fake Anthropic API in a real git
repo, its review message carries [Approve & merge] [Reject] …, and the owner answers with a
button or a reaction; the approval records which. Used, stale and forged buttons change nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from lugh.app import build_components, run_components
from lugh.transport.telegram.bot import TelegramBot
from lugh.transport.telegram.callbacks import FORGED, STALE
from tests.conftest import git, make_repo
from tests.fakes.anthropic import API_KEY, FakeAnthropic, tool_use, turn
from tests.fakes.telegram import SentMessage
from tests.transport.telegram.botkit import BOUND_S, OWNER, make_services, running_bot, say

OTHER_OWNER = 3003


@pytest.fixture
def anthropic():
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def services(make_settings, fake, anthropic, pool, database):
    services = make_services(
        make_settings, fake, pool, database, ANTHROPIC_API_KEY=API_KEY,
        ANTHROPIC_BASE_URL=anthropic.base_url, LUGH_SANDBOX="none",
        TELEGRAM_ALLOWED_USER_IDS=f"{OWNER},{OTHER_OWNER}",
    )  # fmt: skip
    yield services
    await services.aclose()


@asynccontextmanager
async def lugh(services) -> AsyncIterator[TelegramBot]:
    """`lugh run`'s components (listener, workers, MCP, the bot …) as the composition root
    builds them."""
    components = build_components(services)
    bot = next(c for c in components if c.name == "telegram")
    stop = asyncio.Event()
    running = asyncio.create_task(run_components(components, stop, grace_s=BOUND_S))
    try:
        await asyncio.wait_for(bot.started.wait(), BOUND_S)
        yield bot
    finally:
        stop.set()
        await asyncio.wait_for(running, BOUND_S)


async def in_review(services, fake, repo) -> SentMessage:
    """Register the repo, ask for a task, let the agent run; the review message the notifier
    sent, once its outbox row records it (reactions find their message through it)."""
    await say(fake, f"/project new demo {repo}")
    fake.push_message(OWNER, "/task add a greeting file")  # its progress message may come first
    # "Started #1 …" when a free slot took it at once, as here, or "Queued #1 …"
    await fake.wait_for(lambda: _shown(fake, "#1 in demo for") is not None, BOUND_S)
    await fake.wait_for(lambda: _shown(fake, "ready for review") is not None, BOUND_S)
    message = _shown(fake, "ready for review")
    async with asyncio.timeout(BOUND_S):  # recorded as sent just after Telegram answered
        while not await services.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM outbox WHERE chat_id = $1 AND sent_message_id = $2)",
                OWNER, message.message_id):
            await asyncio.sleep(0.01)
    return message


def _shown(fake, text: str) -> SentMessage | None:
    return next((m for m in fake.messages[OWNER] if text in m.text), None)


def keyboard(message: SentMessage) -> list:
    return (message.reply_markup or {}).get("inline_keyboard") or []


def button(message: SentMessage, label: str) -> str:
    for row in message.reply_markup["inline_keyboard"]:
        for b in row:
            if b["text"] == label:
                return b["callback_data"]
    raise AssertionError(f"no button {label!r} on {message.text!r}")


async def answered(fake, count: int) -> dict:
    await fake.wait_for(lambda: len(fake.answered_callbacks) >= count, BOUND_S)
    return fake.answered_callbacks[count - 1]


async def edited_to(fake, message: SentMessage, text: str) -> None:
    await fake.wait_for(lambda: text in message.text, BOUND_S)


async def review_of(services, task_id: int = 1):
    return await services.pool.fetchrow(
        "SELECT status, method FROM approvals WHERE task_id = $1 AND kind = 'review'", task_id
    )


def script_greeting(anthropic) -> None:
    anthropic.script(
        turn("I'll add the greeting file.",
             tool_use("write_file", {"path": "hello.txt", "content": "hello\n"})),
        turn(tool_use("finish", {"summary": "Added hello.txt."})),
    )  # fmt: skip


async def test_approve_by_button_merges_and_the_message_becomes_the_outcome(
    services, fake, anthropic, tmp_path
):
    repo = make_repo(tmp_path / "repo")
    script_greeting(anthropic)
    async with lugh(services):
        review = await in_review(services, fake, repo)
        assert "+1 −0 in 1 file" in review.text
        approve = button(review, "Approve & merge")
        fake.push_callback(OWNER, review.message_id, approve)
        await edited_to(fake, review, "Merged #1")
        first = await answered(fake, 1)
        fake.push_callback(OWNER, review.message_id, approve)  # a double tap, or a replay
        second = await answered(fake, 2)

    assert not keyboard(review)  # the used keyboard is gone
    assert first.get("show_alert") in (None, "false", False)
    assert (second["text"], second["show_alert"]) == (STALE, "true")
    assert git(repo, "show", "main:hello.txt") == "hello"
    assert dict(await review_of(services)) == {"status": "approved", "method": "button"}


async def test_a_thumbs_up_on_the_review_merges_and_records_a_reaction(
    services, fake, anthropic, tmp_path
):
    repo = make_repo(tmp_path / "repo")
    script_greeting(anthropic)
    async with lugh(services):
        review = await in_review(services, fake, repo)
        fake.push_reaction(OWNER, review.message_id, "👍")
        await edited_to(fake, review, "Merged #1")

    assert git(repo, "show", "main:hello.txt") == "hello"
    assert dict(await review_of(services)) == {"status": "approved", "method": "reaction"}


async def test_a_thumbs_down_rejects_and_the_branch_is_gone(services, fake, anthropic, tmp_path):
    repo = make_repo(tmp_path / "repo")
    script_greeting(anthropic)
    async with lugh(services):
        review = await in_review(services, fake, repo)
        fake.push_reaction(OWNER, review.message_id, "👎")
        await edited_to(fake, review, "Rejected #1")
        eyes = await _after(
            fake, lambda: fake.push_reaction(OWNER, review.message_id, "👀", old="👎"))

    assert dict(await review_of(services)) == {"status": "rejected", "method": "reaction"}
    assert "hello.txt" not in git(repo, "ls-tree", "-r", "--name-only", "main")
    assert not [b for b in git(repo, "branch", "--list", "lugh/*").splitlines() if b.strip()]
    assert "#1" in eyes.text


async def _after(fake, push) -> SentMessage:
    before = len(fake.sent(OWNER))
    push()
    return (await fake.wait_sent(OWNER, before + 1, BOUND_S))[before]


async def test_forged_other_chat_and_expired_buttons_change_nothing(
    make_settings, fake, pool, database, repo
):
    services = make_services(make_settings, fake, pool, database,
                             TELEGRAM_ALLOWED_USER_IDS=f"{OWNER},{OTHER_OWNER}")  # fmt: skip
    await services.projects.register("demo", str(repo))
    async with running_bot(services):  # no model: the task stays queued
        queued = await say(fake, "/task add a greeting file")
        cancel = button(queued, "Cancel")
        ref, _, mac = cancel.partition(".")
        fake.push_callback(OWNER, queued.message_id, f"{int(ref) + 1}.{mac}")  # another id
        fake.push_callback(OWNER, queued.message_id, "approve:1")  # what naive bots accept
        fake.push_callback(OTHER_OWNER, queued.message_id, cancel)  # copied into another chat
        answers = [await answered(fake, n) for n in (1, 2, 3)]
        await services.pool.execute("UPDATE telegram_buttons SET expires_at = now()")
        fake.push_callback(OWNER, queued.message_id, cancel)
        expired = await answered(fake, 4)
        await fake.wait_for(lambda: not keyboard(queued), BOUND_S)

    assert [(a["text"], a["show_alert"]) for a in answers] == [(FORGED, "true")] * 3
    assert (expired["text"], expired["show_alert"]) == (STALE, "true")
    [task] = await services.tasks.list()
    assert task.status == "queued"
