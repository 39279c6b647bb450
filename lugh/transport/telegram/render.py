"""A Reply as Telegram messages: escaped HTML, code blocks, an inline keyboard and files, queued
in the outbox.

Buttons never carry their action in `callback_data`: each is a `telegram_buttons` row (action,
argument, the approval or task it acts on, an expiry) and the data is its id plus a MAC (see
callbacks.py). The rows, the message and its binding are written in one transaction, so a
button that exists on the phone always exists in the database.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from lugh.commands.reply import Reply
from lugh.db.queries import load
from lugh.services import Services
from lugh.transport.telegram.callback_data import BUTTON_TTL_S, callback_secret, sign
from lugh.transport.telegram.outbox import Outbox, file_field

Q = load(__file__, "render")
SILENT = frozenset({"normal", "low"})


def to_html(reply: Reply) -> str:
    """The reply's text and code blocks in Telegram's HTML subset."""
    parts = [html.escape(reply.text, quote=False)] if reply.text else []
    for block in reply.code:
        body = html.escape(block.text, quote=False)
        if block.language:
            language = html.escape(block.language)
            parts.append(f'<pre><code class="language-{language}">{body}</code></pre>')
        else:
            parts.append(f"<pre>{body}</pre>")
    return "\n".join(parts)


async def deliver(
    services: Services,
    outbox: Outbox,
    chat_id: int,
    reply: Reply,
    *,
    silent: bool | None = None,
    edit_of: int | None = None,
    dedupe_key: str | None = None,
    conn: asyncpg.Connection | None = None,
) -> int:
    """Queue `reply` for `chat_id` (or as an edit of the message of outbox row `edit_of`); returns
    the outbox row of the message that carries the buttons (`edit_of` itself for an edit).

    Critical and high priority make a sound, normal and low arrive silently, unless `silent`
    says otherwise. Files follow the text: images as photos, anything else as documents.
    """
    quiet = reply.priority in SILENT if silent is None else silent
    text = to_html(reply)
    buttons = [b for row in reply.buttons for b in row]
    if not text and (buttons or not reply.attachments):
        text = "Done." if reply.ok else "That did not work."
    secret = await callback_secret(outbox) if buttons else b""
    async with _transaction(services.pool, conn) as tx:
        markup, ids = await _keyboard(tx, secret, chat_id, reply) if buttons else (None, [])
        row: int | None = None
        if text:
            if edit_of is not None:
                await outbox.edit_or_send(
                    chat_id, edit_of, text, reply_markup=markup or {"inline_keyboard": []},
                    priority=reply.priority, dedupe_key=dedupe_key, conn=tx,
                )  # fmt: skip
                row = edit_of
            else:
                payload: dict[str, Any] = {"text": text, "parse_mode": "HTML"}
                if markup is not None:
                    payload["reply_markup"] = markup
                if quiet:
                    payload["disable_notification"] = True
                row = await outbox.enqueue(chat_id, "sendMessage", payload, reply.priority,
                                           dedupe_key, conn=tx)  # fmt: skip
            if ids or edit_of is not None or reply.approval_id or reply.task_id:
                await tx.execute(Q.bind, row, chat_id, ids, reply.approval_id, reply.task_id,
                                 edit_of is not None)  # fmt: skip
        for n, attachment in enumerate(reply.attachments, 1):
            method, field = (("sendPhoto", "photo") if attachment.mime.startswith("image/")
                             else ("sendDocument", "document"))  # fmt: skip
            file_payload: dict[str, Any] = {
                field: file_field(attachment.filename, attachment.content)}
            if quiet:
                file_payload["disable_notification"] = True
            key = f"{dedupe_key}:file{n}" if dedupe_key else None
            sent = await outbox.enqueue(chat_id, method, file_payload, reply.priority, key, conn=tx)
            row = row if text else sent
    assert row is not None
    return row


async def _keyboard(
    conn: asyncpg.Connection, secret: bytes, chat_id: int, reply: Reply
) -> tuple[dict[str, Any], list[int]]:
    labels = [b.label for row in reply.buttons for b in row]
    actions = [b.action for row in reply.buttons for b in row]
    arguments = [b.argument for row in reply.buttons for b in row]
    ids = await conn.fetchval(
        Q.add_buttons, chat_id, labels, actions, arguments, reply.approval_id, reply.task_id,
        float(BUTTON_TTL_S),
    )  # fmt: skip
    numbered = iter(ids)
    keyboard = [
        [{"text": b.label, "callback_data": sign(secret, chat_id, next(numbered))} for b in row]
        for row in reply.buttons
        if row
    ]
    return {"inline_keyboard": keyboard}, list(ids)


@contextlib.asynccontextmanager
async def _transaction(
    pool: asyncpg.Pool, conn: asyncpg.Connection | None
) -> AsyncIterator[asyncpg.Connection]:
    if conn is not None:
        async with conn.transaction():  # a savepoint inside the caller's transaction
            yield conn
        return
    async with pool.acquire() as own, own.transaction():
        yield own
