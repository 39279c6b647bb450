"""The MCP tools: parse, call one service, render. Their docstrings are what the model reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from lugh.commands.tasks import STATUS_EVENTS, TITLE_CHARS
from lugh.errors import UserError
from lugh.mcp.audit import Audit
from lugh.mcp.render import agent_json, event_json, ingest_json, project_json, task_json
from lugh.services import Services
from lugh.tasks import TaskNotFound, TaskStatus
from lugh.tasks.view import task_view

TaskId = Annotated[int, Field(ge=1, le=2**31 - 1, description="The task's number, e.g. 12.")]
ProjectName = Annotated[str, Field(min_length=1, max_length=200, description="A project's name.")]
Status = Literal[
    "queued", "running", "awaiting_review", "done", "rejected", "failed", "cancelled", "open"
]
OPEN = [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.AWAITING_REVIEW]
INBOX = "inbox"  # <data_dir>/inbox/<project>: files dropped there may be ingested


def register_tools(server: MCPServer[Any], services: Services, audit: Audit) -> None:
    """Add Lugh's tools to `server`."""

    @server.tool()
    async def list_projects(ctx: Context) -> dict[str, Any]:
        """List the projects (git repositories) Lugh works on, with their default branches."""
        async with audit.call(ctx, "list_projects", {}):
            return {"projects": [project_json(p) for p in await services.projects.list()]}

    @server.tool()
    async def create_project(
        name: ProjectName,
        repo: Annotated[str, Field(min_length=1, max_length=2000, description=(
            "A path to a git work tree on the Lugh machine, or a git URL (https://, ssh, "
            "file://) for Lugh to clone."))],
        ctx: Context,
    ) -> dict[str, Any]:
        """Register a project: a local git repository used in place, or a git URL Lugh clones."""
        arguments = {"name": name, "repo": repo}
        async with audit.call(ctx, "create_project", arguments, writes=True) as call:
            project = await services.projects.register(name, repo)
            call.made("project", project.name)
            return project_json(project)

    @server.tool()
    async def spawn_agent(
        project: ProjectName,
        name: Annotated[str, Field(min_length=1, max_length=64, description="The agent's name.")],
        ctx: Context,
        role: Annotated[str | None, Field(max_length=64, description=(
            "engineer (default), reviewer, researcher, tester, or a short free-text role."
        ))] = None,
        model: Annotated[str | None, Field(max_length=200, description=(
            "The model it runs on; omitted, the configured default."))] = None,
    ) -> dict[str, Any]:
        """Create an agent in a project; tasks can then be assigned to it by name."""
        arguments = {"project": project, "name": name, "role": role, "model": model}
        async with audit.call(ctx, "spawn_agent", arguments, writes=True) as call:
            agent = await services.agents.spawn(project, name, role, model)
            call.made("agent", agent.id)
            return agent_json(agent)

    @server.tool()
    async def assign_task(
        project: ProjectName,
        title: Annotated[str, Field(min_length=1, max_length=TITLE_CHARS, description=(
            "What to do, in one line."))],
        ctx: Context,
        description: Annotated[str | None, Field(max_length=20_000, description=(
            "Details, acceptance criteria, context."))] = None,
        agent: Annotated[str | None, Field(max_length=64, description=(
            "The agent's name; omitted, the project's default engineer."))] = None,
        priority: Annotated[int, Field(ge=-100, le=100, description=(
            "Higher runs first; 0 is normal."))] = 0,
    ) -> dict[str, Any]:
        """Queue a task in a project for an agent. It runs in its own git worktree and comes
        back for review (see get_task, approve_task, reject_task)."""
        arguments = {"project": project, "title": title, "description": description,
                     "agent": agent, "priority": priority}  # fmt: skip
        async with audit.call(ctx, "assign_task", arguments, writes=True) as call:
            if not title.strip():
                raise UserError("Give the task a title saying what to do.")
            found = await services.projects.get(project)
            assignee = await services.agents.assignee(project, agent)
            body = f"{title}\n\n{description}" if description else title
            task = await services.tasks.enqueue(
                found.id, title.strip(), body, agent_id=assignee.id, priority=priority,
                source="mcp",
            )  # fmt: skip
            call.task_id = task.id
            call.made("task", task.id)
            return task_json(task, project) | {"agent": assignee.name}

    @server.tool()
    async def get_task(task_id: TaskId, ctx: Context) -> dict[str, Any]:
        """One task: its state, agent, attempts, last events, and the diff summary when it is
        awaiting review."""
        async with audit.call(ctx, "get_task", {"task_id": task_id}):
            view = await task_view(services.pool, task_id, events=STATUS_EVENTS)
            if view is None:
                raise TaskNotFound(task_id)
            shown = task_json(view.task, view.project)
            if view.agent is not None:
                shown["agent"] = view.agent
            shown["events"] = [event_json(e) for e in view.events]
            if view.task.status == TaskStatus.AWAITING_REVIEW and view.review is not None:
                diff = view.review.diff
                shown["diff"] = {
                    "summary": diff.get("summary"),
                    "files": [
                        {"path": f["path"], "status": f["status"], "added": f["added"],
                         "deleted": f["deleted"]}
                        for f in diff.get("files", [])[:50]
                    ],
                }  # fmt: skip
            return shown

    @server.tool()
    async def list_tasks(
        ctx: Context,
        project: Annotated[str | None, Field(max_length=200, description=(
            "Only this project's tasks."))] = None,
        status: Annotated[Status, Field(description=(
            "'open' (queued, running or awaiting review) or one state."))] = "open",
        limit: Annotated[int, Field(ge=1, le=200)] = 30,
    ) -> dict[str, Any]:
        """Tasks newest first, by project and state."""
        arguments = {"project": project, "status": status, "limit": limit}
        async with audit.call(ctx, "list_tasks", arguments):
            project_id = (await services.projects.get(project)).id if project else None
            statuses = OPEN if status == "open" else [TaskStatus(status)]
            tasks = await services.tasks.list(project_id=project_id, status=statuses, limit=limit)
            names = {p.id: p.name for p in await services.projects.list()}
            return {"tasks": [task_json(t, names.get(t.project_id)) for t in tasks]}

    @server.tool()
    async def cancel_task(
        task_id: TaskId,
        ctx: Context,
        reason: Annotated[str | None, Field(max_length=500)] = None,
    ) -> dict[str, Any]:
        """Cancel a queued, running or in-review task; a running one stops within seconds."""
        arguments = {"task_id": task_id, "reason": reason}
        async with audit.call(ctx, "cancel_task", arguments, writes=True, task_id=task_id) as call:
            reason = reason or f"by {call.caller.who} (mcp)"
            task = await services.tasks.cancel(task_id, reason=reason)
            return task_json(task)

    @server.tool()
    async def approve_task(task_id: TaskId, ctx: Context) -> dict[str, Any]:
        """Approve a task awaiting review: merge its work into the project's default branch.
        A conflict leaves it in review (merged: false, with the message). A task waiting on a
        proposed plan or a high-risk step gets that approved instead (answered: plan|step)."""
        async with audit.call(ctx, "approve_task", {"task_id": task_id}, writes=True,
                              task_id=task_id):  # fmt: skip
            answered = await _answer_gate(services, task_id, approve=True)
            if answered is not None:
                return answered
            outcome = await services.review.approve(task_id, "mcp")
            return {"id": task_id, "merged": outcome.merged, "message": outcome.message,
                    "commit": outcome.commit, "conflicts": list(outcome.conflicts)}  # fmt: skip

    @server.tool()
    async def reject_task(task_id: TaskId, ctx: Context) -> dict[str, Any]:
        """Reject a task awaiting review: its branch and worktree are deleted, nothing merged.
        A task waiting on a proposed plan is closed; one waiting on a high-risk step goes on
        without that step (answered: plan|step)."""
        async with audit.call(ctx, "reject_task", {"task_id": task_id}, writes=True,
                              task_id=task_id):  # fmt: skip
            answered = await _answer_gate(services, task_id, approve=False)
            if answered is not None:
                return answered
            return task_json(await services.review.reject(task_id, "mcp"))

    @server.tool()
    async def query_knowledge(
        query: Annotated[str, Field(min_length=1, max_length=2000, description=(
            "What to look for."))],
        project: ProjectName,
        ctx: Context,
        k: Annotated[int, Field(ge=1, le=50, description="How many passages.")] = 5,
    ) -> dict[str, Any]:
        """Search a project's knowledge (its code, documents and notes): the best passages, each
        with its source, location and score."""
        async with audit.call(ctx, "query_knowledge", {"query": query, "project": project, "k": k}):
            # An unknown project is the search's own one-sentence error: no query spent on it.
            return await services.knowledge.query_knowledge(query, project, k)

    @server.tool()
    async def ingest(
        project: ProjectName,
        ctx: Context,
        text: Annotated[str | None, Field(max_length=500_000, description=(
            "A note or document to add, as text."))] = None,
        title: Annotated[str | None, Field(max_length=200, description="The note's title.")] = None,
        path: Annotated[str | None, Field(max_length=4000, description=(
            "A file or folder on the Lugh machine, inside the project's repository or "
            "<data dir>/inbox/<project>."))] = None,
    ) -> dict[str, Any]:
        """Add a note (text) or a file or folder (path) to a project's knowledge, so
        query_knowledge and the agents find it."""
        arguments = {"project": project, "title": title, "path": path,
                     "text": text}  # fmt: skip
        async with audit.call(ctx, "ingest", arguments, writes=True):
            if (text is None) == (path is None):
                raise UserError("Give either text or a path to ingest, not both and not neither.")
            found = await services.projects.get(project)
            if text is not None:
                if not text.strip():
                    raise UserError("The text to ingest is empty.")
                result = await services.knowledge.ingest_text(project, text, title=title)
            else:
                inbox = services.data_dir / INBOX / found.name
                target = allowed_path(path or "", [found.repo_path, inbox])
                result = await services.knowledge.ingest_paths(project, [target])
            return ingest_json(result)

    register_checkpoint_tools(server, services, audit)


CheckpointId = Annotated[int, Field(ge=1, le=2**63 - 1, description="The checkpoint's number.")]


def register_checkpoint_tools(server: MCPServer[Any], services: Services, audit: Audit) -> None:
    """Checkpoints: save a project's whole state, list the saved ones, go back to one."""
    checkpoints = services.checkpoints

    def shown(c: Any) -> dict[str, Any]:
        return {"id": c.id, "project": c.project, "kind": c.kind, "label": c.label,
                "size_bytes": c.size_bytes, "created_at": c.created_at.isoformat()}  # fmt: skip

    @server.tool()
    async def create_checkpoint(
        project: ProjectName,
        ctx: Context,
        label: Annotated[str | None, Field(max_length=200, description="A name for it.")] = None,
    ) -> dict[str, Any]:
        """Save a checkpoint of a project now: its branches, running work, tasks, knowledge and
        memories, to restore later with restore_checkpoint."""
        async with audit.call(ctx, "create_checkpoint", {"project": project, "label": label},
                              writes=True):  # fmt: skip
            return shown(await checkpoints.create(project, label=label))

    @server.tool()
    async def list_checkpoints(
        ctx: Context,
        project: Annotated[str | None, Field(max_length=200, description=(
            "Only this project's; omitted, every project's."))] = None,
    ) -> dict[str, Any]:
        """The saved checkpoints, newest first, with kind, label, size and time."""
        async with audit.call(ctx, "list_checkpoints", {"project": project}):
            return {"checkpoints": [shown(c) for c in await checkpoints.list(project)]}

    @server.tool()
    async def restore_checkpoint(
        checkpoint_id: CheckpointId,
        ctx: Context,
        confirm: Annotated[bool, Field(description=(
            "false: only say what would change; true: restore."))] = False,
    ) -> dict[str, Any]:
        """Go back to a checkpoint. Call first without confirm to see what would change (tasks,
        branches, documents, memories), then with confirm=true to restore it."""
        arguments = {"checkpoint_id": checkpoint_id, "confirm": confirm}
        async with audit.call(ctx, "restore_checkpoint", arguments, writes=confirm):
            await checkpoints.verify(checkpoint_id)
            plan = await checkpoints.preview_restore(checkpoint_id)
            if not confirm or plan.problem:
                return {"restored": False, "plan": plan.text(), "problem": plan.problem}
            report = await checkpoints.restore(checkpoint_id)
            return {"restored": True, "message": report.text(), "requeued": report.requeued,
                    "pre_checkpoint_id": report.pre_checkpoint_id}  # fmt: skip


def allowed_path(given: str, roots: list[Path]) -> Path:
    """`given` resolved (symlinks followed), if it lies under one of `roots`."""
    if "\x00" in given or not given.strip():
        raise UserError("Give the path of a file or folder to ingest.")
    try:
        path = Path(given).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        raise UserError(f"{given[:200]!r} is not a usable path.") from None
    for root in roots:
        if path.is_relative_to(root.resolve()):
            return path
    shown = " or ".join(str(r) for r in roots)
    raise ToolError(f"Lugh only ingests files inside {shown}; copy the file there and call again.")


async def _answer_gate(
    services: Services, task_id: int, *, approve: bool
) -> dict[str, Any] | None:
    """A task waiting on a plan or a high-risk step is answered there (approve: the agent goes
    on with it; reject: a plan closes the task, a step is skipped); None when it waits for a
    review, which approve_task merges and reject_task discards."""
    pending = await services.approvals.pending(task_id)
    if pending is None:
        return None
    answer = services.approvals.approve if approve else services.approvals.reject
    task = await answer(task_id, "mcp")
    return {**task_json(task), "merged": False, "answered": pending.kind,
            "approved": approve}  # fmt: skip
