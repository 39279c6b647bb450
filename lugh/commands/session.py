"""Sessions: one per chat or MCP client — its current project, what it asked, what it created."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg

from lugh.db import queries

Q = queries.load(__file__, "sessions")
Transport = Literal["telegram", "console", "mcp", "cli"]
LOG_LENGTH = 50


@dataclass(frozen=True)
class Session:
    id: int
    transport: str
    external_id: str
    project_id: int | None
    data: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def asked(self) -> list[dict[str, Any]]:
        return list(self.data.get("asked", []))

    @property
    def created(self) -> list[dict[str, Any]]:
        return list(self.data.get("created", []))

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Session:
        data = row["data"]
        return cls(
            id=row["id"],
            transport=row["transport"],
            external_id=row["external_id"],
            project_id=row["project_id"],
            data=json.loads(data) if isinstance(data, str) else dict(data),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


class SessionStore:
    """Sessions in Postgres, so a restart keeps each chat's current project and history."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def open(self, transport: Transport, external_id: str) -> Session:
        return Session.from_row(await self.pool.fetchrow(Q.open, transport, external_id))

    async def get(self, session_id: int) -> Session | None:
        row = await self.pool.fetchrow(Q.get, session_id)
        return None if row is None else Session.from_row(row)

    async def use_project(self, session_id: int, project_id: int | None) -> Session:
        return Session.from_row(await self.pool.fetchrow(Q.set_project, session_id, project_id))

    async def record_asked(self, session_id: int, action: str, argument: str) -> None:
        entry = {"action": action, "argument": argument, "at": _now()}
        await self.pool.execute(Q.record, session_id, "asked", json.dumps(entry), LOG_LENGTH)

    async def record_created(self, session_id: int, kind: str, ref: int | str) -> None:
        entry = {"kind": kind, "id": ref, "at": _now()}
        await self.pool.execute(Q.record, session_id, "created", json.dumps(entry), LOG_LENGTH)


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")
