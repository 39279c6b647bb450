"""`lugh` as a person runs it: a real process, real signals, the embedded database."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import free_port
from tests.fakes.telegram import FakeTelegram

START_TIMEOUT_S = 60


def lugh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "LUGH_DATA_DIR": str(tmp_path / "data"),
        "LUGH_LOG_FORMAT": "json",
        "LUGH_MCP_PORT": str(free_port()),
        **extra,
    }


def lugh(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lugh", *args],
        env=lugh_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )


class Running:
    """A `lugh run` process whose JSON log lines can be awaited."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict] = []

    async def wait_for_event(self, event: str) -> dict:
        async def read() -> dict:
            while True:
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError(f"lugh exited before logging {event!r}: {self.events}")
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                self.events.append(line)
                if line.get("event") == event:
                    return line

        return await asyncio.wait_for(read(), timeout=START_TIMEOUT_S)


@pytest.fixture
async def start_lugh(tmp_path):
    """Start `lugh run` processes; any still alive when the test ends are killed."""
    started: list[asyncio.subprocess.Process] = []

    async def start() -> Running:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lugh", "run",
            env=lugh_env(tmp_path), cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        started.append(proc)
        running = Running(proc)
        await running.wait_for_event("lugh is running")
        return running

    yield start
    for proc in started:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_lugh_run_stops_cleanly_on_a_signal_and_a_second_start_reuses_the_data(
    tmp_path, sig, start_lugh
):
    first = await start_lugh()
    first.proc.send_signal(sig)
    await first.wait_for_event("lugh stopped")
    first_code = await asyncio.wait_for(first.proc.wait(), timeout=30)
    pgdata = tmp_path / "data" / "pg"
    server_stopped = not (pgdata / "postmaster.pid").exists()

    second = await start_lugh()
    second.proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(second.proc.wait(), timeout=30)

    assert first_code == 0
    assert server_stopped
    assert any(e["event"] == "migrations applied" for e in first.events)
    assert not any(e["event"] == "migrations applied" for e in second.events)
    assert second.proc.returncode == 0
    assert not (pgdata / "postmaster.pid").exists()


async def test_lugh_run_says_what_is_not_configured(start_lugh):
    running = await start_lugh()
    running.proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(running.proc.wait(), timeout=30)

    missing = [e["detail"] for e in running.events if e["event"] == "not configured"]
    assert any(m.startswith("TELEGRAM_BOT_TOKEN is empty") for m in missing)
    assert any(m.startswith("ANTHROPIC_API_KEY is empty") for m in missing)
    assert any(m.startswith("OPENAI_API_KEY is empty") for m in missing)


def test_doctor_reports_a_migrated_installation_healthy_with_secrets_masked(tmp_path):
    token = "5555555555:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    assert lugh(tmp_path, "migrate").returncode == 0

    with FakeTelegram(token).start() as telegram:  # doctor asks the Bot API whose token it is
        result = lugh(
            tmp_path, "doctor", TELEGRAM_BOT_TOKEN=token, TELEGRAM_API_BASE_URL=telegram.url
        )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "database: PostgreSQL 18" in result.stdout
    assert "pgvector: version 0.8" in result.stdout
    assert "migrations: all" in result.stdout
    assert "sandbox: " in result.stdout
    assert "Lugh is healthy." in result.stdout
    assert token not in result.stdout + result.stderr
    assert "ANTHROPIC_API_KEY: agents cannot run" in result.stdout


def test_doctor_check_exits_non_zero_when_the_database_is_unreachable(tmp_path):
    result = lugh(tmp_path, "doctor", "--check", DATABASE_URL="postgresql://lugh@127.0.0.1:1/lugh")

    assert result.returncode == 1
    assert "database: Cannot reach the database at postgresql://lugh@127.0.0.1:1/lugh" in result.stdout


def test_a_malformed_setting_stops_lugh_with_one_sentence_and_creates_nothing(tmp_path):
    result = lugh(tmp_path, "run", LUGH_MAX_AGENTS="many")

    assert result.returncode == 2
    assert result.stderr.strip() == "✗ LUGH_MAX_AGENTS must be a whole number, got 'many'."
    assert not (tmp_path / "data").exists()


def test_an_unreachable_database_url_stops_lugh_with_one_sentence_and_creates_nothing(tmp_path):
    result = lugh(tmp_path, "run", DATABASE_URL="postgresql://lugh:pw@127.0.0.1:1/lugh")

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("✗ Cannot reach the database at postgresql://lugh@127.0.0.1:1/lugh")
    assert not (tmp_path / "data").exists()


def test_a_data_dir_that_cannot_be_written_stops_lugh_with_one_sentence(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")

    result = lugh(tmp_path, "run", LUGH_DATA_DIR=str(tmp_path / "a-file" / "data"))

    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"✗ LUGH_DATA_DIR {tmp_path / 'a-file' / 'data'} is not a writable directory "
        "(Not a directory); choose another directory or fix its permissions."
    )


async def test_a_database_without_pgvector_stops_lugh_with_one_sentence(postgres, tmp_path):
    admin = await asyncpg.connect(postgres.admin_dsn)
    name = f"novector_cli_{os.getpid()}"
    nowhere = Path(tempfile.mkdtemp())
    (nowhere / "extension").mkdir()
    nowhere.chmod(0o755)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.execute(f"ALTER DATABASE {name} SET extension_control_path = '{nowhere}'")
    try:
        result = await asyncio.to_thread(lugh, tmp_path, "run", DATABASE_URL=postgres.dsn(name))
        tables = await admin.fetchval(
            "SELECT count(*) FROM pg_database WHERE datname = $1", name
        )
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "has no pgvector extension; install pgvector" in line
    assert tables == 1
    assert not (tmp_path / "data").exists()


def test_help_explains_each_command_to_a_newcomer(tmp_path):
    result = lugh(tmp_path, "--help")

    assert result.returncode == 0
    for command in ("run", "migrate", "doctor"):
        assert command in result.stdout


def test_the_command_line_starts_without_loading_the_model_client():
    # The health check and `lugh doctor` run it often; the Anthropic client alone took 1.3 s.
    probe = "import sys, lugh.cli; print('anthropic' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.strip() == "False"
