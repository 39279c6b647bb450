"""Lugh's own overhead around agent runs. Prints one JSON line.

    python bench/agent_overhead.py [--files 20000] [--runs 7] [--keep DIR]

Worktree half: a repository of `--files` small files (generated once into a temp dir and
committed) is registered as a project; each run makes a task's worktree with WorktreeManager
(new branch, full checkout, the row recorded) and removes it again (worktree, branch, row).
Reported: p50 of create+remove over the runs. Target (issue 4): ≤ 1.5 s for 20,000 files.
Interleaved with those runs, the same work done by bare `git worktree add/remove` and
`git branch -D` (with Lugh's parallel checkout) gives the floor the disk sets, so Lugh's own share
shows on a busy machine too; and once more with git's default sequential checkout, for scale.

Step half: Lugh's overhead per agent step. The real agent loop (AgentLoop, RunStore, ToolBox
over a real worktree, the sandbox, Postgres) runs a scripted conversation of `--steps` tool
steps (read_file, write_file, run_command in turn) against the fake Messages API of tests/fakes,
which answers at once, through the real anthropic client. A step's overhead is the time from one
model reply to the next model request: saving the turn and its audit event, running the tool,
saving its result, checking budgets, building the request. Reported: p50/p99 over all steps and
per tool; the same without the commands' own time (run_command's cost is mostly the sandbox
starting: bwrap namespaces and mounts); and the model call itself (SDK and loopback HTTP to the
fake, which runs in a process of its own) for scale.
Target (issue 4): ≤ 20 ms p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lugh.agents.worktrees import PARALLEL_CHECKOUT, WorktreeManager
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


def bare_git_run(repo: Path, path: Path, i: int, options: tuple[str, ...] = ()) -> float:
    """Seconds for git alone to make and remove a worktree on a new branch, as Lugh does
    (with `options` such as Lugh's parallel checkout; without, as git does by default)."""
    git = ["git", "-C", str(repo), "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
           *options]  # fmt: skip
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
            creates, removes, bare, sequential = [], [], [], []
            for i in range(runs + 1):  # the first run warms the caches and is not counted
                floor = await asyncio.to_thread(
                    bare_git_run, repo, work / "bare", i, PARALLEL_CHECKOUT
                )
                plain = await asyncio.to_thread(bare_git_run, repo, work / "plain", -i - 1)
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
                    sequential.append(plain)
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
        "bare_git_sequential_checkout_p50_s": round(statistics.median(sequential), 3),
        "lugh_share_p50_s": round(statistics.median(t - b for t, b in zip(totals, bare)), 3),
        "target_s": TARGET_S,
        "within_target": p50 <= TARGET_S,
    }


STEP_TARGET_MS = 20.0
STEP_TOOLS = ("read_file", "write_file", "run_command")


class TimedModel:
    """A ChatModel that notes when each call starts and ends."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[float, float]] = []

    async def complete(self, request: Any, **options: Any) -> Any:
        started = time.perf_counter()
        reply = await self.inner.complete(request, **options)
        self.calls.append((started, time.perf_counter()))
        return reply


class TimedSandbox:
    """A Sandbox that notes how long each command took, start of the sandbox included."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.runs: list[float] = []

    async def run(self, command: str, **options: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self.inner.run(command, **options)
        finally:
            self.runs.append(time.perf_counter() - started)

    def prepare(self, cwd: Path, env: Any) -> None:
        self.inner.prepare(cwd, env)

    async def release(self, cwd: Path, env: Any) -> None:
        await self.inner.release(cwd, env)

    async def check(self) -> Any:
        return await self.inner.check()


def scripted_steps(steps: int) -> list[Any]:
    from tests.fakes.anthropic import tool_use, turn

    turns = []
    for i in range(steps):
        tool = STEP_TOOLS[i % len(STEP_TOOLS)]
        args = {
            "read_file": {"path": "app.py"},
            "write_file": {"path": f"out/step_{i}.txt", "content": f"step {i}\n" * 20},
            "run_command": {"command": f"echo step {i} >> steps.log"},
        }[tool]
        turns.append(turn(f"Step {i}: {tool}.", tool_use(tool, args)))
    return [*turns, turn(tool_use("finish", {"summary": "All steps done."}))]


def serve_fake_model(steps: int, conn: Any) -> None:
    """The fake Messages API in a process of its own, so that its work after answering (and the
    interpreter lock it would hold meanwhile) is not counted as Lugh's."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.fakes.anthropic import FakeAnthropic

    with FakeAnthropic() as fake:
        fake.script(*scripted_steps(steps))
        conn.send(fake.base_url)
        conn.recv()  # until the benchmark is done


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def step_overhead(work: Path, steps: int, sandbox: str, ahead: bool) -> dict[str, Any]:
    """The step half; `ahead`: the run's sandboxes are built ahead of their commands, as
    AgentExecutor has them (otherwise each is built when its command comes)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fakes
    from lugh.agents.budget import Budget
    from lugh.agents.files import WorktreeFiles
    from lugh.agents.loop import AgentLoop, RunSpec, RunStore
    from lugh.agents.sandbox import make_sandbox
    from lugh.agents.tools import COMMAND_ENV, WORK_TOOLS, ToolBox
    from lugh.config import DEFAULT_MODEL
    from lugh.llm import AnthropicChat
    from lugh.tasks import TaskContext
    from tests.fakes.anthropic import API_KEY

    work = work / ("steps-ahead" if ahead else "steps-now")
    repo = work / "steps-repo"
    repo.mkdir(parents=True)
    (repo / "app.py").write_text('def greet(name):\n    return "Hello, " + name\n' * 50)
    for args in (
        ["init", "-q", "-b", "main"], ["add", "-A"],
        ["-c", "user.name=Bench", "-c", "user.email=bench@lugh.local", "commit", "-q", "-m", "x"],
    ):  # fmt: skip
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    async with database(None, work / "pg", "lugh_bench_steps") as dsn:
        conn = await connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        pool = await create_pool(dsn)
        try:
            project = await ProjectService(pool, work / "data").register("steps", str(repo))
            queue = TaskQueue(pool)
            await queue.enqueue(project.id, "benchmark steps")
            task = await queue.claim("bench", 3600)
            assert task is not None
            wt = await WorktreeManager(work / "data", pool).create(project, task.id, task.title)
            commands = TimedSandbox(make_sandbox(sandbox))
            tools = ToolBox(
                WorktreeFiles(wt.path), commands, wt.path, pool, task.id, project.id, project.name
            )
            ours, theirs = multiprocessing.Pipe()
            server = multiprocessing.get_context("spawn").Process(
                target=serve_fake_model, args=(steps, theirs), daemon=True
            )
            server.start()
            try:
                base_url = await asyncio.to_thread(ours.recv)
                chat = AnthropicChat(api_key=API_KEY, base_url=base_url)
                model = TimedModel(chat)
                try:
                    loop = AgentLoop(model, RunStore(pool))
                    spec = RunSpec("work", DEFAULT_MODEL, "You are a benchmark.", "Go.", WORK_TOOLS)
                    budget = Budget(max_steps=steps + 10, max_wall_s=3600, max_cost_usd=1e9,
                                    max_tokens=10**12)  # fmt: skip
                    if ahead:
                        commands.prepare(wt.path, COMMAND_ENV)
                    try:
                        outcome = await loop.run(task, TaskContext(task, queue, None, 3600),
                                                 tools, spec, budget)  # fmt: skip
                    finally:
                        if ahead:
                            await commands.release(wt.path, COMMAND_ENV)
                finally:
                    await chat.aclose()
            finally:
                ours.send("stop")
                server.join(10)
            assert outcome.kind == "finished", outcome
        finally:
            await pool.close()
    gaps = [nxt[0] - cur[1] for cur, nxt in zip(model.calls, model.calls[1:])]
    calls = [end - start for start, end in model.calls]
    ms = [g * 1000 for g in gaps]
    by_tool = {}
    for i, tool in enumerate(STEP_TOOLS):
        mine = ms[i :: len(STEP_TOOLS)]
        by_tool[tool] = {"p50_ms": round(statistics.median(mine), 2),
                         "p99_ms": round(percentile(mine, 0.99), 2)}  # fmt: skip
    p99 = percentile(ms, 0.99)
    # The same steps without the commands' own time (mostly the sandbox starting up).
    command_ms = iter(r * 1000 for r in commands.runs)
    loop_only = [
        g - next(command_ms) if STEP_TOOLS[i % len(STEP_TOOLS)] == "run_command" else g
        for i, g in enumerate(ms)
    ]
    return {
        "steps": len(ms),
        "sandbox": sandbox,
        "sandbox_built": "ahead of its command" if ahead else "when its command comes",
        "overhead_p50_ms": round(statistics.median(ms), 2),
        "overhead_p99_ms": round(p99, 2),
        "overhead_max_ms": round(max(ms), 2),
        "by_tool": by_tool,
        "without_commands_p50_ms": round(statistics.median(loop_only), 2),
        "without_commands_p99_ms": round(percentile(loop_only, 0.99), 2),
        "command_p50_ms": round(statistics.median(commands.runs) * 1000, 2),
        "command_p99_ms": round(percentile([r * 1000 for r in commands.runs], 0.99), 2),
        "model_call_p50_ms": round(statistics.median(calls) * 1000, 2),
        "target_p99_ms": STEP_TARGET_MS,
        "within_target": p99 <= STEP_TARGET_MS,
    }


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="work here and keep it, instead of a temp dir")
    parser.add_argument("--steps", type=int, default=200, help="agent steps for the step half")
    parser.add_argument("--sandbox", default="bubblewrap", help="run_command's sandbox")
    args = parser.parse_args(argv)
    configure_logging(level="warning")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        worktree = await worktree_overhead(args.keep, args.files, args.runs)
        step = await step_overhead(args.keep, args.steps, args.sandbox, True)
        step_now = await step_overhead(args.keep, args.steps, args.sandbox, False)
    else:
        with tempfile.TemporaryDirectory(prefix="lugh-bench-") as tmp:
            worktree = await worktree_overhead(Path(tmp), args.files, args.runs)
            step = await step_overhead(Path(tmp), args.steps, args.sandbox, True)
            step_now = await step_overhead(Path(tmp), args.steps, args.sandbox, False)
    result = {
        "bench": "agent_overhead", "worktree": worktree, "step": step,
        "step_sandbox_built_per_command": step_now,
        "p99_ahead_vs_per_command": round(
            step["overhead_p99_ms"] / step_now["overhead_p99_ms"], 2
        ),
    }  # fmt: skip
    print(json.dumps(result, ensure_ascii=False))
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
