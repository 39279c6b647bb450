"""Every update from Telegram: handled once, only from the owner, only in a private chat.

An update is recorded in `telegram_updates` before it is acted on, in its own statement, so
after a crash or restart it is never acted on twice: at most once, because a lost message is
resent by its owner in a second while a repeated one could queue a task or merge twice. (Its
effects cannot share that transaction: a merge is git first, and agents and the model are
called outside any transaction.) The record commits without waiting for its WAL flush, which
costs the owner a disk flush on every message otherwise: WAL is written in order, so every effect
committed after it (a task, a reply in the outbox) flushes it too; a crash that loses the record
loses those effects with it, and what lies outside the database is safe to do again (a merge
already done is found done; a model call is only asked again).
"""

from __future__ import annotations

import asyncio

from telegram import Bot, CallbackQuery, Message, MessageReactionUpdated, Update

from lugh.commands.catalog import Context, execute, parse
from lugh.commands.intents import Chooser
from lugh.commands.reply import Reply
from lugh.db.queries import load
from lugh.logs import get_logger
from lugh.services import Services
from lugh.transport.telegram.access import Access
from lugh.transport.telegram.callbacks import FAILED, on_callback
from lugh.transport.telegram.chat import Chat
from lugh.transport.telegram.handlers import media_kind, on_media, on_text
from lugh.transport.telegram.outbox import Outbox
from lugh.transport.telegram.reactions import on_reaction
from lugh.transport.telegram.render import deliver

log = get_logger("lugh.transport.telegram.updates")
Q = load(__file__, "updates")

PRIVATE = "This is a private bot; it only answers its owner. (Owner: send /start <pairing code>.)"
EDITED = "Edited messages don't run commands; send it again as a new message."
FORWARDED = "Forwarded messages don't run commands; type or paste what you want done."
UNREADABLE = "I can read text, voice notes, photos and files."
NOT_YOURS = "This bot is private."
PAIRED = "Paired: this bot answers you now."


class Updates:
    """Routes each update to the text, media, button or reaction handler."""

    def __init__(
        self, services: Services, outbox: Outbox, access: Access, chooser: Chooser | None = None
    ) -> None:
        self.services = services
        self.outbox = outbox
        self.access = access
        self.chooser = chooser
        self._order: dict[int, asyncio.Lock] = {}  # a chat's messages run in the order sent

    async def handle(self, update: Update, bot: Bot) -> None:
        if not await self.services.pool.fetchval(Q.first_time, update.update_id):
            log.info("update already handled", update_id=update.update_id)
            return
        if update.callback_query is not None:
            await self._callback(update.callback_query, bot)
        elif update.message_reaction is not None:
            await self._reaction(update.message_reaction, bot)
        elif update.message is not None:
            await self._message(update.message, bot)
        elif update.edited_message is not None:
            await self._edited(update.edited_message)

    async def _message(self, message: Message, bot: Bot) -> None:
        if message.chat.type != "private" or message.from_user is None:
            return
        chat_id, user_id = message.chat.id, message.from_user.id
        if not self.access.is_owner(user_id):
            await self._stranger(chat_id, user_id, message.text or "", bot)
            return
        if message.forward_origin is not None or message.is_automatic_forward:
            await self._say(chat_id, Reply(FORWARDED))
            return
        async with self._order.setdefault(chat_id, asyncio.Lock()):
            chat = await self.chat(bot, chat_id, user_id)
            try:
                reply = await self._answer(chat, message)
            except Exception:
                log.exception("a message could not be handled", chat_id=chat_id)
                reply = Reply.refused(FAILED)
            if reply is not None:
                await self._say(chat_id, reply)

    async def _answer(self, chat: Chat, message: Message) -> Reply | None:
        if message.text:
            return await on_text(chat, message.text)
        kind = media_kind(message)
        if kind is not None:
            return await on_media(chat, message, kind)
        return Reply(UNREADABLE)

    async def _stranger(self, chat_id: int, user_id: int, text: str, bot: Bot) -> None:
        parsed = parse(text)
        code = parsed[1] if parsed is not None and parsed[0] == "start" else ""
        if code and await self.access.pair(user_id, code):
            log.info("telegram owner paired", user_id=user_id)
            chat = await self.chat(bot, chat_id, user_id)
            greeting = await execute(chat.ctx, "start", "")
            await self._say(chat_id, Reply(f"{PAIRED}\n\n{greeting.text}"))
            return
        if await self.access.refuse_once(user_id):
            log.info("telegram stranger refused", user_id=user_id)
            await self._say(chat_id, Reply(PRIVATE))

    async def _edited(self, message: Message) -> None:
        user = message.from_user
        if message.chat.type == "private" and user is not None and self.access.is_owner(user.id):
            await self._say(message.chat.id, Reply(EDITED))

    async def _callback(self, query: CallbackQuery, bot: Bot) -> None:
        shown = query.message
        owner = self.access.is_owner(query.from_user.id)
        if shown is None or shown.chat.type != "private" or not owner:
            await query.answer(NOT_YOURS if shown else None, show_alert=shown is not None)
            return
        await on_callback(await self.chat(bot, shown.chat.id, query.from_user.id), query)

    async def _reaction(self, reaction: MessageReactionUpdated, bot: Bot) -> None:
        user = reaction.user
        if reaction.chat.type != "private" or user is None or not self.access.is_owner(user.id):
            return
        try:
            await on_reaction(await self.chat(bot, reaction.chat.id, user.id), reaction)
        except Exception:
            log.exception("a reaction could not be handled", chat_id=reaction.chat.id)
            await self._say(reaction.chat.id, Reply.refused(FAILED))

    async def chat(self, bot: Bot, chat_id: int, user_id: int) -> Chat:
        session = await self.services.sessions.open("telegram", str(chat_id))
        ctx = Context(services=self.services, session=session, source="telegram")
        return Chat(self.services, bot, self.outbox, chat_id, user_id, ctx, self.chooser)

    async def _say(self, chat_id: int, reply: Reply) -> None:
        await deliver(self.services, self.outbox, chat_id, reply)
