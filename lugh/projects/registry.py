"""The projects Lugh works on: a git repository each, registered in place or cloned."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from lugh import git
from lugh.db import queries
from lugh.errors import AlreadyExists, NotFound, UserError
from lugh.git.repos import CLONE_TIMEOUT_S
from lugh.logs import get_logger
from lugh.projects.names import validate_project_name

Q = queries.load(__file__, "projects")
log = get_logger("lugh.projects")

_URL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*(://|::)|[^/:@\s]+@[^/:\s]+:")


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    repo_path: Path
    repo_url: str | None  # cloned from here (credentials removed); None when used in place
    default_branch: str
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    @property
    def cloned(self) -> bool:
        return self.repo_url is not None

    @property
    def repo(self) -> str:
        """The repository as the owner gave it: the URL for a clone, else the local path."""
        return self.repo_url or str(self.repo_path)


def _project(row: asyncpg.Record) -> Project:
    settings = row["settings"]
    return Project(
        id=row["id"],
        name=row["name"],
        repo_path=Path(row["repo_path"]),
        repo_url=row["repo_url"],
        default_branch=row["default_branch"],
        settings=json.loads(settings) if isinstance(settings, str) else dict(settings),
        created_at=row["created_at"],
    )


class ProjectService:
    """Register, list, find and remove projects. A project is either a local repository used in
    place (never modified or deleted by these methods) or a clone Lugh keeps in
    `<data_dir>/repos/<name>` (deleted with the project)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        data_dir: Path,
        *,
        clone_timeout_s: float = CLONE_TIMEOUT_S,
    ) -> None:
        self.pool = pool
        self.repos_dir = Path(data_dir) / "repos"
        self.clone_timeout_s = clone_timeout_s
        # Called before a removal, which it can refuse by raising: the checkpoint that undoes it.
        self.before_remove: Callable[[Project], Awaitable[object]] | None = None
        # Called once it is removed: what Lugh made for it elsewhere (task worktrees, branches).
        self.after_remove: Callable[[Project], Awaitable[object]] | None = None

    async def register(self, name: str, repo: str) -> Project:
        """Register project `name` for `repo`: a path to a local git work tree with at least one
        commit, or a git URL (https://, ssh, file://) cloned into the data dir."""
        validate_project_name(name)
        repo = repo.strip()
        if not repo or "\x00" in repo:
            raise UserError(
                "Give the path of a git repository on this machine or a git URL "
                "(https://, ssh or file://) to clone."
            )
        if await self.pool.fetchrow(Q.project_by_name, name) is not None:
            raise AlreadyExists(f"A project named {name!r} already exists.")
        local = Path(repo).expanduser()
        if not local.exists() and _URL_LIKE.match(repo):
            return await self._register_clone(name, repo)
        return await self._register_local(name, local)

    async def list(self) -> list[Project]:
        return [_project(row) for row in await self.pool.fetch(Q.list_projects)]

    async def get(self, name: str) -> Project:
        row = await self.pool.fetchrow(Q.project_by_name, name)
        if row is None:
            raise NotFound(f"There is no project named {name!r}.")
        return _project(row)

    async def remove(self, name: str) -> Project:
        """Forget the project (its agents, tasks and knowledge go with it) and delete its clone
        if Lugh made one; of a repository registered in place only what Lugh made goes (its
        tasks' worktrees and `lugh/*` branches, through `after_remove`)."""
        if self.before_remove is not None:
            await self.before_remove(await self.get(name))
        row = await self.pool.fetchrow(Q.delete_project, name)
        if row is None:
            raise NotFound(f"There is no project named {name!r}.")
        project = _project(row)
        if self.after_remove is not None:
            await self.after_remove(project)
        if project.cloned and self._owns(project.repo_path):
            await asyncio.to_thread(shutil.rmtree, project.repo_path, ignore_errors=True)
        return project

    def _owns(self, path: Path) -> bool:
        repos = self.repos_dir.resolve()
        path = path.resolve()
        return path != repos and path.is_relative_to(repos)

    async def _register_local(self, name: str, path: Path) -> Project:
        path = path.resolve()
        if not path.is_dir():
            raise UserError(
                f"There is no directory at {path}; give the path of a git repository or a git "
                "URL (https://, ssh or file://) to clone."
            )
        root = await git.work_tree_root(path)
        if root is None:
            raise UserError(
                f"{path} is not a git repository; run `git init` and commit there, or give a "
                "git URL to clone."
            )
        if root != path:
            raise UserError(f"{path} is inside the git repository {root}; register {root} instead.")
        branch = await self._default_branch(path, remote=None, shown=str(path))
        other = await self.pool.fetchval(Q.project_name_for_repo_path, str(path))
        if other is not None:
            raise AlreadyExists(
                f"The repository {path} is already registered as project {other!r}."
            )
        try:
            row = await self.pool.fetchrow(Q.insert_project, name, str(path), None, branch)
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(f"A project named {name!r} already exists.") from None
        log.info("project registered", project=name, repo=str(path), branch=branch)
        return _project(row)

    async def _register_clone(self, name: str, url: str) -> Project:
        git.validate_clone_source(url)
        shown = git.redact_url(url)
        final = self.repos_dir / name
        # Clone beside the final place and rename once the row is in: a failed clone or a lost
        # race for the name never leaves a directory, and never touches another's clone.
        staging = self.repos_dir / f".clone-{name}-{secrets.token_hex(4)}"
        try:
            await git.clone(url, staging, timeout_s=self.clone_timeout_s)
            branch = await self._default_branch(staging, remote="origin", shown=shown)
            async with self.pool.acquire() as conn:
                renamed = False
                try:
                    async with conn.transaction():
                        row = await conn.fetchrow(Q.insert_project, name, str(final), shown, branch)
                        # Left by a crash between rename and commit: no row owns it.
                        if final.exists():
                            await asyncio.to_thread(shutil.rmtree, final)
                        os.rename(staging, final)
                        renamed = True
                except asyncpg.UniqueViolationError:
                    raise AlreadyExists(f"A project named {name!r} already exists.") from None
                except BaseException:
                    if renamed:
                        os.rename(final, staging)
                    raise
        finally:
            if staging.exists():
                await asyncio.shield(asyncio.to_thread(shutil.rmtree, staging, ignore_errors=True))
        log.info("project cloned", project=name, repo=shown, branch=branch)
        return _project(row)

    async def _default_branch(self, repo: Path, *, remote: str | None, shown: str) -> str:
        if not await git.has_commits(repo):
            raise UserError(
                f"The repository {shown} has no commits yet; commit something first so Lugh has "
                "a branch to start from."
            )
        branch = await git.default_branch(repo, remote=remote)
        problem = git.branch_name_problem(branch)
        if problem is not None:
            raise UserError(
                f"The default branch {branch!r} of {shown} cannot be used because {problem}; "
                "rename it or check out another branch."
            )
        return branch
