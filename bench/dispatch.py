"""Task dispatch latency and throughput, against the floor Postgres allows and against pgqueuer.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/dispatch.py [--samples 300] [--tasks 10000] [--synchronous-commit off]
        [--skip-pgqueuer] [--skip-redis] [--skip-latency]

Starts a throwaway embedded Postgres (and a throwaway redis-server when one is installed and no
--redis-url is given) and prints one JSON line:
- floor: a committed INSERT + NOTIFY, from the call until a LISTENing connection has it; also
  sampled just before each of Lugh's enqueue→claim samples (`floor_p50_ms` beside each figure),
  so that each ratio compares samples taken in the same moments (the floor drifts by 20 % over a
  run on this machine);
- lugh enqueue→claim p50/p99 (ms) with 1, 16 and 64 idle slots waiting in one worker pool, each
  task enqueued alone, two ways: `handoff`, the pool in the enqueuing process (`lugh run`'s shape:
  the enqueue statement hands the task to a free slot), and `notified`, the pool in another
  process (`lugh worker`'s shape: woken by NOTIFY, one LISTEN connection however many slots,
  then a claim); perf_counter is CLOCK_MONOTONIC, so the two processes' times compare;
- lugh claim+complete throughput (tasks/s): a pool with 16 slots draining a preloaded queue
  (`--rounds` drains, in turn with pgqueuer's; the median of each);
- pgqueuer on the same server (its own database, schema from its own installer): enqueue→start
  with 1, 16 and 64 consumers waiting (QueueManagers, each with its connection, batch 10), and
  the throughput of 16 consumers, batch 10, draining a preloaded queue;
- the Redis bus: XADD → subscriber wake-up, and enqueue→claim with 16 slots woken through Redis
  Streams (the claim is still Postgres's), and its throughput;
- the issue's targets as ratios of figures from this same run.
`synchronous_commit` (default on, Postgres's own default) is set server-wide, so for Lugh,
pgqueuer and the floor alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

from lugh.db.database import create_pool
from lugh.db.embedded import EmbeddedPostgres
from lugh.db.migrations import migrate
from lugh.logs import configure_logging
from lugh.tasks import ExecutionResult, Listener, Task, TaskContext, TaskQueue, WorkerPool
from lugh.tasks.redis_bus import RedisBus

SETTLE_S = 0.02  # between latency samples, for every system alike: all consumers back waiting


def say(what: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        "n": len(ms),
    }


def warm(samples: list[float]) -> list[float]:
    return samples[len(samples) // 10 :]  # the first tenth warms caches and plans


@contextlib.asynccontextmanager
async def postgres(tmp: Path, synchronous_commit: str) -> AsyncIterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp / "pg", delete_on_stop=True)
    admin = await pg.start()
    try:
        conn = await asyncpg.connect(admin)
        for name in ("bench_lugh", "bench_pgqueuer"):
            await conn.execute(f"DROP DATABASE IF EXISTS {name}")
            await conn.execute(f"CREATE DATABASE {name}")
        await conn.execute(f"ALTER SYSTEM SET synchronous_commit = {synchronous_commit}")
        await conn.execute("SELECT pg_reload_conf()")
        await conn.close()
        yield pg
    finally:
        await pg.stop()


@contextlib.asynccontextmanager
async def redis_server(tmp: Path, url: str | None) -> AsyncIterator[str | None]:
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.01)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait()


async def server_settings(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        names = ("server_version", "synchronous_commit", "fsync", "max_connections")
        return {n: await conn.fetchval(f"SHOW {n}") for n in names}
    finally:
        await conn.close()


# -- the floor -------------------------------------------------------------------------------


class Floor:
    """A committed INSERT + NOTIFY, timed from the call until a LISTENing connection has it."""

    SQL = (
        "WITH i AS (INSERT INTO bench_floor DEFAULT VALUES RETURNING id)"
        " SELECT pg_notify('bench_floor', id::text)::text FROM i"
    )

    def __init__(self, listener: asyncpg.Connection, sender: asyncpg.Connection) -> None:
        self.listener, self.sender = listener, sender
        self.got: asyncio.Queue[str] = asyncio.Queue()

    @classmethod
    async def open(cls, dsn: str) -> Floor:
        probe = cls(await asyncpg.connect(dsn), await asyncpg.connect(dsn))
        await probe.sender.execute(
            "CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY)"
        )
        await probe.listener.add_listener(
            "bench_floor", lambda *args: probe.got.put_nowait(args[3])
        )
        return probe

    async def sample(self) -> float:
        start = time.perf_counter()
        await self.sender.fetchval(self.SQL)
        await self.got.get()
        return time.perf_counter() - start

    async def close(self) -> None:
        await self.listener.close()
        await self.sender.close()


async def floor(dsn: str, samples: int) -> dict[str, float]:
    probe = await Floor.open(dsn)
    times = []
    for _ in range(samples):
        times.append(await probe.sample())
        await asyncio.sleep(SETTLE_S)
    await probe.close()
    return percentiles(warm(times))


async def with_floor(
    latency: Callable[[Callable[[], Awaitable[None]]], Awaitable[list[float]]], dsn: str
) -> dict[str, float]:
    """`latency`'s samples, each after a floor sample taken just before it in the same settled
    state: the figure and its own floor, with no drift of the machine between the two."""
    probe = await Floor.open(dsn)
    floors: list[float] = []

    async def before() -> None:
        floors.append(await probe.sample())
        await asyncio.sleep(SETTLE_S)

    try:
        times = await latency(before)
    finally:
        await probe.close()
    return {**percentiles(warm(times)), "floor_p50_ms": percentiles(warm(floors))["p50_ms"]}


# -- Lugh ------------------------------------------------------------------------------------


class Stopwatch:
    """An executor that notes when each task reached it, and does nothing else."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}
        self.arrived: dict[int, asyncio.Event] = {}

    async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult:
        self.started[task.id] = time.perf_counter()
        self.arrived.setdefault(task.id, asyncio.Event()).set()
        return ExecutionResult("done")


class Counter:
    """An executor that counts the tasks it ran and says when it has run `n`."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.ran = 0
        self.all_ran = asyncio.Event()

    async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult:
        self.ran += 1
        if self.ran >= self.n:
            self.all_ran.set()
        return ExecutionResult("done")


@contextlib.asynccontextmanager
async def lugh_pool(
    bus: Any, queue: TaskQueue, slots: int, executor: Any
) -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(queue, executor, listener=bus, slots=slots, poll_s=5.0, sweep_s=None)
    running = [asyncio.create_task(bus.run()), asyncio.create_task(workers.run())]
    await bus.connected.wait()
    try:
        yield workers
    finally:
        await workers.stop()
        for task in reversed(running):  # the workers' last notes still go out on the bus
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def lugh_latency(
    make_bus: Callable[[], Any],
    pool: asyncpg.Pool,
    project: int,
    slots: int,
    samples: int,
    *,
    hand_off: bool = True,
    before: Callable[[], Awaitable[None]] | None = None,
) -> list[float]:
    """Seconds from enqueue to the executor, one task at a time; `before` runs ahead of each
    (a floor sample, see `with_floor`)."""
    watch = Stopwatch()
    bus = make_bus()
    queue = TaskQueue(pool, bus=bus)
    times = []
    async with lugh_pool(bus, queue, slots, watch) as workers:
        if hand_off:
            queue.hand_to(workers)
        await workers.serving.wait()
        for _ in range(samples):
            while not workers.idle:  # every slot waiting again, as the figure says
                await asyncio.sleep(0.001)
            await asyncio.sleep(SETTLE_S)
            if before is not None:
                await before()
            start = time.perf_counter()
            task = await queue.enqueue(project, "bench")
            arrived = watch.arrived.setdefault(task.id, asyncio.Event())
            await asyncio.wait_for(arrived.wait(), 10)
            times.append(watch.started[task.id] - start)
    return times


async def lugh_throughput(
    make_bus: Callable[[], Any], pool: asyncpg.Pool, project: int, n: int
) -> float:
    bus = make_bus()
    queue = TaskQueue(pool, bus=bus)
    await preload(n, lambda k: pool.executemany(
        "INSERT INTO tasks (project_id, title) VALUES ($1, 'throughput')",
        [(project,)] * k,
    ))  # fmt: skip
    await pool.execute("VACUUM ANALYZE tasks")  # as for pgqueuer's table: steady-state statistics
    counter = Counter(n)
    began = time.perf_counter()
    async with lugh_pool(bus, queue, 16, counter) as workers:
        await counter.all_ran.wait()
        while not workers.idle:  # the last completions recorded
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - began
    left = await pool.fetchval("SELECT count(*) FROM tasks WHERE status <> 'done'")
    if left:
        raise RuntimeError(f"{left} of {n} tasks not done")
    return round(n / elapsed)


async def preload(n: int, insert: Callable[[int], Awaitable[Any]]) -> None:
    for start in range(0, n, 1000):
        await insert(min(1000, n - start))


class Printer:
    """The other process's executor: prints when each task reached it, and does nothing else."""

    async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult:
        print(task.id, time.perf_counter(), flush=True)
        return ExecutionResult("done")


async def serve_pool(dsn: str, slots: int) -> None:
    """The pool of another process (`--serve-pool`), woken by NOTIFY, until stdin closes."""
    configure_logging("warning", "json")
    pool = await create_pool(dsn, max_size=8)
    listener = Listener(dsn)
    async with lugh_pool(listener, TaskQueue(pool), slots, Printer()) as workers:
        await workers.serving.wait()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await pool.close()


async def lugh_latency_elsewhere(
    dsn: str, pool: asyncpg.Pool, project: int, slots: int, samples: int,
    before: Callable[[], Awaitable[None]] | None = None,
) -> list[float]:
    worker = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-pool", dsn, "--slots", str(slots),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert worker.stdin is not None and worker.stdout is not None
    queue = TaskQueue(pool)  # no pool of this process to hand to
    times = []
    try:
        ready = await asyncio.wait_for(worker.stdout.readline(), 30)
        if ready.strip() != b"ready":
            raise RuntimeError("the worker process did not start")
        for _ in range(samples):
            await asyncio.sleep(SETTLE_S)  # its last completion recorded, every slot waiting
            if before is not None:
                await before()
            start = time.perf_counter()
            task = await queue.enqueue(project, "bench")
            task_id, at = (await asyncio.wait_for(worker.stdout.readline(), 10)).split()
            if int(task_id) != task.id:
                raise RuntimeError(f"task {task.id} was enqueued, {int(task_id)} started")
            times.append(float(at) - start)
    finally:
        worker.stdin.close()
        await worker.wait()
    return times


async def reset_lugh(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE projects, tasks, task_events RESTART IDENTITY CASCADE")
        await conn.execute("VACUUM ANALYZE tasks, task_events")
        return await conn.fetchval(
            "INSERT INTO projects (name, repo_path) VALUES ('bench', '/tmp/bench') RETURNING id"
        )
    finally:
        await conn.close()


# -- pgqueuer --------------------------------------------------------------------------------


async def pgqueuer_install(dsn: str) -> None:
    from pgqueuer import AsyncpgDriver, Queries

    conn = await asyncpg.connect(dsn)
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()


async def pgqueuer_reset(dsn: str) -> None:
    from pgqueuer import AsyncpgDriver, Queries

    conn = await asyncpg.connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.clear_queue()
        await queries.clear_statistics_log()
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def pgqueuer_consumers(
    dsn: str, n: int, on_job: Callable[[Any], None], mode: str = "continuous"
) -> AsyncIterator[list[asyncio.Task[None]]]:
    from pgqueuer import AsyncpgDriver, Queries, QueueManager
    from pgqueuer.types import QueueExecutionMode

    conns = [await asyncpg.connect(dsn) for _ in range(n)]
    managers = [QueueManager(Queries(AsyncpgDriver(c))) for c in conns]
    for qm in managers:

        @qm.entrypoint("bench")
        async def bench(job: Any) -> None:
            on_job(job)

    runs = [
        asyncio.create_task(
            qm.run(
                batch_size=10,
                mode=QueueExecutionMode(mode),
                dequeue_timeout=timedelta(seconds=5),
                log_aggregation_interval=timedelta(0),
            )
        )
        for qm in managers
    ]
    try:
        yield runs
    finally:
        for qm in managers:
            qm.shutdown.set()
        await asyncio.gather(*runs, return_exceptions=True)
        for c in conns:
            await c.close()


async def pgqueuer_latency(dsn: str, consumers: int, samples: int) -> dict[str, float]:
    from pgqueuer import AsyncpgDriver, Queries

    await pgqueuer_reset(dsn)
    started: dict[int, float] = {}
    arrived: dict[int, asyncio.Event] = {}

    def on_job(job: Any) -> None:
        started[job.id] = time.perf_counter()
        arrived.setdefault(job.id, asyncio.Event()).set()

    sender = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(sender))
    times = []
    try:
        async with pgqueuer_consumers(dsn, consumers, on_job):
            await asyncio.sleep(0.5)  # every consumer past its start-up and LISTENing
            for _ in range(samples):
                await asyncio.sleep(SETTLE_S)
                start = time.perf_counter()
                (job_id,) = await queries.enqueue("bench", None)
                await asyncio.wait_for(arrived.setdefault(job_id, asyncio.Event()).wait(), 10)
                times.append(started[job_id] - start)
    finally:
        await sender.close()
    return percentiles(warm(times))


async def pgqueuer_throughput(dsn: str, n: int) -> float:
    from pgqueuer import AsyncpgDriver, Queries

    await pgqueuer_reset(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await preload(n, lambda k: queries.enqueue(["bench"] * k, [None] * k, [0] * k))
        await conn.execute("VACUUM ANALYZE pgqueuer")
    finally:
        await conn.close()
    done = 0

    def on_job(_job: Any) -> None:
        nonlocal done
        done += 1

    began = time.perf_counter()
    async with pgqueuer_consumers(dsn, 16, on_job, mode="drain") as runs:
        await asyncio.gather(*runs)
    elapsed = time.perf_counter() - began
    if done != n:
        raise RuntimeError(f"pgqueuer ran {done} of {n} jobs")
    return round(n / elapsed)


# -- Redis -----------------------------------------------------------------------------------


async def redis_wake(url: str, samples: int) -> dict[str, float]:
    bus = RedisBus(url, prefix="bench:")
    got: asyncio.Queue[str | None] = asyncio.Queue()
    bus.subscribe("wake", got.put_nowait)
    runner = asyncio.create_task(bus.run())
    try:
        assert await got.get() is None  # listening
        times = []
        for i in range(samples):
            await asyncio.sleep(SETTLE_S)
            start = time.perf_counter()
            await bus.publish("wake", str(i))
            while await got.get() != str(i):
                pass
            times.append(time.perf_counter() - start)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return percentiles(warm(times))


# -- the run ---------------------------------------------------------------------------------


def ratio(a: float, b: float) -> float:
    return round(a / b, 2)


def targets(r: dict[str, Any]) -> dict[str, Any]:
    """The issue's ratios, each latency one for both paths: `handoff` (the pool in the enqueuing
    process) and `notified` (the pool in another process, woken by NOTIFY)."""
    floor_p50 = r["floor"]["p50_ms"]
    pgq = r.get("pgqueuer")
    out: dict[str, Any] = {}
    checks: dict[str, bool] = {}
    for path in ("handoff", "notified"):
        lugh = {k: r["lugh"][path][f"enqueue_to_claim_{k}_waiting"] for k in (1, 16, 64)}
        mine = {  # against the floor sampled between its own samples, when it was
            "p50_1_vs_floor": ratio(lugh[1]["p50_ms"], lugh[1].get("floor_p50_ms", floor_p50)),
            "p50_64_vs_p50_1": ratio(lugh[64]["p50_ms"], lugh[1]["p50_ms"]),
        }
        checks[f"{path}:p50_1_vs_floor<=1.6"] = mine["p50_1_vs_floor"] <= 1.6
        checks[f"{path}:p50_64_vs_p50_1<=1.2"] = mine["p50_64_vs_p50_1"] <= 1.2
        if isinstance(pgq, dict):
            peer = {k: pgq[f"enqueue_to_start_{k}_waiting"] for k in (1, 16, 64)}
            mine["p50_vs_pgqueuer"] = ratio(lugh[16]["p50_ms"], peer[16]["p50_ms"])
            mine["p99_64_vs_pgqueuer_64"] = ratio(lugh[64]["p99_ms"], peer[64]["p99_ms"])
            checks[f"{path}:p50_vs_pgqueuer<=0.6"] = mine["p50_vs_pgqueuer"] <= 0.6
            checks[f"{path}:p99_64_vs_pgqueuer_64<=1"] = mine["p99_64_vs_pgqueuer_64"] <= 1.0
        out[path] = mine
    if isinstance(pgq, dict):
        out["throughput_vs_pgqueuer"] = ratio(
            r["lugh"]["throughput_16_per_s"], pgq["throughput_16_batch10_per_s"]
        )
        checks["throughput_vs_pgqueuer>=1.5"] = out["throughput_vs_pgqueuer"] >= 1.5
    out["met"] = checks
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--synchronous-commit", choices=("on", "off"), default="on")
    parser.add_argument("--redis-url", help="a Redis to use instead of a throwaway server")
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--skip-pgqueuer", action="store_true")
    parser.add_argument("--skip-latency", action="store_true", help="the throughputs only")
    parser.add_argument(
        "--rounds", type=int, default=5,
        help="throughput drains, Lugh's and pgqueuer's in turn; each figure is their median",
    )  # fmt: skip
    parser.add_argument("--serve-pool", metavar="DSN", help=argparse.SUPPRESS)  # the other process
    parser.add_argument("--slots", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_pool:
        await serve_pool(args.serve_pool, args.slots)
        return
    configure_logging("warning", "json")
    logging.getLogger("pgqueuer").setLevel(logging.WARNING)
    result: dict[str, Any] = {
        "bench": "dispatch",
        "machine": {"cpus": os.cpu_count(), "load_1m_at_start": round(os.getloadavg()[0], 2)},
    }
    with tempfile.TemporaryDirectory() as tmp:
        async with postgres(Path(tmp), args.synchronous_commit) as pg, redis_server(
            Path(tmp), args.redis_url
        ) as redis_url:
            dsn, peer_dsn = pg.dsn("bench_lugh"), pg.dsn("bench_pgqueuer")
            conn = await asyncpg.connect(dsn)
            await migrate(conn)
            await conn.close()
            result["server"] = await server_settings(dsn)
            pool = await create_pool(dsn, max_size=24)
            lugh: dict[str, Any] = {"handoff": {}, "notified": {}}
            if not args.skip_latency:
                say("floor")
                result["floor"] = await floor(dsn, args.samples)
                for slots in (1, 16, 64):
                    project = await reset_lugh(dsn)
                    say(f"lugh latency, {slots} waiting, hand-off in this process")
                    lugh["handoff"][f"enqueue_to_claim_{slots}_waiting"] = await with_floor(
                        lambda before: lugh_latency(
                            lambda: Listener(dsn), pool, project, slots, args.samples,
                            before=before,
                        ), dsn,
                    )  # fmt: skip
                    project = await reset_lugh(dsn)
                    say(f"lugh latency, {slots} waiting, notified in another process")
                    lugh["notified"][f"enqueue_to_claim_{slots}_waiting"] = await with_floor(
                        lambda before: lugh_latency_elsewhere(
                            dsn, pool, project, slots, args.samples, before
                        ), dsn,
                    )  # fmt: skip
            result["lugh"] = lugh
            peer = importlib.util.find_spec("pgqueuer") is not None and not args.skip_pgqueuer
            if importlib.util.find_spec("pgqueuer") is None:
                result["pgqueuer"] = "not installed: .venv/bin/pip install -e '.[bench]'"
            elif peer:
                await pgqueuer_install(peer_dsn)
                pgq: dict[str, Any] = {}
                for consumers in () if args.skip_latency else (1, 16, 64):
                    say(f"pgqueuer latency, {consumers} waiting")
                    pgq[f"enqueue_to_start_{consumers}_waiting"] = await pgqueuer_latency(
                        peer_dsn, consumers, args.samples
                    )
                result["pgqueuer"] = pgq
            # A drain takes a second or two, so one is at the mercy of whatever else the machine
            # does in that second: the two queues drain in turn, and each figure is a median.
            ours: list[float] = []
            theirs: list[float] = []
            for n in range(args.rounds):
                project = await reset_lugh(dsn)
                say(f"throughput, round {n + 1}: lugh")
                ours.append(await lugh_throughput(
                    lambda: Listener(dsn), pool, project, args.tasks
                ))  # fmt: skip
                if peer:
                    say(f"throughput, round {n + 1}: pgqueuer")
                    theirs.append(await pgqueuer_throughput(peer_dsn, args.tasks))
            lugh["throughput_16_per_s"] = statistics.median(ours)
            lugh["throughput_16_per_s_rounds"] = ours
            if peer:
                pgq["throughput_16_batch10_per_s"] = statistics.median(theirs)
                pgq["throughput_16_batch10_per_s_rounds"] = theirs

            if args.skip_redis:
                pass
            elif redis_url is None:
                result["redis_bus"] = "no redis-server installed and no --redis-url"
            else:
                say("redis")
                redis: dict[str, Any] = {}
                if not args.skip_latency:
                    redis["wake"] = await redis_wake(redis_url, args.samples)
                    project = await reset_lugh(dsn)
                    redis["enqueue_to_claim_16_waiting"] = percentiles(warm(await lugh_latency(
                        lambda: RedisBus(redis_url, prefix="bench:"), pool, project, 16,
                        args.samples, hand_off=False,
                    )))  # fmt: skip
                project = await reset_lugh(dsn)
                redis["throughput_16_per_s"] = await lugh_throughput(
                    lambda: RedisBus(redis_url, prefix="bench:"), pool, project, args.tasks
                )
                result["redis_bus"] = redis
            await pool.close()
    if not args.skip_latency:
        result["targets"] = targets(result)
    result["machine"]["load_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
