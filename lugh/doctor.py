"""`lugh doctor`: what is configured, and one check per dependency — the data dir, the
database and what runs on it (pgvector, migrations, dispatch health), then what lies outside it
(lugh.ops.checks). `--check` is the container health check and the deploy scripts' gate."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pydantic import SecretStr

from lugh.agents.sandbox import make_sandbox
from lugh.app import StartupError, ensure_data_dir, unconfigured
from lugh.config import Settings
from lugh.db.database import (
    DatabaseError,
    connect,
    create_pool,
    database,
    describe,
    server_info,
)
from lugh.db.migrations import MigrationError, status
from lugh.ops import checks as ops_checks
from lugh.tasks.health import dispatch_checks


@dataclass(frozen=True)
class Check:
    name: str
    level: str  # ok | warn | fail
    detail: str


def mask(value: object) -> str:
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        return f"set (…{secret[-2:]})" if len(secret) >= 12 else "set"
    if value is None or value == []:
        return "(empty)"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def config_summary(settings: Settings) -> list[tuple[str, str]]:
    rows = []
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if name == "database_url" and value is not None:
            shown = describe(value.get_secret_value())
        else:
            shown = mask(value)
        rows.append((field.alias or name, shown))
    rows.append(("(data dir in use)", str(settings.resolved_data_dir)))
    rows.append(("(MCP endpoint)", f"http://{settings.mcp_host}:{settings.resolved_mcp_port}/mcp"))
    return rows


def mcp_access(settings: Settings) -> list[tuple[str, str]]:
    """The MCP bearer tokens, for the owner to give to MCP clients (generated on first use)."""
    from lugh.mcp.tokens import mcp_token, readonly_token

    try:
        return [("MCP token", mcp_token(settings)), ("MCP read-only token", readonly_token(settings))]
    except OSError as exc:
        return [("MCP token", f"cannot be stored in the data dir ({exc.strerror})")]


async def run_checks(settings: Settings) -> list[Check]:
    """Every check `lugh doctor` reports: the data dir, the database and what runs on it, then
    what lies outside it. A broken part does not hide the others."""
    checks: list[Check] = []
    url = settings.database_url.get_secret_value() if settings.database_url else None
    try:
        ensure_data_dir(settings.resolved_data_dir)
        checks.append(Check("data dir", "ok", f"{settings.resolved_data_dir} is writable"))
        checks += await _database_checks(settings, url)
    except StartupError as exc:
        checks.append(Check("data dir", "fail", str(exc)))
        if url is not None:  # the database does not live in the data dir
            checks += await _database_checks(settings, url)
    checks += await _outside_checks(settings)
    return checks


async def _database_checks(settings: Settings, url: str | None) -> list[Check]:
    checks: list[Check] = []
    try:
        if url is not None and (missing := await _pgvector_missing(url)):
            return [Check("database", "ok", f"reachable at {describe(url)}"), missing]
        async with database(url, settings.resolved_data_dir / "pg", settings.database_name) as dsn:
            where = describe(dsn) if url else f"embedded in {settings.resolved_data_dir / 'pg'}"
            conn = await connect(dsn)
            try:
                info = await server_info(conn)
                states = await status(conn)
            finally:
                await conn.close()
            checks.append(Check("database", "ok", f"PostgreSQL {info.version}, {where}"))
            if info.pgvector:
                checks.append(Check("pgvector", "ok", f"version {info.pgvector}"))
            else:
                checks.append(Check(
                    "pgvector", "warn", f"{info.pgvector_available} available, created by migrations"
                ))  # fmt: skip
            migrations = _migrations_check(states)
            checks.append(migrations)
            if migrations.level == "ok":  # the probes read the tasks table
                checks += await _dispatch_checks(dsn)
    except (DatabaseError, MigrationError) as exc:
        checks.append(Check("database", "fail", str(exc)))
    return checks


async def _pgvector_missing(url: str) -> Check | None:
    """A configured server without pgvector fails as such (the embedded one always has it)."""
    conn = await connect(url)
    try:
        info = await server_info(conn)
    finally:
        await conn.close()
    if info.pgvector is None and info.pgvector_available is None:
        return Check(
            "pgvector", "fail",
            f"The database server at {describe(url)} (PostgreSQL {info.version}) has no pgvector "
            "extension; install pgvector there (the pgvector/pgvector image has it).",
        )  # fmt: skip
    return None


async def _dispatch_checks(dsn: str) -> list[Check]:
    """lugh.tasks.health's measured signals: dispatch latency, the NOTIFY queue, connections."""
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        checks = await dispatch_checks(pool, dsn)
        if any(c.level == "fail" for c in checks):
            # Measured again before failing: one stall on a busy machine is not a fault, a claim
            # that no longer walks an index or a full NOTIFY queue stays that way.
            checks = await dispatch_checks(pool, dsn)
        return [Check(*c) for c in checks]
    finally:
        await pool.close()


async def _outside_checks(settings: Settings) -> list[Check]:
    """The sandbox, the embedding model, Telegram and Redis, probed at once (each is bounded)."""
    sandbox, embedder, telegram, redis = await asyncio.gather(
        make_sandbox(
            settings.sandbox, hidden=[settings.resolved_data_dir],
            allow_uncapped_root=settings.sandbox_allow_uncapped_root,
        ).check(),
        ops_checks.embedder(settings),
        ops_checks.telegram(settings),
        ops_checks.redis(settings),
    )
    checks = [Check("sandbox", sandbox.level, sandbox.detail), Check("embedder", *embedder)]
    name = "telegram" if settings.telegram_bot_token is not None else "TELEGRAM_BOT_TOKEN"
    checks.append(Check(name, *telegram))
    if redis is not None:
        checks.append(Check("redis", *redis))
    agents = ops_checks.agents(settings)
    if agents is not None:
        checks.append(Check("ANTHROPIC_API_KEY", *agents))
    for line in unconfigured(settings):
        name, _, effect = line.partition(": ")
        name = name.split(" ")[0]
        if name not in ("TELEGRAM_BOT_TOKEN", "ANTHROPIC_API_KEY"):
            checks.append(Check(name, "warn", effect))
    return checks


def _migrations_check(states: list) -> Check:
    by_state: dict[str, list[str]] = {}
    for s in states:
        label = s.migration.filename if s.migration else f"{s.version:04d} (not in this code)"
        by_state.setdefault(s.state, []).append(label)
    if by_state.get("changed"):
        return Check(
            "migrations", "fail", f"edited after being applied: {', '.join(by_state['changed'])}"
        )
    if by_state.get("unknown"):
        return Check(
            "migrations",
            "fail",
            f"the database is newer than this code: {', '.join(by_state['unknown'])}",
        )
    applied = len(by_state.get("applied", []))
    if by_state.get("pending"):
        # Running code expects its schema: pending migrations mean it runs against an old one.
        return Check(
            "migrations",
            "fail",
            f"{applied} applied, pending: {', '.join(by_state['pending'])} "
            "(`lugh migrate` or `lugh run` applies them)",
        )
    return Check("migrations", "ok", f"all {applied} applied")
