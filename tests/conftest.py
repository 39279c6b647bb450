"""Shared fixtures: one embedded Postgres per test session, a fresh migrated database per test,
temporary git repositories, and settings that point at them."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from lugh.config import Settings, load_settings
from lugh.db.database import create_pool
from lugh.db.embedded import EmbeddedPostgres
from lugh.db.migrations import migrate
from lugh.services import build_services

TEMPLATE_DB = "lugh_template"
_numbers = itertools.count(1)

# Settings come from each test's own arguments, never from the developer's shell or .env.
for _name in list(os.environ):
    if _name.startswith(("LUGH_", "TELEGRAM_", "ANTHROPIC_", "OPENAI_")) or _name in (
        "DATABASE_URL",
        "REDIS_URL",
    ):
        del os.environ[_name]


# python-telegram-bot 22 warns on every RetryAfter unless told to use timedeltas already (the
# outbox reads both forms); warnings are errors here.
os.environ["PTB_TIMEDELTA"] = "1"


class PostgresForTests:
    """The session's server: a migrated template database, cloned for each test."""

    def __init__(self, server: EmbeddedPostgres) -> None:
        self.server = server

    @property
    def admin_dsn(self) -> str:
        return self.server.dsn("postgres")

    def dsn(self, database: str) -> str:
        return self.server.dsn(database)

    async def prepare(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            # Durability is not what these tests measure; speed is worth having.
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                await conn.execute(f"ALTER SYSTEM SET {setting} = off")
            await conn.execute("SELECT pg_reload_conf()")
            await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
            await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        finally:
            await conn.close()
        conn = await asyncpg.connect(self.dsn(TEMPLATE_DB))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def clone(self, name: str | None = None) -> str:
        name = name or f"test_{os.getpid()}_{next(_numbers)}"
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(
                f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB} STRATEGY FILE_COPY"
            )
        finally:
            await conn.close()
        return name

    async def drop(self, name: str) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresForTests]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", delete_on_stop=True)
    asyncio.run(server.start())
    pg = PostgresForTests(server)
    try:
        asyncio.run(pg.prepare())
        yield pg
    finally:
        asyncio.run(server.stop())


@pytest.fixture
async def database(postgres: PostgresForTests) -> AsyncIterator[str]:
    """The DSN of a fresh, migrated database of this test's own."""
    name = await postgres.clone()
    try:
        yield postgres.dsn(name)
    finally:
        await postgres.drop(name)


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database)
    try:
        yield pool
    finally:
        try:  # close() waits for every connection to come back: a leak would hang the run
            await asyncio.wait_for(pool.close(), 30)
        except TimeoutError:
            pool.terminate()
            raise AssertionError("a connection of the pool was never given back") from None


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Settings for a test: its own data dir, no .env, overrides by environment name."""

    def make(**env: Any) -> Settings:
        env.setdefault("LUGH_DATA_DIR", str(tmp_path / "data"))
        env.setdefault("LUGH_MCP_PORT", str(free_port()))
        return load_settings(None, **env)

    return make


@pytest.fixture
async def services(pool: asyncpg.Pool, database: str, make_settings: Any) -> AsyncIterator[Any]:
    """Every service over the test database, with default settings (no model, no Telegram);
    tests that need other settings define their own."""
    built = build_services(make_settings(), pool, database)
    yield built
    await built.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None, branch: str = "main") -> Path:
    """A real git repository with one commit of `files` on `branch`."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    git(path, "config", "user.email", "owner@example.com")
    git(path, "config", "user.name", "Owner")
    for name, content in (files or {"README.md": "# demo\n"}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial commit")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")
