"""Merging a task's reviewed head into its project's default branch, without anyone's working
copy: `git merge-tree --write-tree` and `commit-tree` make the merge commit, and `update-ref` with
the old value moves the branch only if nobody else did. When the default branch is checked out in
a clean working copy, that copy is fast-forwarded to the merge instead, so it stays in step; a
dirty one is never touched and the merge is refused."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lugh.agents.diff import ReviewError, shown
from lugh.agents.worktrees import CHECKOUT_TIMEOUT_S, list_worktrees
from lugh.git import GitError, resolve_commit, run, validate_branch_name
from lugh.projects import Project
from lugh.tasks import Task

MERGE_ATTEMPTS = 3
LUGH = ("user.name=Lugh", "user.email=lugh@lugh.local")
# Lugh's own commits: never signed with the owner's key, never a gc pause inside an approval.
QUIET = ("commit.gpgSign=false", "gc.auto=0", "maintenance.auto=false")


class MergeRefused(ReviewError):
    """The merge would have touched a working copy that is not clean; nothing was changed."""


@dataclass(frozen=True)
class MergeResult:
    task_id: int
    merged: bool  # False: a conflict, and the task stays in review
    message: str
    commit: str | None = None  # the default branch's new tip
    fast_forward: bool = False
    working_copy: Path | None = None  # updated too, because the branch was checked out there
    conflicts: tuple[str, ...] = ()


async def merge(project: Project, task: Task, head: str) -> MergeResult:
    """Merge `head` (the task's reviewed work) into the default branch: a fast-forward when
    possible, else a merge commit; a conflict names the files and merges nothing."""
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


def _conflict(task_id: int, branch: str, files: tuple[str, ...]) -> str:
    listed = ", ".join(files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
    return (
        f"Task #{task_id} conflicts with {branch} in {listed}, so it stays in review; retry it to "
        f"have the agent redo the work on top of {branch}, or reject it."
    )


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
        return "", tuple(dict.fromkeys(shown(p) for p in _until_blank(conflicted)))
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
