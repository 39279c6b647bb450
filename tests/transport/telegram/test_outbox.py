"""The outbox delivers every queued message through the real PTB Bot to the fake Telegram:
in order per chat, within the flood limits, across 429s and restarts."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
import structlog
from telegram import Bot

from lugh.logs import configure_logging
from lugh.tasks.listener import Listener
from lugh.transport.telegram.outbox import Outbox, OutboxSender, file_field
from lugh.transport.telegram.pacing import Limits
from tests.fakes.telegram import TOKEN, FakeTelegram, RateLimits, parse_html

# PTB 22 warns when it builds a RetryAfter unless PTB_TIMEDELTA=1.
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after:telegram.warnings.PTBDeprecationWarning")

# Fast limits so the tests run in seconds; the sender stays below the fake's, as it does below
# Telegram's real ones.
FAKE_LIMITS = RateLimits(per_chat_per_s=25, overall_per_s=60)
SENDER_LIMITS = Limits(per_chat_per_s=20, overall_per_s=50)


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(rate_limits=FAKE_LIMITS) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=f"{fake.url}/bot", base_file_url=f"{fake.url}/file/bot") as bot:
        yield bot


@pytest.fixture
async def listener(database: str) -> AsyncIterator[Listener]:
    listener = Listener(database)
    task = asyncio.create_task(listener.run())
    await asyncio.wait_for(listener.connected.wait(), 10)
    yield listener
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.fixture
def outbox(pool: asyncpg.Pool) -> Outbox:
    return Outbox(pool)


@asynccontextmanager
async def running(pool: asyncpg.Pool, bot: Bot, listener: Listener, **kw: Any) -> AsyncIterator[OutboxSender]:
    sender = OutboxSender(pool, bot, listener=listener, limits=SENDER_LIMITS, **kw)
    task = asyncio.create_task(sender.run())
    try:
        yield sender
    finally:
        await sender.stop()
        await asyncio.wait_for(task, 10)


async def statuses(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT status, count(*) AS n FROM outbox GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


def max_per_window(times: list[float], window: float = 1.0) -> int:
    return max((sum(1 for t in times if start <= t < start + window) for start in times), default=0)


async def test_a_hundred_messages_with_429s_arrive_in_order_within_the_rate_limits(
    pool: asyncpg.Pool, bot: Bot, fake: FakeTelegram, listener: Listener, outbox: Outbox
) -> None:
    chats = [11, 12, 13, 14]
    fake.fail("sendMessage", 429, retry_after=1, times=2, chat_id=11)
    fake.fail("sendMessage", 429, retry_after=1, times=1, chat_id=13)
    async with running(pool, bot, listener):
        for n in range(100):
            await outbox.enqueue(chats[n % 4], "sendMessage", {"text": f"message {n}"})
        for chat in chats:
            await fake.wait_sent(chat, 25, timeout=20)
    for index, chat in enumerate(chats):
        assert fake.texts(chat) == [f"message {n}" for n in range(index, 100, 4)]
    assert fake.rate_limited == 0
    assert len(fake.requests_to("/sendMessage")) == 103  # each injected 429 retried once
    everything = sorted(m.at for chat in chats for m in fake.sent(chat))
    assert max_per_window(everything) <= FAKE_LIMITS.overall_per_s
    assert all(max_per_window([m.at for m in fake.sent(c)]) <= FAKE_LIMITS.per_chat_per_s for c in chats)
    assert await statuses(pool) == {"sent": 100}
    ids = await pool.fetch("SELECT sent_message_id FROM outbox WHERE chat_id = 11 ORDER BY id")
    assert [r["sent_message_id"] for r in ids] == [m.message_id for m in fake.sent(11)]


async def test_a_stopped_sender_and_a_new_one_lose_and_repeat_nothing(
    pool: asyncpg.Pool, bot: Bot, fake: FakeTelegram, listener: Listener, outbox: Outbox
) -> None:
    for n in range(40):
        await outbox.enqueue(21 + n % 2, "sendMessage", {"text": f"m{n}"})
    fake.delay("sendMessage", 0.5, text="m10")
    async with running(pool, bot, listener):
        await fake.wait_for(lambda: fake.received("sendMessage", "m10"))
    # Stopped with m10 in flight: the call was finished and recorded, the rest left pending.
    assert "sending" not in await statuses(pool)
    assert await pool.fetchval("SELECT status FROM outbox WHERE payload->>'text' = 'm10'") == "sent"
    assert 0 < (await statuses(pool)).get("pending", 0) < 40
    async with running(pool, bot, listener):
        await fake.wait_sent(21, 20)
        await fake.wait_sent(22, 20)
    assert fake.texts(21) == [f"m{n}" for n in range(0, 40, 2)]
    assert fake.texts(22) == [f"m{n}" for n in range(1, 40, 2)]
    assert await statuses(pool) == {"sent": 40}


async def test_a_sender_killed_mid_call_is_replaced_and_resends_only_the_message_in_flight(
    pool: asyncpg.Pool, bot: Bot, fake: FakeTelegram, listener: Listener, outbox: Outbox
) -> None:
    # At least once: Telegram took m3, but the sender died before recording it.
    for n in range(8):
        await outbox.enqueue(31, "sendMessage", {"text": f"m{n}"})
    fake.delay("sendMessage", 1.0, text="m3")
    crashed = OutboxSender(pool, bot, listener=listener, limits=SENDER_LIMITS, lease_s=1.0)
    task = asyncio.create_task(crashed.run())
    await fake.wait_for(lambda: fake.received("sendMessage", "m3"))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await fake.wait_sent(31, 4)  # Telegram finished the call the dead sender was waiting on
    assert (await statuses(pool)).get("sending") == 1
    async with running(pool, bot, listener, lease_s=1.0):
        await fake.wait_sent(31, 9)
    assert fake.texts(31) == ["m0", "m1", "m2", "m3", "m3", "m4", "m5", "m6", "m7"]
    assert await statuses(pool) == {"sent": 8}


async def test_two_senders_on_one_database_share_the_work_without_repeating_a_message(
    pool: asyncpg.Pool, bot: Bot, fake: FakeTelegram, listener: Listener, outbox: Outbox
) -> None:
    for n in range(60):
        await outbox.enqueue(35 + n % 3, "sendMessage", {"text": f"m{n}"})
    async with running(pool, bot, listener), running(pool, bot, listener):
        for chat in (35, 36, 37):
            await fake.wait_sent(chat, 20)
    for index, chat in enumerate((35, 36, 37)):
        assert fake.texts(chat) == [f"m{n}" for n in range(index, 60, 3)]
    assert await statuses(pool) == {"sent": 60}


async def test_a_critical_message_goes_before_earlier_low_ones_to_other_chats(
    pool: asyncpg.Pool, bot: Bot, fake: FakeTelegram, listener: Listener, outbox: Outbox
) -> None:
    for chat in (101, 102, 103):
        await outbox.enqueue(chat, "sendMessage", {"text": "digest"}, priority="low")
    await outbox.enqueue(104, "sendMessage", {"text": "budget hit"}, priority="critical")
    async with running(pool, bot, listener, max_in_flight=1):
        for chat in (101, 102, 103, 104):
            await fake.wait_sent(chat, 1)
    first = min((101, 102, 103, 104), key=lambda chat: fake.sent(chat)[0].at)
    assert first == 104


async def test_a_10000_character_html_answer_arrives_as_valid_parts_with_buttons_on_the_last(
    pool: asyncpg.Pool, bot: Bot, fake: FakeTelegram, listener: Listener, outbox: Outbox
) -> None:
    code = "\n".join(f"+ line {n}: a &lt; b &amp;&amp; c 😀" for n in range(220))
    source = "<b>Task #7</b> " + "<i>word</i> " * 1000 + f'<pre><code class="language-diff">{code}</code></pre>'
    assert 10_000 <= len(parse_html(source)[0]) < 13_000
    markup = {"inline_keyboard": [[{"text": "Approve & merge", "callback_data": "approve:7"}]]}
    async with running(pool, bot, listener):
        await outbox.enqueue(41, "sendMessage", {"text": source, "parse_mode": "HTML", "reply_markup": markup})
        await fake.wait_sent(41, 3)
    sent = fake.sent(41)
    assert "".join(m.text for m in sent) == parse_html(source)[0]
    assert [m.reply_markup for m in sent] == [None] * (len(sent) - 1) + [markup]
    assert all(len(m.text.encode("utf-16-le")) // 2 <= 4096 for m in sent)
    assert sent[-1].entities[-1].get("language") == "diff"


async def test_a_permanent_400_marks_the_row_failed_and_the_rest_continue(
    pool: asyncpg.Pool, bot: Bot, fake: FakeTelegram, listener: Listener, outbox: Outbox
) -> None:
    await outbox.enqueue(51, "sendMessage", {"text": "first"})
    bad = await outbox.enqueue(51, "sendMessage", {"text": "<b>unclosed", "parse_mode": "HTML"})
    await outbox.enqueue(51, "sendMessage", {"text": "third"})
    await outbox.enqueue(52, "sendMessage", {"text": "elsewhere"})
    async with running(pool, bot, listener):
        await fake.wait_sent(51, 2)
        await fake.wait_sent(52, 1)
    assert fake.texts(51) == ["first", "third"]
    row = await pool.fetchrow("SELECT status, error FROM outbox WHERE id = $1", bad)
    assert row["status"] == "failed" and "can't parse entities" in row["error"].lower()


async def test_a_repeated_dedupe_key_queues_nothing(pool: asyncpg.Pool, outbox: Outbox) -> None:
    first = await outbox.enqueue(61, "sendMessage", {"text": "approve #3?"}, dedupe_key="approval:3")
    again = await outbox.enqueue(61, "sendMessage", {"text": "approve #3?"}, dedupe_key="approval:3")
    long = await outbox.enqueue(61, "sendMessage", {"text": "x " * 5000}, dedupe_key="long")
    assert await outbox.enqueue(61, "sendMessage", {"text": "x " * 5000}, dedupe_key="long") == long
    assert first == again
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 4


async def test_a_message_queued_in_a_rolled_back_transaction_is_never_sent(
    pool: asyncpg.Pool, outbox: Outbox
) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await outbox.enqueue(71, "sendMessage", {"text": "task created"}, conn=conn)
                raise RuntimeError("the task was not created after all")
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_progress_message_is_edited_in_place(
    pool: asyncpg.Pool, bot: Bot, fake: FakeTelegram, listener: Listener, outbox: Outbox
) -> None:
    progress = await outbox.enqueue(81, "sendMessage", {"text": "#5 running: step 1"})
    async with running(pool, bot, listener):
        await fake.wait_sent(81, 1)
        for step in (2, 3, 4):
            await outbox.edit_or_send(81, progress, f"#5 running: step {step}")
        await outbox.edit_or_send(81, progress, "#5 done", reply_markup={"inline_keyboard": [[{"text": "Why", "callback_data": "why:5"}]]})
        await fake.wait_for(lambda: fake.messages[81][0].text == "#5 done")
    [message] = fake.sent(81)
    assert message.reply_markup is not None and 1 <= message.edits <= 4
    assert await statuses(pool) == {"sent": 5}


async def test_an_edit_of_a_deleted_message_sends_it_anew_and_later_edits_follow(
    pool: asyncpg.Pool, bot: Bot, fake: FakeTelegram, listener: Listener, outbox: Outbox
) -> None:
    progress = await outbox.enqueue(82, "sendMessage", {"text": "step 1"})
    async with running(pool, bot, listener):
        await fake.wait_sent(82, 1)
        fake.messages[82].clear()  # the owner deleted it
        await outbox.edit_or_send(82, progress, "step 2")
        await fake.wait_sent(82, 1)
        await outbox.edit_or_send(82, progress, "step 3")
        await fake.wait_for(lambda: fake.messages[82][0].text == "step 3")
    assert fake.texts(82) == ["step 3"]


async def test_documents_are_delivered_from_the_row(
    pool: asyncpg.Pool, bot: Bot, fake: FakeTelegram, listener: Listener, outbox: Outbox
) -> None:
    diff = b"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
    await outbox.enqueue(91, "sendDocument", {"document": file_field("task-5.diff", diff), "caption": "#5 diff"})
    async with running(pool, bot, listener):
        [sent] = await fake.wait_sent(91, 1)
    assert sent.document == diff and sent.filename == "task-5.diff" and sent.text == "#5 diff"


async def test_network_errors_are_retried_with_backoff(
    pool: asyncpg.Pool, bot: Bot, fake: FakeTelegram, listener: Listener, outbox: Outbox
) -> None:
    fake.fail("sendMessage", 502, description="Bad Gateway", times=2)
    await outbox.enqueue(92, "sendMessage", {"text": "eventually"})
    async with running(pool, bot, listener, backoff_s=(0.05, 0.1)):
        await fake.wait_sent(92, 1)
    assert await pool.fetchval("SELECT attempts FROM outbox") == 3


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    noisy = [logging.getLogger(n) for n in ("httpx", "httpcore", "telegram")]
    saved = (list(root.handlers), root.level, structlog.get_config(), [n.level for n in noisy])
    buffer = io.StringIO()
    configure_logging("debug", "json", [TOKEN], stream=buffer)
    for logger in noisy:  # the loudest they can be: every request URL carries the token
        logger.setLevel(logging.DEBUG)
    yield buffer
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    structlog.configure(**saved[2])
    for logger, level in zip(noisy, saved[3]):
        logger.setLevel(level)


async def test_the_bot_token_never_reaches_the_log(
    pool: asyncpg.Pool, fake: FakeTelegram, listener: Listener, outbox: Outbox, captured: io.StringIO
) -> None:
    fake.fail("sendMessage", 429, retry_after=1, times=1)
    fake.fail("sendMessage", 502, description="Bad Gateway", times=1)
    await outbox.enqueue(93, "sendMessage", {"text": "<b>bad", "parse_mode": "HTML"})
    await outbox.enqueue(93, "sendMessage", {"text": "ok"})
    async with Bot(TOKEN, base_url=f"{fake.url}/bot") as bot:
        async with running(pool, bot, listener, backoff_s=(0.05,)):
            await fake.wait_sent(93, 1)
    output = captured.getvalue()
    assert "sendMessage" in output and "refused" in output  # the log did see the calls
    assert TOKEN not in output and TOKEN.split(":")[1] not in output
