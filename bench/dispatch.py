"""Task dispatch latency and throughput against the floor Postgres allows, on one server.

    python bench/dispatch.py [--dsn postgresql://...] [--samples 300] [--tasks 5000]

Prints one JSON line:
- floor: a committed INSERT + NOTIFY, from the call until a LISTENing connection has it;
- enqueue→claim p50/p99 (ms) with 1, 16 and 64 idle slots waiting in one worker pool (one
  LISTEN connection per process, however many slots), each task enqueued alone;
- claim+complete throughput (tasks/s) of a pool with 16 slots draining a preloaded queue;
- pgqueuer's enqueue→start and throughput on the same server, when pgqueuer is importable.
Without --dsn a throwaway embedded Postgres is started in a temporary directory; with
--async-commit that server does not wait for the WAL flush at commit (for a disk whose fsync
hides everything else; the figures are then CPU and protocol only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from lugh.db.database import create_pool
from lugh.db.embedded import EmbeddedPostgres
from lugh.db.migrations import migrate
from lugh.logs import configure_logging
from lugh.tasks import ExecutionResult, Listener, Task, TaskContext, TaskQueue, WorkerPool


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
    }


@contextlib.asynccontextmanager
async def server(dsn: str | None, async_commit: bool) -> AsyncIterator[str]:
    if dsn:
        yield dsn
        return
    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg", delete_on_stop=True)
        admin = await pg.start()
        try:
            conn = await asyncpg.connect(admin)
            await conn.execute("CREATE DATABASE bench_dispatch")
            if async_commit:
                await conn.execute("ALTER SYSTEM SET synchronous_commit = off")
                await conn.execute("SELECT pg_reload_conf()")
            await conn.close()
            yield pg.dsn("bench_dispatch")
        finally:
            await pg.stop()


async def floor(dsn: str, samples: int) -> dict[str, float]:
    listener, sender = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    await sender.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY)")
    got: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("bench_floor", lambda *args: got.put_nowait(args[3]))
    sql = (
        "WITH i AS (INSERT INTO bench_floor DEFAULT VALUES RETURNING id)"
        " SELECT pg_notify('bench_floor', id::text)::text FROM i"
    )
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        await sender.fetchval(sql)
        await got.get()
        times.append(time.perf_counter() - start)
    await listener.close()
    await sender.close()
    return percentiles(times[samples // 10 :])


class Stopwatch:
    """An executor that notes when each task reached it, and does nothing else."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}
        self.arrived: dict[int, asyncio.Event] = {}

    async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult:
        self.started[task.id] = time.perf_counter()
        self.arrived.setdefault(task.id, asyncio.Event()).set()
        return ExecutionResult("done")


@contextlib.asynccontextmanager
async def lugh_pool(
    dsn: str, pool: asyncpg.Pool, slots: int, executor: Any
) -> AsyncIterator[WorkerPool]:
    listener = Listener(dsn)
    workers = WorkerPool(
        TaskQueue(pool), executor, listener=listener, slots=slots, poll_s=5.0, sweep_s=None
    )
    running = [asyncio.create_task(listener.run()), asyncio.create_task(workers.run())]
    await listener.connected.wait()
    try:
        yield workers
    finally:
        await workers.stop()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def lugh_latency(
    dsn: str, pool: asyncpg.Pool, project: int, slots: int, samples: int
) -> dict[str, float]:
    watch = Stopwatch()
    queue = TaskQueue(pool)
    times = []
    async with lugh_pool(dsn, pool, slots, watch) as workers:
        for _ in range(samples):
            while not workers.idle:  # every slot waiting again, as the figure says
                await asyncio.sleep(0.001)
            start = time.perf_counter()
            task = await queue.enqueue(project, "bench")
            arrived = watch.arrived.setdefault(task.id, asyncio.Event())
            await asyncio.wait_for(arrived.wait(), 10)
            times.append(watch.started[task.id] - start)
    return percentiles(times[samples // 10 :])


async def lugh_throughput(dsn: str, pool: asyncpg.Pool, project: int, n: int) -> float:
    queue = TaskQueue(pool)
    for start in range(0, n, 500):
        batch = range(start, min(n, start + 500))
        await asyncio.gather(*(queue.enqueue(project, "t") for _ in batch))
    began = time.perf_counter()
    async with lugh_pool(dsn, pool, 16, Stopwatch()):
        while await pool.fetchval("SELECT count(*) FROM tasks WHERE status <> 'done'"):
            await asyncio.sleep(0.05)
    return round(n / (time.perf_counter() - began))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--async-commit", action="store_true")
    args = parser.parse_args()
    if args.dsn and args.async_commit:
        parser.error("--async-commit only applies to the throwaway embedded server")
    configure_logging("warning", "json")
    async with server(args.dsn, args.async_commit) as dsn:
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        await conn.execute("TRUNCATE projects, tasks, task_events RESTART IDENTITY CASCADE")
        project = await conn.fetchval(
            "INSERT INTO projects (name, repo_path) VALUES ('bench', '/tmp/bench') RETURNING id"
        )
        await conn.close()
        pool = await create_pool(dsn, max_size=24)
        result: dict[str, Any] = {
            "bench": "dispatch",
            "synchronous_commit": not args.async_commit,
            "floor": await floor(dsn, args.samples),
        }
        for slots in (1, 16, 64):
            result[f"lugh_enqueue_to_claim_{slots}_waiting"] = await lugh_latency(
                dsn, pool, project, slots, args.samples
            )
        result["lugh_throughput_16_per_s"] = await lugh_throughput(dsn, pool, project, args.tasks)
        await pool.close()
        f50 = result["floor"]["p50_ms"]
        result["ratios"] = {
            "p50_1_vs_floor": round(result["lugh_enqueue_to_claim_1_waiting"]["p50_ms"] / f50, 2),
            "p50_64_vs_p50_1": round(
                result["lugh_enqueue_to_claim_64_waiting"]["p50_ms"]
                / result["lugh_enqueue_to_claim_1_waiting"]["p50_ms"],
                2,
            ),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
