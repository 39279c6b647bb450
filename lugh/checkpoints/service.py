"""Checkpoints of one project: create, list, verify, delete, clean up, and restore (restore.py).

A checkpoint is the project's git state (a bundle of every branch and tag, and the uncommitted
work of running tasks as patches) plus its rows (snapshot.py), written atomically under
`<data_dir>/checkpoints/<project>/` (archive.py) and listed in the `checkpoints` table.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg

from lugh.agents.worktrees import Worktree, WorktreeManager
from lugh.checkpoints import archive, gitstate, snapshot
from lugh.checkpoints.model import KINDS, Checkpoint, RestorePlan, RestoreReport
from lugh.checkpoints.retention import Retention, expired_ids
from lugh.db import queries
from lugh.errors import NotFound, UserError
from lugh.logs import get_logger
from lugh.projects import Project, ProjectService
from lugh.tasks import TaskQueue

Q = queries.load(__file__, "checkpoints")
log = get_logger("lugh.checkpoints")

MAX_LABEL = 200
DAILY = timedelta(hours=23, minutes=30)  # a little under a day, so the hour it runs at holds
ORPHAN_GRACE = timedelta(hours=1)  # a directory younger than this may still be being written


@dataclass
class CleanReport:
    deleted: list[int] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)


class CheckpointService:
    """Save a project's whole state and put it back. Every front door (commands, CLI, MCP) and
    the automatic triggers (merge, daily, before destructive operations) call this."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        projects: ProjectService,
        worktrees: WorktreeManager,
        tasks: TaskQueue,
        data_dir: Path,
        *,
        retention: Retention | None = None,
    ) -> None:
        self.pool = pool
        self.projects = projects
        self.worktrees = worktrees
        self.tasks = tasks
        self.root = Path(data_dir) / "checkpoints"
        self.retention = retention or Retention()
        self._locks: dict[str, asyncio.Lock] = {}

    async def create(
        self, project_name_or_id: str | int | Project, *, kind: str = "manual",
        label: str | None = None,
    ) -> Checkpoint:  # fmt: skip
        """Save the project now; the checkpoint is listed only once it is complete on disk."""
        if kind not in KINDS:
            raise UserError(f"A checkpoint's kind is one of {', '.join(KINDS)}, not {kind!r}.")
        label = _clean_label(label)
        project = await self.project(project_name_or_id)
        # A restore under way takes its own (pre_operation) checkpoint; any other would catch
        # the project half put back.
        if kind != "pre_operation" and await self.pool.fetchrow(Q.running_restore, project.id):
            raise UserError(
                f"A restore of {project.name} is under way; save a checkpoint once it is done."
            )
        started = time.perf_counter()
        async with self._lock(project.name):
            staging = archive.Staging.open(self.root / project.name, kind, _now())
            try:
                manifest = await self._capture(project, staging, kind, label)
                path, size, manifest = await asyncio.to_thread(staging.commit, manifest)
            except BaseException:
                await asyncio.shield(asyncio.to_thread(staging.discard))
                raise
            row = await self.pool.fetchrow(
                Q.insert_checkpoint, project.id, project.name, kind, label, str(path), size,
                json.dumps(manifest),
            )  # fmt: skip
        checkpoint = Checkpoint.from_row(row)
        log.info(
            "checkpoint created", project=project.name, checkpoint=checkpoint.id, kind=kind,
            size_bytes=size, seconds=round(time.perf_counter() - started, 3),
        )  # fmt: skip
        if kind != "manual":
            await self._clean_kind(kind)
        return checkpoint

    async def get(self, checkpoint_id: int) -> Checkpoint:
        row = await self.pool.fetchrow(Q.get_checkpoint, int(checkpoint_id))
        if row is None:
            raise NotFound(f"There is no checkpoint #{checkpoint_id}; /checkpoints lists them.")
        return Checkpoint.from_row(row)

    async def list(self, project: str | int | Project | None = None) -> list[Checkpoint]:
        """The checkpoints of `project` (every project's when None), newest first."""
        name = None if project is None else await self._project_name(project)
        return [Checkpoint.from_row(r) for r in await self.pool.fetch(Q.list_checkpoints, name)]

    async def verify(self, checkpoint_id: int) -> None:
        """Raise UserError (one sentence) unless every file matches its recorded sha256."""
        checkpoint = await self.get(checkpoint_id)
        await asyncio.to_thread(
            archive.verify, checkpoint.path, checkpoint.manifest, f"#{checkpoint.id}"
        )

    async def preview_restore(self, checkpoint_id: int) -> RestorePlan:
        """What restoring would change (nothing is changed)."""
        from lugh.checkpoints.restore import plan_restore

        return await plan_restore(self, await self.get(checkpoint_id))

    async def restore(self, checkpoint_id: int) -> RestoreReport:
        """Put the project back as it was in the checkpoint (see restore.py for the steps)."""
        from lugh.checkpoints.restore import restore

        return await restore(self, await self.get(checkpoint_id))

    async def resume_restores(self) -> list[RestoreReport]:
        """Finish every restore that was cut short (at start, before work is claimed)."""
        from lugh.checkpoints.restore import resume

        reports = []
        for row in await self.pool.fetch(Q.running_restores):
            reports.append(await resume(self, row))
        return reports

    async def delete(self, checkpoint_id: int) -> Checkpoint:
        checkpoint = await self.get(checkpoint_id)
        row = await self.pool.fetchrow(Q.delete_checkpoint, checkpoint.id)
        if row is None:
            raise UserError(
                f"Checkpoint #{checkpoint.id} is part of a restore under way; finish it with "
                "/restore first."
            )
        await asyncio.to_thread(archive.remove, checkpoint.path)
        log.info("checkpoint deleted", checkpoint=checkpoint.id, project=checkpoint.project)
        return checkpoint

    async def clean(self) -> CleanReport:
        """Apply the retention of every kind, and remove directories no checkpoint names (left
        by a crash while one was written or deleted)."""
        report = CleanReport()
        for kind in KINDS:
            report.deleted += await self._clean_kind(kind)
        known = {Path(r["path"]) for r in await self.pool.fetch(Q.checkpoint_paths)}
        report.orphans = await asyncio.to_thread(self._remove_orphans, known)
        return report

    async def after_merge(self, project: Project, task_id: int) -> None:
        """The automatic checkpoint once a task is merged; a failure is logged, never raised
        (the merge has happened)."""
        try:
            await self.create(project, kind="merge", label=f"after merging #{task_id}")
        except Exception:
            log.exception("merge checkpoint failed", project=project.name, task=task_id)

    async def before_remove(self, project: Project) -> Checkpoint:
        """The checkpoint taken before a project is removed (restoring it brings the project
        back); the removal does not go ahead without it."""
        try:
            return await self.create(project, kind="pre_operation", label="before removal")
        except UserError as exc:
            raise UserError(
                f"Lugh could not save a checkpoint of {project.name} before removing it "
                f"({str(exc).rstrip('.')}), so nothing was removed."
            ) from None

    async def daily(self) -> list[Checkpoint]:
        """A daily checkpoint of every project whose last one is a day old (or that has none)."""
        made = []
        for project in await self.projects.list():
            last = await self.pool.fetchval(Q.latest_of_kind, project.name, "daily")
            if last is not None and _now() - last < DAILY:
                continue
            try:
                made.append(await self.create(project, kind="daily", label=f"{_now():%Y-%m-%d}"))
            except Exception:
                log.exception("daily checkpoint failed", project=project.name)
        return made

    async def project(self, project: str | int | Project) -> Project:
        if isinstance(project, Project):
            return project
        if isinstance(project, int) or str(project).isdigit():
            for candidate in await self.projects.list():
                if candidate.id == int(project):
                    return candidate
            raise NotFound(f"There is no project #{project}.")
        return await self.projects.get(str(project))

    async def _project_name(self, project: str | int | Project) -> str:
        if isinstance(project, str) and not project.isdigit():
            return project  # a removed project's checkpoints are still listed by its name
        return (await self.project(project)).name

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    async def _capture(
        self, project: Project, staging: archive.Staging, kind: str, label: str | None
    ) -> dict[str, Any]:
        repo = project.repo_path
        refs = await gitstate.current_refs(repo)
        await gitstate.write_bundle(repo, staging.file(gitstate.BUNDLE))
        await asyncio.to_thread(staging.add_existing, gitstate.BUNDLE)
        patches: dict[str, Any] = {}
        for row in await self.pool.fetch(Q.running_tasks_with_worktrees, project.id):
            wt = Worktree(
                row["id"], project.name, repo, Path(row["worktree"]), row["branch"],
                row["base_commit"] or "",
            )  # fmt: skip
            if not wt.path.is_dir():
                continue
            head, patch = await gitstate.worktree_patch(self.worktrees, wt)
            relative = f"patches/{wt.task_id}.patch"
            out = staging.writer(relative)
            await out.write(patch)
            staging.added(relative, *out.close())
            patches[str(wt.task_id)] = {"file": relative, "head": head, "branch": wt.branch}
        async with self.pool.acquire() as conn:
            rows = await snapshot.dump(conn, project.id, staging)
        return {
            "project": {
                "id": project.id, "name": project.name, "repo_path": str(repo),
                "default_branch": project.default_branch, "repo_url": project.repo_url,
            },
            "kind": kind,
            "label": label,
            "created_at": _now().isoformat(),
            "git": {"bundle": gitstate.BUNDLE, "refs": refs},
            "patches": patches,
            "rows": rows,
        }  # fmt: skip

    async def _clean_kind(self, kind: str) -> list[int]:
        rows = await self.pool.fetch(Q.retention_candidates, kind)
        deleted = []
        for checkpoint_id in expired_ids(self.retention, kind, rows, _now()):
            try:
                await self.delete(checkpoint_id)
            except UserError:
                continue  # part of a restore under way, or deleted meanwhile
            deleted.append(checkpoint_id)
        return deleted

    def _remove_orphans(self, known: set[Path]) -> list[Path]:
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        cutoff = time.time() - ORPHAN_GRACE.total_seconds()
        for project_dir in self.root.iterdir():
            if not project_dir.is_dir():
                continue
            for entry in project_dir.iterdir():
                if entry in known or entry.stat().st_mtime > cutoff:
                    continue
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        return removed


def _clean_label(label: str | None) -> str | None:
    if label is None or not label.strip():
        return None
    label = " ".join(label.split())
    if len(label) > MAX_LABEL:
        raise UserError(f"A checkpoint's label is at most {MAX_LABEL} characters.")
    return label


def _now() -> datetime:
    return datetime.now(timezone.utc)
