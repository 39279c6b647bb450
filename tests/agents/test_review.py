import asyncio
from pathlib import Path

import pytest

from lugh.agents.review import MergeRefused, MergeResult, ReviewError, ReviewService
from lugh.agents.worktrees import Worktree, WorktreeManager
from lugh.errors import UserError
from lugh.projects import AgentService, Project, ProjectService
from lugh.tasks import Task, TaskQueue, TaskStatus
from tests.conftest import git, make_repo

HOOKS = (
    "pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "post-checkout",
    "post-merge", "pre-merge-commit", "reference-transaction", "post-rewrite", "pre-auto-gc",
    "post-index-change",
)  # fmt: skip
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")  # for the test's own commits once hooks are planted


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def projects(pool, data_dir) -> ProjectService:
    return ProjectService(pool, data_dir)


@pytest.fixture
async def project(projects, repo) -> Project:
    return await projects.register("demo", str(repo))


@pytest.fixture
def queue(pool) -> TaskQueue:
    return TaskQueue(pool)


@pytest.fixture
def worktrees(data_dir, pool) -> WorktreeManager:
    return WorktreeManager(data_dir, pool)


@pytest.fixture
def review(pool, projects, worktrees, queue) -> ReviewService:
    return ReviewService(pool, projects, worktrees, queue)


async def start(
    queue: TaskQueue, worktrees: WorktreeManager, project: Project, title: str, **kwargs
) -> tuple[Task, Worktree]:
    """A task claimed by a worker, with its worktree made, as the agent loop would have it."""
    await queue.enqueue(project.id, title, **kwargs)
    task = await queue.claim("test-worker", 60)
    assert task is not None
    return task, await worktrees.create(project, task.id, task.title)


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


async def submitted(queue, worktrees, review, project, files, title="Add a greeting"):
    task, wt = await start(queue, worktrees, project, title)
    write(wt.path, files)
    submission = await review.submit(task, "wrote it")
    assert submission.status is TaskStatus.AWAITING_REVIEW
    return task, wt, submission


def commit_on_main(repo: Path, files: dict[str, str], *extra: str) -> str:
    write(repo, files)
    git(repo, *extra, "add", "-A")
    git(repo, *extra, "commit", "-q", "-m", "the owner's own change")
    return git(repo, "rev-parse", "main")


def worktree_paths(repo: Path) -> list[str]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [line[len("worktree ") :] for line in out.splitlines() if line.startswith("worktree ")]


def lugh_branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:strip=2)", "refs/heads/lugh/").split()


async def approval_of(pool, task_id: int):
    return await pool.fetchrow(
        "SELECT * FROM approvals WHERE task_id = $1 ORDER BY id DESC LIMIT 1", task_id
    )


async def test_a_task_that_creates_a_file_ends_merged_on_main_by_fast_forward(
    review, queue, worktrees, project, repo, pool
):
    task, wt, submission = await submitted(
        queue, worktrees, review, project, {"hello.txt": "hello\n"}
    )
    assert submission.diff.summary == "+1 −0 in 1 file"
    pending = await approval_of(pool, task.id)
    assert (pending["kind"], pending["status"], pending["id"]) == (
        "review", "pending", submission.approval_id,
    )
    assert (await queue.get(task.id)).status is TaskStatus.AWAITING_REVIEW

    result = await review.approve(task.id, "button")

    assert result.merged and result.fast_forward
    assert git(repo, "rev-parse", "main") == submission.diff.head == result.commit
    assert git(repo, "show", "main:hello.txt") == "hello"
    assert (await queue.get(task.id)).status is TaskStatus.DONE
    answered = await approval_of(pool, task.id)
    assert (answered["status"], answered["method"]) == ("approved", "button")
    assert not wt.path.exists() and lugh_branches(repo) == []
    assert worktree_paths(repo) == [str(repo)]


async def test_a_clean_checked_out_working_copy_of_main_is_updated_too(
    review, queue, worktrees, project, repo
):
    task, _, _ = await submitted(queue, worktrees, review, project, {"hello.txt": "hello\n"})

    result = await review.approve(task.id, "command")

    assert result.working_copy == repo.resolve()
    assert (repo / "hello.txt").read_text() == "hello\n"
    assert git(repo, "status", "--porcelain") == ""
    assert "updated the working copy" in result.message


async def test_a_default_branch_checked_out_nowhere_moves_without_touching_any_working_copy(
    review, queue, worktrees, project, repo
):
    git(repo, "checkout", "-q", "--detach")
    task, _, submission = await submitted(queue, worktrees, review, project, {"a.txt": "a\n"})

    result = await review.approve(task.id, "mcp")

    assert result.merged and result.working_copy is None
    assert git(repo, "rev-parse", "main") == submission.diff.head
    assert not (repo / "a.txt").exists()


async def test_the_agents_work_is_committed_on_the_host_as_the_lugh_agent(
    review, queue, worktrees, project, pool
):
    agent = await AgentService(pool).spawn("demo", "ada")
    task, wt = await start(queue, worktrees, project, "Greet", agent_id=agent.id)
    write(wt.path, {"hi.txt": "hi\n"})

    submission = await review.submit(task, "said hi")

    who = git(wt.path, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", submission.diff.head)
    ada = "Lugh agent ada <agent+ada@lugh.local>"
    assert who == f"{ada}|{ada}|Greet"


async def test_main_having_moved_meanwhile_gives_a_merge_commit(
    review, queue, worktrees, project, repo
):
    task, _, submission = await submitted(queue, worktrees, review, project, {"new.txt": "n\n"})
    moved = commit_on_main(repo, {"other.txt": "o\n"})

    result = await review.approve(task.id, "button")

    assert result.merged and not result.fast_forward
    parents = git(repo, "rev-list", "--parents", "-n", "1", "main").split()
    assert parents == [result.commit, moved, submission.diff.head]
    assert git(repo, "show", "main:new.txt") == "n" and git(repo, "show", "main:other.txt") == "o"
    merge = git(repo, "log", "-1", "--format=%an|%s", "main")
    assert merge == f"Lugh|Merge task #{task.id}: Add a greeting"
    assert (repo / "new.txt").read_text() == "n\n"  # the clean working copy followed


async def test_a_conflicting_merge_stays_in_review_with_the_files_named(
    review, queue, worktrees, project, repo, pool
):
    task, wt, _ = await submitted(
        queue, worktrees, review, project, {"README.md": "# the agent's\n", "fine.txt": "ok\n"}
    )
    main_before = commit_on_main(repo, {"README.md": "# the owner's\n"})

    result = await review.approve(task.id, "button")

    assert not result.merged and result.conflicts == ("README.md",)
    assert "README.md" in result.message and "retry" in result.message
    assert git(repo, "rev-parse", "main") == main_before
    row = await queue.get(task.id)
    assert row.status is TaskStatus.AWAITING_REVIEW
    assert row.result["merge"]["conflicts"] == ["README.md"] and "retry" in row.result["merge"]
    assert (await approval_of(pool, task.id))["status"] == "pending"
    assert wt.path.is_dir() and lugh_branches(repo) == [wt.branch]
    last = await pool.fetchval(
        "SELECT kind FROM task_events WHERE task_id = $1 ORDER BY id DESC LIMIT 1", task.id
    )
    assert last == "merge_conflict"


async def test_a_retry_after_a_conflict_starts_afresh_from_main_with_the_feedback(
    review, queue, worktrees, project, repo, pool
):
    task, wt, _ = await submitted(queue, worktrees, review, project, {"README.md": "# agent\n"})
    commit_on_main(repo, {"README.md": "# owner\n"})
    await review.approve(task.id, "button")

    retried = await review.retry(task.id, "Keep the owner's heading.", method="button")

    assert retried.status is TaskStatus.QUEUED and retried.worktree is None
    assert retried.options["feedback"] == ["Keep the owner's heading."]
    assert not wt.path.exists() and lugh_branches(repo) == []
    assert (await approval_of(pool, task.id))["status"] == "cancelled"
    again = await queue.claim("test-worker", 60)
    fresh = await worktrees.create(project, again.id, again.title)
    assert fresh.base_commit == git(repo, "rev-parse", "main")
    assert (fresh.path / "README.md").read_text() == "# owner\n"


async def test_a_retry_after_review_goes_on_from_the_reviewed_work_with_the_feedback(
    review, queue, worktrees, project, pool
):
    task, wt, _ = await submitted(queue, worktrees, review, project, {"hello.py": "print(1)\n"})

    retried = await review.retry(task.id, "Also add a test.")

    assert (retried.status, retried.attempts) == (TaskStatus.QUEUED, 0)
    assert retried.options["feedback"] == ["Also add a test."]
    assert retried.body.endswith("Feedback from the owner: Also add a test.")
    event = await pool.fetchrow(
        "SELECT data FROM task_events WHERE task_id = $1 ORDER BY id DESC LIMIT 1", task.id
    )
    assert '"feedback": "Also add a test."' in event["data"]
    again = await queue.claim("test-worker", 60)
    resumed = await worktrees.create(project, again.id, again.title)
    assert resumed == wt
    write(resumed.path, {"test_hello.py": "assert True\n"})
    second = await review.submit(again, "added the test")
    assert [f.path for f in second.diff.files] == ["hello.py", "test_hello.py"]


async def test_reject_leaves_main_untouched_and_no_worktree_or_branch(
    review, queue, worktrees, project, repo, pool
):
    main_before = git(repo, "rev-parse", "main")
    task, wt, _ = await submitted(queue, worktrees, review, project, {"bad.txt": "no\n"})

    rejected = await review.reject(task.id, "reaction")

    assert rejected.status is TaskStatus.REJECTED
    assert git(repo, "rev-parse", "main") == main_before
    assert not wt.path.exists() and lugh_branches(repo) == []
    assert worktree_paths(repo) == [str(repo)]
    answered = await approval_of(pool, task.id)
    assert (answered["status"], answered["method"]) == ("rejected", "reaction")
    assert not (repo / "bad.txt").exists()


async def test_a_dirty_working_copy_is_never_touched_and_the_merge_is_refused(
    review, queue, worktrees, project, repo, pool
):
    task, wt, _ = await submitted(queue, worktrees, review, project, {"hello.txt": "hello\n"})
    main_before = git(repo, "rev-parse", "main")
    (repo / "README.md").write_text("# the owner is editing this\n")

    with pytest.raises(MergeRefused) as refused:
        await review.approve(task.id, "button")

    message = str(refused.value)
    assert message == (
        f"The working copy at {repo.resolve()} has uncommitted changes on main, so Lugh did not "
        f"merge task #{task.id}; commit or stash them, then approve again."
    )
    assert git(repo, "rev-parse", "main") == main_before
    assert (repo / "README.md").read_text() == "# the owner is editing this\n"
    assert not (repo / "hello.txt").exists()
    assert (await queue.get(task.id)).status is TaskStatus.AWAITING_REVIEW
    assert (await approval_of(pool, task.id))["status"] == "pending"
    assert wt.path.is_dir()

    git(repo, "checkout", "--", "README.md")
    assert (await review.approve(task.id, "button")).merged


async def test_an_untracked_file_in_the_way_refuses_the_merge_and_is_kept(
    review, queue, worktrees, project, repo
):
    task, _, _ = await submitted(queue, worktrees, review, project, {"notes.txt": "agent\n"})
    main_before = git(repo, "rev-parse", "main")
    (repo / "notes.txt").write_text("the owner's own notes\n")

    with pytest.raises(MergeRefused, match=r"would not update the working copy .*notes\.txt"):
        await review.approve(task.id, "button")

    assert git(repo, "rev-parse", "main") == main_before
    assert (repo / "notes.txt").read_text() == "the owner's own notes\n"
    assert (await queue.get(task.id)).status is TaskStatus.AWAITING_REVIEW


async def test_a_crash_after_the_merge_but_before_it_was_recorded_is_finished_by_approving_again(
    review, queue, worktrees, project, repo, pool
):
    task, wt, submission = await submitted(queue, worktrees, review, project, {"a.txt": "a\n"})
    git(repo, "merge", "-q", "--ff-only", submission.diff.head)  # git moved, the row did not

    result = await review.approve(task.id, "button")

    assert result.merged and result.commit == submission.diff.head
    assert "already in main" in result.message
    assert (await queue.get(task.id)).status is TaskStatus.DONE
    assert (await approval_of(pool, task.id))["status"] == "approved"
    assert not wt.path.exists() and lugh_branches(repo) == []


async def test_two_concurrent_approvals_merge_once(review, queue, worktrees, project, repo):
    task, _, _ = await submitted(queue, worktrees, review, project, {"once.txt": "1\n"})
    commit_on_main(repo, {"meanwhile.txt": "m\n"})  # so that each merge would be a new commit

    outcomes = await asyncio.gather(
        review.approve(task.id, "button"), review.approve(task.id, "voice"), return_exceptions=True
    )

    merged = [o for o in outcomes if isinstance(o, MergeResult)]
    refused = [o for o in outcomes if isinstance(o, ReviewError)]
    assert len(merged) == 1 and len(refused) == 1
    assert str(refused[0]) == f"Task #{task.id} was already approved and merged."
    assert len(git(repo, "rev-list", "--merges", "main").split()) == 1


async def test_two_tasks_approved_at_once_both_end_up_on_main(
    review, queue, worktrees, project, repo
):
    first, _, _ = await submitted(queue, worktrees, review, project, {"one.txt": "1\n"}, "One")
    second, _, _ = await submitted(queue, worktrees, review, project, {"two.txt": "2\n"}, "Two")

    outcomes = await asyncio.gather(
        review.approve(first.id, "button"), review.approve(second.id, "button")
    )

    assert all(o.merged for o in outcomes)
    assert git(repo, "show", "main:one.txt") == "1" and git(repo, "show", "main:two.txt") == "2"
    assert git(repo, "status", "--porcelain") == ""


async def test_approving_twice_is_one_clear_sentence_and_changes_nothing(
    review, queue, worktrees, project, repo, pool
):
    task, _, _ = await submitted(queue, worktrees, review, project, {"x.txt": "x\n"})
    await review.approve(task.id, "button")
    main_after = git(repo, "rev-parse", "main")
    events = await pool.fetchval("SELECT count(*) FROM task_events")

    with pytest.raises(ReviewError, match=rf"^Task #{task.id} was already approved and merged\.$"):
        await review.approve(task.id, "button")
    with pytest.raises(ReviewError, match="approved and merged, so it can no longer be rejected"):
        await review.reject(task.id, "button")

    assert git(repo, "rev-parse", "main") == main_after
    assert await pool.fetchval("SELECT count(*) FROM task_events") == events


async def test_answering_a_task_that_is_not_in_review_is_one_clear_sentence(
    review, queue, project
):
    queued = await queue.enqueue(project.id, "not yet")

    not_yet = rf"^Task #{queued.id} is still queued, so there is nothing to review yet\.$"
    with pytest.raises(ReviewError, match=not_yet):
        await review.approve(queued.id, "button")
    with pytest.raises(UserError, match=r"^There is no task #4242\.$"):
        await review.reject(4242, "button")
    assert (await queue.get(queued.id)).status is TaskStatus.QUEUED


async def test_rejecting_twice_says_so(review, queue, worktrees, project):
    task, _, _ = await submitted(queue, worktrees, review, project, {"x.txt": "x\n"})
    await review.reject(task.id, "button")

    with pytest.raises(ReviewError, match=rf"^Task #{task.id} was already rejected\.$"):
        await review.reject(task.id, "button")
    with pytest.raises(ReviewError, match="was rejected, so it can no longer be approved"):
        await review.approve(task.id, "button")


async def test_the_diff_counts_adds_edits_deletes_and_binary_files(
    review, queue, worktrees, pool, projects, tmp_path
):
    repo = make_repo(tmp_path / "counted", {"a.txt": "one\ntwo\nthree\n", "b.txt": "x\ny\n"})
    (repo / "logo.bin").write_bytes(b"\x89PNG\x00\x01\x02")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "binary")
    counted = await projects.register("counted", str(repo))
    task, wt = await start(queue, worktrees, counted, "Touch everything")
    write(wt.path, {
        "new.txt": "first\nsecond\n",
        "a.txt": "one\ntwo changed\nthree\n",
        "logo.bin": b"\x89PNG\x00\x09\x09",
        "pic.png": b"\x00\xff\x00\xff",
    })  # fmt: skip
    (wt.path / "b.txt").unlink()

    submission = await review.submit(task)

    files = {f.path: (f.status, f.added, f.deleted, f.binary) for f in submission.diff.files}
    assert files == {
        "a.txt": ("modified", 1, 1, False),
        "b.txt": ("deleted", 0, 2, False),
        "logo.bin": ("modified", 0, 0, True),
        "new.txt": ("added", 2, 0, False),
        "pic.png": ("added", 0, 0, True),
    }
    assert submission.diff.summary == "+3 −3 in 5 files"
    assert "+two changed" in submission.diff.text and "Binary files" in submission.diff.text
    shown = await review.diff(task.id)
    assert shown.files == submission.diff.files and shown.text == submission.diff.text
    stored = await approval_of(pool, task.id)
    assert '"summary": "+3 −3 in 5 files"' in stored["payload"]


async def test_a_large_diff_text_is_cut_at_the_cap_but_counted_in_full(
    pool, projects, worktrees, queue, project
):
    capped = ReviewService(pool, projects, worktrees, queue, diff_cap_bytes=1000)
    task, wt = await start(queue, worktrees, project, "Big file")
    write(wt.path, {"big.txt": "".join(f"line {i}\n" for i in range(500))})

    submission = await capped.submit(task)

    assert submission.diff.truncated and submission.diff.added == 500
    assert len(submission.diff.text.encode()) <= 1000 and submission.diff.text.endswith("\n")


async def test_a_run_that_changed_nothing_is_done_with_a_note(
    review, queue, worktrees, project, repo, pool
):
    task, wt = await start(queue, worktrees, project, "Look around")

    submission = await review.submit(task, "nothing to change")

    assert submission.status is TaskStatus.DONE and submission.approval_id is None
    assert submission.message == (
        "The agent changed no files, so there was nothing to review or merge."
    )
    done = await queue.get(task.id)
    assert done.status is TaskStatus.DONE and done.result["note"] == submission.message
    assert await pool.fetchval("SELECT count(*) FROM approvals") == 0
    assert not wt.path.exists() and lugh_branches(repo) == []


async def test_work_submitted_after_the_lease_was_lost_is_refused(
    review, queue, worktrees, project, pool
):
    task, wt = await start(queue, worktrees, project, "Too late")
    write(wt.path, {"late.txt": "late\n"})
    await queue.cancel(task.id, reason="the owner stopped it")

    with pytest.raises(ReviewError, match="no longer running under this lease"):
        await review.submit(task)

    assert (await queue.get(task.id)).status is TaskStatus.CANCELLED
    assert await pool.fetchval("SELECT count(*) FROM approvals") == 0


async def test_hooks_planted_in_the_repository_never_run_during_review_and_merge(
    review, queue, worktrees, project, repo, tmp_path
):
    canary = tmp_path / "hook-ran"
    custom = tmp_path / "custom-hooks"
    for directory in (repo / ".git" / "hooks", custom):
        directory.mkdir(parents=True, exist_ok=True)
        for name in HOOKS:
            (directory / name).write_text(f'#!/bin/sh\necho "{name}" >> "{canary}"\n')
            (directory / name).chmod(0o755)
    git(repo, "config", "core.hooksPath", str(custom))

    merged, _, _ = await submitted(queue, worktrees, review, project, {"m.txt": "m\n"})
    commit_on_main(repo, {"owner.txt": "o\n"}, *NO_HOOKS)
    await review.approve(merged.id, "button")  # a merge commit, and the working copy follows
    ff, _, _ = await submitted(queue, worktrees, review, project, {"f.txt": "f\n"}, "Fast")
    await review.approve(ff.id, "button")
    rejected, _, _ = await submitted(queue, worktrees, review, project, {"r.txt": "r\n"}, "No")
    await review.reject(rejected.id, "button")

    assert (repo / "m.txt").exists() and (repo / "f.txt").exists()
    assert not canary.exists()


async def test_a_rewritten_git_file_in_the_worktree_cannot_make_host_git_run_its_commands(
    review, queue, worktrees, project, repo, tmp_path
):
    canary = tmp_path / "filter-ran"
    task, wt = await start(queue, worktrees, project, "Sneaky")
    # The agent makes a repository of its own whose config runs a command on `git add`, and
    # points the worktree's .git file at it.
    evil = wt.path / "evil"
    for part in ("objects", "refs/heads"):
        (evil / part).mkdir(parents=True)
    (evil / "HEAD").write_text("ref: refs/heads/main\n")
    (evil / "config").write_text(
        f"[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
        f'[filter "x"]\n\tclean = "touch {canary} && cat"\n'  # runs under plain git
    )
    write(wt.path, {".gitattributes": "* filter=x\n", "work.txt": "work\n"})
    (wt.path / ".git").write_text(f"gitdir: {evil}\n")

    submission = await review.submit(task)

    assert not canary.exists()
    assert "work.txt" in [f.path for f in submission.diff.files]
    assert git(repo, "rev-parse", wt.branch) == submission.diff.head
