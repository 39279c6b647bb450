"""Dry runs and the risk gate: the owner approves a plan before anything is written, and (when
a project asks for it) each high-risk call before it runs.

While it waits, a task is `awaiting_review` with one pending approval of kind `plan` or `step`
(the review of finished work is kind `review`, answered by ReviewService). The state machine
has no separate waiting state, and awaiting_review already means what the owner sees: Lugh
waits for an answer, holds no worker slot, and keeps the worktree. The approval is a row, so
the wait survives any restart; the answer queues the task again and its run goes on from its
saved conversation: with the approved plan in a new run, or at the very call that waited.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from lugh.agents.tools import Arg, Risk, ToolSpec
from lugh.agents.worktrees import WorktreeManager
from lugh.db import queries
from lugh.errors import NotFound, UserError
from lugh.git import GitError
from lugh.logs import get_logger
from lugh.projects import Project, ProjectService
from lugh.tasks import Task

Q = queries.load(__file__, "plan")
log = get_logger("lugh.agents.plan")

METHODS = frozenset({"button", "reaction", "voice", "command", "mcp"})
RISKS = ("low", "medium", "high")

PROPOSE_PLAN = ToolSpec(
    "propose_plan",
    "Propose your plan to the owner and end this exploration. Nothing is written until the "
    "owner approves; then you carry the plan out in a new run.",
    {
        "summary": Arg("string", "What you will do and why, in a few sentences", True),
        "files": Arg("strings", "The files you expect to create or change", True),
        "commands": Arg("strings", "The commands you expect to run (tests, builds …)", True),
        "risk": Arg("enum", "How risky the change is for the project", True, choices=RISKS),
        "estimated_steps": Arg(
            "integer", "About how many tool calls the work will take", True, minimum=1
        ),
    },
    Risk.READ_ONLY,
)
PLAN_TOOLS = ("read_file", "list_files", "search_code", "query_knowledge", "propose_plan")
PLAN_INSTRUCTIONS = (
    "This is a dry run: explore the code read-only, then call propose_plan. You cannot write "
    "files or run commands yet; the owner approves the plan first."
)


def wants_plan(task: Task, project: Project) -> bool:
    """A plan first: asked by the task (`plan: true`) or the project (`plan_first: true`)."""
    asked = task.options.get("plan")
    return bool(project.settings.get("plan_first")) if asked is None else bool(asked)


def needs_step_approval(project: Project) -> bool:
    return bool(project.settings.get("approve_high_risk"))


def plan_payload(plan: dict[str, Any], cost_per_step_usd: float, spent_usd: float) -> dict:
    """The plan as the owner sees it, with Lugh's own cost estimate: the steps the agent
    expects, at what a step of its exploration cost."""
    steps = int(plan.get("estimated_steps") or 0)
    return {
        "summary": plan.get("summary", ""),
        "files": list(plan.get("files") or []),
        "commands": list(plan.get("commands") or []),
        "risk": plan.get("risk", "unknown"),
        "estimated_steps": steps or None,
        "estimated_cost_usd": round(steps * cost_per_step_usd, 4) if steps else None,
        "exploration_cost_usd": round(spent_usd, 4),
    }


def render_plan(plan: dict[str, Any]) -> str:
    """The approved plan, for the first message of the run that carries it out."""
    lines = [f"The owner approved this plan; carry it out.\n\n{plan.get('summary', '')}"]
    if plan.get("files"):
        lines.append("Files: " + ", ".join(plan["files"]))
    if plan.get("commands"):
        lines.append("Commands: " + "; ".join(plan["commands"]))
    return "\n".join(lines)


@dataclass(frozen=True)
class PendingApproval:
    id: int
    task_id: int
    kind: str  # plan | step
    payload: dict[str, Any]


class Approvals:
    """The owner's answers to plans and high-risk steps; what the transports call for an
    approval of kind plan or step (ReviewService answers kind review)."""

    def __init__(
        self, pool: asyncpg.Pool, projects: ProjectService, worktrees: WorktreeManager
    ) -> None:
        self.pool = pool
        self.projects = projects
        self.worktrees = worktrees

    async def park(self, task: Task, kind: str, payload: dict[str, Any], reason: str) -> int:
        """Move the running task to awaiting_review with a pending approval; its id. Raises
        UserError when the task is no longer this lease's."""
        row = await self.pool.fetchrow(
            Q.park, task.id, task.lease_token, kind, json.dumps(payload), reason
        )
        if row is None:
            raise UserError(f"Task #{task.id} is no longer running under this lease.")
        return row["approval_id"]

    async def pending(self, task_id: int) -> PendingApproval | None:
        row = await self.pool.fetchrow(Q.pending, task_id)
        if row is None:
            return None
        return PendingApproval(row["id"], task_id, row["kind"], _json(row["payload"]))

    async def approved_plan(self, task_id: int) -> dict[str, Any] | None:
        row = await self.pool.fetchrow(Q.approved_plan, task_id)
        return None if row is None else _json(row["payload"])

    async def approve(self, task_id: int, method: str) -> Task:
        """Approve the task's pending plan or step; the task is queued to carry on."""
        approval = await self._open(task_id, method)
        return await self._answer(approval, "approved", "queued", method)

    async def reject(self, task_id: int, method: str) -> Task:
        """Decline it: a declined plan rejects the task (its worktree and branch are deleted);
        a declined step lets the run go on, told that the call was not allowed."""
        approval = await self._open(task_id, method)
        if approval.kind == "step":
            return await self._answer(approval, "rejected", "queued", method)
        task = await self._answer(approval, "rejected", "rejected", method)
        await self._discard(task)
        return task

    async def _open(self, task_id: int, method: str) -> PendingApproval:
        if method not in METHODS:
            raise ValueError(f"the approval method must be one of {sorted(METHODS)}")
        approval = await self.pending(task_id)
        if approval is None:
            if not await self.pool.fetchval(Q.task_exists, task_id):
                raise NotFound(f"There is no task #{task_id}.")
            raise UserError(f"Task #{task_id} is not waiting for a plan or step approval.")
        return approval

    async def _answer(
        self, approval: PendingApproval, answer: str, status: str, method: str
    ) -> Task:
        reason = f"{approval.kind} {answer}"
        row = await self.pool.fetchrow(
            Q.answer, approval.task_id, approval.id, answer, method, status, reason
        )
        if row is None:
            raise UserError(
                f"Task #{approval.task_id} is no longer waiting for that answer; nothing changed."
            )
        return Task.from_row(row)

    async def _discard(self, task: Task) -> None:
        row = await self.pool.fetchrow(Q.task_project, task.id)
        project = await self.projects.get(row["project"])
        wt = self.worktrees.recorded(project, Task.from_row(row))
        if wt is None:
            return
        try:
            await self.worktrees.remove(wt, delete_branch=True)
        except GitError as exc:
            log.warning("worktree left for prune", task=task.id, error=str(exc))


class StepApprovals:
    """The risk gate of a project with `approve_high_risk`: commands (and anything that can
    reach the network) wait for the owner's answer."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    def required(self, risk: Risk) -> bool:
        return risk.high

    async def decision(self, task_id: int, tool_use_id: str) -> str | None:
        return await self.pool.fetchval(Q.step_decision, task_id, tool_use_id)


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)

