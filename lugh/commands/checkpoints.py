"""`/checkpoint`, `/checkpoints`, `/restore`: save the current project's state and go back to it.

A restore is always shown first (what it would change) and done only once the owner confirms
with the button, which answers a stored proposal (intents.propose) bound to this session.
"""

from __future__ import annotations

from lugh.checkpoints.model import Checkpoint, human_size
from lugh.commands.intents import propose
from lugh.commands.projects import current_project
from lugh.commands.registry import Context, command
from lugh.commands.reply import Button, Reply
from lugh.errors import UserError

LISTED = 15
WITH_BUTTONS = 5
CHECKPOINTS_USAGE = "/checkpoints · /checkpoints delete <id> · /checkpoints clean"


@command("checkpoint", "/checkpoint [label]", "save the current project's whole state",
         changes_state=True)  # fmt: skip
async def checkpoint(ctx: Context, argument: str) -> Reply:
    project = await current_project(ctx)
    made = await ctx.services.checkpoints.create(project, label=argument or None)
    return Reply(
        f"Saved checkpoint {made.shown()} of {project.name} ({human_size(made.size_bytes)}); "
        f"/restore {made.id} goes back to it."
    )


@command("checkpoints", CHECKPOINTS_USAGE, "list the checkpoints, with size and age")
async def checkpoints(ctx: Context, argument: str) -> Reply:
    words = argument.split()
    if words[:1] == ["delete"] and len(words) == 2:
        found = await ctx.services.checkpoints.get(_checkpoint_id(words[1]))
        reply = await propose(ctx, "checkpoint_delete", str(found.id))
        reply.text = f"Delete checkpoint {found.shown()} of {found.project}, {found.age()} old?"
        return reply
    if words == ["clean"]:
        reply = await propose(ctx, "checkpoint_clean", "")
        reply.text = "Delete the checkpoints past their retention, and leftovers of crashed saves?"
        return reply
    if words:
        return Reply.refused(f"Usage: {CHECKPOINTS_USAGE}")
    try:
        project = (await current_project(ctx)).name
    except UserError:
        project = None
    found = await ctx.services.checkpoints.list(project)
    if not found:
        where = f" of {project}" if project else ""
        return Reply(f"There are no checkpoints{where} yet; /checkpoint [label] saves one.")
    lines = [_line(c, with_project=project is None) for c in found[:LISTED]]
    if len(found) > LISTED:
        lines.append(f"… and {len(found) - LISTED} older")
    buttons = [[Button(f"Restore #{c.id}", "restore", str(c.id))] for c in found[:WITH_BUTTONS]]
    title = f"Checkpoints of {project}" if project else "Checkpoints"
    return Reply(f"{title} (newest first):\n" + "\n".join(lines), buttons=buttons)


@command("restore", "/restore <id>", "show what going back to a checkpoint changes, then do it")
async def restore(ctx: Context, argument: str) -> Reply:
    if not argument:
        return Reply.refused("Usage: /restore <id>; /checkpoints lists them.")
    checkpoint_id = _checkpoint_id(argument)
    await ctx.services.checkpoints.verify(checkpoint_id)
    plan = await ctx.services.checkpoints.preview_restore(checkpoint_id)
    if plan.problem:
        return Reply.refused(plan.problem)
    reply = await propose(ctx, "restore_confirmed", str(checkpoint_id))
    reply.text = plan.text() + "\nRestore it?"
    return reply


@command("restore_confirmed", "/restore_confirmed <id>", "restore a checkpoint (confirmed)",
         changes_state=True, listed=False)  # fmt: skip
async def restore_confirmed(ctx: Context, argument: str) -> Reply:
    report = await ctx.services.checkpoints.restore(_checkpoint_id(argument))
    return Reply(report.text())


@command("checkpoint_delete", "/checkpoint_delete <id>", "delete a checkpoint (confirmed)",
         changes_state=True, listed=False)  # fmt: skip
async def checkpoint_delete(ctx: Context, argument: str) -> Reply:
    deleted = await ctx.services.checkpoints.delete(_checkpoint_id(argument))
    return Reply(f"Deleted checkpoint {deleted.shown()} of {deleted.project}.")


@command("checkpoint_clean", "/checkpoint_clean", "apply checkpoint retention (confirmed)",
         changes_state=True, listed=False)  # fmt: skip
async def checkpoint_clean(ctx: Context, argument: str) -> Reply:
    report = await ctx.services.checkpoints.clean()
    return Reply(
        f"Deleted {len(report.deleted)} checkpoint(s) past their retention and "
        f"{len(report.orphans)} leftover(s)."
    )


def _checkpoint_id(argument: str) -> int:
    text = argument.strip().lstrip("#")
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise UserError("Give a checkpoint's number, e.g. /restore 12; /checkpoints lists them.")
    return int(text)


def _line(c: Checkpoint, *, with_project: bool) -> str:
    where = f"{c.project} " if with_project else ""
    return f"{where}{c.shown()} — {human_size(c.size_bytes)}, {c.age()} ago"
