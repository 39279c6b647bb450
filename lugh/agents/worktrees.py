"""Task worktrees: one per task, on its own branch from the project's default branch, under
`<data_dir>/worktrees/<project>/<task-id>`; made, found again after a restart, removed, pruned.

Git and the database never disagree for long, because the task row is the commit point:

- create: `git worktree add` first, then the row records branch, worktree and base commit. A
  crash in between leaves a worktree no row records. Nothing has run in it yet (the agent starts
  only once create() returns), so the task's next create() discards it and starts afresh, and
  prune() removes it if the task ended meanwhile.
- remove: `git worktree remove`, then the branch, then the row forgets the worktree (the branch
  name and base commit stay as history). A crash in between leaves a row naming a worktree git no
  longer has; create() rebuilds it (on the surviving branch if there is one) and prune() clears it.
- prune (at start, and whenever the app likes): anything of ours that no live task records is
  removed; a queued or running task's leftovers are left to its create().
"""

from __future__ import annotations

import asyncio
import re
import shutil
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg

from lugh.db import queries
from lugh.errors import NotFound, UserError
from lugh.git import GitError, GitResult, branch_exists, resolve_commit, run, validate_branch_name
from lugh.logs import get_logger
from lugh.projects import Project
from lugh.tasks import Task, TaskStatus
from lugh.tasks.queue import Connection

Q = queries.load(__file__, "worktrees")
log = get_logger("lugh.agents.worktrees")

BRANCH_PREFIX = "lugh/"
MAX_SLUG = 40
CHECKOUT_TIMEOUT_S = 600.0  # a full checkout of a large repository on a slow disk
# Check the files out with one worker per core. On a VM disk, where each file written one after
# the other waits on the disk, 20,000 files took 12–15 s sequentially and 0.8–2.2 s in parallel
# (bench/agent_overhead.py); on tmpfs it changes nothing.
PARALLEL_CHECKOUT = ("-c", "checkout.workers=0")
_OUR_BRANCH = re.compile(r"lugh/([0-9]+)-")
_LIVE = (TaskStatus.QUEUED, TaskStatus.RUNNING)


async def list_worktrees(repo: Path) -> dict[Path, str | None]:
    """Every work tree of `repo` (its main one too) → the branch checked out there, or None."""
    result = await run("worktree", "list", "--porcelain", "-z", cwd=repo)
    listed: dict[Path, str | None] = {}
    path: Path | None = None
    for line in result.stdout.split("\0"):
        if line.startswith("worktree "):
            path = Path(line.removeprefix("worktree ")).resolve()
            listed[path] = None
        elif line.startswith("branch refs/heads/") and path is not None:
            listed[path] = line.removeprefix("branch refs/heads/")
    return listed


def slugify(title: str) -> str:
    """The title as a branch-name part: lowercase ASCII letters, digits and dashes, ≤ 40 chars."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title).strip("-")[:MAX_SLUG].rstrip("-")
    return slug or "task"


def branch_name(task_id: int, title: str) -> str:
    return validate_branch_name(f"{BRANCH_PREFIX}{int(task_id)}-{slugify(title)}")


@dataclass(frozen=True)
class Worktree:
    task_id: int
    project: str
    repo: Path  # the project's repository, whose .git holds this worktree's admin directory
    path: Path
    branch: str
    base_commit: str  # the default branch's commit the branch started from


@dataclass
class PruneReport:
    removed_worktrees: list[Path] = field(default_factory=list)
    removed_branches: list[str] = field(default_factory=list)
    forgotten: list[int] = field(default_factory=list)  # rows that named a worktree now gone


@dataclass
class _Found:
    """What git and the disk hold for one project, by task id."""

    listed: dict[Path, str | None]  # every worktree of the repo → its branch (None: detached)
    paths: dict[int, set[Path]]  # our worktree directories, on disk or in git's list
    branches: dict[int, set[str]]  # lugh/<task-id>-* branches
    strays: set[Path]  # entries in our directory that are no task's


class WorktreeManager:
    """Makes, finds, removes and prunes task worktrees; git always runs with hooks off."""

    def __init__(self, data_dir: Path, pool: asyncpg.Pool) -> None:
        self.root = (Path(data_dir) / "worktrees").resolve()
        self.pool = pool

    def path_for(self, project: str, task_id: int) -> Path:
        return self.root / project / str(int(task_id))

    def recorded(self, project: Project, task: Task) -> Worktree | None:
        """The worktree the task row records (which may since have vanished), or None."""
        if not (task.branch and task.worktree and task.base_commit):
            return None
        return Worktree(
            task.id, project.name, project.repo_path, Path(task.worktree), task.branch,
            task.base_commit,
        )

    async def create(self, project: Project, task_id: int, title: str) -> Worktree:
        """The task's worktree: reused when the row records one (a resumed run), otherwise made
        on a new branch `lugh/<task-id>-<slug>` from the default branch and then recorded."""
        row = await self.pool.fetchrow(Q.task_worktree, task_id)
        if row is None or row["project_id"] != project.id:
            raise NotFound(f"There is no task #{task_id} in project {project.name!r}.")
        task = Task.from_row(row)
        if task.status not in _LIVE:
            raise UserError(
                f"Task #{task_id} is {task.status.replace('_', ' ')}, "
                "so no worktree is made for it."
            )
        repo = project.repo_path
        found = await self._find(project)
        wt = self.recorded(project, task)
        if wt is not None:
            if found.listed.get(wt.path.resolve()) == wt.branch and wt.path.is_dir():
                return wt
            if await branch_exists(repo, wt.branch):
                await self._discard_paths(repo, {wt.path.resolve()}, found)
                wt.path.parent.mkdir(parents=True, exist_ok=True)
                await run(
                    *PARALLEL_CHECKOUT, "worktree", "add", "--quiet", "--end-of-options",
                    str(wt.path), wt.branch, cwd=repo, timeout_s=CHECKOUT_TIMEOUT_S,
                )  # fmt: skip
                log.info("worktree rebuilt on its branch", task=task_id, branch=wt.branch)
                return wt
        # Whatever is left of an attempt the row never recorded is discarded: nothing ran in it.
        stale = found.paths.get(task_id, set()) | ({wt.path.resolve()} if wt else set())
        await self._discard_paths(repo, stale, found)
        await self._delete_branches(repo, found.branches.get(task_id, set()))
        branch = branch_name(task_id, title)
        path = self.path_for(project.name, task_id)
        default = validate_branch_name(project.default_branch)
        base = await resolve_commit(repo, f"refs/heads/{default}")
        path.parent.mkdir(parents=True, exist_ok=True)
        await run(
            *PARALLEL_CHECKOUT, "worktree", "add", "--quiet", "-b", branch, "--end-of-options",
            str(path), base, cwd=repo, timeout_s=CHECKOUT_TIMEOUT_S,
        )  # fmt: skip
        made = Worktree(task_id, project.name, repo, path, branch, base)
        if await self.pool.fetchrow(Q.record_worktree, task_id, branch, str(path), base) is None:
            await self.remove(made, delete_branch=True)
            raise UserError(
                f"Task #{task_id} ended while its worktree was being made; it was removed."
            )
        log.info("worktree made", task=task_id, branch=branch, base=base)
        return made

    async def remove(
        self, worktree: Worktree, *, delete_branch: bool, conn: Connection | None = None
    ) -> None:
        """Remove the worktree (and its branch when asked), then forget it in the task row
        (through `conn` when the caller holds that row locked in a transaction)."""
        found = await self._find_listed(worktree.repo)
        await self._discard_paths(worktree.repo, {worktree.path.resolve()}, found)
        if delete_branch:
            await self._delete_branches(worktree.repo, {worktree.branch})
        db = conn if conn is not None else self.pool
        await db.execute(Q.forget_worktree, worktree.task_id, str(worktree.path))

    async def prune(
        self,
        projects: Iterable[Project],
        *,
        keep_failed_for: timedelta,
        now: datetime | None = None,
    ) -> PruneReport:
        """Remove worktrees and `lugh/*` branches no live task owns: those of tasks that ended
        (a failed task's after `keep_failed_for`), of unknown tasks, and of removed projects."""
        report = PruneReport()
        names = set()
        for project in projects:
            names.add(project.name)
            try:
                await self._prune_project(project, keep_failed_for, now, report)
            except GitError as exc:
                log.warning("cannot prune worktrees", project=project.name, error=str(exc))
        if self.root.is_dir():
            for child in sorted(self.root.iterdir()):
                if child.name not in names:  # a removed project's: its repository is unknown
                    await _delete_tree(child)
                    report.removed_worktrees.append(child)
        if report.removed_worktrees or report.removed_branches or report.forgotten:
            removed = [str(p) for p in report.removed_worktrees]
            log.info(
                "worktrees pruned", worktrees=removed, branches=report.removed_branches,
                forgotten=report.forgotten,
            )  # fmt: skip
        return report

    async def forget_project(self, project: Project) -> PruneReport:
        """Remove every worktree and `lugh/*` branch Lugh made for `project`, which is being
        removed (its tasks are gone, so nothing owns them; the pre-removal checkpoint keeps
        their commits). The repository's own branches and files are left as they are."""
        report = PruneReport()
        repo = project.repo_path
        if repo.is_dir():
            try:
                found = await self._find(project)
                ours = found.strays.union(*found.paths.values())
                for path in sorted(ours):
                    if await self._discard_paths(repo, {path}, found):
                        report.removed_worktrees.append(path)
                report.removed_branches += await self._delete_branches(
                    repo, set().union(*found.branches.values())
                )
                await run("worktree", "prune", cwd=repo, check=False)
            except GitError as exc:
                log.warning("cannot remove the project's worktrees", project=project.name,
                            error=str(exc))  # fmt: skip
        leftover = self.root / project.name
        if leftover.exists():
            await _delete_tree(leftover)
            report.removed_worktrees.append(leftover)
        log.info(
            "project's worktrees removed", project=project.name,
            worktrees=[str(p) for p in report.removed_worktrees], branches=report.removed_branches,
        )  # fmt: skip
        return report

    async def run_git(
        self,
        worktree: Worktree,
        *args: str,
        check: bool = True,
        config: Sequence[str] = (),
        timeout_s: float = CHECKOUT_TIMEOUT_S,
    ) -> GitResult:
        """Run git in the worktree without trusting its `.git` file, which the agent could have
        rewritten to point at a repository (and config) of its own making."""
        admin = await self._admin_dir(worktree)
        return await run(
            "--git-dir", str(admin), "--work-tree", str(worktree.path), *args,
            cwd=worktree.path, check=check, config=config, timeout_s=timeout_s,
        )  # fmt: skip

    async def _prune_project(
        self, project: Project, keep: timedelta, now: datetime | None, report: PruneReport
    ) -> None:
        repo = project.repo_path
        found = await self._find(project)
        for stray in found.strays:
            await self._discard_paths(repo, {stray}, found)
            report.removed_worktrees.append(stray)
        ids = sorted(found.paths.keys() | found.branches.keys())
        rows = await self.pool.fetch(
            Q.prune_candidates, project.id, ids, keep.total_seconds(), now
        )
        by_id = {row["id"]: row for row in rows}
        for task_id in sorted(set(ids) | by_id.keys()):
            row = by_id.get(task_id)
            if row is not None and TaskStatus(row["status"]) in _LIVE:
                continue  # its create() deals with whatever is left
            keeps = row is not None and (
                row["status"] == TaskStatus.AWAITING_REVIEW or row["kept_failed"]
            )
            recorded = Path(row["worktree"]).resolve() if row and row["worktree"] else None
            paths = found.paths.get(task_id, set()) | ({recorded} if recorded else set())
            doomed = {p for p in paths if not (keeps and p == recorded)}
            for path in sorted(doomed):
                if await self._discard_paths(repo, {path}, found):
                    report.removed_worktrees.append(path)
            kept_branch = row["branch"] if keeps and row is not None else None
            branches = found.branches.get(task_id, set()) - {kept_branch}
            report.removed_branches += await self._delete_branches(repo, branches)
            if recorded is not None and not keeps:
                await self.pool.execute(Q.forget_worktree, task_id, row["worktree"])
                report.forgotten.append(task_id)

    async def _find(self, project: Project) -> _Found:
        found = await self._find_listed(project.repo_path)
        root = self.root / project.name
        candidates = {p for p in found.listed if p.parent == root}
        if root.is_dir():
            candidates |= set(root.iterdir())
        for path in candidates:
            if path.name.isdigit():
                found.paths.setdefault(int(path.name), set()).add(path)
            else:
                found.strays.add(path)
        refs = await run(
            "for-each-ref", "--format=%(refname:strip=2)", "refs/heads/lugh/", cwd=project.repo_path
        )
        for name in refs.stdout.splitlines():
            if match := _OUR_BRANCH.match(name):
                found.branches.setdefault(int(match[1]), set()).add(name)
        return found

    async def _find_listed(self, repo: Path) -> _Found:
        return _Found(await list_worktrees(repo), {}, {}, set())

    async def _discard_paths(self, repo: Path, paths: set[Path], found: _Found) -> bool:
        """Remove each path: through git when it is a worktree of `repo`, else from disk when it
        is inside our directory. Whether anything was there."""
        removed = False
        for path in paths:
            if path in found.listed:
                remove = ("worktree", "remove", "--force", "--force", "--end-of-options", str(path))
                removed_by_git = await run(
                    *remove, cwd=repo, check=False, timeout_s=CHECKOUT_TIMEOUT_S
                )
                if not removed_by_git.ok:
                    # e.g. git refuses worktrees with submodules: delete the files, then the entry
                    if self._inside(path):
                        await _delete_tree(path)
                    await run(*remove, cwd=repo)
                del found.listed[path]
                removed = True
            elif self._inside(path) and (path.exists() or path.is_symlink()):
                await _delete_tree(path)
                removed = True
        return removed

    async def _delete_branches(self, repo: Path, names: set[str]) -> list[str]:
        deleted = []
        for name in sorted(names):
            result = await run("branch", "-D", "--end-of-options", name, cwd=repo, check=False)
            if result.ok:
                deleted.append(name)
            elif "not found" not in result.stderr:
                log.warning("branch not deleted", branch=name, error=result.stderr.strip())
        return deleted

    async def _admin_dir(self, worktree: Worktree) -> Path:
        common = await run(
            "rev-parse", "--path-format=absolute", "--git-common-dir", cwd=worktree.repo
        )
        expected = worktree.path.resolve() / ".git"
        admin_dirs = Path(common.out) / "worktrees"
        for admin in admin_dirs.iterdir() if admin_dirs.is_dir() else ():
            try:
                gitdir = (admin / "gitdir").read_text(encoding="utf-8").strip()
            except OSError:
                continue
            if Path(gitdir).parent.resolve() / ".git" == expected:
                return admin
        raise GitError(
            f"{worktree.path} is not a worktree of {worktree.repo}; "
            "retry the task to make it again."
        )

    def _inside(self, path: Path) -> bool:
        return path != self.root and path.is_relative_to(self.root)


async def _delete_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        await asyncio.to_thread(shutil.rmtree, path, ignore_errors=True)
