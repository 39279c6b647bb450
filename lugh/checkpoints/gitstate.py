"""A project's git state: every branch and tag as a `git bundle`, and the uncommitted work of
running tasks' worktrees as binary patches. All through lugh.git.run (hooks and fsmonitor off).

Putting refs back is one `git update-ref --stdin` transaction: every branch and tag is moved,
made or deleted at once, or none is. A restore run twice does the same thing twice.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

from lugh.agents.worktrees import CHECKOUT_TIMEOUT_S, Worktree, WorktreeManager, list_worktrees
from lugh.errors import UserError
from lugh.git import GitError, run

BUNDLE = "git/repo.bundle"
BUNDLE_TIMEOUT_S = 1800.0
REFS = ("refs/heads/", "refs/tags/")
_FETCHED = "refs/lugh-restore/"


async def current_refs(repo: Path) -> dict[str, str]:
    """Every branch and tag of `repo` → the object it points at."""
    listed = await run("for-each-ref", "--format=%(refname) %(objectname)", *REFS, cwd=repo)
    pairs = (line.split(" ", 1) for line in listed.stdout.splitlines() if line)
    return {name: sha for name, sha in pairs}


async def write_bundle(repo: Path, target: Path) -> None:
    await run(
        "bundle", "create", "--quiet", str(target), "--branches", "--tags",
        cwd=repo, timeout_s=BUNDLE_TIMEOUT_S,
    )  # fmt: skip


async def worktree_patch(worktrees: WorktreeManager, wt: Worktree) -> tuple[str, bytes]:
    """(HEAD commit, binary patch) of a worktree's uncommitted changes, untracked files included
    (ignored files are not)."""
    head = (await worktrees.run_git(wt, "rev-parse", "--verify", "HEAD")).out
    tracked = await worktrees.run_git(wt, "diff", "--binary", "--no-ext-diff", "HEAD")
    parts = [tracked.stdout.encode("utf-8", "surrogateescape")]
    others = await worktrees.run_git(wt, "ls-files", "--others", "--exclude-standard", "-z")
    for name in filter(None, others.stdout.split("\0")):
        added = await worktrees.run_git(
            wt, "diff", "--binary", "--no-ext-diff", "--no-index", "--", "/dev/null", name,
            check=False,
        )  # fmt: skip
        if added.returncode not in (0, 1):
            raise GitError(f"Lugh could not save the new file {name} of task #{wt.task_id}.")
        parts.append(added.stdout.encode("utf-8", "surrogateescape"))
    return head, b"".join(parts)


@dataclass(frozen=True)
class RefChanges:
    made: dict[str, str]
    moved: dict[str, tuple[str, str]]  # ref → (now, after the restore)
    deleted: dict[str, str]

    @property
    def empty(self) -> bool:
        return not (self.made or self.moved or self.deleted)


def ref_changes(now: dict[str, str], wanted: dict[str, str]) -> RefChanges:
    return RefChanges(
        made={r: s for r, s in wanted.items() if r not in now},
        moved={r: (now[r], s) for r, s in wanted.items() if r in now and now[r] != s},
        deleted={r: s for r, s in now.items() if r not in wanted},
    )


async def checked_out_branch(repo: Path) -> str | None:
    head = await run("symbolic-ref", "-q", "HEAD", cwd=repo, check=False)
    return head.out if head.ok and head.out.startswith("refs/heads/") else None


async def working_copy_problem(repo: Path, wanted: dict[str, str]) -> str | None:
    """Why the repository's own working copy stops a restore (it has uncommitted changes on a
    branch the restore would move), or None."""
    branch = await checked_out_branch(repo)
    if branch is None or (await current_refs(repo)).get(branch) == wanted.get(branch):
        return None
    if branch in wanted and await _copy_at(repo, wanted[branch]):
        return None  # a restore cut short already updated it
    if await _dirty(repo):
        return (
            f"The working copy at {repo} has uncommitted changes on "
            f"{branch.removeprefix('refs/heads/')}, which the restore would move; commit or stash "
            "them, then restore again."
        )
    return None


async def restore_refs(repo: Path, bundle: Path, wanted: dict[str, str]) -> None:
    """Make the repository's branches and tags exactly `wanted`, taking missing objects from
    the bundle; the checked-out working copy follows its branch (it must be clean)."""
    missing = await _missing_objects(repo, set(wanted.values()))
    if missing:
        await run(
            "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(bundle),
            f"+refs/heads/*:{_FETCHED}heads/*", f"+refs/tags/*:{_FETCHED}tags/*",
            cwd=repo, timeout_s=BUNDLE_TIMEOUT_S,
        )  # fmt: skip
    branch = await checked_out_branch(repo)
    now = await current_refs(repo)
    if branch is not None and now.get(branch) != wanted.get(branch) and branch in wanted:
        if not await _copy_at(repo, wanted[branch]):
            problem = await working_copy_problem(repo, wanted)
            if problem:
                raise UserError(problem)
            base = [now[branch]] if branch in now else []  # none: a clone made from the bundle
            await run(
                "read-tree", "-m", "-u", *base, wanted[branch], cwd=repo,
                timeout_s=CHECKOUT_TIMEOUT_S,
            )  # fmt: skip
    changes = ref_changes(now, wanted)
    updates = {**changes.made, **{r: new for r, (_, new) in changes.moved.items()}}
    lines = [f"update {r} {s}" for r, s in updates.items()]
    lines += [f"delete {r}" for r in changes.deleted if r != branch]
    if lines:
        script = "start\n" + "\n".join(lines) + "\nprepare\ncommit\n"
        await run("update-ref", "--stdin", cwd=repo, input=script.encode())
    fetched = await run("for-each-ref", "--format=delete %(refname)", _FETCHED, cwd=repo)
    if fetched.out:
        await run("update-ref", "--stdin", cwd=repo, input=fetched.stdout.encode())


async def remove_worktrees(repo: Path, directory: Path) -> None:
    """Remove every worktree of `repo` under `directory` (one project's), and the directory."""
    for path in await list_worktrees(repo):
        if path.is_relative_to(directory.resolve()):
            await run(
                "worktree", "remove", "--force", "--force", "--end-of-options", str(path),
                cwd=repo, check=False, timeout_s=CHECKOUT_TIMEOUT_S,
            )  # fmt: skip
    if directory.exists():
        await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)
    await run("worktree", "prune", cwd=repo)


async def recreate_worktree(repo: Path, path: Path, branch: str, patch: Path | None) -> bool:
    """Check `branch` out at `path` again and apply the saved changes; False when the branch
    is not there (the task's worktree is then made afresh when it runs)."""
    exists = await run("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=repo,
                       check=False)  # fmt: skip
    if not exists.ok:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    await run(
        "worktree", "add", "--quiet", "--end-of-options", str(path), branch,
        cwd=repo, timeout_s=CHECKOUT_TIMEOUT_S,
    )  # fmt: skip
    if patch is not None and patch.stat().st_size:
        await run("apply", "--binary", "--whitespace=nowarn", str(patch), cwd=path)
    return True


async def _missing_objects(repo: Path, shas: set[str]) -> bool:
    if not shas:
        return False
    checked = await run(
        "cat-file", "--batch-check=%(objectname)", cwd=repo, input="\n".join(sorted(shas)).encode()
    )
    return "missing" in checked.stdout


async def _copy_at(repo: Path, commit: str) -> bool:
    """Whether the working copy's index and tracked files are exactly `commit`'s."""
    for cached in (("--cached",), ()):
        same = await run("diff", "--quiet", *cached, commit, "--", cwd=repo, check=False)
        if not same.ok:
            return False
    return True


async def _dirty(repo: Path) -> bool:
    status = await run("--no-optional-locks", "status", "--porcelain", "-z",
                       "--untracked-files=no", cwd=repo)  # fmt: skip
    return bool(status.stdout.strip("\0"))
