"""What the owner is told when a task changes state, the same on every front door.

How loudly is part of the message (`Reply.priority`): critical and high make a sound, normal
arrives silently, low is batched into digests by transports that batch (Telegram). Waiting for
the owner and failures are high; a finished task is normal; moves the owner made themselves
(reject, cancel) and retries are low. A task the owner marked urgent (priority above 0, 🔥)
is announced one level louder. Tasks created elsewhere (MCP clients, the CLI) are announced
when they are queued, so the owner knows about work they did not ask for in the chat.
"""

from __future__ import annotations

from typing import Any

from lugh.commands.reply import Button, Priority, Reply
from lugh.commands.review import diff_reply
from lugh.commands.tasks import task_buttons
from lugh.errors import UserError
from lugh.services import Services
from lugh.tasks import Task, TaskEvent, TaskStatus

# State changes the owner hears about, and how loudly.
ANNOUNCED: dict[str, Priority] = {
    TaskStatus.AWAITING_REVIEW.value: "high",
    TaskStatus.FAILED.value: "high",
    TaskStatus.DONE.value: "normal",
    TaskStatus.RUNNING.value: "low",
    TaskStatus.REJECTED.value: "low",
    TaskStatus.CANCELLED.value: "low",
}
# A run stopped by its budget (or the model's refusal): silent, because the review or failure
# that follows it at once makes the sound.
STOPPED = "run_stopped"
LOUDER: dict[Priority, Priority] = {
    "low": "normal", "normal": "high", "high": "critical", "critical": "critical",
}  # fmt: skip
# Where a task came from when nobody in a chat asked for it.
ELSEWHERE = {"mcp": "an MCP client", "cli": "the command line"}


def priority_of(event: TaskEvent, task: Task) -> Priority | None:
    """How loudly `event` is announced, or None when it is not."""
    if event.kind == TaskStatus.QUEUED.value:
        if event.data.get("reason") == "attempt_failed":
            priority: Priority | None = "low"
        elif "from" not in event.data and task.source in ELSEWHERE:
            priority = "normal"
        else:
            priority = None
    elif event.kind == STOPPED:
        priority = "normal"
    else:
        priority = ANNOUNCED.get(event.kind)
    if priority is not None and task.priority > 0:
        priority = LOUDER[priority]
    return priority


async def notification_for(services: Services, event: TaskEvent) -> Reply | None:
    """The message for `event`, or None when it is not worth a message."""
    if event.kind not in ANNOUNCED and event.kind not in (STOPPED, TaskStatus.QUEUED.value):
        return None
    task = await services.tasks.get(event.task_id)
    if task is None:
        return None
    priority = priority_of(event, task)
    if priority is None:
        return None
    if event.kind in ANNOUNCED and task.status.value != event.kind:
        return None  # already moved on: a newer event will say where it is
    if event.kind == TaskStatus.AWAITING_REVIEW.value:
        reply = await _waiting(services, task, event.data)
    elif event.kind == TaskStatus.FAILED.value:
        reason = task.error or "no reason was recorded"
        reply = Reply(f"#{task.id} {task.title} failed: {reason}", buttons=task_buttons(task))
    elif event.kind == TaskStatus.DONE.value:
        summary = (task.result or {}).get("summary") if isinstance(task.result, dict) else None
        reply = Reply(f"#{task.id} {task.title} is done." + (f" {summary}" if summary else ""))
    elif event.kind == TaskStatus.RUNNING.value:
        reply = Reply(f"#{task.id} {task.title}: an agent is working on it.",
                      buttons=task_buttons(task))  # fmt: skip
    elif event.kind == STOPPED:
        reason = event.data.get("reason") or "no reason was recorded"
        reply = Reply(f"#{task.id} {task.title} stopped: {reason}")
    elif event.kind == TaskStatus.QUEUED.value and event.data.get("reason") == "attempt_failed":
        retry, error = event.data.get("retry_in_s"), event.data.get("error") or "no reason"
        when = f" in {retry:g} s" if isinstance(retry, (int, float)) else ""
        reply = Reply(f"#{task.id} {task.title}: attempt {event.data.get('attempt', '?')} "
                      f"failed ({error}); retrying{when}.")  # fmt: skip
    elif event.kind == TaskStatus.QUEUED.value:
        reply = Reply(f"#{task.id} {task.title} was queued by {ELSEWHERE[task.source]}.",
                      buttons=task_buttons(task))  # fmt: skip
    else:
        verb = "rejected" if event.kind == TaskStatus.REJECTED.value else "cancelled"
        reply = Reply(f"#{task.id} {task.title} was {verb}.")
    reply.task_id = task.id
    reply.priority = priority
    return reply


async def _waiting(services: Services, task: Task, data: dict[str, Any]) -> Reply:
    """The owner's turn: a plan to approve, a high-risk step to allow, or finished work."""
    approval = data.get("approval")
    if isinstance(data.get("plan"), dict):
        buttons = _answer_buttons(task, "Approve plan", "Reject plan")
        return Reply(_plan_text(task, data["plan"]), buttons=buttons, approval_id=approval)
    if data.get("reason") == "step" or "tool_use_id" in data:
        buttons = _answer_buttons(task, "Allow", "Refuse")
        return Reply(_step_text(task, data), buttons=buttons, approval_id=approval)
    buttons = task_buttons(task)
    try:
        reply = await diff_reply(task.id, await services.review.diff(task.id))
    except UserError:
        reply = Reply("", task_id=task.id)
    reply.text = f"#{task.id} {task.title} is ready for review.\n{reply.text}".rstrip()
    reply.buttons = buttons
    reply.approval_id = await services.review.pending_approval(task.id)
    return reply


def _answer_buttons(task: Task, yes: str, no: str) -> list[list[Button]]:
    ref = str(task.id)
    return [[Button(yes, "approve", ref), Button(no, "reject", ref)],
            [Button("Why", "why", ref), Button("Cancel", "cancel", ref)]]  # fmt: skip


def _plan_text(task: Task, plan: dict[str, Any]) -> str:
    lines = [f"#{task.id} {task.title}: the agent proposes a plan (risk {plan.get('risk', '?')}).",
             str(plan.get("summary") or "").strip()]  # fmt: skip
    if plan.get("files"):
        lines.append("Files: " + ", ".join(map(str, plan["files"][:20])))
    if plan.get("commands"):
        lines.append("Commands: " + "; ".join(map(str, plan["commands"][:10])))
    cost = plan.get("estimated_cost_usd")
    if plan.get("estimated_steps"):
        priced = f", ≈ ${cost:.2f}" if isinstance(cost, (int, float)) else ""
        lines.append(f"About {plan['estimated_steps']} steps{priced}.")
    lines.append("Approve to let it start, or reject.")
    return "\n".join(line for line in lines if line)


def _step_text(task: Task, data: dict[str, Any]) -> str:
    tool = data.get("tool") or data.get("name") or "a tool"
    shown = data.get("input") or ""
    if isinstance(shown, dict) and isinstance(shown.get("command"), str):
        shown = shown["command"]
    detail = f": {str(shown)[:300]}" if shown else ""
    return (f"#{task.id} {task.title}: the agent wants to run a high-risk step, {tool}{detail}\n"
            "Approve to allow it, or reject to tell the agent no.")
