"""Where Lugh's Postgres is (the configured server or the embedded one) and the pool over it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from pgvector.asyncpg import register_vector

from lugh.db import queries
from lugh.db.embedded import EmbeddedPostgres

Q = queries.load(__file__, "database")
CONNECT_TIMEOUT_S = 10


class DatabaseError(Exception):
    """The database cannot be used; the message says why in one sentence."""


@dataclass(frozen=True)
class ServerInfo:
    version: str
    pgvector: str | None  # installed in this database
    pgvector_available: str | None  # installable on this server


def describe(dsn: str) -> str:
    """The DSN as it may be shown to a person: no password, no query string."""
    parts = urlsplit(dsn)
    host = parts.hostname or (parts.query.partition("host=")[2].split("&")[0] or "localhost")
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"postgresql://{user}{host}{port}{parts.path}"


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection, with every failure turned into a sentence a person can act on."""
    try:
        return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except asyncpg.InvalidPasswordError:
        raise DatabaseError(
            f"The database at {describe(dsn)} refused the password; check DATABASE_URL."
        ) from None
    except asyncpg.InvalidCatalogNameError:
        raise DatabaseError(
            f"The database at {describe(dsn)} does not exist; create it or fix DATABASE_URL."
        ) from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = str(exc).strip().rstrip(".") or type(exc).__name__
        raise DatabaseError(
            f"Cannot reach the database at {describe(dsn)} ({reason}); "
            "check DATABASE_URL and that the server is running."
        ) from None


async def server_info(conn: asyncpg.Connection) -> ServerInfo:
    row = await conn.fetchrow(Q.server_info)
    return ServerInfo(row["version"], row["pgvector"], row["pgvector_available"])


async def require_pgvector(conn: asyncpg.Connection, dsn: str) -> ServerInfo:
    info = await server_info(conn)
    if info.pgvector is None and info.pgvector_available is None:
        raise DatabaseError(
            f"The database server at {describe(dsn)} has no pgvector extension; install pgvector "
            "there (the pgvector/pgvector image has it) or leave DATABASE_URL empty to use the "
            "embedded server."
        )
    return info


async def _init_connection(conn: asyncpg.Connection) -> None:
    await register_vector(conn)


async def _as_it_is(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool without asyncpg's reset query (UNLISTEN, RESET ALL,
    advisory unlock, CLOSE ALL): that is one more round trip after every pooled call, paid by
    every enqueue and every reply. Lugh leaves no session state on pooled connections: settings
    are transaction-local (`set_config(…, true)`), LISTEN has its own connection, and the one
    session lock (a checkpoint restore) is released in a `finally` that closes the connection
    if the unlock fails. asyncpg still rolls back an open transaction and drops listeners."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections speak pgvector (run after migrations created the extension)."""
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_as_it_is,
            timeout=CONNECT_TIMEOUT_S,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        conn = await connect(dsn)  # raises the clear sentence when the server is the problem
        await conn.close()
        raise DatabaseError(f"Cannot open a connection pool to {describe(dsn)} ({exc}).") from exc


@contextlib.asynccontextmanager
async def database(
    database_url: str | None, pgdata: Path, database_name: str
) -> AsyncIterator[str]:
    """Yield the DSN of Lugh's database: `database_url`, or the embedded server in `pgdata`.

    The embedded server is started (or joined) on entry, the instance's database created on
    first use, and the server released on exit.
    """
    if database_url:
        conn = await connect(database_url)
        try:
            await require_pgvector(conn, database_url)
        finally:
            await conn.close()
        yield database_url
        return

    server = EmbeddedPostgres(pgdata)
    try:
        admin_dsn = await server.start()
    except Exception as exc:
        raise DatabaseError(
            f"The embedded PostgreSQL in {pgdata} did not start ({exc}); see {pgdata / 'log'}."
        ) from exc
    try:
        conn = await connect(admin_dsn)
        try:
            if not await conn.fetchval(Q.database_exists, database_name):
                # CREATE DATABASE takes no parameters; the name comes from a Literal setting.
                await conn.execute(f'CREATE DATABASE "{database_name}"')
        finally:
            await conn.close()
        yield server.dsn(database_name)
    finally:
        await server.stop()
