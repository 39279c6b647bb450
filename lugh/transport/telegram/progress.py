"""One progress message per running task, edited in place as the agent works.

The message is sent when a run starts and then edited, never re-sent: each model turn and tool
call only records the newest state (`pending`), and a flush edits the message at most once per
`interval_s` per message (Telegram answers faster edits with 429s), so a burst of steps becomes
one edit showing the latest. When the task leaves `running` the message is edited to the
outcome and its buttons removed. Everything is in `notify_progress`, so after a restart the same
message goes on being edited.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from lugh.commands.reply import Button, Reply
from lugh.commands.tasks import task_buttons
from lugh.db.queries import load
from lugh.services import Services
from lugh.tasks import Task, TaskEvent, TaskStatus
from lugh.transport.telegram.outbox import Outbox

if TYPE_CHECKING:
    from lugh.transport.telegram.notify import Deliver

Q = load(__file__, "progress")
STEP_KINDS = frozenset({"model_turn", "tool_call", "model_retry"})
# The argument worth showing for each tool, in the owner's words.
SHOWN_ARGUMENT = {
    "run_command": "command", "read_file": "path", "write_file": "path", "edit_file": "path",
    "list_files": "path", "search_code": "pattern", "query_knowledge": "query",
    "remember": "content", "finish": "summary",
}  # fmt: skip
SHOWN_CHARS = 80


def working_text(task: Task, event: TaskEvent) -> str:
    """The message while the agent works: its step, how long, and what it did last."""
    data = event.data
    if event.kind == "tool_call":
        argument = _argument(data.get("tool"), data.get("input"))
        mark = "" if data.get("ok", True) else " (failed)"
        last = f"Last: {data.get('tool', 'a tool')}{f' {argument}' if argument else ''}{mark}"
    elif event.kind == "model_turn":
        tools = data.get("tools") or []
        last = f"Thinking; next: {', '.join(tools)}" if tools else "Thinking"
    elif event.kind == "model_retry":
        last = f"The model API is busy; retry {data.get('attempt', '?')}"
    else:
        last = "Starting"
    step = f" · step {data['step']}" if isinstance(data.get("step"), int) else ""
    return f"#{task.id} {task.title}\n⏳ Working{step} · {_elapsed(task, event.created_at)}\n{last}"


def outcome_text(task: Task, event: TaskEvent) -> str:
    """The message once the task left `running`."""
    data = event.data
    if event.kind == TaskStatus.AWAITING_REVIEW.value:
        what = {"plan": "a plan to approve", "step": "a step to allow"}.get(
            str(data.get("reason")), "work to review")
        line = f"🔎 Waiting for you: {what}"
    elif event.kind == TaskStatus.DONE.value:
        line = "✅ Done"
    elif event.kind == TaskStatus.FAILED.value:
        line = f"❌ Failed: {task.error or data.get('error') or 'no reason was recorded'}"
    elif event.kind == TaskStatus.CANCELLED.value:
        line = "⏹ Cancelled"
    elif data.get("reason") == "attempt_failed":
        line = f"↻ Attempt {data.get('attempt', '?')} failed; it will be retried"
    else:
        line = "⏸ Back in the queue"
    return f"#{task.id} {task.title}\n{line} · {_elapsed(task, event.created_at)}"


class ProgressMessages:
    """The progress messages of running tasks, one per task and owner chat."""

    def __init__(
        self, services: Services, outbox: Outbox, deliver: Deliver, *, interval_s: float
    ) -> None:
        self.services = services
        self.pool = services.pool
        self.outbox = outbox
        self.deliver = deliver
        self.interval_s = interval_s

    async def open(self, task: Task, event: TaskEvent, chats: list[int]) -> None:
        """Send the message for the run `event` started (once, however often replayed)."""
        text = working_text(task, event)
        for chat in chats:
            opened_by = await self.pool.fetchval(Q.opened_by, task.id, chat)
            if opened_by is not None and opened_by >= event.id:
                continue
            reply = Reply(text, buttons=task_buttons(task), task_id=task.id, priority="low")
            async with self.pool.acquire() as conn, conn.transaction():
                row = await self.deliver(
                    self.services, self.outbox, chat, reply, silent=True,
                    dedupe_key=f"progress:{task.id}:{chat}:{event.id}", conn=conn,
                )  # fmt: skip
                await conn.execute(Q.open, task.id, chat, row, event.id, text)

    async def advance(self, task: Task, event: TaskEvent) -> None:
        """Record the newest state of the task's run; shown at the next allowed edit."""
        finished = event.kind not in STEP_KINDS
        text = outcome_text(task, event) if finished else working_text(task, event)
        await self.pool.execute(Q.advance, task.id, event.id, text, finished)

    async def flush(self) -> float | None:
        """Edit every message whose newest state may be shown now; the seconds until the next
        may, or None when none waits."""
        async with self.pool.acquire() as conn, conn.transaction():
            for row in await conn.fetch(Q.due, float(self.interval_s)):
                await self._edit(conn, row)
        return await self.pool.fetchval(Q.next_due, float(self.interval_s))

    async def prune(self) -> None:
        await self.pool.execute(Q.prune)

    async def _edit(self, conn: asyncpg.Connection, row: asyncpg.Record) -> None:
        task_id, chat, text = row["task_id"], row["chat_id"], row["pending"]
        if text == row["shown"]:
            await conn.execute(Q.unchanged, task_id, chat, text)
            return
        buttons = [] if row["finished"] else await self._buttons(task_id)
        reply = Reply(text, buttons=buttons, task_id=task_id, priority="low")
        await self.deliver(
            self.services, self.outbox, chat, reply, silent=True, edit_of=row["message_row"],
            dedupe_key=f"progress:{task_id}:{chat}:{row['run_event']}:{row['edits'] + 1}",
            conn=conn,
        )  # fmt: skip
        await conn.execute(Q.shown, task_id, chat, text)

    async def _buttons(self, task_id: int) -> list[list[Button]]:
        task = await self.services.tasks.get(task_id)
        return task_buttons(task) if task is not None else []


def _argument(tool: Any, arguments: Any) -> str:
    if not isinstance(arguments, dict):
        return ""
    value = arguments.get(SHOWN_ARGUMENT.get(str(tool), ""), "")
    if not isinstance(value, str):
        value = next((v for v in arguments.values() if isinstance(v, str)), "")
    value = " ".join(value.split())
    return value if len(value) <= SHOWN_CHARS else value[: SHOWN_CHARS - 1] + "…"


def _elapsed(task: Task, until: datetime) -> str:
    if task.started_at is None:
        return "just started"
    seconds = max(0, int((until - task.started_at).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m {seconds:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"
