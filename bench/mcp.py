"""MCP round trips: `get_task` and `query_knowledge` over Streamable HTTP next to the same calls
through the SDK's in-memory client, in the same run, so the transport's cost is a ratio.

    .venv/bin/python bench/mcp.py [--samples 300] [--calls 100] [--tools get_task]

Starts a throwaway embedded Postgres, registers a project with a few ingested notes and one task,
and prints one JSON line: p50/p99 (ms) of sequential calls on one client, calls/s with 8
concurrent clients (each its own session), both transports, and the issue's targets
(`get_task` over HTTP p50 ≤ 3 ms; HTTP ≤ 3× in-memory).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name shadows the SDK.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import asyncpg  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402

from lugh.config import load_settings  # noqa: E402
from lugh.db.database import create_pool  # noqa: E402
from lugh.db.embedded import EmbeddedPostgres  # noqa: E402
from lugh.db.migrations import migrate  # noqa: E402
from lugh.logs import configure_logging  # noqa: E402
from lugh.mcp.http import McpHttp  # noqa: E402
from lugh.mcp.server import build_server  # noqa: E402
from lugh.mcp.tokens import mcp_token  # noqa: E402
from lugh.services import build_services  # noqa: E402

CLIENTS = 8
NOTES = [
    "Deployments go out on Tuesdays through the blue-green pipeline named Heron.",
    "The billing service retries failed charges three times with exponential backoff.",
    "Feature flags live in flags.yaml and are read at start; changing one needs a restart.",
    "On-call rotates weekly; the handover happens on Monday at 10:00 UTC.",
]


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
    }


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    for args in (["init", "-q", "-b", "main"], ["config", "user.email", "b@example.com"],
                 ["config", "user.name", "Bench"]):  # fmt: skip
        subprocess.run(["git", "-C", str(path), *args], check=True)
    (path / "README.md").write_text("# bench\n")
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", "init"], check=True)
    return path


async def sequential(client: Client, tool: str, args: dict[str, Any], n: int) -> list[float]:
    for _ in range(min(20, n)):  # warm-up
        await client.call_tool(tool, args)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        result = await client.call_tool(tool, args)
        samples.append(time.perf_counter() - start)
        assert not result.is_error, result.content
    return samples


async def concurrent(
    connect: Callable[[], contextlib.AbstractAsyncContextManager[Client]],
    tool: str, args: dict[str, Any], calls: int,
) -> float:
    """Calls per second with CLIENTS clients each making `calls` calls at once."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect()) for _ in range(CLIENTS)]
        for client in clients:
            await client.call_tool(tool, args)

        async def run(client: Client) -> None:
            for _ in range(calls):
                await client.call_tool(tool, args)

        start = time.perf_counter()
        await asyncio.gather(*(run(c) for c in clients))
        return round(CLIENTS * calls / (time.perf_counter() - start), 1)


async def main(samples: int, calls: int, tools: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lugh-bench-mcp-") as tmp_name:
        tmp = Path(tmp_name)
        pg = EmbeddedPostgres(tmp / "pg", delete_on_stop=True)
        admin = await pg.start()
        try:
            conn = await asyncpg.connect(admin)
            await conn.execute("CREATE DATABASE bench_mcp")
            await conn.close()
            dsn = pg.dsn("bench_mcp")
            conn = await asyncpg.connect(dsn)
            await migrate(conn)
            await conn.close()
            pool = await create_pool(dsn, max_size=20)
            try:
                return await measure(tmp, pool, dsn, samples, calls, tools)
            finally:
                await pool.close()
        finally:
            await pg.stop()


async def measure(
    tmp: Path, pool: asyncpg.Pool, dsn: str, samples: int, calls: int, tools: list[str]
) -> dict[str, Any]:
    settings = load_settings(None, LUGH_DATA_DIR=str(tmp / "data"), DATABASE_URL=dsn)
    services = build_services(settings, pool, dsn)
    project = await services.projects.register("bench", str(git_repo(tmp / "repo")))
    for n, note in enumerate(NOTES):
        await services.knowledge.ingest_text("bench", note, title=f"note {n}")
    task = await services.tasks.enqueue(project.id, "add a health endpoint", source="mcp")
    calls_of = {
        "get_task": {"task_id": task.id},
        "query_knowledge": {"query": "when do deployments go out?", "project": "bench", "k": 5},
    }
    http = McpHttp(services, host="127.0.0.1", port=0, rate_per_s=1e9, rate_burst=10**9)
    serving = asyncio.create_task(http.run())
    await asyncio.wait_for(http.ready.wait(), timeout=30)
    token = mcp_token(settings)
    memory_server = build_server(services)

    @contextlib.asynccontextmanager
    async def over_http() -> AsyncIterator[Client]:
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with client, Client(streamable_http_client(http.url, http_client=client)) as c:
            yield c

    def in_memory() -> Client:
        return Client(memory_server)

    out: dict[str, Any] = {"bench": "mcp", "samples": samples, "clients": CLIENTS}
    try:
        for tool, args in calls_of.items():
            if tool not in tools:
                continue
            row: dict[str, Any] = {}
            for name, connect in (("memory", in_memory), ("http", over_http)):
                async with connect() as client:
                    row[name] = percentiles(await sequential(client, tool, args, samples))
                row[name]["calls_per_s_8_clients"] = await concurrent(connect, tool, args, calls)
            row["http_over_memory_p50"] = round(row["http"]["p50_ms"] / row["memory"]["p50_ms"], 2)
            out[tool] = row
    finally:
        await http.stop()
        await serving
        await services.aclose()
    if "get_task" in out:
        out["targets"] = {
            "get_task_http_p50_le_3ms": out["get_task"]["http"]["p50_ms"] <= 3.0,
            "http_overhead_le_3x": out["get_task"]["http_over_memory_p50"] <= 3.0,
        }
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument(
        "--calls", type=int, default=100, help="calls per client in the concurrent run"
    )
    parser.add_argument(
        "--tools", default="get_task,query_knowledge", help="which calls, comma-separated"
    )
    options = parser.parse_args()
    configure_logging("warning", "json", stream=sys.stderr)
    logging.getLogger("mcp").setLevel(logging.WARNING)
    print(json.dumps(asyncio.run(main(options.samples, options.calls, options.tools.split(",")))))
