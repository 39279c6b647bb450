"""`/start` and `/help`: a greeting and the list of commands."""

from __future__ import annotations

from lugh.commands.registry import COMMANDS, Context, command
from lugh.commands.reply import Reply

GREETING = (
    "Hi, I'm Lugh, your engineering team. Tell me what to build (/task …, or just say it), "
    "and I'll have an agent do it in its own branch, show you the diff, and merge what you "
    "approve."
)


@command("help", "/help", "list the commands")
async def help_(ctx: Context, argument: str) -> Reply:
    listed = sorted((c for c in COMMANDS.values() if c.listed), key=lambda c: c.name)
    lines = [f"{c.usage} — {c.summary}" for c in listed]
    return Reply("Commands:\n" + "\n".join(lines))


@command("start", "/start", "greet, and list the commands")
async def start(ctx: Context, argument: str) -> Reply:
    listed = await help_(ctx, "")
    return Reply(f"{GREETING}\n\n{listed.text}")
