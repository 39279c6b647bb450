"""A pool connection kept by one loop, for statements that follow one another."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg


class HeldConnection:
    """One pool connection kept by a loop that runs one statement after another: no acquire,
    release and reset per statement. After any failure it is given back and a fresh one taken."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._conn: asyncpg.pool.PoolConnectionProxy | None = None

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        if self._conn is not None and _lost(self._conn):  # e.g. pg_terminate_backend meanwhile
            await self.give_back()
        if self._conn is None:
            self._conn = await self.pool.acquire()
        try:
            yield self._conn
        except BaseException:
            await self.give_back()
            raise

    async def give_back(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await self.pool.release(conn)


def _lost(conn: asyncpg.pool.PoolConnectionProxy) -> bool:
    """Whether the server closed the connection: asyncpg then takes it back from its proxy."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:  # "connection has been released back to the pool"
        return True
