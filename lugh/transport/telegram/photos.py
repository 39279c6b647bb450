"""Photos: the largest size downloaded (its size checked first), fitted to the vision limits,
shown to Claude as an image block with the caption; the proposed tasks come back as buttons."""

from __future__ import annotations

import asyncio

import telegram
from telegram.error import TelegramError

from lugh.commands import vision as photos
from lugh.commands.reply import Reply
from lugh.knowledge.chunking.documents import human_size
from lugh.llm import LLMError
from lugh.llm.vision import UnreadableImage, prepare_image, propose_tasks
from lugh.logs import get_logger
from lugh.transport.telegram.chat import Chat

log = get_logger("lugh.transport.telegram.photos")


async def on_photo(chat: Chat, message: telegram.Message) -> Reply | None:
    """Propose tasks from a photo; None when this message was handled before."""
    if not message.photo:
        return None
    services = chat.services
    settings = services.settings
    if services.model is None:
        return Reply.refused(
            "I can't look at photos here: that needs ANTHROPIC_API_KEY. Describe it in words."
        )
    largest = max(message.photo, key=lambda size: (size.width * size.height, size.file_size or 0))
    if largest.file_size and largest.file_size > settings.upload_max_bytes:
        return Reply.refused(
            f"That photo is {human_size(largest.file_size)}, over the "
            f"{human_size(settings.upload_max_bytes)} I take; send a smaller one."
        )
    ctx = chat.from_source("photo")
    vision_id = await photos.received(
        ctx, chat.chat_id, message.message_id, largest.file_id, message.caption
    )
    if vision_id is None:
        return None
    try:
        data = bytes(await (await chat.bot.get_file(largest.file_id)).download_as_bytearray())
    except TelegramError as exc:
        log.warning("photo download failed", error=str(exc))
        await photos.failed(ctx, vision_id, f"download: {exc}")
        return Reply.refused("I couldn't download that photo from Telegram; send it again.")
    try:
        image = await asyncio.to_thread(prepare_image, data)
        proposals = await propose_tasks(
            services.model, settings.resolved_vision_model, image, message.caption
        )
    except (UnreadableImage, LLMError) as exc:
        await photos.failed(ctx, vision_id, str(exc))
        return Reply.refused(str(exc))
    return await photos.proposed(ctx, vision_id, proposals)
