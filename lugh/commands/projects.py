"""`/project`, `/agents`, `/spawn`: which repositories Lugh works on, and who works on them."""

from __future__ import annotations

import shlex

from lugh.commands.registry import Context, command
from lugh.commands.reply import Button, Reply
from lugh.errors import UserError
from lugh.projects import Project
from lugh.projects.roles import DEFAULT_ROLE

PROJECT_USAGE = "/project · /project new <name> <repo-path-or-url> · /project use <name>"


async def current_project(ctx: Context) -> Project:
    """The session's project; with exactly one project registered, that one."""
    projects = ctx.services.projects
    if ctx.session.project_id is not None:
        for project in await projects.list():
            if project.id == ctx.session.project_id:
                return project
    registered = await projects.list()
    if len(registered) == 1:
        ctx.session = await ctx.services.sessions.use_project(ctx.session.id, registered[0].id)
        return registered[0]
    if not registered:
        raise UserError("There is no project yet; register one with /project new <name> <repo>.")
    raise UserError("Choose a project first: /project use <name> (/project lists them).")


@command("project", PROJECT_USAGE, "list projects, register one, or switch to one",
         changes_state=True)
async def project(ctx: Context, argument: str) -> Reply:
    words = _split(argument)
    if not words:
        return await _list_projects(ctx)
    verb, rest = words[0].lower(), words[1:]
    if verb == "new" and len(rest) == 2:
        registered = await ctx.services.projects.register(rest[0], rest[1])
        ctx.session = await ctx.services.sessions.use_project(ctx.session.id, registered.id)
        await ctx.services.sessions.record_created(ctx.session.id, "project", registered.name)
        return Reply(
            f"Registered project {registered.name} ({registered.repo}, branch "
            f"{registered.default_branch}); it is now your current project."
        )
    if verb == "use" and len(rest) == 1:
        chosen = await ctx.services.projects.get(rest[0])
        ctx.session = await ctx.services.sessions.use_project(ctx.session.id, chosen.id)
        return Reply(f"Now working on {chosen.name}.")
    return Reply.refused(f"Usage: {PROJECT_USAGE}")


async def _list_projects(ctx: Context) -> Reply:
    projects = await ctx.services.projects.list()
    if not projects:
        return Reply("No projects yet. Register one with /project new <name> <repo-path-or-url>.")
    lines = []
    for p in projects:
        marker = "▶ " if p.id == ctx.session.project_id else "  "
        lines.append(f"{marker}{p.name} — {p.repo} ({p.default_branch})")
    buttons = [
        [Button(f"Use {p.name}", "project", f"use {p.name}")]
        for p in projects
        if p.id != ctx.session.project_id
    ]
    return Reply("Projects:\n" + "\n".join(lines), buttons=buttons)


@command("agents", "/agents", "list the agents of the current project")
async def agents(ctx: Context, argument: str) -> Reply:
    current = await current_project(ctx)
    found = await ctx.services.agents.list(current.name)
    if not found:
        return Reply(
            f"{current.name} has no agents yet; tasks get a default engineer, "
            "or spawn one with /spawn <name> [role]."
        )
    lines = [
        f"{a.name} — {a.role}, {a.status}" + (f", model {a.model}" if a.model else "")
        for a in found
    ]
    return Reply(f"Agents of {current.name}:\n" + "\n".join(lines))


@command("spawn", "/spawn <name> [role]", "create an agent in the current project",
         changes_state=True)
async def spawn(ctx: Context, argument: str) -> Reply:
    words = _split(argument)
    if not words:
        return Reply.refused("Usage: /spawn <name> [role], e.g. /spawn reviewer-1 reviewer.")
    current = await current_project(ctx)
    role = " ".join(words[1:]) or DEFAULT_ROLE
    agent = await ctx.services.agents.spawn(current.name, words[0], role)
    await ctx.services.sessions.record_created(ctx.session.id, "agent", agent.id)
    return Reply(f"Spawned {agent.name} ({agent.role}) in {current.name}.")


def _split(argument: str) -> list[str]:
    try:
        return shlex.split(argument)
    except ValueError:
        raise UserError("A quote is not closed in that command; check it and send it again.") from None
