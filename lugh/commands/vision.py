"""Tasks proposed from a photo (`vision_tasks`): the owner accepts one, all, or ignores them
with buttons whose hidden commands live here. Each proposal becomes a task at most once."""

from __future__ import annotations

import json
from collections.abc import Sequence

from lugh.commands.projects import current_project
from lugh.commands.registry import Context, command
from lugh.commands.reply import Button, Reply
from lugh.commands.tasks import TITLE_CHARS, task_buttons
from lugh.db import queries
from lugh.llm.vision import Proposal

Q = queries.load(__file__, "vision")
LABEL_CHARS = 40


async def received(
    ctx: Context, chat_id: int, message_id: int, file_id: str, caption: str | None
) -> int | None:
    """The photo's row; None when this message was handled before (a replayed update)."""
    return await ctx.services.pool.fetchval(
        Q.received, chat_id, message_id, file_id, caption, ctx.session.id
    )


async def failed(ctx: Context, vision_id: int, error: str) -> None:
    await ctx.services.pool.execute(Q.failed, vision_id, error[:500])


async def proposed(ctx: Context, vision_id: int, proposals: Sequence[Proposal]) -> Reply:
    """Store what the model proposed and show it: one button per task, then All and Ignore."""
    await ctx.services.pool.execute(
        Q.proposed, vision_id, json.dumps([p.to_json() for p in proposals])
    )
    if not proposals:
        return Reply("📷 I see no work to do in that photo; add a caption saying what you want.")
    lines = [f"📷 I see {_count(len(proposals))} in that photo:"]
    for n, proposal in enumerate(proposals):
        lines.append(f"{n + 1}. {proposal.title}" + (f" — {proposal.details}" if proposal.details
                                                     else ""))  # fmt: skip
    titles = [p.title for p in proposals]
    return Reply("\n".join(lines), buttons=_choices(vision_id, titles, range(len(titles))))


def _choices(vision_id: int, titles: list[str], open_: Sequence[int]) -> list[list[Button]]:
    """A button per proposal still open, then All (when more than one is) and Ignore."""
    rows = [[Button(f"➕ {_short(f'{n + 1}. {titles[n]}', LABEL_CHARS)}", "vision_accept",
                    f"{vision_id}:{n}")] for n in open_]  # fmt: skip
    last = [Button("Ignore", "vision_ignore", str(vision_id))]
    if len(open_) > 1:
        last.insert(0, Button("All", "vision_accept", f"{vision_id}:all"))
    return [*rows, last]


@command("vision_accept", "/vision_accept <photo>:<n|all>", "create tasks proposed from a photo",
         changes_state=True, listed=False)  # fmt: skip
async def vision_accept(ctx: Context, argument: str) -> Reply:
    ref, _, which = argument.strip().partition(":")
    if not ref.isdigit() or not (which == "all" or which.isdigit()):
        return Reply.refused("That button is not one I made; nothing was done.")
    project = await current_project(ctx)
    agent = await ctx.services.agents.assignee(project.name)
    async with ctx.services.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(Q.lock, int(ref), ctx.session.id)
        if row is None:
            return Reply.refused("Those proposals are gone; nothing was done.")
        if row["status"] not in ("proposed", "accepted"):
            return Reply.refused("Those proposals were already ignored; nothing was done.")
        proposals, accepted = _json(row["proposals"]), dict(_json(row["accepted"]))
        wanted = range(len(proposals)) if which == "all" else [int(which)]
        if any(not 0 <= n < len(proposals) for n in wanted):
            return Reply.refused("That button is not one I made; nothing was done.")
        todo = [n for n in wanted if str(n) not in accepted]
        if not todo:
            made = ", ".join(f"#{accepted[str(n)]}" for n in wanted)
            return Reply.refused(f"Already queued as {made}; nothing new was created.")
        created = []
        for n in todo:
            title = _short(proposals[n]["title"], TITLE_CHARS)
            body = "\n\n".join(p for p in (proposals[n]["title"], proposals[n]["details"]) if p)
            task = await ctx.services.tasks.enqueue(
                project.id, title, body, agent_id=agent.id, source="photo", conn=conn
            )
            accepted[str(n)] = task.id
            created.append(task)
        await conn.execute(Q.accepted, int(ref), json.dumps(accepted))
    for task in created:
        await ctx.services.sessions.record_created(ctx.session.id, "task", task.id)
    lines = [f"Queued #{t.id} in {project.name} for {agent.name}: {t.title}" for t in created]
    # Pressing a button uses up the message's keyboard: the proposals still open come back on
    # the edited message, so they can be taken one by one.
    left = [n for n in range(len(proposals)) if str(n) not in accepted]
    titles = [p["title"] for p in proposals]
    if left:
        lines.append("Still proposed: " + ", ".join(f"{n + 1}. {titles[n]}" for n in left))
        buttons = _choices(int(ref), titles, left)
    else:
        buttons = task_buttons(created[0]) if len(created) == 1 else []
    return Reply("\n".join(lines), buttons=buttons, task_id=created[-1].id)


@command("vision_ignore", "/vision_ignore <photo>", "drop the tasks proposed from a photo",
         changes_state=True, listed=False)  # fmt: skip
async def vision_ignore(ctx: Context, argument: str) -> Reply:
    if not argument.strip().isdigit():
        return Reply.refused("That button is not one I made; nothing was done.")
    accepted = await ctx.services.pool.fetchval(Q.ignore, int(argument), ctx.session.id)
    if accepted is None:
        return Reply.refused("Those proposals were already answered.")
    if _json(accepted):
        return Reply("Fine, nothing more will be created from that photo.")
    return Reply("Fine, nothing was created from that photo.")


def _json(value: object) -> list | dict:
    return json.loads(value) if isinstance(value, str) else value  # type: ignore[return-value]


def _count(n: int) -> str:
    return "one task" if n == 1 else f"{n} tasks"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
