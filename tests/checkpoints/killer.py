"""Kill -9 at random moments: run by test_kill.py as `python -m tests.checkpoints.killer`.

Imports once, then forks a child per attempt (a fresh event loop and connections in each), so
fifty attempts cost fifty forks rather than fifty interpreter starts. Each attempt is killed
with SIGKILL after a random delay within the measured length of an uninterrupted run.

  create:  the child checkpoints the project; the test verifies every listed checkpoint after.
  restore: the child changes the project (a task, a branch) and restores checkpoint C; after
           the kill a second child runs the same restore to the end and writes the project's
           fingerprint, which must equal that of an uninterrupted restore.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import asyncpg

from lugh.agents.worktrees import WorktreeManager
from lugh.checkpoints import CheckpointService
from lugh.db.database import create_pool
from lugh.errors import UserError
from lugh.projects import ProjectService
from lugh.tasks import TaskQueue
from tests.checkpoints.helpers import fingerprint, git


async def _service(dsn: str, data_dir: Path) -> tuple[asyncpg.Pool, CheckpointService]:
    pool = await create_pool(dsn, min_size=1, max_size=4)
    projects = ProjectService(pool, data_dir)
    worktrees = WorktreeManager(data_dir, pool)
    return pool, CheckpointService(pool, projects, worktrees, TaskQueue(pool), data_dir)


async def _create(dsn: str, data_dir: Path, project: str) -> None:
    pool, service = await _service(dsn, data_dir)
    await service.create(project, label="under fire")
    await pool.close()


async def _mutate_and_restore(
    dsn: str, data_dir: Path, project: str, checkpoint: int, n: int
) -> None:
    pool, service = await _service(dsn, data_dir)
    found = await service.projects.get(project)
    await service.tasks.enqueue(found.id, f"made before restore {n}")
    git(found.repo_path, "branch", "-f", f"scratch-{n}")
    await service.restore(checkpoint)
    await pool.close()


async def _finish(dsn: str, data_dir: Path, project: str, checkpoint: int, out: Path) -> None:
    pool, service = await _service(dsn, data_dir)
    deadline = time.monotonic() + 30
    while True:
        try:
            await service.restore(checkpoint)
            break
        except UserError as exc:
            # The killed child's session lock goes once Postgres sees its connection close.
            if "running right now" not in str(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    found = await service.projects.get(project)
    printed = await fingerprint(pool, found.id, found.repo_path, service.worktrees.root / project)
    with open(out, "a") as f:
        f.write(json.dumps(printed, sort_keys=True) + "\n")
    await pool.close()


def _in_child(coro_factory) -> int:
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            asyncio.run(coro_factory())
        except BaseException as exc:  # noqa: BLE001 (reported through the exit code)
            print(f"child failed: {exc!r}", file=sys.stderr)
            code = 1
        os._exit(code)
    return pid


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def main() -> None:
    mode, dsn, data_dir, project, checkpoint, count, seed, out = sys.argv[1:9]
    data = Path(data_dir)
    rng = random.Random(int(seed))
    results = Path(out)

    def attempt(n: int):
        if mode == "create":
            return lambda: _create(dsn, data, project)
        return lambda: _mutate_and_restore(dsn, data, project, int(checkpoint), n)

    started = time.perf_counter()
    if _wait(_in_child(attempt(0))) != 0:
        raise SystemExit("the uninterrupted run failed")
    length = time.perf_counter() - started
    killed = finished = 0
    for n in range(1, int(count) + 1):
        pid = _in_child(attempt(n))
        time.sleep(rng.uniform(0, length))
        os.kill(pid, signal.SIGKILL)
        code = _wait(pid)
        if code == -signal.SIGKILL:
            killed += 1
        elif code == 0:
            finished += 1
        else:
            raise SystemExit(f"attempt {n} failed on its own (exit {code})")
        if mode == "restore":
            if _wait(_in_child(lambda: _finish(dsn, data, project, int(checkpoint), results))) != 0:
                raise SystemExit(f"the restore after kill {n} did not finish")
    summary = {"killed": killed, "finished": finished, "length_s": round(length, 3)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
