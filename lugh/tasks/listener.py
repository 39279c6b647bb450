"""The process's one LISTEN connection: every channel rides on it, and it comes back when cut."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable

import asyncpg

from lugh.db.database import DatabaseError, connect
from lugh.logs import get_logger
from lugh.tasks.waiting import wait_event

log = get_logger("lugh.tasks.listener")

# Called with each notification's payload, and with None whenever notifications may have been
# missed (the channel was just (re)listened): NOTIFY is not durable, so then poll.
Callback = Callable[[str | None], None]

RECONNECT_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)
_LOST = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class ConnectionLost(Exception):
    pass


class Listener:
    """One dedicated connection LISTENing on every subscribed channel, for the whole process.

    Subscribers are plain callbacks run on the event loop (keep them quick: set an Event).
    When the connection dies it reconnects with backoff, and every subscriber is called with
    None once its channel is listened again.
    """

    name = "listener"

    def __init__(
        self,
        dsn: str,
        *,
        backoff: tuple[float, ...] = RECONNECT_BACKOFF_S,
        health_s: float = 10.0,
    ) -> None:
        self.dsn = dsn
        self.backoff = backoff
        self.health_s = health_s
        self.connected = asyncio.Event()
        self.connections = 0  # how many times a connection was made (1 + reconnects)
        self.backend_pid: int | None = None
        self._callbacks: defaultdict[str, list[Callback]] = defaultdict(list)
        self._kick = asyncio.Event()

    def subscribe(self, channel: str, callback: Callback) -> Callable[[], None]:
        """Call `callback` for every notification on `channel`; returns the unsubscribe."""
        self._callbacks[channel].append(callback)
        self._kick.set()

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks[channel].remove(callback)

        return unsubscribe

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0  # in a row: a connection that stayed up a while resets it
        while True:
            try:
                conn = await connect(self.dsn)
            except DatabaseError as exc:
                delay = self._delay(failures)
                failures += 1
                log.warning("cannot connect to listen; retrying", error=str(exc), in_s=delay)
                await asyncio.sleep(delay)
                continue
            started = loop.time()
            try:
                await self._serve(conn)
            except (*_LOST, ConnectionLost) as exc:
                log.warning("listen connection lost; reconnecting", error=repr(exc))
            finally:
                self.connected.clear()
                self.backend_pid = None
                if not conn.is_closed():
                    conn.terminate()
            if loop.time() - started > self.backoff[-1]:
                failures = 0
            await asyncio.sleep(self._delay(failures))
            failures += 1

    def _delay(self, failures: int) -> float:
        return self.backoff[min(failures, len(self.backoff) - 1)]

    async def _serve(self, conn: asyncpg.Connection) -> None:
        conn.add_termination_listener(lambda _conn: self._kick.set())
        listening: set[str] = set()
        while True:
            self._kick.clear()
            if conn.is_closed():
                raise ConnectionLost("the server closed the connection")
            new = [channel for channel in self._callbacks if channel not in listening]
            for channel in new:
                await conn.add_listener(channel, self._on_notification)
                listening.add(channel)
            if not self.connected.is_set():
                self.connections += 1
                self.backend_pid = conn.get_server_pid()
                self.connected.set()
                log.info("listening", channels=sorted(listening), connection=self.connections)
            for channel in new:
                self._fan_out(channel, None)
            if not await wait_event(self._kick, self.health_s):
                # A connection cut without a FIN (a dead network) only shows when used.
                await conn.execute("SELECT 1", timeout=self.health_s)

    def _on_notification(
        self, _conn: object, _pid: int, channel: str, payload: str
    ) -> None:
        self._fan_out(channel, payload)

    def _fan_out(self, channel: str, payload: str | None) -> None:
        for callback in list(self._callbacks.get(channel, ())):
            try:
                callback(payload)
            except Exception:
                log.exception("listener callback failed", channel=channel)
