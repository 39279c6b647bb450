"""The fake Bot API behaves like Telegram for the real python-telegram-bot `Bot`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import BadRequest, RetryAfter

from tests.fakes.telegram import TOKEN, FakeTelegram, RateLimits, parse_html

CHAT = 1001
# PTB 22 warns when it builds a RetryAfter unless PTB_TIMEDELTA=1 (see the outbox's _retry_after).
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after:telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=f"{fake.url}/bot", base_file_url=f"{fake.url}/file/bot") as bot:
        yield bot


async def test_get_me_names_the_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.username == "lugh_test_bot" and me.is_bot


async def test_a_sent_message_is_recorded_per_chat_with_its_markup(bot: Bot, fake: FakeTelegram) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Approve", callback_data="a:1")]])
    first = await bot.send_message(CHAT, "<b>hello</b> &amp; bye", parse_mode="HTML", reply_markup=markup)
    second = await bot.send_message(CHAT, "plain")
    sent = fake.sent(CHAT)
    assert [m.text for m in sent] == ["hello & bye", "plain"]
    assert [m.message_id for m in sent] == [first.message_id, second.message_id]
    assert sent[0].parse_mode == "HTML" and sent[0].entities[0]["type"] == "bold"
    assert sent[0].reply_markup == {"inline_keyboard": [[{"text": "Approve", "callback_data": "a:1"}]]}
    assert first.text == "hello & bye"


@pytest.mark.parametrize(
    "text",
    ["<b>open", "<b>x</i>", "<foo>x</foo>", "a < b", "x &nbsp; y", "<span>x</span>", "<a>x</a>"],
)
async def test_invalid_html_is_refused_like_telegram_does(bot: Bot, text: str) -> None:
    with pytest.raises(BadRequest, match="an't parse entities"):
        await bot.send_message(CHAT, text, parse_mode="HTML")


def test_every_supported_tag_parses() -> None:
    source = ('<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s>'
              '<strike>k</strike><del>d</del><span class="tg-spoiler">p</span><tg-spoiler>q</tg-spoiler>'
              '<a href="https://x.org/?a=1&amp;b=2">l</a><code>c</code>'
              '<pre><code class="language-python">x = 1</code></pre><blockquote expandable>q</blockquote>'
              '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>&#128512;&#x41;&quot;')
    text, entities = parse_html(source)
    assert text.endswith('x = 1q👍😀A"')
    assert {"type": "text_link", "url": "https://x.org/?a=1&b=2", "offset": 11, "length": 1} in entities
    assert any(e.get("language") == "python" for e in entities)
    assert any(e["type"] == "expandable_blockquote" for e in entities)


async def test_text_is_limited_to_4096_utf16_units_after_parsing(bot: Bot) -> None:
    await bot.send_message(CHAT, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="too long"):
        await bot.send_message(CHAT, "😀" * 2049)  # 4098 UTF-16 units in 2049 characters


async def test_callback_data_is_limited_to_64_bytes(bot: Bot) -> None:
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 33)]])
    with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
        await bot.send_message(CHAT, "pick", reply_markup=too_long)


async def test_an_injected_429_carries_retry_after(bot: Bot, fake: FakeTelegram) -> None:
    fake.fail("sendMessage", 429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(CHAT, "hi")
    assert caught.value.retry_after in (3, timedelta(seconds=3))
    await bot.send_message(CHAT, "hi")
    assert fake.texts(CHAT) == ["hi"]


async def test_flood_control_refuses_a_second_message_in_the_same_second() -> None:
    with FakeTelegram(rate_limits=RateLimits(per_chat_per_s=1)) as fake:
        async with Bot(TOKEN, base_url=f"{fake.url}/bot") as bot:
            await bot.send_message(CHAT, "one")
            with pytest.raises(RetryAfter):
                await bot.send_message(CHAT, "two")
            await bot.send_message(CHAT + 1, "other chat")
        assert fake.rate_limited == 1  # type: ignore[attr-defined]


async def test_edits_change_the_message_and_an_identical_edit_is_refused(bot: Bot, fake: FakeTelegram) -> None:
    message = await bot.send_message(CHAT, "working…")
    await bot.edit_message_text("done", chat_id=CHAT, message_id=message.message_id)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Why", callback_data="why:1")]])
    await bot.edit_message_reply_markup(CHAT, message.message_id, reply_markup=markup)
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_text("done", chat_id=CHAT, message_id=message.message_id, reply_markup=markup)
    with pytest.raises(BadRequest, match="not found"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=999)
    [sent] = fake.sent(CHAT)
    assert sent.text == "done" and sent.edits == 2 and sent.reply_markup is not None


async def test_updates_are_long_polled_and_confirmed_by_offset(bot: Bot, fake: FakeTelegram) -> None:
    assert await bot.get_updates(timeout=0) == ()
    fake.push_message(CHAT, "/task write docs")
    fake.push_message(CHAT, "/task edited", edited=True)
    fake.push_message(CHAT, "fwd", forwarded=True)
    fake.push_callback(CHAT, 7, "approve:3")
    fake.push_reaction(CHAT, 7, "👍")
    updates = await bot.get_updates(timeout=5, allowed_updates=["message", "edited_message",
                                                                "callback_query", "message_reaction"])
    assert updates[0].message.text == "/task write docs"
    assert updates[1].edited_message.text == "/task edited"
    assert updates[2].message.forward_origin is not None
    assert updates[3].callback_query.data == "approve:3"
    assert updates[4].message_reaction.new_reaction[0].emoji == "👍"
    again = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    assert again == ()


async def test_a_long_poll_returns_as_soon_as_an_update_arrives(bot: Bot, fake: FakeTelegram) -> None:
    import asyncio

    poll = asyncio.create_task(bot.get_updates(timeout=20, read_timeout=25))
    await fake.wait_for(lambda: len(fake.requests_to("/getUpdates")) == 1, 5)
    fake.push_message(CHAT, "hello")
    updates = await asyncio.wait_for(poll, 5)
    assert [u.message.text for u in updates] == ["hello"]


async def test_files_are_uploaded_and_downloaded(bot: Bot, fake: FakeTelegram) -> None:
    await bot.send_document(CHAT, InputFile(b"--- a\n+++ b\n", filename="task-3.diff"), caption="diff")
    await bot.send_photo(CHAT, InputFile(b"\x89PNG fake", filename="diff.png"))
    document, photo = fake.sent(CHAT)
    assert document.filename == "task-3.diff" and document.document == b"--- a\n+++ b\n"
    assert photo.method == "sendPhoto" and photo.document == b"\x89PNG fake"
    update = fake.push_voice(CHAT, b"OggS voice")
    voice = (await bot.get_updates(timeout=0))[0].message.voice
    assert voice.file_id == update["message"]["voice"]["file_id"]
    file = await bot.get_file(voice.file_id)
    assert bytes(await file.download_as_bytearray()) == b"OggS voice"


async def test_two_sent_files_of_one_name_download_apart(bot: Bot, fake: FakeTelegram) -> None:
    first = await bot.send_photo(CHAT, InputFile(b"\x89PNG one", filename="diff.png"))
    second = await bot.send_photo(CHAT, InputFile(b"\x89PNG two", filename="diff.png"))

    got = [await bot.get_file(m.photo[-1].file_id) for m in (first, second)]

    assert [bytes(await f.download_as_bytearray()) for f in got] == [b"\x89PNG one", b"\x89PNG two"]


async def test_commands_are_set_and_the_webhook_deleted(bot: Bot, fake: FakeTelegram) -> None:
    from telegram import BotCommand

    assert await bot.delete_webhook()
    await bot.set_my_commands([BotCommand("task", "Create a task"), BotCommand("help", "List commands")])
    assert [c["command"] for c in fake.commands] == ["task", "help"]


async def test_a_wrong_token_is_unauthorized(fake: FakeTelegram) -> None:
    from telegram.error import InvalidToken

    with pytest.raises(InvalidToken):
        async with Bot("1:wrong", base_url=f"{fake.url}/bot"):
            pass
