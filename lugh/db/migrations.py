"""Numbered .sql migrations, applied in order under an advisory lock, each once, checksummed."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from lugh.db import queries

Q = queries.load(__file__, "migrations")
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# One fixed key: every Lugh process serialises migrations on it.
_LOCK_KEY = 0x4C55_4748_0001
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The migrations cannot be applied; the message says why in one sentence."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    migration: Migration | None
    version: int
    state: str  # applied | pending | changed | unknown (in the database, not in the code)
    applied_at: datetime | None = None


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(
                f"{path.name} is not a migration name; use NNNN_words.sql (e.g. 0002_add_owner.sql)."
            )
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"Two migrations share number {version:04d}: {found[version].filename} and {path.name}."
            )
        found[version] = Migration(version, match.group(2), path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def status(
    conn: asyncpg.Connection, migrations: list[Migration] | None = None
) -> list[MigrationState]:
    """Each migration's state in this database, without changing anything."""
    migrations = load_migrations() if migrations is None else migrations
    applied = {}
    if await conn.fetchval(Q.table_exists):
        applied = {row["version"]: row for row in await conn.fetch(Q.applied)}
    states = []
    for m in migrations:
        row = applied.pop(m.version, None)
        if row is None:
            states.append(MigrationState(m, m.version, "pending"))
        elif row["checksum"] != m.checksum:
            states.append(MigrationState(m, m.version, "changed", row["applied_at"]))
        else:
            states.append(MigrationState(m, m.version, "applied", row["applied_at"]))
    for version, row in sorted(applied.items()):
        states.append(MigrationState(None, version, "unknown", row["applied_at"]))
    return states


async def migrate(
    conn: asyncpg.Connection, migrations: list[Migration] | None = None
) -> list[Migration]:
    """Apply every pending migration, in order, each in its own transaction; return those applied.

    Refuses (before applying anything) when an applied migration was edited since.
    """
    migrations = load_migrations() if migrations is None else migrations
    await conn.execute(Q.lock, _LOCK_KEY)
    try:
        await conn.execute(Q.create_table)
        states = await status(conn, migrations)
        for s in states:
            if s.state == "changed":
                raise MigrationError(
                    f"Migration {s.migration.filename} was edited after it was applied; "  # type: ignore[union-attr]
                    "put the change in a new migration and restore the original file."
                )
        done = []
        for s in states:
            if s.state != "pending" or s.migration is None:
                continue
            m = s.migration
            try:
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(Q.record, m.version, m.name, m.checksum)
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"Migration {m.filename} failed: {exc}.") from exc
            done.append(m)
        return done
    finally:
        await conn.execute(Q.unlock, _LOCK_KEY)
