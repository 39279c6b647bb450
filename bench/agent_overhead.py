"""Lugh's own overhead around agent runs. Prints one JSON line.

    python bench/agent_overhead.py [--files 20000] [--runs 7] [--keep DIR]

Worktree half: a repository of `--files` small files (generated once into a temp dir and
committed) is registered as a project; each run makes a task's worktree with WorktreeManager
(new branch, full checkout, the row recorded) and removes it again (worktree, branch, row).
Reported: p50 of create+remove over the runs. Target (issue 4): ≤ 1.5 s for 20,000 files.
Interleaved with those runs, the same work done by bare `git worktree add/remove` and
`git branch -D` gives the floor the disk sets, so Lugh's own share shows on a busy machine too.

Step half: Lugh's overhead per agent step with a fake model that answers instantly. It needs the
agent loop, which is not built yet; `step_overhead()` is where it goes, and reports null until then.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lugh.agents.worktrees import WorktreeManager
from lugh.db.database import connect, create_pool, database
from lugh.db.migrations import migrate
from lugh.logs import configure_logging
from lugh.projects import ProjectService
from lugh.tasks import TaskQueue

TARGET_S = 1.5
FILES_PER_DIR = 100


def make_repository(path: Path, files: int) -> Path:
    """`files` small text files in directories of FILES_PER_DIR, in one commit on main."""
    for i in range(files):
        target = path / f"pkg{i // FILES_PER_DIR:04d}" / f"module_{i:05d}.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f'"""Module {i}."""\n\n\ndef value() -> int:\n    return {i}\n')
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["-c", "user.name=Bench", "-c", "user.email=bench@lugh.local", "commit", "-q", "-m", "x"],
    ):
        subprocess.run(["git", "-C", str(path), *args], check=True)
    return path


def bare_git_run(repo: Path, path: Path, i: int) -> float:
    """Seconds for git alone to make and remove a worktree on a new branch, as Lugh does."""
    git = ["git", "-C", str(repo), "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]
    started = time.perf_counter()
    for args in (
        ["worktree", "add", "--quiet", "-b", f"bare-{i}", str(path), "main"],
        ["worktree", "remove", "--force", "--force", str(path)],
        ["branch", "-D", f"bare-{i}"],
    ):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return time.perf_counter() - started


async def worktree_overhead(work: Path, files: int, runs: int) -> dict[str, Any]:
    repo = make_repository(work / "repo", files)
    async with database(None, work / "pg", "lugh_bench") as dsn:
        conn = await connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        pool = await create_pool(dsn)
        try:
            project = await ProjectService(pool, work / "data").register("bench", str(repo))
            queue = TaskQueue(pool)
            worktrees = WorktreeManager(work / "data", pool)
            creates, removes, bare = [], [], []
            for i in range(runs + 1):  # the first run warms the caches and is not counted
                floor = await asyncio.to_thread(bare_git_run, repo, work / "bare", i)
                task = await queue.enqueue(project.id, f"benchmark run {i}")
                await queue.claim("bench", 300)
                started = time.perf_counter()
                wt = await worktrees.create(project, task.id, task.title)
                made = time.perf_counter()
                await worktrees.remove(wt, delete_branch=True)
                removed = time.perf_counter()
                if i:
                    creates.append(made - started)
                    removes.append(removed - made)
                    bare.append(floor)
        finally:
            await pool.close()
    totals = [c + r for c, r in zip(creates, removes)]
    p50 = statistics.median(totals)
    return {
        "files": files,
        "runs": runs,
        "create_remove_p50_s": round(p50, 3),
        "create_p50_s": round(statistics.median(creates), 3),
        "remove_p50_s": round(statistics.median(removes), 3),
        "create_remove_max_s": round(max(totals), 3),
        "bare_git_p50_s": round(statistics.median(bare), 3),
        "lugh_share_p50_s": round(statistics.median(t - b for t, b in zip(totals, bare)), 3),
        "target_s": TARGET_S,
        "within_target": p50 <= TARGET_S,
    }


async def step_overhead() -> dict[str, Any] | None:
    """Per-step overhead p50/p99 (everything but the model's answer) — to be filled in with the
    agent loop: run a scripted conversation of N tool steps against the fake Messages API and
    subtract the fake's own time. Target: p99 ≤ 20 ms."""
    return None


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="work here and keep it, instead of a temp dir")
    args = parser.parse_args(argv)
    configure_logging(level="warning")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        worktree = await worktree_overhead(args.keep, args.files, args.runs)
    else:
        with tempfile.TemporaryDirectory(prefix="lugh-bench-") as tmp:
            worktree = await worktree_overhead(Path(tmp), args.files, args.runs)
    result = {"bench": "agent_overhead", "worktree": worktree, "step": await step_overhead()}
    print(json.dumps(result, ensure_ascii=False))
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
