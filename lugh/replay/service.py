"""ReplayService: a task's run as it was at step N, and a new task forked from step N.

A fork is a new task on its own branch from the forked task's base commit, with one commit
holding the files as they were when step N began (rebuilt as `lugh.replay.files` says), and an
open agent run holding the conversation up to step N. The worker that claims it goes on from
there exactly as it goes on with a run resumed after a restart: the model is asked for step N
again, with the edited instruction in place of the old one when one is given.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from lugh.agents.executor import task_text
from lugh.agents.worktrees import WorktreeManager, branch_name
from lugh.db import queries
from lugh.errors import NotFound, UserError
from lugh.git import GitError
from lugh.llm import Message
from lugh.logs import get_logger
from lugh.projects import ProjectService
from lugh.replay.branch import base_reader, delete_branch, make_branch
from lugh.replay.files import FileState, files_after
from lugh.replay.steps import Step, task_steps
from lugh.tasks import Task, TaskQueue
from lugh.tasks.model import TaskSource

Q = queries.load(__file__, "replay")
log = get_logger("lugh.replay")

TITLE_CHARS = 120


@dataclass(frozen=True)
class Replay:
    """One step of a task's runs, and the files as that step left them."""

    task: Task
    project: str
    steps: list[Step]  # every step recorded
    step: Step | None  # the one shown; None: no step recorded yet
    files: FileState

    @property
    def total(self) -> int:
        return len(self.steps)


@dataclass(frozen=True)
class Fork:
    task: Task  # the new task, queued
    forked: int  # the task it was forked from
    step: int
    files: list[str]  # the files carried over, as they were when the step began
    unknown: list[str]  # files changed in ways the record does not hold (left as at the base)


class ReplayService:
    """Shows recorded agent runs step by step and forks new tasks from any step."""

    def __init__(
        self, pool: asyncpg.Pool, projects: ProjectService, tasks: TaskQueue,
        worktrees: WorktreeManager,
    ) -> None:  # fmt: skip
        self.pool = pool
        self.projects = projects
        self.tasks = tasks
        self.worktrees = worktrees

    async def show(self, task_id: int, step: int | None = None) -> Replay:
        """Step `step` (the last one when None) of the task's runs."""
        task, project, runs, steps = await self._load(task_id)
        if not steps:
            return Replay(task, project, [], None, FileState())
        chosen = _chosen(task_id, steps, step)
        files = await self._files(task, project, steps[: chosen.number])
        return Replay(task, project, steps, chosen, files)

    async def steps(self, task_id: int) -> list[Step]:
        return (await self._load(task_id))[3]

    async def fork(
        self, task_id: int, step: int, instruction: str = "", *, source: TaskSource = "cli"
    ) -> Fork:
        """Queue a new task that starts from step `step` of this one, optionally told
        `instruction` instead of the original task."""
        task, project_name, runs, steps = await self._load(task_id)
        if not steps:
            raise UserError(f"Task #{task_id} has no recorded steps to fork from.")
        chosen = _chosen(task_id, steps, step)
        if task.base_commit is None:
            raise UserError(f"Task #{task_id} never had a worktree, so it cannot be forked.")
        project = await self.projects.get(project_name)
        files = await self._files(task, project_name, steps[: chosen.number - 1])
        if files.unavailable:
            raise UserError(f"Task #{task_id} cannot be forked. {files.unavailable}")
        run = runs[chosen.run_id]
        instruction = instruction.strip()
        title, body = _title(instruction) if instruction else (task.title, task.body)
        options = {**task.options, "forked_from": {"task": task.id, "step": chosen.number}}
        repo, base = project.repo_path, task.base_commit
        async with self.pool.acquire() as conn, conn.transaction():
            made = await self.tasks.enqueue(
                project.id, title, body, agent_id=task.agent_id, parent_id=task.id,
                priority=task.priority, source=source, max_attempts=task.max_attempts,
                options=options, conn=conn,
            )  # fmt: skip
            branch = branch_name(made.id, title)
            retold = _Retold(task_text(task), task_text(made), instruction)
            messages = retold.messages(chosen.sent)
            system = retold.text(chosen.system).replace(task.branch or "\0", branch)
            carried = files.contents
            unknown = [c.path for c in files.changes if c.content is None]
            message = f"Files as they were when step {chosen.number} of task #{task.id} began"
            await make_branch(repo, branch, base, carried, message)
            try:
                recorded = await conn.fetchval(
                    Q.record_fork, made.id, branch,
                    str(self.worktrees.path_for(project.name, made.id)), base, run["mode"],
                    run["model"], system, list(run["tools"]), chosen.run_step - 1,
                    json.dumps(messages),
                    json.dumps({"task": task.id, "step": chosen.number,
                                "instruction": instruction or None, "files": sorted(carried),
                                "unknown": unknown}),
                    task.id, json.dumps({"task": made.id, "step": chosen.number}),
                )  # fmt: skip
                if recorded is None:
                    raise UserError(f"Task #{made.id} left the queue before its fork was set up.")
            except BaseException:
                await delete_branch(repo, branch)
                raise
        log.info("task forked", task=task.id, step=chosen.number, fork=made.id)
        return Fork(made, task.id, chosen.number, sorted(carried), unknown)

    async def _load(self, task_id: int) -> tuple[Task, str, dict[int, Any], list[Step]]:
        row = await self.pool.fetchrow(Q.task_project, task_id)
        if row is None:
            raise NotFound(f"There is no task #{task_id}.")
        runs = {r["id"]: r for r in await self.pool.fetch(Q.runs, task_id)}
        conversations: dict[int, list[Message]] = {run_id: [] for run_id in runs}
        for m in await self.pool.fetch(Q.messages, list(runs)):
            content = json.loads(m["content"]) if isinstance(m["content"], str) else m["content"]
            conversations[m["run_id"]].append({"role": m["role"], "content": content})
        steps = task_steps((runs[r], conversations[r]) for r in runs)
        return Task.from_row(row), row["project_name"], runs, steps

    async def _files(self, task: Task, project: str, steps: list[Step]) -> FileState:
        if task.base_commit is None:
            return FileState()
        try:
            repo = (await self.projects.get(project)).repo_path
            return await files_after(steps, base_reader(repo, task.base_commit))
        except (GitError, NotFound, OSError) as exc:
            log.warning("files of a run not rebuilt", task=task.id, error=str(exc))
            return FileState(unavailable=f"The files cannot be shown: {exc}")


def _chosen(task_id: int, steps: list[Step], step: int | None) -> Step:
    if step is None:
        return steps[-1]
    if not 1 <= step <= len(steps):
        raise UserError(
            f"Task #{task_id} has steps 1 to {len(steps)}; step {step} is not one of them."
        )
    return steps[step - 1]


def _title(instruction: str) -> tuple[str, str]:
    first = instruction.splitlines()[0].strip()
    title = first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1] + "…"
    return title, instruction


@dataclass(frozen=True)
class _Retold:
    """The conversation told again for the fork: the task's text (in the system prompt and
    the first message) replaced by the fork's, which carries the edited instruction."""

    old: str
    new: str
    instruction: str

    def text(self, value: str) -> str:
        return value.replace(self.old, self.new)

    def messages(self, sent: list[Message]) -> list[Message]:
        told = copy.deepcopy(sent)
        first = told[0]
        if isinstance(first["content"], str):
            first["content"] = [{"type": "text", "text": first["content"]}]
        texts = [b for b in first["content"] if b.get("type") == "text"]
        if any(self.old in b["text"] for b in texts):
            for b in texts:
                b["text"] = self.text(b["text"])
        elif self.instruction:
            first["content"].append({
                "type": "text", "text": f"The owner changed the task to:\n{self.instruction}"
            })  # fmt: skip
        return told
