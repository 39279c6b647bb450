"""`/diff`, `/approve`, `/reject`: reviewing what an agent did, and merging it."""

from __future__ import annotations

from lugh.agents.review import Diff
from lugh.commands.registry import Context, command
from lugh.commands.reply import Attachment, Button, Code, Reply
from lugh.commands.tasks import task_id_of
from lugh.commands.diff_image import diff_png

PREVIEW_LINES = 40
# A diff longer than this many lines also comes as a highlighted image: easier to read on a
# phone than a long code block, and it needs no download.
IMAGE_LINES = PREVIEW_LINES


async def diff_reply(task_id: int, diff: Diff, *, full: bool = False) -> Reply:
    """`+A −D`, the files changed and the first lines of the diff; a longer diff also as a PNG
    (when a font is there to draw it), and the whole diff as a `.diff` file only when `full` is
    asked (the Diff button, /diff)."""
    files = "\n".join(
        f"{f.status[0].upper()} {f.path} (+{f.added} −{f.deleted}{', binary' if f.binary else ''})"
        for f in diff.files[:20]
    )
    more = f"\n… and {len(diff.files) - 20} more files" if len(diff.files) > 20 else ""
    lines = diff.text.splitlines()
    reply = Reply(f"#{task_id}: {diff.summary}\n{files}{more}", task_id=task_id)
    if lines:
        preview = "\n".join(lines[:PREVIEW_LINES])
        reply.code.append(Code(preview, "diff"))
        if full:
            reply.attachments.append(
                Attachment(f"task-{task_id}.diff", diff.text.encode(), "text/x-diff")
            )
        elif len(lines) > IMAGE_LINES and (png := await diff_png(diff.text)) is not None:
            reply.attachments.append(Attachment(f"task-{task_id}-diff.png", png, "image/png"))
    return reply


@command("diff", "/diff <id>", "what a task changed")
async def diff(ctx: Context, argument: str) -> Reply:
    task_id = task_id_of(argument)
    return await diff_reply(task_id, await ctx.services.review.diff(task_id), full=True)


@command("approve", "/approve <id>", "merge a task's work into the default branch",
         changes_state=True)
async def approve(ctx: Context, argument: str) -> Reply:
    task_id = task_id_of(argument)
    gate = await _answer_gate(ctx, task_id, approve=True)
    if gate is not None:
        return gate
    outcome = await ctx.services.review.approve(task_id, ctx_method(ctx))
    if not outcome.merged:
        return Reply(
            f"#{task_id} could not be merged: {outcome.message}",
            buttons=[[Button("Retry", "retry", str(task_id)), Button("Diff", "diff", str(task_id))]],
            task_id=task_id,
            ok=False,
        )
    return Reply(f"Merged #{task_id}: {outcome.message}", task_id=task_id)


@command("reject", "/reject <id>", "discard a task's work", changes_state=True)
async def reject(ctx: Context, argument: str) -> Reply:
    task_id = task_id_of(argument)
    gate = await _answer_gate(ctx, task_id, approve=False)
    if gate is not None:
        return gate
    task = await ctx.services.review.reject(task_id, ctx_method(ctx))
    return Reply(f"Rejected #{task.id} {task.title}; its branch and worktree are gone.",
                 task_id=task.id)


def ctx_method(ctx: Context) -> str:
    """How the owner answered, as recorded on the approval."""
    if ctx.method is not None:
        return ctx.method
    return "mcp" if ctx.source == "mcp" else "voice" if ctx.source == "voice" else "command"


async def _answer_gate(ctx: Context, task_id: int, *, approve: bool) -> Reply | None:
    """/approve and /reject answer a plan or a high-risk step when the task waits on one (the
    buttons of those notifications run them); None when the task waits for a review instead."""
    approvals = ctx.services.approvals
    pending = await approvals.pending(task_id)
    if pending is None:
        return None
    method = ctx_method(ctx)
    if approve:
        task = await approvals.approve(task_id, method)
        said = ("Plan approved: the agent carries it out" if pending.kind == "plan"
                else "Step allowed: the agent carries on")
    else:
        task = await approvals.reject(task_id, method)
        said = ("Plan rejected: nothing was written, the task is closed" if pending.kind == "plan"
                else "Step refused: the agent carries on without it")
    return Reply(f"{said} (#{task.id} {task.title}).", task_id=task.id)
