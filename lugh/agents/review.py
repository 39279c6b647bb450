"""Review and merge: Lugh commits an agent's work on the host and puts its diff before the owner,
whose answer merges it into the default branch, rejects it, or sends it back with feedback.

The diff lives in `diff.py`, the merge itself (never in anyone's working copy) in `merge.py`.

Git first, database second: after a crash between moving the branch and recording the approval
the task is still in review, and approving again finds its work merged and only records it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from lugh.agents.diff import DIFF_CAP_BYTES, Diff, ReviewError, compute_diff
from lugh.agents.merge import QUIET, MergeRefused, MergeResult, merge
from lugh.agents.worktrees import Worktree, WorktreeManager
from lugh.db import queries
from lugh.errors import NotFound
from lugh.git import GitError, resolve_commit
from lugh.logs import get_logger
from lugh.projects import Project, ProjectService
from lugh.tasks import Task, TaskQueue, TaskStatus

Q = queries.load(__file__, "review")
log = get_logger("lugh.agents.review")

METHODS = frozenset({"button", "reaction", "voice", "command", "mcp"})
RETRYABLE = (
    TaskStatus.AWAITING_REVIEW, TaskStatus.FAILED, TaskStatus.REJECTED, TaskStatus.CANCELLED,
)  # fmt: skip
__all__ = ["Diff", "MergeRefused", "MergeResult", "Review", "ReviewError", "ReviewService"]


@dataclass(frozen=True)
class Review:
    task_id: int
    status: TaskStatus  # awaiting_review, or done when the agent changed nothing
    diff: Diff
    approval_id: int | None
    message: str


class ReviewService:
    """What [Approve & merge] [Reject] [Diff] [Retry] call, and how a finished run gets there.

    Every answer is one transaction over the task, its approval and task_events; a task that is
    not awaiting review is refused with one sentence and nothing changes.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        projects: ProjectService,
        worktrees: WorktreeManager,
        queue: TaskQueue,
        *,
        diff_cap_bytes: int = DIFF_CAP_BYTES,
    ) -> None:
        self.pool = pool
        self.projects = projects
        self.worktrees = worktrees
        self.queue = queue
        self.diff_cap_bytes = diff_cap_bytes
        self._merging: dict[int, asyncio.Lock] = {}  # one merge at a time per project
        # Called once a merge is recorded: the automatic checkpoint (lugh.checkpoints).
        self.after_merge: Callable[[Project, int], Awaitable[None]] | None = None

    async def submit(self, task: Task, summary: str = "") -> Review:
        """Commit everything in the task's worktree as "Lugh agent <name>", diff it against the
        base, and put it up for review. A run that changed nothing ends done, with a note."""
        row = await self.pool.fetchrow(Q.task_for_review, task.id)
        if row is None:
            raise NotFound(f"There is no task #{task.id}.")
        current = Task.from_row(row)
        if current.status is not TaskStatus.RUNNING or current.lease_token != task.lease_token:
            raise _lease_lost(task.id)
        project = await self.projects.get(row["project"])
        wt = self.worktrees.recorded(project, current)
        if wt is None:
            raise ReviewError(f"Task #{task.id} has no worktree, so there is no work to submit.")
        head = await self._commit(wt, row["agent"], current, summary)
        diff = await compute_diff(wt.repo, wt.base_commit, head, cap_bytes=self.diff_cap_bytes)
        result = {"summary": summary, "branch": wt.branch, "diff": diff.to_json()}
        if not diff.files:
            note = "The agent changed no files, so there was nothing to review or merge."
            done = {**result, "note": note}
            if not await self.queue.complete(task.id, task.lease_token, "done", result=done):
                raise _lease_lost(task.id)
            await self._discard(project, current)
            return Review(task.id, TaskStatus.DONE, diff, None, note)
        payload = {"branch": wt.branch, "summary": diff.summary, "diff": diff.to_json()}
        moved = await self.pool.fetchrow(
            Q.to_review, task.id, task.lease_token, json.dumps(result), json.dumps(payload)
        )
        if moved is None:
            raise _lease_lost(task.id)
        message = f"Task #{task.id} is ready for review: {diff.summary}."
        return Review(task.id, TaskStatus.AWAITING_REVIEW, diff, moved["approval_id"], message)

    async def approve(self, task_id: int, method: str) -> MergeResult:
        """Merge the reviewed work into the default branch: a fast-forward when possible, else a
        merge commit. A conflict keeps the task in review with the files named; a dirty
        checked-out working copy refuses the merge (MergeRefused)."""
        _check(method)
        async with self.pool.acquire() as conn, conn.transaction():
            task, project_name, approval_id, payload = await self._pending(conn, task_id, "approve")
            project = await self.projects.get(project_name)
            lock = self._merging.setdefault(project.id, asyncio.Lock())
            async with lock:
                outcome = await merge(project, task, payload["diff"]["head"])
            record = {
                "into": project.default_branch, "commit": outcome.commit,
                "fast_forward": outcome.fast_forward, "conflicts": list(outcome.conflicts),
                "working_copy": str(outcome.working_copy) if outcome.working_copy else None,
            }  # fmt: skip
            if not outcome.merged:
                record["retry"] = "fresh: the agent redoes the work on the current default branch"
                await conn.execute(Q.note_conflict, task_id, json.dumps(record))
                return outcome
            await conn.execute(
                Q.answer_review, task_id, approval_id, "approved", method,
                json.dumps({"merge": record}), json.dumps({"merge_commit": outcome.commit}),
            )  # fmt: skip
        await self._discard(project, task)
        log.info("task merged", task=task_id, commit=outcome.commit, ff=outcome.fast_forward)
        if self.after_merge is not None:
            await self.after_merge(project, task_id)
        return outcome

    async def reject(self, task_id: int, method: str) -> Task:
        """Turn the work down: the task is rejected, its branch and worktree are deleted, and the
        default branch is not touched."""
        _check(method)
        async with self.pool.acquire() as conn, conn.transaction():
            task, project_name, approval_id, _ = await self._pending(conn, task_id, "reject")
            row = await conn.fetchrow(
                Q.answer_review, task_id, approval_id, "rejected", method, "{}", "{}"
            )
        await self._discard(await self.projects.get(project_name), task)
        return Task.from_row(row)

    async def diff(self, task_id: int) -> Diff:
        """The task's latest reviewed diff, recomputed from its commits (the stored counts, with
        no text, once those commits are gone)."""
        row = await self.pool.fetchrow(Q.task_for_review, task_id)
        if row is None:
            raise NotFound(f"There is no task #{task_id}.")
        review = await self.pool.fetchrow(Q.latest_review, task_id)
        if review is None:
            raise ReviewError(f"Task #{task_id} has not been up for review, so it has no diff yet.")
        stored = _json(review["payload"])["diff"]
        project = await self.projects.get(row["project"])
        try:
            return await compute_diff(
                project.repo_path, stored["base"], stored["head"], cap_bytes=self.diff_cap_bytes
            )
        except GitError:
            return Diff.from_json(stored, "(The diff text is gone with the task's commits.)\n")

    async def pending_approval(self, task_id: int) -> int | None:
        """The id of the task's review approval still waiting for an answer, if any."""
        row = await self.pool.fetchrow(Q.latest_review, task_id)
        return row["id"] if row is not None and row["status"] == "pending" else None

    async def retry(
        self, task_id: int, feedback: str, *, method: str = "command", fresh: bool | None = None
    ) -> Task:
        """Queue the task again with the owner's feedback appended (body, options["feedback"],
        and the event). A reviewed task goes on from its reviewed work unless its merge
        conflicted or `fresh` is asked; anything else starts afresh from the default branch."""
        _check(method)
        feedback = feedback.strip()
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(Q.lock_task, task_id)
            if row is None:
                raise NotFound(f"There is no task #{task_id}.")
            task = Task.from_row(row)
            if task.status not in RETRYABLE:
                raise ReviewError(_cannot_retry(task))
            if fresh is None:
                fresh = task.status is not TaskStatus.AWAITING_REVIEW or _conflicted(task)
            if fresh:  # before the task can be claimed again
                await self._discard(await self.projects.get(row["project"]), task, conn)
            moved = await conn.fetchrow(
                Q.retry, task_id, feedback, method, fresh, task.status.value
            )
        return Task.from_row(moved)

    async def _pending(
        self, conn: asyncpg.Connection, task_id: int, action: str
    ) -> tuple[Task, str, int, dict[str, Any]]:
        row = await conn.fetchrow(Q.lock_task, task_id)
        if row is None:
            raise NotFound(f"There is no task #{task_id}.")
        task = Task.from_row(row)
        if task.status is not TaskStatus.AWAITING_REVIEW:
            latest = await conn.fetchrow(Q.latest_review, task_id)
            raise ReviewError(_not_in_review(task, action, latest and latest["status"]))
        approval = await conn.fetchrow(Q.pending_review, task_id)
        if approval is None:
            raise ReviewError(f"Task #{task_id} has no open review; retry it for a fresh one.")
        return task, row["project"], approval["id"], _json(approval["payload"])

    async def _commit(self, wt: Worktree, agent: str, task: Task, summary: str) -> str:
        identity = (f"user.name=Lugh agent {agent}", f"user.email=agent+{agent}@lugh.local")
        await self.worktrees.run_git(wt, "add", "--all")
        staged = await self.worktrees.run_git(
            wt, "diff", "--cached", "--quiet", "--no-ext-diff", check=False
        )
        if staged.returncode not in (0, 1):
            raise GitError(f"Lugh could not read the changes in {wt.path}: {staged.stderr.strip()}")
        if staged.returncode == 1:
            title = task.title.strip() or f"Task #{task.id}"
            message = "\n\n".join(filter(None, (title, summary.strip(), f"Lugh task #{task.id}")))
            await self.worktrees.run_git(
                wt, "commit", "--quiet", "--no-verify", "-m", message, config=identity + QUIET
            )
        return await resolve_commit(wt.repo, f"refs/heads/{wt.branch}")

    async def _discard(
        self, project: Project, task: Task, conn: asyncpg.Connection | None = None
    ) -> None:
        """Remove the task's worktree and branch; a failure is logged and left to prune()."""
        if not task.branch:
            return
        path = self.worktrees.path_for(project.name, task.id)
        path = Path(task.worktree) if task.worktree else path
        wt = Worktree(
            task.id, project.name, project.repo_path, path, task.branch, task.base_commit or ""
        )
        try:
            await self.worktrees.remove(wt, delete_branch=True, conn=conn)
        except GitError as exc:
            log.warning("worktree left for prune", task=task.id, error=str(exc))


def _check(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"the approval method must be one of {sorted(METHODS)}, not {method!r}")


def _lease_lost(task_id: int) -> ReviewError:
    return ReviewError(
        f"Task #{task_id} is no longer running under this lease, so its work was not submitted."
    )


def _not_in_review(task: Task, action: str, review_status: str | None) -> str:
    n = f"Task #{task.id}"
    if task.status is TaskStatus.DONE and review_status == "approved":
        return f"{n} was already approved and merged." if action == "approve" else (
            f"{n} was already approved and merged, so it can no longer be rejected.")
    if task.status is TaskStatus.REJECTED:
        return f"{n} was already rejected." if action == "reject" else (
            f"{n} was rejected, so it can no longer be approved; retry it for a new attempt.")
    if task.status in (TaskStatus.QUEUED, TaskStatus.RUNNING):
        return f"{n} is still {task.status}, so there is nothing to review yet."
    if task.status is TaskStatus.DONE:
        return f"{n} is already done and had nothing to review."
    what = "failed" if task.status is TaskStatus.FAILED else "was cancelled"
    return f"{n} {what}, so there is nothing to {action}; retry it for a new attempt."


def _cannot_retry(task: Task) -> str:
    if task.status is TaskStatus.DONE:
        return f"Task #{task.id} is done; queue a new task for further work."
    return f"Task #{task.id} is still {task.status}, so it cannot be retried yet."


def _conflicted(task: Task) -> bool:
    merge = task.result.get("merge") if isinstance(task.result, dict) else None
    return bool(merge and merge.get("conflicts"))


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)
