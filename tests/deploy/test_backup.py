"""`lugh backup` and `lugh restore-backup` as an operator runs them, against a real database:
a restore gives back the same tasks and knowledge, retention keeps the newest, bad input
changes nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from lugh.ops.backup import _libpq as libpq
from lugh.ops.backup import backup, backups
from lugh.services import build_services
from tests.conftest import free_port

TIMEOUT_S = 90
MIGRATIONS = "SELECT version, checksum FROM schema_migrations ORDER BY version"
TASKS = "SELECT id, title, status, priority FROM tasks ORDER BY id"
KNOWLEDGE = (
    "SELECT d.path, c.ordinal, c.content, c.embedding::text AS embedding"
    " FROM chunks c JOIN documents d ON d.id = c.document_id ORDER BY d.path, c.ordinal"
)


def lugh(tmp_path: Path, dsn: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lugh", *args],
        env={
            **os.environ,
            "LUGH_INSTANCE": "staging",
            "LUGH_DATA_DIR": str(tmp_path / "data"),
            "LUGH_MCP_PORT": str(free_port()),
            "DATABASE_URL": dsn,
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


async def rows(dsn: str, query: str) -> list[dict]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(query)]
    finally:
        await conn.close()


@pytest.fixture
async def filled(pool, database, make_settings, repo):
    """A database with a project, tasks in several states and an ingested document."""
    services = build_services(make_settings(), pool, database)
    project = await services.projects.register("demo", str(repo))
    for n in range(3):
        await services.tasks.enqueue(project.id, f"task {n}", priority=n)
    claimed = await services.tasks.claim("worker", 60)
    await services.tasks.fail_attempt(claimed.id, claimed.lease_token, "boom", retry=False)
    await services.knowledge.ingest_text(
        "demo", "Deployments go to staging first, then production by tag.", title="deploying"
    )
    await services.aclose()
    return database


async def test_a_restore_gives_back_the_same_tasks_and_knowledge(filled, tmp_path):
    tasks, knowledge = await rows(filled, TASKS), await rows(filled, KNOWLEDGE)
    migrations = await rows(filled, MIGRATIONS)
    made = await asyncio.to_thread(lugh, tmp_path, filled, "backup")
    [dump] = (tmp_path / "data" / "backups").glob("lugh_staging-*.dump")
    conn = await asyncpg.connect(filled)
    await conn.execute("DELETE FROM chunks; UPDATE tasks SET title = 'changed after the backup'")
    await conn.execute("INSERT INTO tasks (project_id, title) SELECT id, 'new' FROM projects")
    await conn.close()

    restored = await asyncio.to_thread(lugh, tmp_path, filled, "restore-backup", str(dump), "--yes")

    assert made.returncode == 0, made.stderr
    assert f"Backed up to {dump}" in made.stdout
    assert restored.returncode == 0, restored.stderr
    assert knowledge and len(tasks) == 3
    assert await rows(filled, TASKS) == tasks
    assert await rows(filled, KNOWLEDGE) == knowledge
    assert await rows(filled, MIGRATIONS) == migrations


async def test_backups_keep_only_the_newest_as_many_as_asked(database, make_settings, tmp_path):
    settings = make_settings(DATABASE_URL=database, LUGH_INSTANCE="staging")
    made = [await backup(settings, tmp_path / "backups", keep=2) for _ in range(3)]

    kept = backups(tmp_path / "backups", "staging")

    assert kept == made[1:]
    assert not list((tmp_path / "backups").glob("*.partial"))


async def test_restoring_a_file_that_is_not_a_backup_says_so_and_changes_nothing(filled, tmp_path):
    before = await rows(filled, TASKS)
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a dump")

    result = await asyncio.to_thread(lugh, tmp_path, filled, "restore-backup", str(bogus), "--yes")

    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"✗ {bogus} is not a backup made by `lugh backup` (pg_restore cannot read it)."
    )
    assert await rows(filled, TASKS) == before


def test_a_restore_without_yes_outside_a_terminal_asks_for_it(tmp_path):
    dump = tmp_path / "lugh_staging-x.dump"
    dump.write_bytes(b"")

    result = lugh(tmp_path, "postgresql://lugh@127.0.0.1:1/lugh", "restore-backup", str(dump))

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "✗ Restoring replaces everything in the staging database; add --yes to confirm."
    )


def test_the_database_password_reaches_the_client_programs_only_in_their_environment():
    uri, env = libpq("postgresql://lugh:s3cr3t-pw@db:5432/lugh_prod?sslmode=require")

    assert uri == "postgresql://lugh@db:5432/lugh_prod?sslmode=require"
    assert env["PGPASSWORD"] == "s3cr3t-pw"
