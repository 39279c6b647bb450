"""The Telegram bot component: python-telegram-bot polling inside `lugh run`'s event loop, the
notifier that tells the owner about tasks, and the outbox sender that delivers every message.

The Application is driven by hand (`async with application`, `start()`, `updater.start_polling`)
because it shares the loop with the other components; `run_polling` would own the loop and the
signals. Updates are handled concurrently, so a button (Cancel) works while a long command runs;
one chat's messages still run in order (see updates.py). Replies never go straight to the bot:
they are rows in the outbox, sent by `OutboxSender` within Telegram's flood limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import os
from typing import Any

os.environ.setdefault("PTB_TIMEDELTA", "1")  # before PTB builds a RetryAfter: no warning per 429

from telegram import BotCommand, Update  # noqa: E402
from telegram.ext import Application, ContextTypes, TypeHandler  # noqa: E402

from lugh.commands.catalog import COMMANDS  # noqa: E402
from lugh.db.queries import load  # noqa: E402
from lugh.logs import get_logger  # noqa: E402
from lugh.services import Services  # noqa: E402
from lugh.transport.telegram.access import Access  # noqa: E402
from lugh.transport.telegram.handlers import model_chooser  # noqa: E402
from lugh.transport.telegram.notify import Notifier  # noqa: E402
from lugh.transport.telegram.outbox import Outbox, OutboxSender  # noqa: E402
from lugh.transport.telegram.pacing import Limits  # noqa: E402
from lugh.transport.telegram.render import deliver  # noqa: E402
from lugh.transport.telegram.updates import Updates  # noqa: E402

log = get_logger("lugh.transport.telegram.bot")
Q = load(__file__, "updates")

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "message_reaction"]
CONCURRENT_UPDATES = 64


class TelegramBot:
    """The `telegram` component (with TELEGRAM_BOT_TOKEN set)."""

    name = "telegram"

    def __init__(
        self,
        services: Services,
        *,
        poll_timeout_s: float = 10.0,
        limits: Limits = Limits(),
        on_pairing_code: Any = None,
        notifier: dict[str, Any] | None = None,
    ) -> None:
        """`notifier` passes options to the Notifier (tests shorten its intervals)."""
        settings = services.settings
        if settings.telegram_bot_token is None:
            raise ValueError("TelegramBot needs TELEGRAM_BOT_TOKEN")
        self.services = services
        self.poll_timeout = dtm.timedelta(seconds=poll_timeout_s)
        self.on_pairing_code = on_pairing_code
        base = settings.telegram_api_base_url
        self.application = (
            Application.builder()
            .token(settings.telegram_bot_token.get_secret_value())
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            .concurrent_updates(CONCURRENT_UPDATES)
            .build()
        )
        self.outbox = Outbox(services.pool)
        self.access = Access(services.pool, settings.telegram_allowed_user_ids)
        self.updates = Updates(services, self.outbox, self.access, model_chooser(services))
        self.limits = limits
        self.notifier_options = notifier or {}
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._running = False
        self._finished = asyncio.Event()

    async def run(self) -> None:
        self._stop.clear()
        self._finished.clear()
        self._running = True
        try:
            await self._serve()
        finally:
            self._running = False
            self._finished.set()

    async def _serve(self) -> None:
        application = self.application
        code = await self.access.load()
        await self.services.pool.execute(Q.forget_old)
        async with application:
            await application.bot.set_my_commands(menu())
            await application.start()
            await application.updater.start_polling(  # type: ignore[union-attr]
                timeout=self.poll_timeout, allowed_updates=ALLOWED_UPDATES
            )
            # New ones each run: a stopped sender or notifier stays stopped.
            sender = OutboxSender(self.services.pool, application.bot,
                                  listener=self.services.listener, limits=self.limits)  # fmt: skip
            notifier = Notifier(self.services, self.outbox, owner_chats=self.owner_chats,
                                deliver=deliver, **self.notifier_options)  # fmt: skip
            sending = asyncio.create_task(sender.run(), name="telegram:outbox")
            notifying = asyncio.create_task(notifier.run(), name="telegram:notifier")
            try:
                me = application.bot.username
                if code is not None:
                    log.warning("telegram has no owner yet: send the bot the pairing line",
                                bot=me, pairing=f"/start {code}")  # fmt: skip
                    if self.on_pairing_code is not None:
                        self.on_pairing_code(code)
                log.info("telegram bot is polling", bot=me)
                self.started.set()
                await self._stop.wait()
                await self._halt()
                await notifier.stop()
                await notifying
                await sender.stop()
                await sending
            finally:
                self.started.clear()
                for task in (notifying, sending):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await self._halt()

    async def owner_chats(self) -> list[int]:
        """The chats notifications go to: each owner's private chat (its id is the user's)."""
        return sorted(self.access.owners)

    async def stop(self) -> None:
        """Take no more updates, finish the ones in hand, send what they queued, then return."""
        self._stop.set()
        if self._running:
            await self._finished.wait()

    async def _halt(self) -> None:
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()

    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await self.updates.handle(update, context.bot)
        except Exception:
            log.exception("an update could not be handled", update_id=update.update_id)


def menu() -> list[BotCommand]:
    """The listed commands, for the phone's command menu."""
    return [
        BotCommand(c.name, c.summary[:256])
        for c in sorted(COMMANDS.values(), key=lambda c: c.name)
        if c.listed
    ]
