"""Voice notes: limits checked before the download, Whisper's transcript shown, then the same
intent path as typed text (lugh.commands.voice)."""

from __future__ import annotations

import html
import warnings
from datetime import timedelta

import telegram
from telegram.error import TelegramError

from lugh.commands import voice as notes
from lugh.commands.reply import Reply
from lugh.config import Settings
from lugh.knowledge.chunking.documents import human_size
from lugh.llm.transcribe import OpenAITranscriber, TranscriptionError, looks_like_audio
from lugh.logs import get_logger
from lugh.transport.telegram.chat import Chat

log = get_logger("lugh.transport.telegram.voice")
UNREADABLE = ("I couldn't make out that voice note: the file seems corrupt or is not a recording. "
              "Record it again or type it.")  # fmt: skip


async def on_voice(chat: Chat, message: telegram.Message) -> Reply | None:
    """Transcribe a voice note (or an audio file) and act on it; None when this message was
    handled before."""
    voice = message.voice or message.audio
    if voice is None:
        return None
    settings = chat.services.settings
    seconds = _seconds(voice)
    ctx = chat.from_source("voice")
    voice_id = await notes.received(ctx, chat.chat_id, message.message_id, voice.file_id, seconds)
    if voice_id is None:
        return None
    refusal = _refusal(settings, voice.file_size, seconds)
    if refusal is not None:
        await notes.failed(ctx, voice_id, refusal)
        return Reply.refused(refusal)
    assert settings.openai_api_key is not None  # _refusal said so otherwise
    try:
        audio = bytes(await (await chat.bot.get_file(voice.file_id)).download_as_bytearray())
    except TelegramError as exc:
        log.warning("voice note download failed", error=str(exc))
        await notes.failed(ctx, voice_id, f"download: {exc}")
        return Reply.refused("I couldn't download that voice note from Telegram; send it again.")
    if not looks_like_audio(audio):
        await notes.failed(ctx, voice_id, "not audio")
        return Reply.refused(UNREADABLE)
    transcriber = OpenAITranscriber(
        api_key=settings.openai_api_key.get_secret_value(),
        model=settings.transcribe_model,
        base_url=settings.openai_base_url,
    )
    try:
        heard = await transcriber.transcribe(audio, _filename(voice))
    except TranscriptionError as exc:
        await notes.failed(ctx, voice_id, str(exc))
        if exc.unreadable:
            return Reply.refused(UNREADABLE)
        return Reply.refused(str(exc))
    finally:
        await transcriber.aclose()
    if not heard.text:
        await notes.failed(ctx, voice_id, "no speech")
        return Reply.refused("I heard no words in that voice note; record it again or type it.")
    # The transcript is a message of its own, queued before the reply: a proposal's message is
    # edited to the outcome once answered, and what was heard should stay in the chat.
    unsure = heard.confidence < settings.voice_min_confidence
    shown = f"🎙 <i>{html.escape(heard.text)}</i>"
    if unsure:
        shown += "\n(I'm not sure I heard that right.)"
    await chat.outbox.enqueue(chat.chat_id, "sendMessage", {"text": shown, "parse_mode": "HTML"})
    return await notes.act_on(
        ctx, voice_id, heard.text, heard.confidence,
        min_confidence=settings.voice_min_confidence, chooser=chat.chooser,
    )  # fmt: skip


def _refusal(settings: Settings, size: int | None, seconds: float) -> str | None:
    """Why this note is not transcribed (one sentence), from what Telegram says of it: nothing
    is downloaded or sent to the API for a note refused here."""
    if settings.openai_api_key is None:
        return ("I can't listen to voice notes here: transcription needs OPENAI_API_KEY. "
                "Type the request instead.")  # fmt: skip
    if size and size > settings.voice_max_bytes:
        return (f"That voice note is {human_size(size)}, over the "
                f"{human_size(settings.voice_max_bytes)} I take; send a shorter one or type it.")
    if seconds > settings.voice_max_seconds:
        return (f"That voice note is {human_duration(seconds)} long, over the "
                f"{human_duration(settings.voice_max_seconds)} I take; send a shorter one or "
                "type it.")  # fmt: skip
    return None


def _filename(voice: telegram.Voice | telegram.Audio) -> str:
    """The name the transcription API sees: it tells the format by the extension."""
    name = getattr(voice, "file_name", None)
    return name if name and "." in name else "voice.ogg"


def _seconds(voice: telegram.Voice | telegram.Audio) -> float:
    # PTB 22 warns on this attribute unless PTB_TIMEDELTA is set; both forms are handled.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = voice.duration
    return value.total_seconds() if isinstance(value, timedelta) else float(value or 0)


def human_duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    if not minutes:
        return f"{rest} s"
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"
