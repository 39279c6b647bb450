"""`/replay` and `/fork`: an agent run as it was at step N, and a new task from step N."""

from __future__ import annotations

from lugh.commands.registry import Context, command
from lugh.commands.reply import Button, Code, Reply
from lugh.commands.tasks import task_buttons, task_id_of
from lugh.errors import UserError
from lugh.replay.render import files_diff, step_text


@command("replay", "/replay <id> [step]", "a task's agent run as it was at a step")
async def replay(ctx: Context, argument: str) -> Reply:
    ref, _, rest = argument.partition(" ")
    task_id = task_id_of(ref)
    shown = await ctx.services.replay.show(task_id, _step(rest) if rest.strip() else None)
    reply = Reply(step_text(shown), task_id=task_id)
    if shown.step is None:
        return reply
    if shown.files.changes:
        reply.code.append(Code(files_diff(shown), "diff"))
    n, row = shown.step.number, []
    if n > 1:
        row.append(Button(f"◀ Step {n - 1}", "replay", f"{task_id} {n - 1}"))
    if n < shown.total:
        row.append(Button(f"Step {n + 1} ▶", "replay", f"{task_id} {n + 1}"))
    row.append(Button("Fork from here", "fork", f"{task_id} {n}"))
    reply.buttons.append(row)
    return reply


@command("fork", "/fork <id> <step> [new instruction]",
         "a new task that starts from a step of a task's run", changes_state=True)
async def fork(ctx: Context, argument: str) -> Reply:
    ref, _, rest = argument.partition(" ")
    step, _, instruction = rest.strip().partition(" ")
    if not step:
        return Reply.refused("Say which step to fork from: /fork <id> <step> [new instruction].")
    made = await ctx.services.replay.fork(
        task_id_of(ref), _step(step), instruction, source=ctx.source  # type: ignore[arg-type]
    )
    await ctx.services.sessions.record_created(ctx.session.id, "task", made.task.id)
    files = ", ".join(made.files) if made.files else "none yet"
    lines = [
        f"Queued #{made.task.id} {made.task.title}, forked from step {made.step} of "
        f"#{made.forked}. Files it starts with: {files}."
    ]
    if made.unknown:
        lines.append(
            "Left as they were before the run (changed in ways the record does not hold): "
            + ", ".join(made.unknown)
        )
    return Reply("\n".join(lines), buttons=task_buttons(made.task), task_id=made.task.id)


def _step(text: str) -> int:
    text = text.strip()
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"Name the step by its number, from 1 (got {text!r}).")
    return int(text)
