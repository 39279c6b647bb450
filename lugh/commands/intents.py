"""Plain language into commands: simple rules first; what changes state is confirmed first."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable

from lugh.commands.registry import COMMANDS, Context, command, execute
from lugh.commands.reply import Button, Reply
from lugh.db import queries
from lugh.errors import UserError

_Q = queries.load(__file__, "proposals")

PROPOSAL_TTL_S = 24 * 3600
NOT_UNDERSTOOD = "I'm not sure what you mean; /help lists what I can do."
# A model that maps free text to (action, argument), e.g. through the choose_action tool.
Chooser = Callable[[str], Awaitable[tuple[str, str] | None]]

_ID = r"#?(\d+)"
RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"^(?:status|state)(?: of)?\s+{_ID}$"), "status"),
    (re.compile(r"^(?:status|what'?s (?:running|going on)|open tasks|tasks)\??$"), "tasks"),
    (re.compile(rf"^(?:approve|merge|ship)(?: it)?\s+{_ID}$"), "approve"),
    (re.compile(rf"^(?:reject|discard|drop)\s+{_ID}$"), "reject"),
    (re.compile(rf"^(?:cancel|stop)\s+{_ID}$"), "cancel"),
    (re.compile(rf"^(?:what changed(?: in)?|diff(?: of)?|show(?: me)?(?: the)? diff(?: of)?)\s+{_ID}\??$"),
     "diff"),
    (re.compile(rf"^why\s+{_ID}\??$"), "why"),
    (re.compile(r"^(?:help|what can you do)\??$"), "help"),
]


def by_rule(text: str) -> tuple[str, str] | None:
    """The command an obvious phrase means ("status", "approve 12", "what changed in #3")."""
    said = " ".join(text.lower().strip().rstrip(".!").split())
    for pattern, action in RULES:
        match = pattern.match(said)
        if match:
            return action, (match.group(1) if match.groups() else "")
    return None


async def interpret(ctx: Context, text: str, chooser: Chooser | None = None) -> Reply:
    """Act on a message that is not a /command: read-only requests run at once, anything that
    changes state is shown back with a confirm button first."""
    chosen = await choose(text, chooser)
    if isinstance(chosen, Reply):
        return chosen
    action, argument = chosen
    if not COMMANDS[action].changes_state:
        return await execute(ctx, action, argument)
    return await propose(ctx, action, argument)


async def choose(text: str, chooser: Chooser | None = None) -> tuple[str, str] | Reply:
    """The command `text` means, by rule, else by the model; or the short reply saying there
    is none (or that the model cannot be asked)."""
    chosen = by_rule(text)
    if chosen is None and chooser is not None:
        try:
            chosen = await chooser(text)
        except UserError as exc:  # the model is down or refused: say so, do nothing
            return Reply.refused(f"{exc} Meanwhile the /commands work; /help lists them.")
        if chosen is None:
            return Reply(NOT_UNDERSTOOD)
    if chosen is None:
        # Without a model to ask, an unrecognised request is most likely work to do.
        chosen = ("task", text.strip())
    if chosen[0] not in COMMANDS:
        return Reply(NOT_UNDERSTOOD)
    return chosen


async def propose(ctx: Context, action: str, argument: str) -> Reply:
    payload = {"action": action, "argument": argument, "session_id": ctx.session.id}
    proposal = await ctx.services.pool.fetchval(
        _Q.propose, json.dumps(payload), PROPOSAL_TTL_S
    )
    shown = f"/{action} {argument}".strip()
    return Reply(
        f"Shall I do this?\n{shown}",
        buttons=[[Button("Yes, do it", "confirm", str(proposal)),
                  Button("No", "dismiss", str(proposal))]],
        approval_id=proposal,
    )


@command("confirm", "/confirm <proposal>", "carry out a proposed action", listed=False)
async def confirm(ctx: Context, argument: str) -> Reply:
    payload = await _answer(ctx, argument, "approved")
    if payload is None:
        return Reply.refused("That proposal was already answered or has expired; nothing was done.")
    return await execute(ctx, payload["action"], payload["argument"])


@command("dismiss", "/dismiss <proposal>", "drop a proposed action", listed=False)
async def dismiss(ctx: Context, argument: str) -> Reply:
    payload = await _answer(ctx, argument, "rejected")
    if payload is None:
        return Reply.refused("That proposal was already answered or has expired.")
    return Reply("Fine, nothing was done.")


async def _answer(ctx: Context, argument: str, status: str) -> dict | None:
    if not argument.strip().isdigit():
        return None
    method = ctx.method or ("voice" if ctx.source == "voice" else "button")
    raw = await ctx.services.pool.fetchval(
        _Q.answer, int(argument), ctx.session.id, status, method
    )
    return None if raw is None else (json.loads(raw) if isinstance(raw, str) else dict(raw))

