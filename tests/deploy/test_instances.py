"""Staging and production on one machine: two `lugh run` processes on one embedded Postgres
server, each with its own database (`lugh_<instance>`), data dir, MCP port, MCP token and bot
token, stay apart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.conftest import free_port, make_repo
from tests.fakes.telegram import FakeTelegram
from tests.mcp.conftest import payload

START_TIMEOUT_S = 90
OWNER = 4242
BOT_TOKENS = {
    "staging": "1111111111:AAStagingBotTokenForTheTest_abcdefgh",
    "prod": "2222222222:AAProdBotTokenForTheTest_abcdefghijkl",
}


@dataclass
class Instance:
    name: str
    data_dir: Path
    port: int
    mcp_token: str
    telegram: FakeTelegram
    dsn: str
    proc: asyncio.subprocess.Process | None = None
    events: list[dict] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LUGH_INSTANCE": self.name,
            "LUGH_DATA_DIR": str(self.data_dir),
            "DATABASE_URL": self.dsn,
            "LUGH_MCP_PORT": str(self.port),
            "LUGH_MCP_TOKEN": self.mcp_token,
            "TELEGRAM_BOT_TOKEN": BOT_TOKENS[self.name],
            "TELEGRAM_API_BASE_URL": self.telegram.url,
            "TELEGRAM_ALLOWED_USER_IDS": str(OWNER),
            "LUGH_LOG_FORMAT": "json",
            "LUGH_SANDBOX": "none",
        }

    async def start(self, cwd: Path) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lugh", "run",
            env=self.env(), cwd=cwd,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        await self.wait_for_event("lugh is running")
        await self.wait_until_serving()

    async def wait_for_event(self, event: str) -> dict:
        assert self.proc is not None and self.proc.stderr is not None

        async def read() -> dict:
            while True:
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError(f"{self.name} exited before {event!r}: {self.events}")
                with contextlib.suppress(ValueError):
                    self.events.append(json.loads(raw))
                    if self.events[-1].get("event") == event:
                        return self.events[-1]

        return await asyncio.wait_for(read(), timeout=START_TIMEOUT_S)

    async def wait_until_serving(self) -> None:
        async with httpx.AsyncClient() as client:
            async with asyncio.timeout(START_TIMEOUT_S):
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await client.get(f"{self.base}/health")).status_code == 200:
                            return
                    await asyncio.sleep(0.1)  # polling a port that is about to open

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout=60)

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{self.base}/metrics")).text

    @contextlib.asynccontextmanager
    async def mcp(self, token: str | None = None) -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {token or self.mcp_token}"}
        http = create_mcp_http_client(headers=headers)
        async with http, Client(streamable_http_client(f"{self.base}/mcp", http_client=http)) as c:
            yield c


@pytest.fixture
async def instances(tmp_path, postgres) -> AsyncIterator[dict[str, Instance]]:
    fakes = {name: FakeTelegram(BOT_TOKENS[name]).start() for name in BOT_TOKENS}
    both = {
        name: Instance(name, tmp_path / name / "data", free_port(), f"{name}-mcp-" + "t" * 40,
                       fakes[name], postgres.dsn(await postgres.clone(f"lugh_{name}")))
        for name in BOT_TOKENS
    }  # fmt: skip
    try:
        await asyncio.gather(*(i.start(tmp_path) for i in both.values()))
        yield both
    finally:
        for instance in both.values():
            if instance.proc is not None and instance.proc.returncode is None:
                instance.proc.kill()
                await instance.proc.wait()
        for fake in fakes.values():
            fake.stop()
        for name in BOT_TOKENS:
            await postgres.drop(f"lugh_{name}")


async def task_titles(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["title"] for r in await conn.fetch("SELECT title FROM tasks")]
    finally:
        await conn.close()


async def test_staging_and_prod_run_side_by_side_and_nothing_of_one_reaches_the_other(
    instances, tmp_path
):
    staging, prod = instances["staging"], instances["prod"]
    repo = make_repo(tmp_path / "repo")

    async with staging.mcp() as client:
        await client.call_tool("create_project", {"name": "demo", "repo": str(repo)})
        task = payload(await client.call_tool(
            "assign_task", {"project": "demo", "title": "only on staging"}
        ))  # fmt: skip
    async with prod.mcp() as client:
        prod_projects = payload(await client.call_tool("list_projects", {}))
    async with httpx.AsyncClient() as raw:
        cross = await raw.post(
            f"{prod.base}/mcp",
            headers={"Authorization": f"Bearer {staging.mcp_token}",
                     "Content-Type": "application/json",
                     "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )  # fmt: skip
    staging_metrics, prod_metrics = await staging.metrics(), await prod.metrics()
    # Both bots answer their owner, each through its own Bot API and token.
    staging.telegram.push_message(OWNER, "/tasks")
    staging_answer = await staging.telegram.wait_sent(OWNER, 1, timeout=START_TIMEOUT_S)
    prod_sent_meanwhile = prod.telegram.texts(OWNER)
    prod.telegram.push_message(OWNER, "/tasks")
    prod_answer = await prod.telegram.wait_sent(OWNER, 1, timeout=START_TIMEOUT_S)

    # Separate databases: the task and its project exist in staging only.
    assert task["status"] == "queued"
    assert prod_projects == {"projects": []}
    assert 'lugh_tasks{status="queued"} 1' in staging_metrics
    assert 'lugh_tasks{status="queued"} 0' in prod_metrics
    # Separate MCP ports and tokens: each port is its own instance; one's token opens not the other.
    assert 'lugh_info{instance="staging"} 1' in staging_metrics
    assert 'lugh_info{instance="prod"} 1' in prod_metrics
    assert staging.port != prod.port
    assert cross.status_code == 401
    # Separate bots: each answered through its own API with its own token, and only there.
    assert "only on staging" in staging_answer[0].text
    assert prod_sent_meanwhile == []
    assert "only on staging" not in prod_answer[0].text
    for instance in (staging, prod):
        other = BOT_TOKENS["prod" if instance.name == "staging" else "staging"]
        paths = [r.path for r in instance.telegram.requests]
        assert any(BOT_TOKENS[instance.name] in path for path in paths)
        assert not any(other in path for path in paths), paths

    codes = await asyncio.gather(staging.stop(), prod.stop())

    assert codes == [0, 0]
    # Separate databases on the one server, read directly.
    assert await task_titles(staging.dsn) == ["only on staging"]
    assert await task_titles(prod.dsn) == []
    # Separate data dirs: both made, and nothing in one names the other.
    assert staging.data_dir.is_dir() and prod.data_dir.is_dir()
    staging_files = {p.relative_to(staging.data_dir) for p in staging.data_dir.rglob("*")}
    prod_files = {p.relative_to(prod.data_dir) for p in prod.data_dir.rglob("*")}
    for files, other in ((staging_files, prod), (prod_files, staging)):
        assert not any(str(other.data_dir) in str(f) for f in files)
    assert not (tmp_path / "staging" / "data" / "worktrees" / "prod").exists()
    for instance in (staging, prod):
        logged = json.dumps(instance.events)
        other = prod if instance is staging else staging
        assert str(other.data_dir) not in logged
        assert BOT_TOKENS[instance.name] not in logged
