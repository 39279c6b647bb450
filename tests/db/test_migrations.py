import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from lugh.db.migrations import MigrationError, load_migrations, migrate, status


@pytest.fixture
async def empty_database(postgres):
    """A database with nothing in it: not cloned from the migrated template."""
    admin = await asyncpg.connect(postgres.admin_dsn)
    name = f"empty_{os.getpid()}_{id(admin)}"
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres.dsn(name)
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture
async def conn(empty_database):
    conn = await asyncpg.connect(empty_database)
    try:
        yield conn
    finally:
        await conn.close()


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


async def test_migrations_are_applied_in_numeric_order_and_recorded(conn, tmp_path):
    folder = write(tmp_path / "m", {
        "0002_add_b.sql": "ALTER TABLE t ADD COLUMN b int;",
        "0001_create_t.sql": "CREATE TABLE t (a int);",
        "0010_add_c.sql": "ALTER TABLE t ADD COLUMN c int;",
    })

    applied = await migrate(conn, load_migrations(folder))

    assert [m.filename for m in applied] == ["0001_create_t.sql", "0002_add_b.sql", "0010_add_c.sql"]
    rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"]) for r in rows] == [(1, "create_t"), (2, "add_b"), (10, "add_c")]


async def test_running_migrations_twice_applies_nothing_the_second_time(conn):
    first = await migrate(conn)
    second = await migrate(conn)

    assert [m.version for m in first] == [m.version for m in load_migrations()]
    assert second == []
    assert {s.state for s in await status(conn)} == {"applied"}


async def test_an_applied_migration_that_was_edited_is_refused(conn, tmp_path):
    folder = write(tmp_path / "m", {"0001_create_t.sql": "CREATE TABLE t (a int);"})
    await migrate(conn, load_migrations(folder))
    write(folder, {
        "0001_create_t.sql": "CREATE TABLE t (a bigint);",
        "0002_add_b.sql": "ALTER TABLE t ADD COLUMN b int;",
    })

    with pytest.raises(MigrationError, match="0001_create_t.sql was edited after it was applied"):
        await migrate(conn, load_migrations(folder))

    assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 1
    assert await conn.fetchval("SELECT to_regclass('t') IS NOT NULL")
    columns = await conn.fetchval("SELECT count(*) FROM information_schema.columns WHERE table_name = 't'")
    assert columns == 1


async def test_a_failing_migration_leaves_nothing_of_itself_and_stops_the_rest(conn, tmp_path):
    folder = write(tmp_path / "m", {
        "0001_create_t.sql": "CREATE TABLE t (a int);",
        "0002_broken.sql": "CREATE TABLE half (x int); SELECT no_such_function();",
        "0003_later.sql": "CREATE TABLE later (x int);",
    })

    with pytest.raises(MigrationError, match="0002_broken.sql failed"):
        await migrate(conn, load_migrations(folder))

    assert await conn.fetchval("SELECT array_agg(version) FROM schema_migrations") == [1]
    assert not await conn.fetchval("SELECT to_regclass('half') IS NOT NULL")
    assert not await conn.fetchval("SELECT to_regclass('later') IS NOT NULL")


def test_badly_named_or_duplicate_migration_files_are_refused(tmp_path):
    with pytest.raises(MigrationError, match="not a migration name"):
        load_migrations(write(tmp_path / "a", {"init.sql": "SELECT 1;"}))
    with pytest.raises(MigrationError, match="Two migrations share number 0001"):
        load_migrations(write(tmp_path / "b", {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"}))


async def test_status_shows_pending_migrations_without_applying_them(conn):
    states = await status(conn)

    assert {s.state for s in states} == {"pending"}
    assert not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")


async def test_concurrent_migrations_from_two_connections_apply_each_file_once(empty_database):
    async def one() -> list:
        conn = await asyncpg.connect(empty_database)
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    first, second = await asyncio.gather(one(), one())

    assert sorted(len(x) for x in (first, second)) == [0, len(load_migrations())]


async def test_two_lugh_migrate_processes_at_once_both_succeed_and_apply_each_file_once(
    empty_database, tmp_path
):
    env = {**os.environ, "DATABASE_URL": empty_database, "LUGH_DATA_DIR": str(tmp_path / "d")}
    command = [sys.executable, "-m", "lugh", "migrate"]

    procs = [
        await asyncio.create_subprocess_exec(
            *command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    results = [await asyncio.wait_for(p.communicate(), timeout=60) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], results
    conn = await asyncpg.connect(empty_database)
    try:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()
    assert sorted(versions) == [m.version for m in load_migrations()]


async def test_the_data_model_has_every_table_the_design_names(pool):
    expected = {
        "projects", "agents", "tasks", "task_dependencies", "task_events", "approvals", "silos",
        "sources", "documents", "chunks", "memories", "checkpoints", "voice_commands",
        "vision_tasks", "outbox", "telegram_updates", "sessions", "schema_migrations",
    }

    tables = {r["tablename"] for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}

    assert expected <= tables


async def test_chunks_are_found_through_the_hnsw_index_of_their_dimension(pool):
    project = await pool.fetchval("INSERT INTO projects (name, repo_path) VALUES ('p', '/r') RETURNING id")
    silo = await pool.fetchval(
        "INSERT INTO silos (project_id, embedder, dim) VALUES ($1, 'local', 384) RETURNING id", project)
    source = await pool.fetchval(
        "INSERT INTO sources (silo_id, kind, uri) VALUES ($1, 'text', 'x') RETURNING id", silo)
    document = await pool.fetchval(
        "INSERT INTO documents (source_id, silo_id, path, kind, content_hash) "
        "VALUES ($1, $2, 'x', 'text', 'h') RETURNING id", source, silo)
    await pool.execute(
        "INSERT INTO chunks (document_id, silo_id, ordinal, content, content_hash, embedding) "
        "VALUES ($1, $2, 0, 'hello world', 'h', $3)", document, silo, [1.0] + [0.0] * 383)

    async with pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch(
            "EXPLAIN SELECT id FROM chunks WHERE vector_dims(embedding) = 384 "
            "ORDER BY embedding::vector(384) <=> $1::vector(384) LIMIT 5", [1.0] + [0.0] * 383))
        found = await pool.fetchval(
            "SELECT content FROM chunks WHERE tsv @@ plainto_tsquery('english', 'worlds')")

    assert "chunks_hnsw_384" in plan
    assert found == "hello world"
