"""Putting a project back as a checkpoint saved it, in steps that can each be run again.

1. The checkpoint's files are verified against their sha256 (a damaged one is refused).
2. A journal row (`checkpoint_restores`) is written; one restore per project at a time.
3. The project's running tasks are cancelled, and a pre_operation checkpoint is taken.
4. The project's task worktrees are removed; branches and tags are set exactly as saved (one
   `update-ref` transaction; missing objects come from the bundle).
5. One transaction deletes the project's rows, copies the saved ones back (same ids), requeues
   the tasks that were running but holds them back, and moves the journal to step 'rows'.
6. Worktrees of those tasks (and of tasks awaiting review) are made again on their branches,
   with the saved uncommitted changes applied.
7. One transaction releases the held tasks and closes the journal.

Killed anywhere, the journal says where it stopped: steps 3–5 are repeated until step 5 has
committed, then 6–7; each step gives the same result when repeated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from lugh.checkpoints import gitstate, snapshot
from lugh.checkpoints.model import Checkpoint, RestorePlan, RestoreReport
from lugh.db import queries
from lugh.errors import UserError
from lugh.git import run, validate_branch_name
from lugh.logs import get_logger
from lugh.projects import Project
from lugh.tasks import TaskError

if TYPE_CHECKING:
    from lugh.checkpoints.service import CheckpointService

Q = queries.load(__file__, "checkpoints")
log = get_logger("lugh.checkpoints.restore")


async def plan_restore(service: CheckpointService, checkpoint: Checkpoint) -> RestorePlan:
    manifest = checkpoint.manifest
    info = manifest["project"]
    repo = Path(info["repo_path"])
    wanted: dict[str, str] = manifest["git"]["refs"]
    then = snapshot.summary_of(manifest)
    project = await _existing(service, info["id"])
    problem = None
    if project is None:
        now = snapshot.Contents({}, {}, {})
        running: list[int] = []
        taken = [p for p in await service.projects.list() if p.name == info["name"]]
        if taken:
            problem = (
                f"Another project is now called {info['name']!r}, so this checkpoint cannot "
                "bring its project back; remove that project first."
            )
    else:
        async with service.pool.acquire() as conn:
            now = await snapshot.contents(conn, project.id)
        running = [r["id"] for r in await service.pool.fetch(Q.running_task_ids, project.id)]
    refs_now = await gitstate.current_refs(repo) if (repo / ".git").exists() else {}
    if problem is None and refs_now:
        problem = await gitstate.working_copy_problem(repo, wanted)
    return RestorePlan(
        checkpoint=checkpoint,
        tasks_removed=[(i, t) for i, (t, _) in now.tasks.items() if i not in then.tasks],
        tasks_back=[(i, t) for i, (t, _) in then.tasks.items() if i not in now.tasks],
        tasks_changed=[
            (i, t, now.tasks[i][1], _after(s))
            for i, (t, s) in then.tasks.items()
            if i in now.tasks and now.tasks[i][1] != _after(s)
        ],
        refs=gitstate.ref_changes(refs_now, wanted),
        documents_removed=[p for i, p in now.documents.items() if i not in then.documents],
        documents_back=[p for i, p in then.documents.items() if i not in now.documents],
        memories_removed=len(now.memories.keys() - then.memories.keys()),
        memories_back=len(then.memories.keys() - now.memories.keys()),
        running=running,
        requeued=[i for i, (_, s) in then.tasks.items() if s == "running"],
        problem=problem,
    )


async def restore(service: CheckpointService, checkpoint: Checkpoint) -> RestoreReport:
    await service.verify(checkpoint.id)
    project_id = checkpoint.manifest["project"]["id"]
    under_way = await service.pool.fetchrow(Q.running_restore, project_id)
    if under_way is not None:
        if under_way["checkpoint_id"] != checkpoint.id:
            other = under_way["checkpoint_id"]
            raise UserError(
                f"A restore of checkpoint #{other} of this project was cut short; run "
                f"/restore {other} to finish it first."
            )
        return await _run(service, checkpoint, under_way)
    plan = await plan_restore(service, checkpoint)
    if plan.problem:
        raise UserError(plan.problem)
    journal = await service.pool.fetchrow(Q.start_restore, checkpoint.id, project_id)
    if journal is None:
        raise UserError("Another restore of this project has just started; wait for it to finish.")
    return await _run(service, checkpoint, journal)


async def resume(service: CheckpointService, journal: asyncpg.Record) -> RestoreReport:
    checkpoint = await service.get(journal["checkpoint_id"])
    await service.verify(checkpoint.id)
    return await _run(service, checkpoint, journal)


async def _run(
    service: CheckpointService, checkpoint: Checkpoint, journal: asyncpg.Record
) -> RestoreReport:
    # A session lock, so a process dying mid-restore lets the next one in at once.
    async with service.pool.acquire() as held:
        if not await held.fetchval(Q.try_restore_lock, journal["project_id"]):
            raise UserError(
                "A restore of this project is running right now; wait for it to finish."
            )
        try:
            journal = await held.fetchrow(Q.restore_journal, journal["id"])  # as of now
            if journal["status"] == "done":
                held_ids = [h["id"] for h in _json(journal["held"])]
                return RestoreReport(checkpoint, journal["pre_checkpoint_id"], held_ids, [])
            return await _steps(service, checkpoint, journal)
        finally:
            try:
                await held.execute(Q.restore_unlock, journal["project_id"])
            except BaseException:  # the pool does not reset sessions: the lock must not stay
                held.terminate()
                raise


async def _steps(
    service: CheckpointService, checkpoint: Checkpoint, journal: asyncpg.Record
) -> RestoreReport:
    manifest = checkpoint.manifest
    info = manifest["project"]
    project_id, name, repo = info["id"], info["name"], Path(info["repo_path"])
    bundle = checkpoint.path / manifest["git"]["bundle"]
    held: list[dict[str, Any]] = _json(journal["held"])
    pre_id = journal["pre_checkpoint_id"]
    worktrees_dir = service.worktrees.root / name
    if journal["step"] == "started":
        project = await _existing(service, project_id)
        if project is not None:
            await _stop_running(service, project, checkpoint)
            if pre_id is None:
                pre = await service.create(
                    project, kind="pre_operation", label=f"before restoring #{checkpoint.id}"
                )
                pre_id = pre.id
                await service.pool.execute(Q.note_pre_checkpoint, journal["id"], pre_id)
        await _prepare_repo(repo, bundle, info["default_branch"], info.get("repo_url"))
        await gitstate.remove_worktrees(repo, worktrees_dir)
        await gitstate.restore_refs(repo, bundle, manifest["git"]["refs"])
        async with service.pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchrow(Q.lock_restore, journal["id"])
            if locked["step"] == "started":
                held = await snapshot.load(
                    conn, project_id, checkpoint.path, manifest["rows"], manifest["files"]
                )
                await conn.execute(Q.rows_restored, journal["id"], json.dumps(held))
            else:
                held = _json(locked["held"])
    else:
        await gitstate.remove_worktrees(repo, worktrees_dir)
    made = await _remake_worktrees(service, checkpoint, project_id, name, repo, held)
    async with service.pool.acquire() as conn, conn.transaction():
        await conn.fetch(Q.release_held, json.dumps(held))
        await conn.execute(Q.finish_restore, journal["id"])
    requeued = [h["id"] for h in held]
    log.info(
        "checkpoint restored", checkpoint=checkpoint.id, project=name, pre_checkpoint=pre_id,
        requeued=requeued, worktrees=made,
    )  # fmt: skip
    return RestoreReport(checkpoint, pre_id, requeued, made)


async def _stop_running(
    service: CheckpointService, project: Project, checkpoint: Checkpoint
) -> None:
    for row in await service.pool.fetch(Q.running_task_ids, project.id):
        try:
            await service.tasks.cancel(
                row["id"], reason=f"stopped to restore checkpoint #{checkpoint.id}"
            )
        except TaskError:
            continue  # it ended meanwhile


async def _remake_worktrees(
    service: CheckpointService, checkpoint: Checkpoint, project_id: int, name: str, repo: Path,
    held: list[dict[str, Any]],
) -> list[int]:  # fmt: skip
    held_ids = [h["id"] for h in held]
    patches = checkpoint.manifest.get("patches", {})
    made = []
    for row in await service.pool.fetch(Q.tasks_with_worktrees, project_id, held_ids):
        path = service.worktrees.path_for(name, row["id"])
        saved = patches.get(str(row["id"])) if row["id"] in held_ids else None
        patch = checkpoint.path / saved["file"] if saved else None
        if await gitstate.recreate_worktree(repo, path, row["branch"], patch):
            made.append(row["id"])
            if row["worktree"] != str(path):
                await service.pool.execute(Q.move_worktree, row["id"], str(path))
    return made


async def _prepare_repo(
    repo: Path, bundle: Path, default_branch: str, url: str | None
) -> None:
    """A clone Lugh deleted with its project is made again from the bundle (its branches are
    then set like any others', and the default branch checked out), with its `origin` the URL
    it was cloned from (as registered: without credentials). Checkpoints older than the URL in
    their manifest give a clone without `origin`."""
    if repo.exists():
        return
    await run(
        "clone", "--quiet", "--no-checkout", "--end-of-options", str(bundle), str(repo),
        timeout_s=1800.0,
    )  # fmt: skip
    await run("remote", "remove", "origin", cwd=repo)
    if url:
        await run("remote", "add", "--end-of-options", "origin", url, cwd=repo)
    head = f"refs/heads/{validate_branch_name(default_branch)}"
    await run("symbolic-ref", "HEAD", head, cwd=repo)


async def _existing(service: CheckpointService, project_id: int) -> Project | None:
    for project in await service.projects.list():
        if project.id == project_id:
            return project
    return None


def _after(status: str) -> str:
    return "queued" if status == "running" else status


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
