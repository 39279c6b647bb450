"""Worker processes killed with -9, paused past their lease, and cut off from the database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from lugh.tasks import Events, TaskQueue, TaskStatus

from .conftest import WAIT_S, wait_for_statuses

REPO = Path(__file__).resolve().parents[2]
APP_NAME = "lugh-chaos-worker"

pytestmark = pytest.mark.slow


async def spawn_worker(dsn: str, *args: str, stderr: Any = asyncio.subprocess.DEVNULL):
    tagged = f"{dsn}{'&' if '?' in dsn else '?'}application_name={APP_NAME}"
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.tasks.chaos_worker", tagged, *args,
        cwd=REPO, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
    )  # fmt: skip


async def kill(worker: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have died of a cut connection
        worker.kill()
    await worker.wait()


async def test_workers_killed_at_random_lose_no_task_and_repeat_no_completion_or_effect(
    queue: TaskQueue, pool: asyncpg.Pool, database: str, project_id, effects, tmp_path: Path
):
    n = 2000
    for start in range(0, n, 200):
        batch = range(start, start + 200)
        await asyncio.gather(*(queue.enqueue(project_id, f"t{i}", max_attempts=999) for i in batch))
    log = (tmp_path / "workers.log").open("ab")  # what workers said, for a failure's reader

    async def spawn() -> asyncio.subprocess.Process:
        return await spawn_worker(database, "--slots", "8", "--lease", "2", stderr=log)

    workers = [await spawn() for _ in range(3)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 90  # ~15 s on an idle machine
    kills = cuts = 0
    try:
        while left := await pool.fetchval("SELECT count(*) FROM tasks WHERE status <> 'done'"):
            assert loop.time() < deadline, f"{left} tasks unfinished after {kills} kills"
            await asyncio.sleep(random.uniform(0.2, 0.5))  # the chaos cadence, not a wait
            if random.random() < 0.2:
                cuts += await pool.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = $1",
                    APP_NAME,
                )
            victim = random.randrange(len(workers))
            await kill(workers[victim])
            workers[victim] = await spawn()
            kills += 1
    finally:
        await asyncio.gather(*(kill(w) for w in workers))
        log.close()

    assert kills >= 5
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE status = 'done'") == n
    done_events = await pool.fetch(
        "SELECT task_id, count(*) AS n FROM task_events WHERE kind = 'done' GROUP BY task_id"
    )
    assert len(done_events) == n and {r["n"] for r in done_events} == {1}
    assert await pool.fetchval("SELECT count(*) FROM effects") == n


async def test_a_worker_paused_past_its_lease_has_its_late_completion_refused(
    queue: TaskQueue, pool: asyncpg.Pool, events: Events, database: str, project_id, effects
):
    task = await queue.enqueue(project_id, "slow")
    # Deaf and with no heartbeat due: on waking, the worker finishes its work and tries to
    # complete before anything could tell it the lease is gone.
    worker = await spawn_worker(
        database, "--slots", "1", "--lease", "1", "--heartbeat", "60", "--work", "0.5",
        "--announce", "--deaf", stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async def working() -> None:
            async with events.subscribe(after_id=0, task_id=task.id) as feed:
                async for event in feed:
                    if event.kind == "working":
                        return

        await asyncio.wait_for(working(), WAIT_S)
        os.kill(worker.pid, signal.SIGSTOP)

        async def lease_expired() -> None:
            while not await queue.requeue_expired():
                await asyncio.sleep(0.1)

        await asyncio.wait_for(lease_expired(), WAIT_S)
        await pool.execute("UPDATE tasks SET run_after = now() WHERE id = $1", task.id)
        mine = await queue.claim("the-other-worker", 60)
        assert mine.id == task.id

        os.kill(worker.pid, signal.SIGCONT)

        async def refused() -> None:
            async for line in worker.stderr:
                if b"completion refused" in line:
                    return

        await asyncio.wait_for(refused(), WAIT_S)
        current = await queue.get(task.id)
        assert (current.status, current.lease_token) == (TaskStatus.RUNNING, mine.lease_token)
        assert await pool.fetchval("SELECT count(*) FROM effects") == 0
        assert await queue.complete(task.id, mine.lease_token, "done")
    finally:
        await kill(worker)


async def test_tasks_handed_to_a_worker_killed_before_it_ran_them_are_run_by_another(
    pool: asyncpg.Pool, events: Events, database: str, project_id, effects
):
    n = 4
    # It enqueues them itself, so they go straight to its own free slots, and it holds them
    # (deaf: no wake-up makes it claim meanwhile, which would keep a slot from the hand-off).
    first = await spawn_worker(
        database, "--slots", str(n), "--lease", "1", "--work", "60", "--announce", "--deaf",
        "--enqueue", str(n), "--project", str(project_id),
    )  # fmt: skip
    second = None
    try:
        async def all_working() -> set[int]:
            working: set[int] = set()
            async with events.subscribe(after_id=0) as feed:
                async for event in feed:
                    if event.kind == "working":
                        working.add(event.task_id)
                    if len(working) == n:
                        return working

        handed = await asyncio.wait_for(all_working(), WAIT_S)
        await kill(first)
        second = await spawn_worker(database, "--slots", str(n), "--lease", "1")
        await wait_for_statuses(events, {task_id: "done" for task_id in handed})
    finally:
        await kill(first)
        if second is not None:
            await kill(second)

    runs = await pool.fetch(
        "SELECT task_id, data FROM task_events WHERE kind = 'running' ORDER BY id"
    )
    first_runs = {}
    for r in runs:
        first_runs.setdefault(r["task_id"], json.loads(r["data"]))
    assert set(first_runs) == handed
    for data in first_runs.values():
        assert data["handed_off"] is True and f":{first.pid}:" in data["worker"]
    done = await pool.fetch("SELECT task_id FROM task_events WHERE kind = 'done'")
    assert sorted(r["task_id"] for r in done) == sorted(handed)
    tokens = await pool.fetch(
        "SELECT e.token = t.lease_token AS fenced FROM effects e JOIN tasks t ON t.id = e.task_id"
    )
    assert len(tokens) == n and all(r["fenced"] for r in tokens)
