import asyncio
import contextlib
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from lugh.agents.pruning import WorktreePruning
from lugh.agents.worktrees import (
    MAX_SLUG,
    PruneReport,
    WorktreeManager,
    branch_name,
    slugify,
)
from lugh.errors import UserError
from lugh.git import is_valid_branch_name
from lugh.projects import Project, ProjectService
from lugh.tasks import Task, TaskQueue, TaskStatus
from tests.conftest import git, make_repo

HOOKS = (
    "pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "post-checkout",
    "post-merge", "pre-merge-commit", "reference-transaction", "post-rewrite", "pre-auto-gc",
    "post-index-change", "pre-push",
)  # fmt: skip
KEEP = timedelta(hours=2)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def project(pool, data_dir, repo) -> Project:
    return await ProjectService(pool, data_dir).register("demo", str(repo))


@pytest.fixture
def queue(pool) -> TaskQueue:
    return TaskQueue(pool)


@pytest.fixture
def worktrees(data_dir, pool) -> WorktreeManager:
    return WorktreeManager(data_dir, pool)


async def running_task(
    queue: TaskQueue, project: Project, title: str = "Fix the login bug"
) -> Task:
    task = await queue.enqueue(project.id, title)
    claimed = await queue.claim("test-worker", 60)
    assert claimed is not None and claimed.id == task.id
    return claimed


def plant_hooks(repo: Path, canary: Path) -> None:
    """Hooks in .git/hooks and in a configured hooksPath, each leaving a mark if it ever runs."""
    custom = repo.parent / "custom-hooks"
    for directory in (repo / ".git" / "hooks", custom):
        directory.mkdir(parents=True, exist_ok=True)
        for name in HOOKS:
            hook = directory / name
            hook.write_text(f'#!/bin/sh\necho "{name}" >> "{canary}"\n')
            hook.chmod(0o755)
    git(repo, "config", "core.hooksPath", str(custom))


def worktree_paths(repo: Path) -> list[str]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [line[len("worktree ") :] for line in out.splitlines() if line.startswith("worktree ")]


def branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:strip=2)", "refs/heads/").splitlines()


async def test_a_worktree_is_made_on_a_new_branch_from_the_default_branch(
    worktrees, project, queue, repo, data_dir, pool
):
    task = await running_task(queue, project)

    wt = await worktrees.create(project, task.id, task.title)

    assert wt.path == (data_dir / "worktrees" / "demo" / str(task.id)).resolve()
    assert wt.branch == f"lugh/{task.id}-fix-the-login-bug"
    assert wt.base_commit == git(repo, "rev-parse", "main")
    assert git(wt.path, "symbolic-ref", "--short", "HEAD") == wt.branch
    assert (wt.path / "README.md").read_text() == "# demo\n"
    row = await queue.get(task.id)
    assert (row.branch, row.worktree, row.base_commit) == (wt.branch, str(wt.path), wt.base_commit)
    kinds = await pool.fetch("SELECT kind FROM task_events WHERE task_id = $1", task.id)
    assert "worktree" in [k["kind"] for k in kinds]


async def test_a_title_with_shell_metacharacters_runs_nothing_and_gives_a_valid_branch(
    worktrees, project, queue, repo, tmp_path
):
    canary = tmp_path / "pwned"
    title = f'$(touch {canary}); `touch {canary}` | rm -rf ~ && echo "x" > {canary} ..\\*?[]~^:'
    task = await running_task(queue, project, title)

    wt = await worktrees.create(project, task.id, task.title)

    assert not canary.exists()
    assert is_valid_branch_name(wt.branch)
    assert re.fullmatch(rf"lugh/{task.id}-[a-z0-9-]+", wt.branch)
    assert wt.branch in branches(repo)


def test_slugs_are_lowercase_ascii_letters_digits_and_dashes_of_at_most_40_characters():
    assert slugify("Café: Ünïcode — naïve façade!") == "cafe-unicode-naive-facade"
    assert slugify("  --Add   OAuth2 login--  ") == "add-oauth2-login"
    assert slugify("日本語 !!!") == "task"
    long = slugify("word " * 30)
    assert len(long) <= MAX_SLUG and not long.endswith("-")
    assert branch_name(7, "../../etc/passwd.lock") == "lugh/7-etc-passwd-lock"


async def test_a_resumed_run_reuses_its_worktree_instead_of_making_another(
    worktrees, project, queue, repo
):
    task = await running_task(queue, project)
    first = await worktrees.create(project, task.id, task.title)
    (first.path / "notes.txt").write_text("work in progress\n")

    again = await worktrees.create(project, task.id, task.title)

    assert again == first
    assert (again.path / "notes.txt").read_text() == "work in progress\n"
    assert worktree_paths(repo).count(str(first.path)) == 1
    assert [b for b in branches(repo) if b.startswith("lugh/")] == [first.branch]


async def test_a_resumed_run_whose_worktree_vanished_gets_it_back_on_the_same_branch(
    worktrees, project, queue, repo
):
    task = await running_task(queue, project)
    first = await worktrees.create(project, task.id, task.title)
    (first.path / "done.txt").write_text("committed work\n")
    git(first.path, "add", "-A")
    git(first.path, "commit", "-q", "-m", "earlier attempt")
    git(repo, "worktree", "remove", "--force", str(first.path))

    again = await worktrees.create(project, task.id, task.title)

    assert again == first
    assert (again.path / "done.txt").read_text() == "committed work\n"
    assert git(again.path, "symbolic-ref", "--short", "HEAD") == first.branch


async def test_a_crash_after_git_made_the_worktree_but_before_the_row_recorded_it_is_undone(
    worktrees, project, queue, repo, data_dir
):
    task = await running_task(queue, project)
    # What a crash between `git worktree add` and the row update leaves behind.
    leftover = data_dir / "worktrees" / "demo" / str(task.id)
    leftover.parent.mkdir(parents=True)
    branch = branch_name(task.id, task.title)
    git(repo, "worktree", "add", "-q", "-b", branch, str(leftover), "main")
    (leftover / "half-written.txt").write_text("from before the crash\n")
    assert (await queue.get(task.id)).worktree is None

    wt = await worktrees.create(project, task.id, task.title)

    assert not (wt.path / "half-written.txt").exists()
    assert worktree_paths(repo).count(str(wt.path)) == 1
    assert [b for b in branches(repo) if b.startswith("lugh/")] == [wt.branch]
    assert (await queue.get(task.id)).worktree == str(wt.path)


async def test_the_leftover_of_a_crash_is_pruned_once_its_task_has_ended(
    worktrees, project, queue, repo, data_dir
):
    task = await running_task(queue, project)
    leftover = data_dir / "worktrees" / "demo" / str(task.id)
    leftover.parent.mkdir(parents=True)
    branch = branch_name(task.id, task.title)
    git(repo, "worktree", "add", "-q", "-b", branch, str(leftover), "main")
    await queue.cancel(task.id, reason="owner changed their mind")

    report = await worktrees.prune([project], keep_failed_for=KEEP)

    assert report.removed_worktrees == [leftover.resolve()]
    assert not leftover.exists()
    assert worktree_paths(repo) == [str(repo)]
    assert branches(repo) == ["main"]


async def test_orphans_are_pruned_at_start_and_live_work_is_kept(
    worktrees, project, queue, repo, data_dir, pool
):
    done = await running_task(queue, project, "done already")
    done_wt = await worktrees.create(project, done.id, done.title)
    await queue.complete(done.id, done.lease_token, "done")  # and the process died right here
    reviewed = await running_task(queue, project, "waiting for the owner")
    review_wt = await worktrees.create(project, reviewed.id, reviewed.title)
    await queue.complete(reviewed.id, reviewed.lease_token, "awaiting_review")
    running = await running_task(queue, project, "still running")
    running_wt = await worktrees.create(project, running.id, running.title)
    unknown = data_dir / "worktrees" / "demo" / "9999"
    git(repo, "worktree", "add", "-q", "-b", "lugh/9999-nobody", str(unknown), "main")
    stray = data_dir / "worktrees" / "demo" / "not-a-task"
    stray.mkdir()
    gone = data_dir / "worktrees" / "demo" / "8888"
    git(repo, "worktree", "add", "-q", "-b", "lugh/8888-gone", str(gone), "main")
    git(repo, "-c", "core.hooksPath=/dev/null", "branch", "lugh/7777-only-a-branch")
    git(repo, "branch", "feature/owner-work")
    shutil.rmtree(gone)  # git still lists it: a stale admin entry

    report = await worktrees.prune([project], keep_failed_for=KEEP)

    removed = set(report.removed_worktrees)
    assert removed == {done_wt.path, unknown.resolve(), stray.resolve(), gone.resolve()}
    assert sorted(worktree_paths(repo)) == sorted(
        [str(repo), str(review_wt.path), str(running_wt.path)]
    )
    assert sorted(branches(repo)) == sorted(
        ["main", "feature/owner-work", review_wt.branch, running_wt.branch]
    )
    assert not stray.exists() and not unknown.exists()
    assert (await queue.get(done.id)).worktree is None
    assert (await queue.get(reviewed.id)).worktree == str(review_wt.path)
    assert (await queue.get(running.id)).worktree == str(running_wt.path)

    assert await worktrees.prune([project], keep_failed_for=KEEP) == PruneReport()


async def test_a_failed_tasks_worktree_is_kept_for_the_keep_period_then_pruned(
    worktrees, project, queue, repo
):
    task = await running_task(queue, project)
    wt = await worktrees.create(project, task.id, task.title)
    failed = await queue.fail_attempt(task.id, task.lease_token, "the build broke", retry=False)
    assert failed.status is TaskStatus.FAILED

    half_way = failed.finished_at + KEEP / 2
    early = await worktrees.prune([project], keep_failed_for=KEEP, now=half_way)
    assert early.removed_worktrees == [] and wt.path.is_dir()
    assert wt.branch in branches(repo)

    long_after = failed.finished_at + KEEP * 2
    late = await worktrees.prune([project], keep_failed_for=KEEP, now=long_after)
    assert late.removed_worktrees == [wt.path] and late.removed_branches == [wt.branch]
    assert not wt.path.exists() and wt.branch not in branches(repo)
    assert (await queue.get(task.id)).worktree is None


async def test_lugh_run_keeps_pruning_failed_worktrees_past_their_keep_and_leaves_live_ones(
    worktrees, project, queue, pool, data_dir
):
    failed_task = await running_task(queue, project, "Breaks the build")
    failed_wt = await worktrees.create(project, failed_task.id, failed_task.title)
    await queue.fail_attempt(failed_task.id, failed_task.lease_token, "broke", retry=False)
    live_task = await running_task(queue, project, "Still working")
    live_wt = await worktrees.create(project, live_task.id, live_task.title)
    pruning = WorktreePruning(
        worktrees, ProjectService(pool, data_dir), keep_failed_for=timedelta(0), every_s=0.01
    )

    running = asyncio.create_task(pruning.run())
    try:
        await asyncio.wait_for(pruning.round_done.wait(), 10)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running

    assert not failed_wt.path.exists()
    assert live_wt.path.is_dir()


async def test_a_row_naming_a_worktree_git_no_longer_has_is_cleared_by_prune(
    worktrees, project, queue, repo
):
    task = await running_task(queue, project)
    wt = await worktrees.create(project, task.id, task.title)
    await queue.complete(task.id, task.lease_token, "done")
    git(repo, "worktree", "remove", "--force", str(wt.path))  # a crash before the row forgot it

    report = await worktrees.prune([project], keep_failed_for=KEEP)

    assert report.forgotten == [task.id]
    assert report.removed_branches == [wt.branch]
    assert (await queue.get(task.id)).worktree is None


async def test_removing_a_worktree_deletes_its_directory_and_when_asked_its_branch(
    worktrees, project, queue, repo
):
    first = await running_task(queue, project, "first")
    second = await running_task(queue, project, "second")
    keep_branch = await worktrees.create(project, first.id, first.title)
    drop_branch = await worktrees.create(project, second.id, second.title)

    await worktrees.remove(keep_branch, delete_branch=False)
    await worktrees.remove(drop_branch, delete_branch=True)

    assert not keep_branch.path.exists() and not drop_branch.path.exists()
    assert worktree_paths(repo) == [str(repo)]
    assert sorted(branches(repo)) == sorted(["main", keep_branch.branch])
    assert (await queue.get(first.id)).worktree is None
    assert (await queue.get(first.id)).branch == keep_branch.branch  # kept as history


async def test_no_worktree_is_made_for_a_task_that_has_ended(worktrees, project, queue):
    task = await running_task(queue, project)
    await queue.cancel(task.id)

    with pytest.raises(UserError, match=rf"^Task #{task.id} is cancelled, so no worktree is made"):
        await worktrees.create(project, task.id, task.title)


async def test_a_removed_projects_worktrees_are_pruned(
    worktrees, project, queue, pool, data_dir, tmp_path
):
    other_repo = make_repo(tmp_path / "other")
    other = await ProjectService(pool, data_dir).register("other", str(other_repo))
    task = await running_task(queue, other)
    wt = await worktrees.create(other, task.id, task.title)

    report = await worktrees.prune([project], keep_failed_for=KEEP)

    assert report.removed_worktrees == [wt.path.parent]
    assert not wt.path.parent.exists()


async def test_removing_a_project_registered_in_place_takes_only_what_lugh_made_in_its_repo(
    pool, data_dir, tmp_path
):
    repo = make_repo(tmp_path / "inplace")
    git(repo, "branch", "feature")
    projects = ProjectService(pool, data_dir)
    worktrees = WorktreeManager(data_dir, pool)
    projects.after_remove = worktrees.forget_project
    project = await projects.register("inplace", str(repo))
    queue = TaskQueue(pool)
    made = []
    for title in ("First task", "Second task"):
        made.append(await worktrees.create(project, (await running_task(queue, project)).id, title))

    await projects.remove("inplace")

    assert not any(wt.path.exists() for wt in made)
    assert not (data_dir / "worktrees" / "inplace").exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "branch", "--format=%(refname:short)").split() == ["feature", "main"]
    assert (repo / "README.md").exists()


async def test_hooks_planted_in_the_repository_never_run_when_worktrees_are_made_and_removed(
    worktrees, project, queue, repo, tmp_path
):
    canary = tmp_path / "hook-ran"
    plant_hooks(repo, canary)
    task = await running_task(queue, project)

    wt = await worktrees.create(project, task.id, task.title)
    await worktrees.remove(wt, delete_branch=True)
    await worktrees.prune([project], keep_failed_for=KEEP)

    assert not canary.exists()
