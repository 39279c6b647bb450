"""`/task`, `/tasks`, `/status`, `/cancel`, `/retry`, `/why`: the work and its audit trail."""

from __future__ import annotations

from lugh.commands.projects import current_project
from lugh.commands.registry import Context, command
from lugh.commands.reply import Button, Code, Reply
from lugh.errors import UserError
from lugh.tasks import Task, TaskEvent, TaskStatus

OPEN = [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.AWAITING_REVIEW]
TITLE_CHARS = 120
STATUS_EVENTS = 5
WHY_EVENTS = 40


def task_id_of(argument: str) -> int:
    text = argument.strip().lstrip("#")
    if not text.isdigit():
        raise UserError(f"Name the task by its number, e.g. #12 (got {argument.strip()!r}).")
    return int(text)


def headline(task: Task) -> str:
    return f"#{task.id} {task.title} — {task.status.value.replace('_', ' ')}"


def task_buttons(task: Task) -> list[list[Button]]:
    ref = str(task.id)
    if task.status == TaskStatus.AWAITING_REVIEW:
        return [
            [Button("Approve & merge", "approve", ref), Button("Reject", "reject", ref)],
            [Button("Diff", "diff", ref), Button("Retry", "retry", ref), Button("Why", "why", ref)],
        ]
    if task.status in (TaskStatus.QUEUED, TaskStatus.RUNNING):
        return [[Button("Status", "status", ref), Button("Cancel", "cancel", ref)]]
    return [[Button("Why", "why", ref), Button("Retry", "retry", ref)]]


@command("task", "/task <text>", "create a task in the current project", changes_state=True)
async def task(ctx: Context, argument: str) -> Reply:
    if not argument:
        return Reply.refused("Say what to do: /task <text>, e.g. /task add a health endpoint.")
    project = await current_project(ctx)
    agent = await ctx.services.agents.assignee(project.name)
    first_line = argument.splitlines()[0].strip()
    title = first_line if len(first_line) <= TITLE_CHARS else first_line[: TITLE_CHARS - 1] + "…"
    created = await ctx.services.tasks.enqueue(
        project.id, title, argument, agent_id=agent.id, source=ctx.source
    )
    await ctx.services.sessions.record_created(ctx.session.id, "task", created.id)
    # In `lugh run` a free slot of the pool takes the task straight from its creation.
    done = "Started" if created.status is TaskStatus.RUNNING else "Queued"
    return Reply(
        f"{done} #{created.id} in {project.name} for {agent.name}: {created.title}",
        buttons=task_buttons(created),
        task_id=created.id,
    )


@command("tasks", "/tasks", "open tasks of the current project")
async def tasks(ctx: Context, argument: str) -> Reply:
    project = await current_project(ctx)
    found = await ctx.services.tasks.list(project_id=project.id, status=OPEN, limit=30)
    if not found:
        return Reply(f"No open tasks in {project.name}. Create one with /task <text>.")
    return Reply(f"Open tasks in {project.name}:\n" + "\n".join(headline(t) for t in found))


@command("status", "/status [id]", "one task's state, agent and last events")
async def status(ctx: Context, argument: str) -> Reply:
    if not argument:
        return await tasks(ctx, "")
    found = await _task(ctx, argument)
    lines = [headline(found)]
    if found.agent_id is not None:
        agent = await ctx.services.agents.get(found.agent_id)
        lines.append(f"Agent: {agent.name} ({agent.role})")
    lines.append(f"Attempts: {found.attempts} of {found.max_attempts}")
    if found.error:
        lines.append(f"Error: {found.error}")
    recent = await ctx.services.events.latest(found.id, limit=STATUS_EVENTS)
    if recent:
        lines.append("Last events:")
        lines.extend(f"  {describe_event(e)}" for e in recent)
    return Reply("\n".join(lines), buttons=task_buttons(found), task_id=found.id)


@command("cancel", "/cancel <id>", "stop a task (a running one stops within seconds)",
         changes_state=True)
async def cancel(ctx: Context, argument: str) -> Reply:
    cancelled = await ctx.services.tasks.cancel(task_id_of(argument), reason=f"by {ctx.source}")
    return Reply(f"Cancelled #{cancelled.id} {cancelled.title}.", task_id=cancelled.id)


@command("retry", "/retry <id> [what to do differently]", "run a task again", changes_state=True)
async def retry(ctx: Context, argument: str) -> Reply:
    ref, _, feedback = argument.strip().partition(" ")
    method = ctx.method or ("mcp" if ctx.source == "mcp" else "command")
    retried = await ctx.services.review.retry(task_id_of(ref), feedback, method=method)
    note = f" with your note: {feedback.strip()}" if feedback.strip() else ""
    return Reply(f"Queued #{retried.id} again{note}.", buttons=task_buttons(retried),
                 task_id=retried.id)


@command("why", "/why <id>", "the reasoning and decisions behind a task")
async def why(ctx: Context, argument: str) -> Reply:
    found = await _task(ctx, argument)
    trail = await ctx.services.events.latest(found.id, limit=WHY_EVENTS)
    if not trail:
        return Reply(f"#{found.id} has no recorded steps yet.", task_id=found.id)
    text = "\n".join(describe_event(e) for e in trail)
    return Reply(f"Why #{found.id} {found.title}:", code=[Code(text)], task_id=found.id)


def describe_event(event: TaskEvent) -> str:
    data = event.data or {}
    detail = data.get("text") or data.get("summary") or data.get("reason") or data.get("error")
    when = event.created_at.strftime("%H:%M:%S") if event.created_at else ""
    kind = event.kind.replace("_", " ")
    return f"{when} {kind}" + (f": {str(detail)[:300]}" if detail else "")


async def _task(ctx: Context, argument: str) -> Task:
    found = await ctx.services.tasks.get(task_id_of(argument))
    if found is None:
        raise UserError(f"There is no task #{task_id_of(argument)}.")
    return found
