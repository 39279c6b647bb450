"""`/ask`: answers from the current project's knowledge, naming each source."""

from __future__ import annotations

from lugh.commands.projects import current_project
from lugh.commands.registry import Context, command
from lugh.commands.reply import Reply
from lugh.knowledge.ask import cite


@command("ask", "/ask <question>", "answer from the project's knowledge, citing sources")
async def ask(ctx: Context, argument: str) -> Reply:
    if not argument:
        return Reply.refused("Ask a question: /ask <question>, e.g. /ask how do we deploy?")
    project = await current_project(ctx)
    answer = await ctx.services.knowledge.answer(project.name, argument)
    if not answer.passages:
        return Reply(f"The knowledge of {project.name} has nothing on that yet; "
                     "send me documents to learn from.")
    if not answer.from_model:  # the passages themselves, each already under its source
        return Reply(answer.text)
    sources = "\n".join(f"[{n}] {cite(hit)}" for n, hit in enumerate(answer.passages, 1))
    return Reply(f"{answer.text}\n\nSources:\n{sources}")
