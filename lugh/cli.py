"""The `lugh` command: run Lugh, apply migrations, check the installation."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lugh.config import ConfigError, Settings, load_settings
from lugh.logs import configure_logging

app = typer.Typer(
    name="lugh",
    help=(
        "Lugh: a personal AI engineering team you run from your phone.\n\n"
        "Start with `lugh run`. Settings come from the environment or a .env file; "
        "`lugh doctor` shows them and what is missing."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class State:
    env_file: Path | None = Path(".env")


def _settings() -> Settings:
    try:
        settings = load_settings(State.env_file)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]✗[/red] {problem}", highlight=False)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format, settings.secret_values())
    return settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]✗[/red] {message}", highlight=False)
    return typer.Exit(code)


@app.callback()
def _options(
    env_file: Annotated[
        Path | None,
        typer.Option("--env-file", help="Read settings from this file too (default: ./.env)."),
    ] = Path(".env"),
) -> None:
    State.env_file = env_file


@app.command()
def run() -> None:
    """Run Lugh: database, migrations, the agent pool, and the console chat on a terminal.

    Serves until Ctrl-C (or SIGTERM), then stops cleanly.
    """
    from lugh.app import StartupError
    from lugh.app import run as run_app
    from lugh.db.database import DatabaseError
    from lugh.db.migrations import MigrationError

    settings = _settings()
    # Without Telegram, a person at a terminal gets the console chat; a service gets none.
    console = settings.telegram_bot_token is None and sys.stdin.isatty()
    try:
        asyncio.run(run_app(settings, console=console))
    except (StartupError, DatabaseError, MigrationError) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


@app.command()
def chat() -> None:
    """Chat with Lugh in this terminal: the same commands as the Telegram bot.

    Type /help for the commands, or just say what you want; /quit leaves.
    """
    from lugh.app import StartupError
    from lugh.app import run as run_app
    from lugh.db.database import DatabaseError
    from lugh.db.migrations import MigrationError

    settings = _settings()
    try:
        asyncio.run(run_app(settings, console=True, chat_only=True))
    except (StartupError, DatabaseError, MigrationError) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


@app.command()
def worker() -> None:
    """Run only the agent pool, e.g. on another machine against the same DATABASE_URL.

    Each process runs LUGH_MAX_AGENTS agents at once; more processes, more agents.
    """
    from lugh.app import StartupError
    from lugh.app import run as run_app
    from lugh.db.database import DatabaseError
    from lugh.db.migrations import MigrationError

    settings = _settings()
    if settings.anthropic_api_key is None:
        raise _fail("ANTHROPIC_API_KEY is empty, so agents cannot run; set it and start again.")
    try:
        asyncio.run(run_app(settings, workers_only=True))
    except (StartupError, DatabaseError, MigrationError) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


@app.command()
def mcp() -> None:
    """Serve MCP over stdin/stdout, for desktop clients (Claude Desktop, Claude Code, Cursor).

    The client launches `lugh mcp`; logs go to standard error. See docs/mcp.md.
    """
    from lugh.app import StartupError
    from lugh.db.database import DatabaseError
    from lugh.db.migrations import MigrationError
    from lugh.mcp.stdio import serve_stdio

    settings = _settings()
    try:
        asyncio.run(serve_stdio(settings))
    except (StartupError, DatabaseError, MigrationError) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


@app.command()
def migrate() -> None:
    """Apply pending database migrations (`lugh run` does this at start too)."""
    from lugh.app import StartupError, open_services
    from lugh.db.database import DatabaseError
    from lugh.db.migrations import MigrationError

    settings = _settings()

    async def go() -> None:
        async with open_services(settings):
            pass

    try:
        asyncio.run(go())
    except (StartupError, DatabaseError, MigrationError) as exc:
        raise _fail(str(exc)) from None
    out.print("[green]✓[/green] The database is up to date.")


@app.command()
def doctor(
    check: Annotated[
        bool, typer.Option("--check", help="Print only problems; exit non-zero when unhealthy.")
    ] = False,
) -> None:
    """Show the configuration (secrets masked), database health and what is not configured."""
    from lugh.doctor import config_summary, mcp_access, run_checks

    settings = _settings()
    checks = asyncio.run(run_checks(settings))
    if not check:
        table = Table(title=f"Lugh settings ({settings.instance})", show_lines=False)
        table.add_column("setting")
        table.add_column("value")
        for name, value in config_summary(settings):
            table.add_row(name, value)
        out.print(table)
        for name, value in mcp_access(settings):
            out.print(f"{name}: {value}", highlight=False, markup=False)
    marks = {"ok": "[green]✓[/green]", "warn": "[yellow]![/yellow]", "fail": "[red]✗[/red]"}
    for c in checks:
        if check and c.level == "ok":
            continue
        out.print(f"{marks[c.level]} {c.name}: {c.detail}", highlight=False)
    failed = [c for c in checks if c.level == "fail"]
    if failed:
        raise typer.Exit(1)
    if not check:
        out.print("[green]Lugh is healthy.[/green]")


def _register_knowledge_commands() -> None:
    from lugh.knowledge.cli import ask, ingest
    from lugh.replay.cli import replay

    app.command()(ingest)
    app.command()(ask)
    app.command()(replay)


_register_knowledge_commands()


def _register_checkpoint_commands() -> None:
    from lugh.checkpoints.cli import checkpoint_app

    app.add_typer(checkpoint_app)


_register_checkpoint_commands()


def _register_ops_commands() -> None:
    from lugh.ops.cli import backup, restore_backup

    app.command()(backup)
    app.command("restore-backup")(restore_backup)


_register_ops_commands()


def main() -> None:
    app()
