"""Dispatch health, measured: what `lugh doctor` and the metrics report instead of a fixed
"NOTIFY latency > 100 ms → Redis" rule (≈500× what a healthy server measures).

Three signals, each a (name, level, detail) with level ok | warn | fail:

- **dispatch latency** against the floor, probed live. The floor is a committed NOTIFY round trip
  to a listener (a transaction with an xid, so a commit is recorded, plus pg_notify). The probe
  is what a worker does on top: the same round trip, then the claim's selection of the most
  urgent claimable task on the real tables (read-only: it locks and changes nothing). A healthy
  claim adds one round trip and an index walk, about 1–2× the floor; WARN_RATIO (5×) leaves
  room for a loaded machine's noise, FAIL_RATIO (50×) is a claim path that no longer walks an
  index (a scan of every queued task: stale statistics after a burst, or bloat). A floor itself
  above SLOW_FLOOR_MS (50 ms, ~100× a healthy server) means commits or NOTIFY are slow.
- **notify queue**: backends waiting on NOTIFY's locks, sampled, and pg_notification_queue_usage().
  A notifying commit holds a cluster-wide lock through its WAL flush, so waiters mean notifying
  commits queue behind one another; in more than WARN_WAIT_SHARE (20%) of samples it costs
  dispatch latency. Postgres itself warns at 50% queue usage (a listener not consuming);
  at 100% every NOTIFY, so every enqueue, fails: warn at 50%, fail at 90%.
- **connections** against max_connections (less the reserved ones): each Lugh process takes its
  pool plus one LISTEN connection. At 80% another worker process may not fit (warn); at 95% the
  next connection may be refused (fail). Both suggest LUGH_BUS=redis (no LISTEN connection) or a
  connection pooler.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import time
from typing import NamedTuple

import asyncpg

from lugh.db import queries
from lugh.db.database import connect
from lugh.tasks.listener import Listener

Q = queries.load(__file__, "health")

SAMPLES = 30
WARN_RATIO, FAIL_RATIO = 5.0, 50.0
SLOW_FLOOR_MS = 50.0
WARN_WAIT_SHARE = 0.2
WARN_QUEUE_USAGE, FAIL_QUEUE_USAGE = 0.5, 0.9
WARN_CONNECTIONS, FAIL_CONNECTIONS = 0.8, 0.95
PROBE_TIMEOUT_S = 5.0


class DispatchCheck(NamedTuple):
    name: str
    level: str  # ok | warn | fail
    detail: str


class Percentiles(NamedTuple):
    p50_ms: float
    p99_ms: float


async def dispatch_checks(
    pool: asyncpg.Pool, dsn: str, *, listener: Listener | None = None
) -> list[DispatchCheck]:
    """Measure dispatch health now; `listener`, when given, is the process's own (running)
    LISTEN connection, else one is opened for the probe."""
    checks = [await _latency_check(pool, dsn, listener)]
    checks.append(await _notify_queue_check(pool))
    checks.append(await _connections_check(pool))
    return checks


# -- dispatch latency ------------------------------------------------------------------------


async def probe_latency(
    pool: asyncpg.Pool, dsn: str, listener: Listener | None = None, samples: int = SAMPLES
) -> tuple[Percentiles, Percentiles]:
    """(floor, dispatch): a committed NOTIFY round trip, and the same plus the claim's selection."""
    channel = f"lugh_probe_{os.getpid()}"  # one per process: a listener keeps what it listened
    arrived: asyncio.Queue[str | None] = asyncio.Queue()
    own: asyncpg.Connection | None = None
    if listener is not None:
        unsubscribe = listener.subscribe(channel, arrived.put_nowait)
    else:
        own = await connect(dsn)
        await own.add_listener(channel, lambda *args: arrived.put_nowait(args[3]))
    try:
        async with pool.acquire() as conn:
            await _heard(conn, channel, arrived)
            floor = [await _round_trip(conn, channel, arrived, None) for _ in range(samples)]
            dispatch = [
                await _round_trip(conn, channel, arrived, Q.claim_probe) for _ in range(samples)
            ]
    finally:
        if own is not None:
            await own.close()
        else:
            unsubscribe()
    return _percentiles(floor), _percentiles(dispatch)


async def _heard(
    conn: asyncpg.Connection, channel: str, arrived: asyncio.Queue[str | None]
) -> None:
    """Notify until the listener hears the channel (a listener subscribes asynchronously)."""
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while True:
        token = secrets.token_hex(4)
        await conn.execute(Q.notify_committed, channel, token)
        try:
            async with asyncio.timeout(0.2):
                while await arrived.get() != token:
                    pass
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


async def _round_trip(
    conn: asyncpg.Connection, channel: str, arrived: asyncio.Queue[str | None], then: str | None
) -> float:
    token = secrets.token_hex(4)
    start = time.perf_counter()
    await conn.execute(Q.notify_committed, channel, token)
    while await asyncio.wait_for(arrived.get(), PROBE_TIMEOUT_S) != token:
        pass
    if then is not None:
        await conn.fetch(then)
    return time.perf_counter() - start


def _percentiles(samples_s: list[float]) -> Percentiles:
    ms = sorted(s * 1000 for s in samples_s)
    return Percentiles(
        round(statistics.median(ms), 3), round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3)
    )


def latency_level(floor: Percentiles, dispatch: Percentiles) -> str:
    ratio = dispatch.p99_ms / max(floor.p99_ms, 0.001)
    if ratio > FAIL_RATIO:
        return "fail"
    if ratio > WARN_RATIO or floor.p50_ms > SLOW_FLOOR_MS:
        return "warn"
    return "ok"


async def _latency_check(
    pool: asyncpg.Pool, dsn: str, listener: Listener | None
) -> DispatchCheck:
    try:
        floor, dispatch = await probe_latency(pool, dsn, listener)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return DispatchCheck(
            "dispatch latency", "fail", f"A NOTIFY did not come back to its listener ({exc!r})."
        )
    level = latency_level(floor, dispatch)
    detail = (
        f"p99 {dispatch.p99_ms:.2f} ms (p50 {dispatch.p50_ms:.2f}) against a floor of "
        f"p99 {floor.p99_ms:.2f} ms (p50 {floor.p50_ms:.2f}), a committed NOTIFY round trip"
    )
    if level != "ok" and dispatch.p99_ms / max(floor.p99_ms, 0.001) > WARN_RATIO:
        detail += (
            "; the claim's selection is slow: run `ANALYZE tasks` (statistics after a burst)"
            " or VACUUM the tasks table"
        )
    elif level != "ok":
        detail += "; commits or NOTIFY are slow on this server (disk flush, load)"
    return DispatchCheck("dispatch latency", level, detail)


# -- the notify queue ------------------------------------------------------------------------


def notify_queue_level(waiting_share: float, usage: float) -> str:
    if usage >= FAIL_QUEUE_USAGE:
        return "fail"
    if usage >= WARN_QUEUE_USAGE or waiting_share > WARN_WAIT_SHARE:
        return "warn"
    return "ok"


async def sample_notify_waits(
    pool: asyncpg.Pool, samples: int = 10, every_s: float = 0.01
) -> tuple[float, int]:
    """(share of samples in which some backend waited on NOTIFY's locks, most seen at once)."""
    waiting = most = 0
    async with pool.acquire() as conn:
        for i in range(samples):
            n = await conn.fetchval(Q.notify_waiters)
            waiting += n > 0
            most = max(most, n)
            if i + 1 < samples:
                await asyncio.sleep(every_s)  # samples spread in time, not a wait for anything
    return waiting / samples, most


async def _notify_queue_check(pool: asyncpg.Pool) -> DispatchCheck:
    share, most = await sample_notify_waits(pool)
    usage = float(await pool.fetchval("SELECT pg_notification_queue_usage()"))
    level = notify_queue_level(share, usage)
    detail = (
        f"{usage:.1%} of the NOTIFY queue in use; backends waited on its lock in {share:.0%} of "
        f"samples (at most {most} at once)"
    )
    if usage >= WARN_QUEUE_USAGE:
        detail += "; a listener is not consuming (a LISTEN connection stuck in a transaction?)"
    elif level != "ok":
        detail += "; notifying commits queue behind one another: consider LUGH_BUS=redis"
    return DispatchCheck("notify queue", level, detail)


# -- connections -----------------------------------------------------------------------------


def connections_level(used: int, available: int) -> str:
    share = used / max(available, 1)
    if share >= FAIL_CONNECTIONS:
        return "fail"
    if share >= WARN_CONNECTIONS:
        return "warn"
    return "ok"


async def _connections_check(pool: asyncpg.Pool) -> DispatchCheck:
    row = await pool.fetchrow(Q.connections)
    used, available = row["used"], row["available"]
    level = connections_level(used, available)
    detail = f"{used} of {available} connections in use ({used / max(available, 1):.0%})"
    if level != "ok":
        detail += (
            "; another worker process may not fit: LUGH_BUS=redis needs no LISTEN connection,"
            " or put a pooler in front, or raise max_connections"
        )
    return DispatchCheck("connections", level, detail)
