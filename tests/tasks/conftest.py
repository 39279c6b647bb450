"""Fixtures for the task tests: a project to queue into, the queue, a running listener, a real
redis-server for the Redis bus, and a small real executor whose side effect is a row written once
per task."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from lugh.tasks import (
    Backoff,
    Events,
    ExecutionResult,
    Listener,
    Task,
    TaskContext,
    TaskQueue,
    TaskStatus,
)
from lugh.tasks.redis_bus import RedisBus

WAIT_S = 10.0  # the bound on every wait; a passing test takes a small fraction of it
EFFECTS_TABLE = """
CREATE TABLE IF NOT EXISTS effects (
    task_id  bigint PRIMARY KEY,
    token    bigint NOT NULL,
    writes   integer NOT NULL DEFAULT 1
)
"""


class RedisServer:
    """A real redis-server on a free loopback port, in a directory of its own, keeping nothing
    on disk; it can be killed and started again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (Debian: apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + WAIT_S
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {self.workdir}/redis.log")
            time.sleep(0.01)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=WAIT_S)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


_prefixes = itertools.count(1)


@pytest.fixture
def redis_prefix() -> str:
    """Stream keys of this test's own, so tests share the server and not their streams."""
    return f"test{next(_prefixes)}:"


@pytest.fixture
async def redis_bus(redis_server: RedisServer, redis_prefix: str) -> AsyncIterator[RedisBus]:
    bus = RedisBus(redis_server.url, prefix=redis_prefix, backoff=(0.05, 0.2))
    async with running(bus):
        await asyncio.wait_for(bus.connected.wait(), WAIT_S)
        yield bus


@pytest.fixture
async def project_id(pool: asyncpg.Pool) -> int:
    return await pool.fetchval(
        "INSERT INTO projects (name, repo_path) VALUES ('demo', '/tmp/demo') RETURNING id"
    )


@pytest.fixture
def queue(pool: asyncpg.Pool) -> TaskQueue:
    return TaskQueue(pool, backoff=Backoff(base_s=0.01, max_s=0.1, jitter=0.0))


@pytest.fixture
async def listener(database: str) -> AsyncIterator[Listener]:
    listener = Listener(database, backoff=(0.05, 0.2))
    async with running(listener):
        await asyncio.wait_for(listener.connected.wait(), WAIT_S)
        yield listener


@pytest.fixture
def events(pool: asyncpg.Pool, listener: Listener) -> Events:
    return Events(pool, listener)


@pytest.fixture
async def effects(pool: asyncpg.Pool) -> None:
    await pool.execute(EFFECTS_TABLE)


class RecordingExecutor:
    """Writes one `effects` row per task (a repeat only counts `writes`), then is done."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult:
        await self.pool.execute(
            "INSERT INTO effects (task_id, token) VALUES ($1, $2) "
            "ON CONFLICT (task_id) DO UPDATE SET writes = effects.writes + 1",
            task.id,
            ctx.token,
        )
        return ExecutionResult("done", {"title": task.title})


class BlockingExecutor:
    """Starts, says so, and waits until released; records whether it was cancelled."""

    def __init__(self) -> None:
        self.started: dict[int, asyncio.Event] = {}
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()

    def started_event(self, task_id: int) -> asyncio.Event:
        return self.started.setdefault(task_id, asyncio.Event())

    async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult:
        self.started_event(task.id).set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return ExecutionResult("done")


@contextlib.asynccontextmanager
async def running(component: Any, stop_first: bool = False) -> AsyncIterator[Any]:
    """Run a component for the block; stop it gracefully (when asked) and cancel it after."""
    task = asyncio.create_task(component.run(), name=f"test:{component.name}")
    try:
        yield component
        if stop_first:
            await asyncio.wait_for(component.stop(), WAIT_S)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_for_statuses(
    events: Events, wanted: dict[int, TaskStatus | str], timeout: float = WAIT_S
) -> None:
    """Wait until each task has reached its wanted status, as the events bus tells it."""
    remaining = {task_id: TaskStatus(s) for task_id, s in wanted.items()}

    async def follow() -> None:
        async with events.subscribe(after_id=0) as feed:
            async for event in feed:
                if remaining.get(event.task_id) == event.kind:
                    del remaining[event.task_id]
                if not remaining:
                    return

    await asyncio.wait_for(follow(), timeout)


async def enqueue_many(queue: TaskQueue, project_id: int, n: int, **kwargs: Any) -> list[Task]:
    return [await queue.enqueue(project_id, f"task {i}", **kwargs) for i in range(n)]


def ids(tasks: Iterable[Task]) -> list[int]:
    return [t.id for t in tasks]

