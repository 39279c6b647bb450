"""The bus between processes: task wake-ups and event notifications, over Postgres or Redis.

Postgres stays the truth either way: a message on the bus only says "look again". A missed one
costs a poll period, never a task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
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


async def relay(bus: Bus, notes: Iterable[tuple[str, str]]) -> None:
    """Publish notes of a committed change to `bus`, now.

    Never raises: the change is committed, and subscribers poll for what a bus cannot carry.
    """
    try:
        for channel, payload in notes:
            await bus.publish(channel, payload)
    except BusUnavailable:
        pass  # the bus logs its own outages
    except Exception as exc:
        log.warning("cannot relay a committed change to the bus", error=repr(exc))


Note = tuple[str, str]  # (channel, payload)


class Announcer:
    """Sends notes of changes already committed, off the caller's path: notes that pile up while
    one send is in flight go out together in the next. A note only says "look again", so one
    lost to a failure costs its subscribers a poll, never a task."""

    def __init__(self, send: Callable[[list[Note]], Awaitable[None]]) -> None:
        self._send = send
        self._pending: list[Note] = []
        self._sending: asyncio.Task[None] | None = None

    def announce(self, notes: Iterable[Note]) -> None:
        self._pending.extend(notes)
        if self._pending and self._sending is None:
            self._sending = asyncio.create_task(self._drain(), name="announce")

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # what the caller starts with the change goes first
        await self._send_all()

    async def flush(self) -> None:
        """Wait until every note announced so far has been sent (or given up on)."""
        while self._sending is not None:
            await asyncio.shield(self._sending)

    async def _send_all(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._send(batch)
                except BusUnavailable:
                    pass  # the bus logs its own outages
                except Exception as exc:
                    log.warning("cannot announce committed changes", error=repr(exc))
        finally:
            self._sending = None


def notes_of(rows: Iterable[Mapping[str, Any]], channels: Mapping[str, str]) -> list[Note]:
    """The (channel, payload) notes a statement returned, by column → channel."""
    return [
        (channel, row[column])
        for row in rows
        for column, channel in channels.items()
        if row.get(column) is not None
    ]


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
