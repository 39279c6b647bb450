"""A worker process for the chaos tests, killed and paused by them.

python -m tests.tasks.chaos_worker DSN --slots N --lease S --work S [--enqueue N --project P]

Its executor writes one `effects` row per task, fenced by the lease token and idempotent, so a
worker that lost its lease or a task run twice leaves no second effect. With --enqueue it also
enqueues tasks itself, as `lugh run`'s front doors do, so they are handed to its own pool.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal

import asyncpg

from lugh.db.database import create_pool
from lugh.logs import configure_logging
from lugh.tasks import (
    Backoff,
    Events,
    ExecutionResult,
    Listener,
    Task,
    TaskContext,
    TaskQueue,
    WorkerPool,
)

FENCED_EFFECT = """
INSERT INTO effects (task_id, token)
SELECT $1, $2 WHERE EXISTS (
    SELECT 1 FROM tasks WHERE id = $1 AND lease_token = $2 AND status = 'running')
ON CONFLICT (task_id) DO NOTHING
"""


class FencedEffect:
    def __init__(self, pool: asyncpg.Pool, work_s: float, announce: bool) -> None:
        self.pool = pool
        self.work_s = work_s
        self.announce = announce

    async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult:
        if self.announce:
            await ctx.progress("working")
        await asyncio.sleep(random.uniform(0, self.work_s) if not self.announce else self.work_s)
        await self.pool.execute(FENCED_EFFECT, task.id, ctx.token)
        return ExecutionResult("done")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--heartbeat", type=float, default=None)
    parser.add_argument("--deaf", action="store_true", help="no LISTEN: learn nothing by NOTIFY")
    parser.add_argument("--work", type=float, default=0.002)
    parser.add_argument("--announce", action="store_true", help="say 'working', work --work s")
    parser.add_argument("--enqueue", type=int, default=0, help="tasks to enqueue here, once")
    parser.add_argument("--project", type=int, default=1)
    args = parser.parse_args()
    configure_logging("warning", "json")

    pool = await create_pool(args.dsn, max_size=args.slots + 4)
    listener = None if args.deaf else Listener(args.dsn, backoff=(0.05, 0.2))
    queue = TaskQueue(pool, backoff=Backoff(base_s=0.05, max_s=0.2, jitter=0.2))
    workers = WorkerPool(
        queue,
        FencedEffect(pool, args.work, args.announce),
        listener=listener,
        events=Events(pool, listener),
        slots=args.slots,
        lease_s=args.lease,
        heartbeat_s=args.heartbeat,
        poll_s=0.5,
        sweep_s=0.2,
        grace_s=1.0,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    queue.hand_to(workers)
    running = [asyncio.create_task(c.run()) for c in (listener, workers) if c is not None]
    await workers.serving.wait()
    for i in range(args.enqueue):
        await queue.enqueue(args.project, f"enqueued by worker {i}", max_attempts=999)
    await stop.wait()
    await workers.stop()
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
