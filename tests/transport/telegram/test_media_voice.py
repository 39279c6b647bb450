import pytest

from lugh.commands.choose import TOOL
from lugh.config import ConfigError
from lugh.transport.telegram.voice import on_voice
from tests.fakes.anthropic import tool_use, turn
from tests.fakes.openai import fake_audio
from tests.transport.telegram.media_fixtures import (  # noqa: F401 (fixtures)
    OWNER, anthropic_api, arrived, bot, chat, make_chat, media_env, openai_api, press, project,
    telegram_api,
)


def model_says(anthropic_api, action: str, argument: str = "") -> None:
    anthropic_api.script(turn(tool_use(TOOL, {"action": action, "argument": argument})))


async def transcripts(chat) -> list[str]:
    """The transcripts queued for the owner, in order (as Telegram HTML)."""
    rows = await chat.services.pool.fetch(
        "SELECT payload ->> 'text' AS text FROM outbox WHERE chat_id = $1 ORDER BY id", OWNER
    )
    return [r["text"] for r in rows]


async def voice_row(chat):
    return await chat.services.pool.fetchrow(
        "SELECT * FROM voice_commands ORDER BY id DESC LIMIT 1"
    )


async def test_a_voice_note_is_transcribed_shown_proposed_and_becomes_a_task_once_confirmed(
    chat, project, bot, telegram_api, openai_api, anthropic_api
):
    model_says(anthropic_api, "task", "add a health endpoint")
    telegram_api.push_voice(OWNER, fake_audio("Please add a health endpoint."))

    reply = await on_voice(chat, await arrived(bot))

    assert await transcripts(chat) == ["🎙 <i>Please add a health endpoint.</i>"]
    assert reply.text == "Shall I do this?\n/task add a health endpoint"
    assert [[b.action for b in row] for row in reply.buttons] == [["voice_confirm", "voice_reject"]]
    assert await chat.services.tasks.list() == []
    [asked] = openai_api.transcriptions
    assert (asked["model"], asked["response_format"]) == ("whisper-1", "verbose_json")
    assert anthropic_api.bodies[0]["messages"][0]["content"][0]["text"] == (
        "Please add a health endpoint.")

    yes = reply.buttons[0][0]
    done = await press(chat, yes.action, yes.argument)

    [task] = await chat.services.tasks.list()
    assert done.text.startswith(f"Queued #{task.id} in demo")
    assert (task.title, task.source) == ("add a health endpoint", "voice")
    row = await voice_row(chat)
    assert (row["status"], row["task_id"], row["transcript"]) == (
        "confirmed", task.id, "Please add a health endpoint.")
    assert row["confidence"] > 0.8


async def test_a_second_press_on_a_voice_proposal_changes_nothing(
    chat, project, bot, telegram_api, anthropic_api
):
    model_says(anthropic_api, "task", "add a health endpoint")
    telegram_api.push_voice(OWNER, fake_audio("add a health endpoint"))
    reply = await on_voice(chat, await arrived(bot))
    voice_id = reply.buttons[0][0].argument

    first = await press(chat, "voice_reject", voice_id)
    again = await press(chat, "voice_confirm", voice_id)

    assert first.ok and first.text == "Fine, nothing was done."
    assert not again.ok and "already answered" in again.text
    assert await chat.services.tasks.list() == []
    assert (await voice_row(chat))["status"] == "rejected"


async def test_a_clear_read_only_request_runs_at_once(chat, project, bot, telegram_api):
    telegram_api.push_voice(OWNER, fake_audio("Status?"))

    reply = await on_voice(chat, await arrived(bot))

    assert await transcripts(chat) == ["🎙 <i>Status?</i>"]
    assert reply.ok and "Shall I do this?" not in reply.text
    assert (await voice_row(chat))["status"] == "confirmed"


async def test_a_read_only_request_heard_badly_is_shown_back_with_a_confirm_button(
    chat, project, bot, telegram_api
):
    telegram_api.push_voice(OWNER, fake_audio("Status?", avg_logprob=-1.5, no_speech_prob=0.3))

    reply = await on_voice(chat, await arrived(bot))

    assert await transcripts(chat) == ["🎙 <i>Status?</i>\n(I'm not sure I heard that right.)"]
    assert reply.text == "Shall I do this?\n/tasks"
    assert [b.action for b in reply.buttons[0]] == ["voice_confirm", "voice_reject"]
    row = await voice_row(chat)
    assert row["status"] == "transcribed" and row["confidence"] < 0.6


@pytest.mark.parametrize("env, duration, expected", [
    ({"LUGH_VOICE_MAX_BYTES": "64"}, 3, "over the 64 bytes I take"),
    ({}, 121, "That voice note is 2 min 1 s long, over the 2 min I take"),
])  # fmt: skip
async def test_an_oversized_or_too_long_note_gets_one_sentence_with_no_download_and_no_api_call(
    make_chat, bot, telegram_api, openai_api, env, duration, expected
):
    chat = await make_chat(**env)
    telegram_api.push_voice(OWNER, fake_audio("x" * 100), duration=duration)

    reply = await on_voice(chat, await arrived(bot))

    assert not reply.ok and expected in reply.text
    assert telegram_api.requests_to("/getFile") == []
    assert openai_api.requests_to("/audio/transcriptions") == []
    row = await voice_row(chat)
    assert (row["status"], row["error"], row["transcript"]) == ("failed", reply.text, None)


async def test_bytes_that_are_no_recording_get_one_sentence_and_no_api_call(
    chat, project, bot, telegram_api, openai_api
):
    telegram_api.push_voice(OWNER, b"\x00\x01 definitely not audio")

    reply = await on_voice(chat, await arrived(bot))

    assert not reply.ok
    assert reply.text.startswith("I couldn't make out that voice note")
    assert openai_api.requests_to("/audio/transcriptions") == []
    assert (await voice_row(chat))["status"] == "failed"


async def test_a_recording_the_api_cannot_decode_gets_one_sentence_and_is_recorded_as_failed(
    chat, project, bot, telegram_api, openai_api
):
    telegram_api.push_voice(OWNER, b"OggS\x00\x02 truncated in the middle of the first page")

    reply = await on_voice(chat, await arrived(bot))

    assert not reply.ok
    assert reply.text.startswith("I couldn't make out that voice note")
    assert len(openai_api.requests_to("/audio/transcriptions")) == 1
    assert (await voice_row(chat))["status"] == "failed"
    assert await chat.services.tasks.list() == []


async def test_without_an_openai_key_a_note_is_not_even_downloaded(make_chat, bot, telegram_api):
    chat = await make_chat(OPENAI_API_KEY="", LUGH_EMBEDDER="local")
    telegram_api.push_voice(OWNER, fake_audio("add a health endpoint"))

    reply = await on_voice(chat, await arrived(bot))

    assert not reply.ok and "OPENAI_API_KEY" in reply.text
    assert telegram_api.requests_to("/getFile") == []


async def test_the_same_message_handled_twice_is_transcribed_once(
    chat, project, bot, telegram_api, openai_api
):
    telegram_api.push_voice(OWNER, fake_audio("Status?"))
    message = await arrived(bot)

    first = await on_voice(chat, message)
    second = await on_voice(chat, message)

    assert first is not None and second is None
    assert len(openai_api.transcriptions) == 1


async def test_an_audio_file_is_heard_like_a_voice_note(
    chat, project, bot, telegram_api, openai_api
):
    audio = fake_audio("Status?")
    file_id = telegram_api.add_file(audio, "music/memo.m4a")
    telegram_api.push_message(OWNER, audio={
        "file_id": file_id, "file_unique_id": f"u{file_id}", "duration": 2,
        "file_name": "memo.m4a", "mime_type": "audio/mp4", "file_size": len(audio),
    })  # fmt: skip

    reply = await on_voice(chat, await arrived(bot))

    assert reply.ok and await transcripts(chat) == ["🎙 <i>Status?</i>"]
    assert openai_api.transcriptions[0]["filename"] == "memo.m4a"


@pytest.mark.parametrize("env, sentence", [
    ({"LUGH_VOICE_MAX_SECONDS": "0"}, "LUGH_VOICE_MAX_SECONDS must be at least 1, got '0'."),
    ({"LUGH_VOICE_MIN_CONFIDENCE": "1.5"},
     "LUGH_VOICE_MIN_CONFIDENCE must be at most 1.0, got '1.5'."),
])  # fmt: skip
def test_a_media_limit_out_of_range_is_refused_at_start_in_one_sentence(
    make_settings, env, sentence
):
    with pytest.raises(ConfigError) as refused:
        make_settings(**env)

    assert refused.value.problems == [sentence]
