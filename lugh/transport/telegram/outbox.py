"""The outbox: every message to Telegram is a row first, then delivered by one sender.

Delivery is at least once. A row is marked `sending` with a lease (its `not_before`) in its own
commit before the HTTP call, and `sent` (with Telegram's message id) after it. A sender that is
stopped finishes the call in flight and records it, so a restart loses and repeats nothing. A
sender that dies between Telegram accepting a message and the `sent` commit leaves the row
`sending`; when the lease runs out another sender sends it again. Telegram has no idempotency
key, so that one message may then arrive twice: a rare repeated notification is better than a
lost approval request, which would stall a task. Edits are idempotent (Telegram answers "message
is not modified", taken as sent), so a repeated edit is invisible.

Rows of one chat are sent one at a time in id order; chats go in priority order. Long texts are
split into parts when queued (see split.py), the buttons on the last part. Several senders may
share the table (claims use FOR UPDATE SKIP LOCKED), but pacing is per sender: run one per bot,
or let Telegram's 429s slow the others.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import warnings
from datetime import timedelta
from typing import Any

import asyncpg
from telegram import Bot, InputFile, Message
from telegram.error import BadRequest, ChatMigrated, Conflict, Forbidden, RetryAfter, TelegramError

from lugh.commands.reply import Priority
from lugh.db.queries import load
from lugh.logs import get_logger, redactor
from lugh.tasks.waiting import wait_event
from lugh.transport.telegram.pacing import Limits, Pacer
from lugh.transport.telegram.split import split_payload

log = get_logger("lugh.transport.telegram.outbox")
Q = load(__file__, "outbox")

CHANNEL = "lugh_outbox"
NETWORK_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_REQUIRED = {  # positional parameters of PTB's typed methods; the rest goes as api_kwargs
    "sendMessage": ("chat_id", "text"),
    "sendDocument": ("chat_id", "document"),
    "sendPhoto": ("chat_id", "photo"),
    "editMessageText": ("text",),
    "editMessageReplyMarkup": (),
    "editMessageCaption": (),
    "deleteMessage": ("chat_id", "message_id"),
}
_FILE_FIELDS = ("document", "photo")


def file_field(filename: str, content: bytes) -> dict[str, str]:
    """A file in a payload (`payload["document"] = file_field(...)`): stored in the row itself."""
    return {"filename": filename, "base64": base64.b64encode(content).decode()}


class Outbox:
    """Queues Bot API calls durably; `OutboxSender` delivers them."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def enqueue(
        self,
        chat_id: int,
        method: str,
        payload: dict[str, Any],
        priority: Priority = "normal",
        dedupe_key: str | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> int:
        """Queue one call (a long text as several parts) in one INSERT; returns the id of the
        last part. With `dedupe_key`, queuing the same key again queues nothing and returns the
        first one's id. Pass `conn` to queue inside the caller's transaction."""
        if method not in _REQUIRED:
            raise ValueError(f"the outbox cannot send {method!r}")
        parts = [json.dumps({**p, "chat_id": chat_id}) for p in split_payload(method, payload)]
        args = (chat_id, method, parts, priority, dedupe_key)
        if conn is None:
            async with self.pool.acquire() as own:
                return await self._insert(own, args)
        return await self._insert(conn, args)

    async def edit_or_send(
        self,
        chat_id: int,
        message_row: int,
        text: str,
        *,
        parse_mode: str | None = "HTML",
        reply_markup: dict[str, Any] | None = None,
        priority: Priority = "normal",
        dedupe_key: str | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> int:
        """Edit the message that outbox row `message_row` sent (a progress message edited in
        place); when that message is gone or was never sent, send `text` as a new one."""
        payload: dict[str, Any] = {"text": text, "edit_of": message_row}
        if parse_mode:
            payload["parse_mode"] = parse_mode
        if reply_markup is not None:
            payload["reply_markup"] = reply_markup
        return await self.enqueue(chat_id, "editMessageText", payload, priority, dedupe_key, conn)

    async def _insert(self, conn: asyncpg.Connection, args: tuple) -> int:
        row = await conn.fetchrow(Q.enqueue, *args)
        if row["id"] is not None:
            return row["id"]
        return await conn.fetchval(Q.by_dedupe_key, args[4])


class OutboxSender:
    """The component that delivers the outbox through the Telegram `bot` (initialized by its
    owner), within Telegram's flood limits; woken by `listener` on each enqueue."""

    name = "outbox"

    def __init__(
        self,
        pool: asyncpg.Pool,
        bot: Bot,
        *,
        listener: Any = None,
        limits: Limits = Limits(),
        lease_s: float = 60.0,
        poll_s: float = 5.0,
        max_in_flight: int = 32,
        backoff_s: tuple[float, ...] = NETWORK_BACKOFF_S,
    ) -> None:
        self.pool = pool
        self.bot = bot
        self.listener = listener
        self.pacer = Pacer(limits)
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.max_in_flight = max_in_flight
        self.backoff_s = backoff_s
        self._wake = asyncio.Event()
        self._stopping = False
        self._in_flight: dict[int, asyncio.Task[None]] = {}  # by chat

    def wake(self, _payload: str | None = None) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Claim nothing more; `run` returns once the calls in flight are recorded."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        unsubscribe = self.listener.subscribe(CHANNEL, self.wake) if self.listener else None
        try:
            while not self._stopping:
                self._wake.clear()
                claimed = await self._claim()
                if claimed and len(self._in_flight) < self.max_in_flight:
                    continue
                await wait_event(self._wake, await self._seconds_to_next_due())
            if self._in_flight:
                await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        finally:
            if unsubscribe is not None:
                unsubscribe()
            # Cancelled (not stopped): rows in flight stay `sending` until their lease runs out.
            for task in self._in_flight.values():
                task.cancel()
            for task in list(self._in_flight.values()):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _claim(self) -> int:
        room = self.max_in_flight - len(self._in_flight)
        if room <= 0:
            return 0
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(Q.claim, list(self._in_flight), room, float(self.lease_s))
        for row in rows:
            task = asyncio.create_task(self._deliver(row), name=f"outbox:{row['id']}")
            self._in_flight[row["chat_id"]] = task
            task.add_done_callback(lambda _t, chat=row["chat_id"]: self._done(chat))
        return len(rows)

    def _done(self, chat_id: int) -> None:
        self._in_flight.pop(chat_id, None)
        self._wake.set()

    async def _seconds_to_next_due(self) -> float:
        async with self.pool.acquire() as conn:
            due = await conn.fetchval(Q.seconds_to_next_due, list(self._in_flight))
        return self.poll_s if due is None else min(self.poll_s, max(due, 0.001))

    async def _deliver(self, row: asyncpg.Record) -> None:
        row_id, chat_id, method = row["id"], row["chat_id"], row["method"]
        payload = json.loads(row["payload"])
        try:
            await self._send(row_id, chat_id, method, payload)
        except RetryAfter as exc:
            seconds = _retry_after(exc)
            self.pacer.hold(chat_id, seconds)
            log.info("telegram asked to wait", outbox_id=row_id, chat_id=chat_id, seconds=seconds)
            await self._execute(
                Q.reschedule, row_id, float(seconds), f"429: retry after {seconds:g}s"
            )
        except (BadRequest, Forbidden, ChatMigrated, Conflict) as exc:
            log.warning("telegram refused a message", outbox_id=row_id, method=method,
                        error=redactor(exc.message))  # fmt: skip
            await self._execute(Q.mark_failed, row_id, redactor(exc.message))
        except TelegramError as exc:  # network errors, timeouts, 5xx: the call may be retried
            delay = self.backoff_s[min(row["attempts"], len(self.backoff_s)) - 1]
            log.warning("telegram unreachable, will retry", outbox_id=row_id, seconds=delay,
                        error=redactor(str(exc)))  # fmt: skip
            await self._execute(Q.reschedule, row_id, float(delay), redactor(str(exc)))
        except Exception as exc:  # a bug or a lost database: the lease brings the row back
            log.exception("an outbox row could not be delivered", outbox_id=row_id,
                          error=redactor(str(exc)))  # fmt: skip

    async def _send(self, row_id: int, chat_id: int, method: str, payload: dict[str, Any]) -> None:
        target = payload.pop("edit_of", None)
        if target is not None:
            async with self.pool.acquire() as conn:
                if await conn.fetchval(Q.superseded, chat_id, row_id, method, str(target)):
                    await conn.execute(Q.mark_sent, row_id, None, "superseded by a later edit")
                    return
                shown = await conn.fetchrow(Q.target, target)
            if shown is None or shown["sent_message_id"] is None:
                await self._send_anew(row_id, chat_id, target, payload)
                return
            payload["message_id"] = shown["sent_message_id"]
        await asyncio.sleep(self.pacer.reserve(chat_id))
        try:
            result = await self._call(method, payload)
        except BadRequest as exc:
            if "message is not modified" in exc.message.lower():
                await self._execute(Q.mark_sent, row_id, payload.get("message_id"), None)
                return
            if target is not None and "message to edit not found" in exc.message.lower():
                payload.pop("message_id")
                await self._send_anew(row_id, chat_id, target, payload)
                return
            raise
        message_id = result.message_id if isinstance(result, Message) else payload.get("message_id")
        await self._execute(Q.mark_sent, row_id, message_id, None)

    async def _send_anew(
        self, row_id: int, chat_id: int, target: int, payload: dict[str, Any]
    ) -> None:
        if "text" not in payload:
            log.warning("the message to edit was never sent", outbox_id=row_id, edit_of=target)
            await self._execute(Q.mark_failed, row_id, "the message to edit was never sent")
            return
        await asyncio.sleep(self.pacer.reserve(chat_id))
        message = await self._call("sendMessage", {**payload, "chat_id": chat_id})
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(Q.mark_sent, row_id, message.message_id, None)
            await conn.execute(Q.set_message_id, target, message.message_id)

    async def _call(self, method: str, payload: dict[str, Any]) -> Any:
        payload = dict(payload)
        for name in _FILE_FIELDS:
            if isinstance(payload.get(name), dict):
                spec = payload[name]
                content = base64.b64decode(spec["base64"])
                payload[name] = InputFile(content, filename=spec["filename"])
        required = {k: payload.pop(k) for k in _REQUIRED[method] if k in payload}
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in method)
        return await getattr(self.bot, snake)(**required, api_kwargs=payload or None)

    async def _execute(self, query: str, *args: Any) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(query, *args)


def _retry_after(exc: RetryAfter) -> float:
    # PTB 22 warns on this attribute unless PTB_TIMEDELTA is set; both forms are handled.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
