"""Button presses: look the button up by its signed id, run its action, show the outcome.

A button that changes something (approve, reject, cancel, a proposal's confirm …) uses up its
whole keyboard in one statement before the action runs, so two presses (a double tap, a replayed update, a
reaction at the same moment) run it once; the message is then edited to the outcome. Buttons
that only show something (diff, why, status) stay and answer with a new message. Every callback
is answered; refusals as an alert.
"""

from __future__ import annotations

from dataclasses import replace

from telegram import CallbackQuery
from telegram.error import TelegramError

from lugh.commands.catalog import COMMANDS, execute
from lugh.commands.reply import Reply
from lugh.db.queries import load
from lugh.logs import get_logger
from lugh.transport.telegram.callback_data import callback_secret, verify
from lugh.transport.telegram.chat import Chat
from lugh.transport.telegram.render import deliver

log = get_logger("lugh.transport.telegram.callbacks")
Q = load(__file__, "callbacks")

FORGED = "That button is not one I made for this chat; nothing was done."
STALE = "That button has expired or was already used; nothing was done."
ANSWERED = "That was already answered; nothing was done."
FAILED = "Something went wrong there; nothing more was done and the log has the details."
ALERT_CHARS = 200


async def on_callback(chat: Chat, query: CallbackQuery) -> None:
    """Answer one button press (always: Telegram shows a spinner until it is answered)."""
    text, alert = "", False
    try:
        text, alert = await _press(chat, query.data or "")
    except Exception:
        log.exception("a button press failed", chat_id=chat.chat_id)
        text, alert = FAILED, True
    finally:
        try:
            await query.answer(text[:ALERT_CHARS] or None, show_alert=alert)
        except TelegramError as exc:  # too old to answer: the outcome is in the chat anyway
            log.info("a callback could not be answered", error=str(exc))


async def _press(chat: Chat, data: str) -> tuple[str, bool]:
    pool = chat.services.pool
    button_id = verify(await callback_secret(chat.outbox), chat.chat_id, data)
    button = None if button_id is None else await pool.fetchrow(Q.button, button_id, chat.chat_id)
    if button is None:
        return FORGED, True
    if not button["live"]:
        if button["outbox_id"] is not None and button["used_at"] is None:
            await remove_keyboard(chat, button["outbox_id"])
        return STALE, True
    if not answers(button["action"]):
        reply = await run(chat, button["action"], button["argument"], "button")
        await deliver(chat.services, chat.outbox, chat.chat_id, reply)
        return ("" if reply.ok else reply.text), not reply.ok
    reply = await answer_prompt(chat, button["outbox_id"], button["action"], button["argument"],
                                "button", button_id=button_id)  # fmt: skip
    if reply is None:
        return STALE, True
    return _short(reply), not reply.ok


def answers(action: str) -> bool:
    """Whether pressing `action` answers its message (uses the keyboard up): commands that
    change state, and the buttons' own unlisted actions (confirm, dismiss …)."""
    spec = COMMANDS.get(action)
    return spec is not None and (spec.changes_state or not spec.listed)


async def answer_prompt(
    chat: Chat, outbox_id: int, action: str, argument: str, method: str,
    *, button_id: int | None = None,
) -> Reply | None:  # fmt: skip
    """Use up the keyboard of message `outbox_id`, run the action, edit the message to the
    outcome. None when the keyboard was used already (or `button_id` is not on it any more);
    a message bound to an approval that is no longer pending is refused the same way."""
    pool = chat.services.pool
    async with pool.acquire() as conn:
        claimed = await conn.fetchval(Q.use_keyboard, outbox_id, button_id)
    if not claimed:
        return None
    reply = await run(chat, action, argument, method)
    await deliver(chat.services, chat.outbox, chat.chat_id, _outcome(reply), edit_of=outbox_id)
    if reply.attachments:
        files = Reply("", attachments=reply.attachments, priority=reply.priority)
        await deliver(chat.services, chat.outbox, chat.chat_id, files)
    return reply


async def run(chat: Chat, action: str, argument: str, method: str) -> Reply:
    """Run a command as answered by `method` (recorded on approvals); a failure is one sentence."""
    try:
        return await execute(replace(chat.ctx, method=method), action, argument)
    except Exception:
        log.exception("a command failed", action=action, chat_id=chat.chat_id)
        return Reply.refused(FAILED)


async def remove_keyboard(chat: Chat, outbox_id: int) -> None:
    async with chat.services.pool.acquire() as conn, conn.transaction():
        await conn.execute(Q.expire_keyboard, outbox_id)
        await chat.outbox.enqueue(chat.chat_id, "editMessageReplyMarkup",
                                  {"edit_of": outbox_id, "reply_markup": {"inline_keyboard": []}},
                                  conn=conn)  # fmt: skip


def _outcome(reply: Reply) -> Reply:
    """The reply as the edited message: files go separately (a text message cannot hold them)."""
    return replace(reply, attachments=[])


def _short(reply: Reply) -> str:
    first = reply.text.splitlines()[0] if reply.text else ""
    return first if len(first) <= ALERT_CHARS else first[: ALERT_CHARS - 1] + "…"
