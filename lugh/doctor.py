"""`lugh doctor`: what is configured, whether the database is healthy, what is missing."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from lugh.agents.sandbox import make_sandbox
from lugh.app import StartupError, ensure_data_dir, unconfigured
from lugh.config import Settings
from lugh.db.database import DatabaseError, connect, database, describe, server_info
from lugh.db.migrations import MigrationError, status


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
    checks: list[Check] = []
    url = settings.database_url.get_secret_value() if settings.database_url else None
    try:
        if url is None:
            ensure_data_dir(settings.resolved_data_dir)
        checks.append(Check("data dir", "ok", f"{settings.resolved_data_dir} is writable"))
    except StartupError as exc:
        checks.append(Check("data dir", "fail", str(exc)))
        return checks

    try:
        async with database(url, settings.resolved_data_dir / "pg", settings.database_name) as dsn:
            where = describe(dsn) if url else f"embedded in {settings.resolved_data_dir / 'pg'}"
            conn = await connect(dsn)
            try:
                info = await server_info(conn)
                states = await status(conn)
            finally:
                await conn.close()
    except (DatabaseError, MigrationError) as exc:
        checks.append(Check("database", "fail", str(exc)))
        return checks

    checks.append(Check("database", "ok", f"PostgreSQL {info.version}, {where}"))
    if info.pgvector:
        checks.append(Check("pgvector", "ok", f"version {info.pgvector}"))
    else:
        checks.append(
            Check("pgvector", "warn", f"{info.pgvector_available} available, created by migrations")
        )
    checks.append(_migrations_check(states))
    sandbox = await make_sandbox(settings.sandbox, hidden=[settings.resolved_data_dir]).check()
    checks.append(Check("sandbox", sandbox.level, sandbox.detail))
    for line in unconfigured(settings):
        name, _, effect = line.partition(": ")
        checks.append(Check(name.split(" ")[0], "warn", effect))
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
        return Check(
            "migrations",
            "warn",
            f"{applied} applied, pending: {', '.join(by_state['pending'])} "
            "(`lugh migrate` or `lugh run` applies them)",
        )
    return Check("migrations", "ok", f"all {applied} applied")
