"""`lugh replay`: an agent run as it was at a step, and forks from there, from the terminal.

A plain typer command function; `lugh/cli.py` registers it with `app.command()(replay)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from lugh.errors import UserError

if TYPE_CHECKING:
    from lugh.services import Services

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def replay(
    task: Annotated[int, typer.Argument(help="The task's number.", min=1)],
    step: Annotated[
        int | None, typer.Option("--step", "-s", min=1, help="Which step (default: the last).")
    ] = None,
    fork: Annotated[
        bool, typer.Option("--fork", help="Queue a new task that starts from this step.")
    ] = False,
    instruction: Annotated[
        str, typer.Option("--instruction", "-i", help="With --fork: what to do instead.")
    ] = "",
    full: Annotated[
        bool, typer.Option("--full", help="Every message and the whole diff, nothing cut.")
    ] = False,
) -> None:
    """Show a task's agent run as it was at a step: what was sent to the model, its tool calls
    and their results, and the files changed so far; or fork a new task from that step."""
    from lugh.replay.render import files_diff, step_text

    if instruction and not fork:
        err.print("[red]✗[/red] --instruction goes with --fork.", highlight=False)
        raise typer.Exit(2)

    async def work(services: Services) -> None:
        if fork:
            if step is None:
                raise UserError("Say which step to fork from with --step.")
            made = await services.replay.fork(task, step, instruction, source="cli")
            files = ", ".join(made.files) or "none yet"
            out.print(
                f"[green]✓[/green] Queued #{made.task.id} {escape(made.task.title)}, forked from "
                f"step {made.step} of #{made.forked}. Files it starts with: {escape(files)}.",
                highlight=False,
            )
            return
        shown = await services.replay.show(task, step)
        limit, recent = (None, None) if full else (300, 3)
        out.print(step_text(shown, limit=limit, recent=recent), markup=False, highlight=False)
        if shown.files.changes:
            out.print("")
            out.print(files_diff(shown, max_lines=None if full else 60), markup=False,
                      highlight=False)  # fmt: skip

    _with_services(work)


def _with_services(work: Callable[[Services], Awaitable[None]]) -> None:
    from lugh import cli as lugh_cli
    from lugh.app import StartupError, open_services
    from lugh.db.database import DatabaseError
    from lugh.db.migrations import MigrationError

    settings = lugh_cli._settings()

    async def run() -> None:
        async with open_services(settings) as services:
            await work(services)

    try:
        asyncio.run(run())
    except (UserError, StartupError, DatabaseError, MigrationError) as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
