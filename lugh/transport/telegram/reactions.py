"""Emoji reactions on a message bound to an approval or a task: 👍 approve, 👎 reject, 👀 diff,
🤔 why, 🔥 raise priority, 😴 pause (taking 😴 away resumes).

Only the owner's reactions count, only on bound messages, and only newly added emoji (Telegram
sends the whole set each time). Approve and reject answer the message like its buttons would:
the keyboard is used up, the message edited to the outcome, and "reaction" recorded on the
approval. Reactions anywhere else are just reactions.
"""

from __future__ import annotations

from telegram import MessageReactionUpdated, ReactionTypeEmoji

from lugh.commands.reply import Reply
from lugh.db.queries import load
from lugh.errors import UserError
from lugh.tasks import TaskError
from lugh.transport.telegram.callbacks import ANSWERED, answer_prompt, run
from lugh.transport.telegram.chat import Chat
from lugh.transport.telegram.render import deliver

Q = load(__file__, "reactions")

MEANINGS = {"👍": "approve", "👎": "reject", "👀": "diff", "🤔": "why", "🔥": "raise", "😴": "pause"}
ANSWERS = {"approve": ("approve", "confirm"), "reject": ("reject", "dismiss")}  # (task, proposal)


def emoji_of(reactions: tuple) -> list[str]:
    return [r.emoji for r in reactions if isinstance(r, ReactionTypeEmoji)]


async def on_reaction(chat: Chat, reaction: MessageReactionUpdated) -> None:
    old = set(emoji_of(reaction.old_reaction))
    new = emoji_of(reaction.new_reaction)
    added = [e for e in new if e not in old and e in MEANINGS]
    resumed = "😴" in old and "😴" not in new
    if not added and not resumed:
        return
    prompt = await chat.services.pool.fetchrow(Q.prompt, chat.chat_id, reaction.message_id)
    if prompt is None:
        return
    for emoji in added:
        await _act(chat, prompt, MEANINGS[emoji])
    if resumed and prompt["task_id"] is not None:
        await _say(chat, await _resume(chat, prompt["task_id"]))


async def _act(chat: Chat, prompt, meaning: str) -> None:
    task_id, approval_id = prompt["task_id"], prompt["approval_id"]
    if meaning in ANSWERS:
        if approval_id is None:  # a message about a task, not a question: just do it
            if task_id is not None:
                await _say(chat, await run(chat, ANSWERS[meaning][0], str(task_id), "reaction"))
            return
        if prompt["approval_status"] != "pending":
            await _say(chat, Reply.refused(ANSWERED))
            return
        proposal = prompt["approval_kind"] == "confirm"
        action = ANSWERS[meaning][1 if proposal else 0]
        argument = str(approval_id if proposal else task_id)
        reply = await answer_prompt(chat, prompt["outbox_id"], action, argument, "reaction")
        if reply is None:  # no keyboard left to use up (already answered by a button)
            await _say(chat, Reply.refused(ANSWERED))
        return
    if task_id is None:
        return
    if meaning in ("diff", "why"):
        await _say(chat, await run(chat, meaning, str(task_id), "reaction"))
    elif meaning == "raise":
        await _say(chat, await _service(chat, "raise_priority", task_id))
    elif meaning == "pause":
        await _say(chat, await _service(chat, "pause", task_id))


async def _resume(chat: Chat, task_id: int) -> Reply:
    return await _service(chat, "resume", task_id)


async def _service(chat: Chat, name: str, task_id: int) -> Reply:
    try:
        task = await getattr(chat.services.tasks, name)(task_id)
    except (UserError, TaskError) as exc:
        return Reply.refused(str(exc))
    said = {
        "raise_priority": f"#{task.id} {task.title} now has priority {task.priority}.",
        "pause": f"Paused #{task.id} {task.title}; take the 😴 away to resume it.",
        "resume": f"Resumed #{task.id} {task.title}.",
    }[name]
    return Reply(said, task_id=task.id)


async def _say(chat: Chat, reply: Reply) -> None:
    await deliver(chat.services, chat.outbox, chat.chat_id, reply)
