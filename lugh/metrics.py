"""`/metrics`: Lugh's state in Prometheus' text format, read from the database at each scrape.

Counts only (tasks by status, running agents, the outbox backlog, recent failures, component
restarts, dispatch latency against its floor), which is why the route needs no token: it is served on the MCP
port, which stays on loopback unless the owner publishes it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable

import asyncpg

from lugh.db import queries
from lugh.tasks.health import Percentiles, probe_latency

Q = queries.load(__file__, "metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TASK_STATUSES = ("queued", "running", "awaiting_review", "done", "rejected", "failed", "cancelled")
FAILED_WINDOW_S = 3600
# The dispatch probe costs a connection and ~20 round trips: measured at most once a minute.
DISPATCH_EVERY_S = 60.0
DISPATCH_SAMPLES = 10
# How often each component of this process failed and was started again (lugh.app.supervise).
RESTARTS: Counter[str] = Counter()


class Metrics:
    """Renders the exposition text for one instance's database."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, instance: str) -> None:
        self.pool, self.dsn, self.instance = pool, dsn, instance
        self._dispatch: tuple[float, Percentiles, Percentiles] | None = None
        self._probing = asyncio.Lock()

    async def render(self) -> str:
        async with self.pool.acquire() as conn:
            by_status = {r["status"]: r["n"] for r in await conn.fetch(Q.tasks_by_status)}
            failed_recently = await conn.fetchval(Q.failed_recently, float(FAILED_WINDOW_S))
            outbox = await conn.fetchrow(Q.outbox_backlog)
        lines = _family("lugh_info", "gauge", "This Lugh instance.",
                        [(f'instance="{self.instance}"', 1)])  # fmt: skip
        lines += _family(
            "lugh_tasks", "gauge", "Tasks by status.",
            [(f'status="{s}"', by_status.get(s, 0)) for s in TASK_STATUSES],
        )  # fmt: skip
        lines += _family("lugh_agents_running", "gauge", "Agent runs under way (tasks running).",
                         [("", by_status.get("running", 0))])  # fmt: skip
        lines += _family(
            "lugh_tasks_failed_recently", "gauge",
            f"Tasks that failed in the last {FAILED_WINDOW_S} s.", [("", failed_recently)],
        )  # fmt: skip
        lines += _family("lugh_outbox_backlog", "gauge", "Telegram messages waiting to be sent.",
                         [("", outbox["waiting"])])  # fmt: skip
        lines += _family(
            "lugh_outbox_oldest_seconds", "gauge",
            "Age of the oldest message waiting to be sent.", [("", round(outbox["oldest_s"], 3))],
        )  # fmt: skip
        lines += _family("lugh_outbox_failed", "gauge", "Telegram messages given up on.",
                         [("", outbox["failed"])])  # fmt: skip
        lines += _family(
            "lugh_component_restarts_total", "counter",
            "Times a component of this process failed and was started again.",
            [(f'component="{name}"', n) for name, n in sorted(RESTARTS.items())],
        )  # fmt: skip
        dispatch = await self._dispatch_latency()
        if dispatch is not None:
            floor, claim = dispatch
            lines += _family(
                "lugh_dispatch_p99_seconds", "gauge",
                "Dispatch latency p99: a committed NOTIFY round trip plus the claim's selection.",
                [("", claim.p99_ms / 1000)],
            )  # fmt: skip
            lines += _family(
                "lugh_dispatch_floor_p99_seconds", "gauge",
                "The floor: a committed NOTIFY round trip to a listener, p99.",
                [("", floor.p99_ms / 1000)],
            )  # fmt: skip
        return "\n".join(lines) + "\n"

    async def _dispatch_latency(self) -> tuple[Percentiles, Percentiles] | None:
        """The last probe, renewed when older than DISPATCH_EVERY_S; None if it cannot run."""
        async with self._probing:
            now = time.monotonic()
            if self._dispatch is None or now - self._dispatch[0] > DISPATCH_EVERY_S:
                try:
                    floor, claim = await probe_latency(
                        self.pool, self.dsn, samples=DISPATCH_SAMPLES
                    )
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    return None
                self._dispatch = (now, floor, claim)
            return self._dispatch[1], self._dispatch[2]


def _family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")
    return lines
