"""What the owner's messages do: text runs a command (or plain language becomes one); voice
notes, photos and documents go to lugh.transport.telegram.media."""

from __future__ import annotations

import importlib
from typing import Any

from telegram import Message

from lugh.commands.catalog import execute, interpret, parse
from lugh.commands.reply import Reply
from lugh.transport.telegram.chat import Chat

CANT_READ = {
    "voice": "I can't read voice notes yet.",
    "photo": "I can't read photos yet.",
    "document": "I can't read files yet.",
}
MEDIA_MODULE = "lugh.transport.telegram.media"


async def on_text(chat: Chat, text: str) -> Reply:
    parsed = parse(text)
    if parsed is not None:
        return await execute(chat.ctx, *parsed)
    return await interpret(chat.ctx, text, chooser=chat.chooser)


def media_kind(message: Message) -> str | None:
    if message.voice is not None or message.audio is not None:
        return "voice"
    if message.photo:
        return "photo"
    if message.document is not None:
        return "document"
    return None


async def on_media(chat: Chat, message: Message, kind: str) -> Reply | None:
    """A voice note, photo or document, handled by the media module when it is installed."""
    handler = _media_handler(kind)
    if handler is None:
        return Reply(CANT_READ[kind])
    return await handler(chat, message)


def _media_handler(kind: str) -> Any:
    try:
        module = importlib.import_module(MEDIA_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != MEDIA_MODULE:
            raise
        return None
    return getattr(module, f"on_{kind}", None)


def model_chooser(services: Any) -> Any:
    """The model behind plain language (choose_action), when lugh.commands.choose provides one."""
    try:
        module = importlib.import_module("lugh.commands.choose")
    except ModuleNotFoundError as exc:
        if exc.name != "lugh.commands.choose":
            raise
        return None
    make = getattr(module, "model_chooser", None)
    return None if make is None else make(services)
