"""A project's rows: copied out in one repeatable-read transaction, put back in one transaction.

Each table goes out as `COPY (SELECT …) TO STDOUT (FORMAT binary)`: Postgres's own send/recv
encoding, so embeddings (pgvector), jsonb and xid8 come back bit for bit, nothing is parsed in
Python, and no embedding is ever recomputed. Ids are kept: a restore deletes the project's rows
and copies the saved ones back with their ids (COPY writes identity columns as given).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from lugh.checkpoints.archive import Staging
from lugh.db import queries
from lugh.errors import UserError

_SNAPSHOT = queries.load(__file__, "snapshot")
Q = queries.load(__file__, "rows")

# In the order a restore inserts them (parents first). Sessions are merged, not replaced.
TABLES = tuple(_SNAPSHOT.names())
REPLACED = tuple(t for t in TABLES if t not in ("projects", "sessions"))
# Left in place when identical to the checkpoint's: re-inserting chunks means rebuilding their
# HNSW index entries, by far the slowest part of a restore.
KNOWLEDGE = ("silos", "sources", "documents", "chunks")
_COPIED = re.compile(r"COPY (\d+)")

# Tables that refer to a project's rows without being part of its state. A restore deletes the
# project's tasks, so rows here that point at them are deleted (ON DELETE CASCADE) or unlinked.
LEFT_OUT = {
    "checkpoints": "the instance's list of checkpoints: a restore never rewinds it",
    "checkpoint_restores": "the restore journal",
    "notify_progress": "a chat's progress messages, already sent",
    "telegram_buttons": "buttons of messages already sent",
    "telegram_prompts": "messages already sent, bound to approvals or tasks",
    "voice_commands": "a chat's voice notes",
    "vision_tasks": "a chat's photos",
}


@dataclass(frozen=True)
class Contents:
    """What a checkpoint holds, in the owner's words: enough to say what a restore changes."""

    tasks: dict[int, tuple[str, str]]  # id → (title, status)
    documents: dict[int, str]  # id → path
    memories: dict[int, str]  # id → the start of its content

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": {str(k): list(v) for k, v in self.tasks.items()},
            "documents": {str(k): v for k, v in self.documents.items()},
            "memories": {str(k): v for k, v in self.memories.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Contents:
        return cls(
            tasks={int(k): (v[0], v[1]) for k, v in data.get("tasks", {}).items()},
            documents={int(k): v for k, v in data.get("documents", {}).items()},
            memories={int(k): v for k, v in data.get("memories", {}).items()},
        )


async def stored_columns(conn: asyncpg.Connection, table: str) -> list[str]:
    return [r["attname"] for r in await conn.fetch(Q.stored_columns, table)]


async def contents(conn: asyncpg.Connection, project_id: int) -> Contents:
    tasks = await conn.fetch(Q.contents_tasks, project_id)
    documents = await conn.fetch(Q.contents_documents, project_id)
    memories = await conn.fetch(Q.contents_memories, project_id)
    return Contents(
        {r["id"]: (r["title"], r["status"]) for r in tasks},
        {r["id"]: r["path"] for r in documents},
        {r["id"]: r["content"] for r in memories},
    )


async def dump(conn: asyncpg.Connection, project_id: int, staging: Staging) -> dict[str, Any]:
    """Copy the project's rows into `staging/rows/`, all from one snapshot; returns the
    manifest's `rows` part (columns and row counts per table) and the contents summary."""
    tables: dict[str, Any] = {}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for table in TABLES:
            columns = await stored_columns(conn, table)
            select = _select(table, columns)
            relative = f"rows/{table}.copy"
            out = staging.writer(relative)
            try:
                status = await conn.copy_from_query(
                    select, project_id, output=out.write, format="binary"
                )
            finally:
                size, digest = out.close()
            staging.added(relative, size, digest)
            match = _COPIED.search(status or "")
            tables[table] = {"columns": columns, "rows": int(match[1]) if match else None}
        summary = await contents(conn, project_id)
    return {"tables": tables, "contents": summary.to_json()}


async def load(
    conn: asyncpg.Connection, project_id: int, directory: Path, rows: dict[str, Any],
    files: dict[str, Any],
) -> list[dict[str, Any]]:  # fmt: skip
    """Put the project's rows back exactly, inside the caller's transaction. Returns the tasks
    that were running (now queued, held back) with the run_after each had."""
    tables = rows["tables"]
    for table in TABLES:
        missing = set(tables[table]["columns"]) - set(await stored_columns(conn, table))
        if missing:
            raise UserError(
                f"This checkpoint was made by another version of Lugh (the {table} table has "
                f"no column {sorted(missing)[0]!r} any more), so it cannot be restored."
            )
    await conn.execute(Q.lock_silos, project_id)  # no ingestion slips in between
    same_knowledge = True
    for table in KNOWLEDGE:
        same_knowledge = same_knowledge and await _unchanged(
            conn, project_id, table, tables[table]["columns"], files[f"rows/{table}.copy"]
        )
    await conn.execute(Q.delete_memories, project_id)
    await conn.execute(Q.delete_tasks, project_id)
    await conn.execute(Q.delete_agents, project_id)
    if not same_knowledge:
        await conn.execute(Q.delete_silos, project_id)
    await _upsert_project(conn, directory, tables["projects"]["columns"])
    for table in REPLACED:
        if same_knowledge and table in KNOWLEDGE:
            continue
        await conn.copy_to_table(
            table, source=directory / f"rows/{table}.copy",
            columns=tables[table]["columns"], format="binary",
        )  # fmt: skip
    await _temp_copy(conn, "sessions", directory, tables["sessions"]["columns"])
    await conn.execute(Q.restore_sessions, project_id)
    for table in ("projects", *REPLACED):
        await _keep_identity_ahead(conn, table)
    held = await conn.fetch(Q.hold_running_tasks, project_id)
    await conn.execute(Q.idle_agents, project_id)
    return [{"id": r["id"], "run_after": r["run_after"].isoformat()} for r in held]


def _select(table: str, columns: list[str]) -> str:
    return getattr(_SNAPSHOT, table).rstrip(";").replace(
        "{columns}", ", ".join(f't."{c}"' for c in columns)
    )


async def _unchanged(
    conn: asyncpg.Connection, project_id: int, table: str, columns: list[str],
    saved: dict[str, Any],
) -> bool:  # fmt: skip
    """Whether the table's rows now copy out to exactly the saved file's bytes."""
    digest = hashlib.sha256()
    size = 0

    async def sink(data: bytes) -> None:
        nonlocal size
        digest.update(data)
        size += len(data)

    await conn.copy_from_query(_select(table, columns), project_id, output=sink, format="binary")
    return size == saved["size"] and digest.hexdigest() == saved["sha256"]


async def _upsert_project(conn: asyncpg.Connection, directory: Path, columns: list[str]) -> None:
    await _temp_copy(conn, "projects", directory, columns)
    names = ", ".join(f'"{c}"' for c in columns)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c != "id")
    try:
        await conn.execute(
            f"INSERT INTO projects ({names}) OVERRIDING SYSTEM VALUE "
            f"SELECT {names} FROM _restore_projects ON CONFLICT (id) DO UPDATE SET {updates}"
        )
    except asyncpg.UniqueViolationError:
        raise UserError(
            "Another project now has this checkpoint's project name, so it cannot be brought "
            "back; remove or rename that project first."
        ) from None


async def _temp_copy(
    conn: asyncpg.Connection, table: str, directory: Path, columns: list[str]
) -> None:
    await conn.execute(
        f"CREATE TEMP TABLE _restore_{table} (LIKE {table}) ON COMMIT DROP"
    )
    await conn.copy_to_table(
        f"_restore_{table}", source=directory / f"rows/{table}.copy", columns=columns,
        format="binary",
    )  # fmt: skip


async def _keep_identity_ahead(conn: asyncpg.Connection, table: str) -> None:
    """Restored ids never come out of a sequence again, even in a database that never had them."""
    for row in await conn.fetch(Q.identity_column, table):
        await conn.execute(
            f'SELECT setval($1, m) FROM (SELECT max("{row["attname"]}") AS m FROM {table}) t '
            f"WHERE m IS NOT NULL AND m > (SELECT last_value FROM {row['seq']})",
            row["seq"],
        )


def summary_of(manifest: dict[str, Any]) -> Contents:
    return Contents.from_json(manifest.get("rows", {}).get("contents", {}))


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
