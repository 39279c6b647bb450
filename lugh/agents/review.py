"""Review and merge: Lugh commits an agent's work on the host and puts its diff before the owner,
whose answer merges it into the default branch, rejects it, or sends it back with feedback.

Merges never use anyone's working copy: `git merge-tree --write-tree` and `commit-tree` make the
merge commit, and `update-ref` with the old value moves the branch only if nobody else did. When
the default branch is checked out in a clean working copy, that copy is fast-forwarded to the
merge instead, so it stays in step; a dirty one is never touched and the merge is refused.

Git first, database second: after a crash between moving the branch and recording the approval
the task is still in review, and approving again finds its work merged and only records it.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from lugh.agents.worktrees import (
    CHECKOUT_TIMEOUT_S,
    Worktree,
    WorktreeManager,
    list_worktrees,
)
from lugh.db import queries
from lugh.errors import NotFound, UserError
from lugh.git import GitError, resolve_commit, run, validate_branch_name
from lugh.logs import get_logger
from lugh.projects import Project, ProjectService
from lugh.tasks import Task, TaskQueue, TaskStatus

Q = queries.load(__file__, "review")
log = get_logger("lugh.agents.review")

METHODS = frozenset({"button", "reaction", "voice", "command", "mcp"})
DIFF_CAP_BYTES = 200_000
MAX_FILES_STORED = 200
MERGE_ATTEMPTS = 3
LUGH = ("user.name=Lugh", "user.email=lugh@lugh.local")
# Lugh's own commits: never signed with the owner's key, never a gc pause inside an approval.
QUIET = ("commit.gpgSign=false", "gc.auto=0", "maintenance.auto=false")
RETRYABLE = (
    TaskStatus.AWAITING_REVIEW, TaskStatus.FAILED, TaskStatus.REJECTED, TaskStatus.CANCELLED,
)  # fmt: skip
_OID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_STATUS = {"A": "added", "M": "modified", "D": "deleted", "T": "type changed"}


class ReviewError(UserError):
    """A review action cannot be done; nothing was changed."""


class MergeRefused(ReviewError):
    """The merge would have touched a working copy that is not clean; nothing was changed."""


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str  # added | modified | deleted | type changed
    added: int
    deleted: int
    binary: bool = False


@dataclass(frozen=True)
class Diff:
    """What a task changed between its base commit and its head: counts per file and the text."""

    base: str
    head: str
    files: tuple[FileChange, ...]
    text: str = ""
    truncated: bool = False  # the text was cut at the size cap (the counts never are)

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def deleted(self) -> int:
        return sum(f.deleted for f in self.files)

    @property
    def summary(self) -> str:
        count = len(self.files)
        return f"+{self.added} −{self.deleted} in {count} file{'' if count == 1 else 's'}"

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base, "head": self.head, "summary": self.summary,
            "added": self.added, "deleted": self.deleted, "file_count": len(self.files),
            "files": [vars(f) for f in self.files[:MAX_FILES_STORED]],
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any], note: str = "") -> Diff:
        return cls(data["base"], data["head"], tuple(FileChange(**f) for f in data["files"]), note)


@dataclass(frozen=True)
class Review:
    task_id: int
    status: TaskStatus  # awaiting_review, or done when the agent changed nothing
    diff: Diff
    approval_id: int | None
    message: str


@dataclass(frozen=True)
class MergeResult:
    task_id: int
    merged: bool  # False: a conflict, and the task stays in review
    message: str
    commit: str | None = None  # the default branch's new tip
    fast_forward: bool = False
    working_copy: Path | None = None  # updated too, because the branch was checked out there
    conflicts: tuple[str, ...] = ()


async def compute_diff(
    repo: Path, base: str, head: str, *, cap_bytes: int = DIFF_CAP_BYTES
) -> Diff:
    """The diff from `base` to `head`; the text is cut at `cap_bytes`, on a line boundary."""
    for oid in (base, head):
        if not _OID.fullmatch(oid):
            raise ReviewError(f"{oid[:50]!r} is not a commit id, so there is no diff to show.")
    # No external diff programs or textconv filters: a repository's config never runs here.
    common = ("--no-renames", "--no-ext-diff", "--no-textconv", "--end-of-options", base, head)
    numstat = await run("diff", "--numstat", "-z", *common, cwd=repo)
    names = (await run("diff", "--name-status", "-z", *common, cwd=repo)).stdout.split("\0")
    status = dict(zip(names[1::2], names[0::2]))
    files = []
    for record in filter(None, numstat.stdout.split("\0")):
        added, deleted, path = record.split("\t", 2)
        binary = added == "-"
        files.append(FileChange(
            _shown(path), _STATUS.get(status.get(path, "M"), "modified"),
            0 if binary else int(added), 0 if binary else int(deleted), binary,
        ))  # fmt: skip
    text = await run("diff", "--no-color", *common, cwd=repo, config=("core.quotePath=false",))
    raw = text.stdout.encode("utf-8", "surrogateescape")
    truncated = len(raw) > cap_bytes
    if truncated:
        cut = raw[:cap_bytes]
        raw = cut[: cut.rfind(b"\n") + 1] or cut
    return Diff(base, head, tuple(files), raw.decode("utf-8", "replace"), truncated)


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
                outcome = await self._merge(project, task, payload["diff"]["head"])
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

    async def _merge(self, project: Project, task: Task, head: str) -> MergeResult:
        repo, branch = project.repo_path, validate_branch_name(project.default_branch)
        for _ in range(MERGE_ATTEMPTS):
            old = await resolve_commit(repo, f"refs/heads/{branch}")
            if await _is_ancestor(repo, head, old):
                message = f"Task #{task.id} was already in {branch}; it is now recorded as merged."
                return MergeResult(task.id, True, message, commit=old)
            fast_forward = await _is_ancestor(repo, old, head)
            new, conflicts = head, ()
            if not fast_forward:
                new, conflicts = await _merge_commit(repo, old, head, task)
            if conflicts:
                message = _conflict(task.id, branch, conflicts)
                return MergeResult(task.id, False, message, conflicts=conflicts)
            copy = next((p for p, b in (await list_worktrees(repo)).items() if b == branch), None)
            if not await _advance(repo, branch, old, new, copy, task.id):
                continue  # the branch moved meanwhile: merge again onto its new tip
            how = "by fast-forward" if fast_forward else "with a merge commit"
            also = f" and updated the working copy at {copy}" if copy else ""
            message = f"Merged task #{task.id} into {branch} {how}{also}."
            return MergeResult(task.id, True, message, new, fast_forward, copy)
        raise ReviewError(f"{branch} kept moving while Lugh merged task #{task.id}; approve again.")

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


def _conflict(task_id: int, branch: str, files: tuple[str, ...]) -> str:
    shown = ", ".join(files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
    return (
        f"Task #{task_id} conflicts with {branch} in {shown}, so it stays in review; retry it to "
        f"have the agent redo the work on top of {branch}, or reject it."
    )


def _conflicted(task: Task) -> bool:
    merge = task.result.get("merge") if isinstance(task.result, dict) else None
    return bool(merge and merge.get("conflicts"))


async def _merge_commit(
    repo: Path, old: str, head: str, task: Task
) -> tuple[str, tuple[str, ...]]:
    """A merge commit of `head` into `old`, made without any working copy; or the conflicts."""
    merged = await run(
        "merge-tree", "--write-tree", "--name-only", "--no-messages", "-z",
        "--end-of-options", old, head, cwd=repo, check=False,
    )  # fmt: skip
    tree, *conflicted = merged.stdout.split("\0")
    if merged.returncode == 1:
        return "", tuple(dict.fromkeys(_shown(p) for p in _until_blank(conflicted)))
    if not merged.ok:
        raise GitError(f"Lugh could not merge task #{task.id}: {_first_error(merged.stderr)}.")
    message = f"Merge task #{task.id}: {task.title}\n\n{task.branch}"
    made = await run(
        "commit-tree", tree, "-p", old, "-p", head, "-m", message, cwd=repo, config=LUGH + QUIET
    )
    return made.out, ()


async def _advance(
    repo: Path, branch: str, old: str, new: str, copy: Path | None, task_id: int
) -> bool:
    """Move `branch` from `old` to `new`; False when it is no longer at `old`. Where it is
    checked out, that working copy is fast-forwarded with it, or the merge is refused."""
    if copy is None:
        moved = await run(
            "update-ref", "-m", f"lugh: merge task #{task_id}", "--end-of-options",
            f"refs/heads/{branch}", new, old, cwd=repo, check=False,
        )  # fmt: skip
        return moved.ok
    if await _dirty(copy):
        raise MergeRefused(
            f"The working copy at {copy} has uncommitted changes on {branch}, so Lugh did not "
            f"merge task #{task_id}; commit or stash them, then approve again."
        )
    ff = await run(
        "merge", "--ff-only", "--quiet", "--end-of-options", new, cwd=copy, check=False,
        config=QUIET, timeout_s=CHECKOUT_TIMEOUT_S,
    )  # fmt: skip
    if ff.ok:
        return True
    if await resolve_commit(repo, f"refs/heads/{branch}") != old:
        return False
    raise MergeRefused(
        f"Lugh did not merge task #{task_id} because git would not update the working copy at "
        f"{copy} ({_first_error(ff.stderr)}); nothing was changed."
    )


async def _is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    result = await run("merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant,
                       cwd=repo, check=False)  # fmt: skip
    if result.returncode not in (0, 1):
        raise GitError(f"Lugh could not compare {ancestor} and {descendant} in {repo}.")
    return result.ok


async def _dirty(copy: Path) -> bool:
    """Staged or unstaged changes to tracked files. Untracked files do not count: git refuses
    the fast-forward itself if one would be overwritten."""
    status = await run("--no-optional-locks", "status", "--porcelain", "-z",
                       "--untracked-files=no", cwd=copy)  # fmt: skip
    return bool(status.stdout.strip("\0"))


def _until_blank(parts: list[str]) -> list[str]:
    return parts[: parts.index("")] if "" in parts else parts


def _first_error(stderr: str) -> str:
    """git's complaint as a clause: its first error line, with the files it lists."""
    lines = stderr.splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith(("error:", "fatal:"))), None)
    if at is None:
        return next((line.strip() for line in lines if line.strip()), "no reason given")
    reason = lines[at].split(":", 1)[1].strip().rstrip(":")
    files = [line.strip() for line in lines[at + 1 :] if line.startswith("\t")]
    if files:
        reason += ": " + ", ".join(files[:10]) + (" …" if len(files) > 10 else "")
    return reason[:1].lower() + reason[1:]


def _shown(path: str) -> str:
    """A path as text: bytes that are not UTF-8 become U+FFFD (JSON and Postgres need text)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)
