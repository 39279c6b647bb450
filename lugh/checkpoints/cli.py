"""`lugh checkpoint create|list|verify|restore|delete|clean`: checkpoints from the terminal.

A typer sub-app; `lugh/cli.py` adds it with `app.add_typer(checkpoint_app)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lugh.checkpoints.model import human_size
from lugh.errors import UserError

if TYPE_CHECKING:
    from lugh.checkpoints.service import CheckpointService

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

checkpoint_app = typer.Typer(
    name="checkpoint",
    help="Save a project's whole state (git, tasks, knowledge, memories) and go back to it.",
    no_args_is_help=True,
)
CheckpointId = Annotated[int, typer.Argument(min=1, help="The checkpoint's number (see list).")]


@checkpoint_app.command()
def create(
    project: Annotated[str, typer.Argument(help="The project to save.")],
    label: Annotated[str | None, typer.Option("--label", "-l", help="A name for it.")] = None,
) -> None:
    """Save a checkpoint of a project now."""
    made = _with_checkpoints(lambda c: c.create(project, label=label))
    out.print(
        f"[green]✓[/green] Saved checkpoint {escape(made.shown())} of {made.project} "
        f"({human_size(made.size_bytes)}) in {made.path}.", highlight=False,
    )  # fmt: skip


@checkpoint_app.command("list")
def list_(
    project: Annotated[str | None, typer.Argument(help="Only this project's.")] = None,
) -> None:
    """List checkpoints, newest first, with size and age."""
    found = _with_checkpoints(lambda c: c.list(project))
    if not found:
        out.print("There are no checkpoints yet.")
        return
    table = Table()
    for column in ("id", "project", "kind", "label", "size", "age"):
        table.add_column(column)
    for c in found:
        size = human_size(c.size_bytes)
        table.add_row(str(c.id), c.project, c.kind, c.label or "", size, c.age())
    out.print(table)


@checkpoint_app.command()
def verify(checkpoint_id: CheckpointId) -> None:
    """Check every file of a checkpoint against its recorded sha256."""
    _with_checkpoints(lambda c: c.verify(checkpoint_id))
    out.print(f"[green]✓[/green] Checkpoint #{checkpoint_id} is intact.")


@checkpoint_app.command()
def restore(
    checkpoint_id: CheckpointId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
) -> None:
    """Show what restoring a checkpoint changes, then (once confirmed) restore it."""

    async def work(checkpoints: CheckpointService):
        await checkpoints.verify(checkpoint_id)
        plan = await checkpoints.preview_restore(checkpoint_id)
        out.print(plan.text(), markup=False, highlight=False)
        if plan.problem:
            raise UserError(plan.problem)
        if not yes and not await asyncio.to_thread(typer.confirm, "Restore it?"):
            return None
        return await checkpoints.restore(checkpoint_id)

    report = _with_checkpoints(work)
    if report is None:
        out.print("Nothing was changed.")
        return
    out.print(f"[green]✓[/green] {escape(report.text())}", highlight=False)


@checkpoint_app.command()
def delete(checkpoint_id: CheckpointId) -> None:
    """Delete a checkpoint and its files."""
    deleted = _with_checkpoints(lambda c: c.delete(checkpoint_id))
    shown = escape(deleted.shown())
    out.print(f"[green]✓[/green] Deleted checkpoint {shown} of {deleted.project}.")


@checkpoint_app.command()
def clean() -> None:
    """Delete checkpoints past their retention (LUGH_CHECKPOINT_KEEP_*) and leftovers of crashes."""
    report = _with_checkpoints(lambda c: c.clean())
    out.print(
        f"[green]✓[/green] Deleted {len(report.deleted)} checkpoint(s) and "
        f"{len(report.orphans)} leftover(s)."
    )


def _with_checkpoints(work: Callable[[CheckpointService], Awaitable[T]]) -> T:
    from lugh import cli as lugh_cli
    from lugh.app import StartupError, open_services
    from lugh.db.database import DatabaseError
    from lugh.db.migrations import MigrationError

    settings = lugh_cli._settings()

    async def run() -> T:
        async with open_services(settings) as services:
            return await work(services.checkpoints)

    try:
        return asyncio.run(run())
    except (UserError, StartupError, DatabaseError, MigrationError) as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
