"""The bus between processes: task wake-ups and event notifications, over Postgres or Redis.

Postgres stays the truth either way: a message on the bus only says "look again". A missed one
costs a poll period, never a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import asyncpg

from lugh.db.database import connect
from lugh.logs import get_logger
from lugh.tasks.listener import Callback, Listener

log = get_logger("lugh.tasks.bus")


class BusUnavailable(Exception):
    """The bus cannot carry a message now; subscribers will learn it by polling."""


class Bus(Protocol):
    """What crosses processes: `subscribe` a callback to a channel, `publish` to it, and
    `run()` the component that keeps the connection (reconnecting, and calling every
    subscriber with None whenever messages may have been missed: then poll)."""

    name: str
    connected: asyncio.Event
    # True when the NOTIFYs the queue's SQL sends reach subscribers by themselves; otherwise
    # the queue and the events bus publish each committed change here themselves.
    hears_sql_notify: bool

    def subscribe(self, channel: str, callback: Callback) -> Callable[[], None]: ...

    async def publish(self, channel: str, payload: str) -> None: ...

    async def run(self) -> None: ...


class PostgresBus(Listener):
    """The process's one LISTEN connection, plus publishing by NOTIFY over the pool."""

    hears_sql_notify = True

    def __init__(self, dsn: str, pool: asyncpg.Pool | None = None, **options: Any) -> None:
        super().__init__(dsn, **options)
        self.pool = pool

    async def publish(self, channel: str, payload: str) -> None:
        if self.pool is not None:
            await self.pool.execute("SELECT pg_notify($1, $2)", channel, payload)
            return
        conn = await connect(self.dsn)
        try:
            await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
        finally:
            await conn.close()


def needs_relay(bus: object | None) -> bool:
    """Whether committed changes must be published to `bus` by hand (it does not hear NOTIFY).
    A plain Listener hears NOTIFY."""
    return bus is not None and not getattr(bus, "hears_sql_notify", True)


async def relay(
    bus: Bus, rows: Iterable[Mapping[str, Any]], *, channels: Mapping[str, str]
) -> None:
    """Publish the notes a committed statement returned (column → channel) to `bus`.

    Never raises: the change is committed, and subscribers poll for what a bus cannot carry.
    """
    try:
        for row in rows:
            for column, channel in channels.items():
                note = row.get(column)
                if note is not None:
                    await bus.publish(channel, note)
    except BusUnavailable:
        pass  # the bus logs its own outages
    except Exception:
        log.exception("cannot relay a committed change to the bus")


def make_bus(
    kind: str,
    *,
    dsn: str,
    pool: asyncpg.Pool | None = None,
    redis_url: str | None = None,
    group: str | None = None,
    consumer: str | None = None,
) -> Bus:
    """The bus named by `LUGH_BUS`: `postgres` (LISTEN/NOTIFY) or `redis` (Streams)."""
    if kind == "postgres":
        return PostgresBus(dsn, pool)
    if kind == "redis":
        if not redis_url:
            raise ValueError("REDIS_URL must be set when LUGH_BUS is redis")
        from lugh.tasks.redis_bus import RedisBus

        return RedisBus(redis_url, group=group, consumer=consumer)
    raise ValueError(f"LUGH_BUS must be postgres or redis, not {kind!r}")
