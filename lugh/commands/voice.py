"""What a transcribed voice note does: the same intent path as typed text, recorded in
`voice_commands`; a note heard with low confidence is always shown back with a confirm button,
even for a read-only request, since acting on a misheard word is worse than one more tap."""

from __future__ import annotations

import dataclasses

from lugh.commands.intents import Chooser, choose, interpret, propose
from lugh.commands.registry import Context, command, execute
from lugh.commands.reply import Button, Reply
from lugh.db import queries

Q = queries.load(__file__, "voice")
_PROPOSAL_ACTIONS = {"confirm", "dismiss"}


async def received(
    ctx: Context, chat_id: int, message_id: int, file_id: str, duration_s: float | None
) -> int | None:
    """The note's row; None when this message was handled before (a replayed update)."""
    return await ctx.services.pool.fetchval(
        Q.received, chat_id, message_id, file_id, duration_s, ctx.session.id
    )


async def failed(ctx: Context, voice_id: int, error: str) -> None:
    await ctx.services.pool.execute(Q.failed, voice_id, error[:500])


async def act_on(
    ctx: Context, voice_id: int, transcript: str, confidence: float, *,
    min_confidence: float, chooser: Chooser | None,
) -> Reply:
    """Run, or propose, what the transcript asks for; `ctx` has source "voice"."""
    await ctx.services.pool.execute(Q.transcribed, voice_id, transcript, confidence)
    if confidence >= min_confidence:
        reply = await interpret(ctx, transcript, chooser)
    else:
        reply = await _propose_anyway(ctx, transcript, chooser)
    if reply.approval_id is not None and _is_proposal(reply):
        await ctx.services.pool.execute(Q.waiting, voice_id, reply.approval_id)
        ref = str(voice_id)
        # Only these buttons answer it (not a reaction bound to the proposal), so that the task
        # is recorded as the voice note's, with source "voice".
        reply = dataclasses.replace(reply, approval_id=None, buttons=[[
            Button("Yes, do it", "voice_confirm", ref), Button("No", "voice_reject", ref),
        ]])  # fmt: skip
    elif reply.ok:
        await ctx.services.pool.execute(Q.acted, voice_id, reply.task_id)
    return reply


async def _propose_anyway(ctx: Context, transcript: str, chooser: Chooser | None) -> Reply:
    chosen = await choose(transcript, chooser)
    if isinstance(chosen, Reply):
        return chosen
    return await propose(ctx, *chosen)


def _is_proposal(reply: Reply) -> bool:
    actions = {b.action for row in reply.buttons for b in row}
    return bool(actions) and actions <= _PROPOSAL_ACTIONS


@command("voice_confirm", "/voice_confirm <voice>", "do what a voice note asked",
         changes_state=True, listed=False)  # fmt: skip
async def voice_confirm(ctx: Context, argument: str) -> Reply:
    voice_id, approval = await _answer(ctx, argument, "confirmed")
    if approval is None:
        return Reply.refused("That voice note was already answered; nothing was done.")
    reply = await execute(dataclasses.replace(ctx, source="voice"), "confirm", str(approval))
    if not reply.ok:
        await failed(ctx, voice_id, reply.text)
    elif reply.task_id is not None:
        await ctx.services.pool.execute(Q.task_made, voice_id, reply.task_id)
    return reply


@command("voice_reject", "/voice_reject <voice>", "drop what a voice note asked",
         changes_state=True, listed=False)  # fmt: skip
async def voice_reject(ctx: Context, argument: str) -> Reply:
    _, approval = await _answer(ctx, argument, "rejected")
    if approval is None:
        return Reply.refused("That voice note was already answered.")
    return await execute(ctx, "dismiss", str(approval))


async def _answer(ctx: Context, argument: str, status: str) -> tuple[int, int | None]:
    if not argument.strip().isdigit():
        return 0, None
    voice_id = int(argument)
    approval = await ctx.services.pool.fetchval(Q.answer, voice_id, ctx.session.id, status)
    return voice_id, approval
