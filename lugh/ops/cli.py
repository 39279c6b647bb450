"""`lugh backup` and `lugh restore-backup`: the instance's database to a file and back.

Plain typer command functions; `lugh/cli.py` registers them.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lugh.ops.backup import KEEP, BackupError

out = Console(soft_wrap=True)


def backup(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where backups go (default: <data dir>/backups)."),
    ] = None,
    keep: Annotated[
        int, typer.Option("--keep", help="How many of this instance's backups to keep there.")
    ] = KEEP,
) -> None:
    """Back up this instance's database (pg_dump) and keep only the newest --keep backups.

    Run it from a timer (deploy/systemd/lugh-backup@.timer) or the Compose backup service.
    """
    from lugh import cli as lugh_cli
    from lugh.db.database import DatabaseError
    from lugh.ops.backup import backup as make_backup

    settings = lugh_cli._settings()
    try:
        made = asyncio.run(make_backup(settings, directory, keep))
    except (BackupError, DatabaseError) as exc:
        raise lugh_cli._fail(str(exc)) from None
    out.print(f"[green]✓[/green] Backed up to {made}", highlight=False)


def restore_backup(
    file: Annotated[Path, typer.Argument(help="A file made by `lugh backup`.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Replace the database without asking.")
    ] = False,
) -> None:
    """Replace this instance's database with a backup, all or nothing.

    Stop the instance first (its processes would keep working on the old data); start it
    again afterwards and it applies any migrations newer than the backup.
    """
    from lugh import cli as lugh_cli
    from lugh.db.database import DatabaseError
    from lugh.ops.backup import restore

    settings = lugh_cli._settings()
    if not file.is_file():
        raise lugh_cli._fail(f"{file} is not a file; name a backup made by `lugh backup`.")
    if not yes:
        if not sys.stdin.isatty():
            raise lugh_cli._fail(
                f"Restoring replaces everything in the {settings.instance} database; "
                "add --yes to confirm."
            )
        typer.confirm(
            f"Replace everything in the {settings.instance} database with {file}?", abort=True
        )
    try:
        asyncio.run(restore(settings, file))
    except (BackupError, DatabaseError) as exc:
        raise lugh_cli._fail(str(exc)) from None
    out.print(
        f"[green]✓[/green] The {settings.instance} database now holds {file}.", highlight=False
    )
