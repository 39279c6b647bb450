"""What the owner is told when a task changes state, the same on every front door."""

from __future__ import annotations

from lugh.commands.review import diff_reply
from lugh.commands.tasks import task_buttons
from lugh.commands.reply import Reply
from lugh.errors import UserError
from lugh.services import Services
from lugh.tasks import TaskEvent, TaskStatus

# State changes the owner hears about, and how loudly (critical/high sound, normal silent,
# low batched into digests by transports that batch).
ANNOUNCED = {
    TaskStatus.AWAITING_REVIEW.value: "high",
    TaskStatus.FAILED.value: "high",
    TaskStatus.DONE.value: "normal",
    TaskStatus.RUNNING.value: "low",
}


async def notification_for(services: Services, event: TaskEvent) -> Reply | None:
    """The message for `event`, or None when it is not worth a message."""
    priority = ANNOUNCED.get(event.kind)
    if priority is None:
        return None
    task = await services.tasks.get(event.task_id)
    if task is None or task.status.value != event.kind:
        return None  # already moved on: a newer event will say where it is
    if event.kind == TaskStatus.AWAITING_REVIEW.value:
        try:
            reply = diff_reply(task.id, await services.review.diff(task.id))
        except UserError:
            reply = Reply("", task_id=task.id)
        reply.text = f"#{task.id} {task.title} is ready for review.\n{reply.text}".rstrip()
        reply.buttons = task_buttons(task)
        reply.approval_id = await services.review.pending_approval(task.id)
    elif event.kind == TaskStatus.FAILED.value:
        reason = task.error or "no reason was recorded"
        reply = Reply(f"#{task.id} {task.title} failed: {reason}", buttons=task_buttons(task))
    elif event.kind == TaskStatus.DONE.value:
        summary = (task.result or {}).get("summary") if isinstance(task.result, dict) else None
        reply = Reply(f"#{task.id} {task.title} is done." + (f" {summary}" if summary else ""))
    else:
        reply = Reply(f"#{task.id} {task.title}: an agent is working on it.",
                      buttons=task_buttons(task))
    reply.task_id = task.id
    reply.priority = priority  # type: ignore[assignment]
    return reply
