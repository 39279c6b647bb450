"""`lugh ingest` and `lugh ask`: a project's knowledge from the terminal.

Plain typer command functions; `lugh/cli.py` registers them with `app.command()(ingest)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lugh.errors import UserError
from lugh.knowledge.embedders import EmbedderError
from lugh.knowledge.results import IngestResult
from lugh.knowledge.results import Progress as IngestProgress
from lugh.knowledge.silos import DEFAULT_SILO

if TYPE_CHECKING:  # the service pulls in pypdf and tree-sitter: loaded when a command runs
    from lugh.knowledge.service import KnowledgeService

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

ProjectOption = Annotated[
    str, typer.Option("--project", "-p", help="The project whose knowledge this is.")
]
SiloOption = Annotated[str, typer.Option("--silo", help="Which of the project's silos.")]


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    project: ProjectOption,
    silo: SiloOption = DEFAULT_SILO,
    reembed: Annotated[
        bool,
        typer.Option(
            "--reembed",
            help="First re-embed the silo with the configured embedder (after LUGH_EMBEDDER "
            "changed).",
        ),
    ] = False,
) -> None:
    """Ingest files and folders into a project's knowledge: PDF, Markdown, text, source code.

    A folder inside a git repository is read as git sees it (ignored files left out);
    unchanged files are skipped, changed ones replaced.
    """

    async def work(knowledge: KnowledgeService) -> IngestResult:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[chunks]} chunks"), TimeElapsedColumn(),
            console=err, transient=True,
        ) as bar:
            if reembed:
                task = bar.add_task("Re-embedding", total=None, chunks=0)
                await knowledge.silos.reembed(
                    project, silo, on_progress=lambda n: bar.update(task, chunks=n)
                )
                bar.remove_task(task)
            task = bar.add_task("Reading files", total=None, chunks=0)

            def show(p: IngestProgress) -> None:
                bar.update(task, total=p.total, completed=p.done, chunks=p.chunks,
                           description=_ellipsis(p.path, 40))

            return await knowledge.ingest_paths(project, paths, silo=silo, on_progress=show)

    result = _with_knowledge(work)
    stored = f"{_count(result.documents, 'document')} ingested ({_count(result.chunks, 'chunk')})"
    extra = [f"{result.unchanged} unchanged"] if result.unchanged else []
    if result.removed:
        extra.append(f"{result.removed} removed (their files are gone)")
    out.print(f"[green]✓[/green] {', '.join([stored, *extra])}.", highlight=False)
    if result.skipped:
        out.print(f"[yellow]![/yellow] {_count(len(result.skipped), 'file')} skipped:")
        for skipped in result.skipped:
            out.print(f"  - {skipped.reason}", markup=False, highlight=False)
    if result.skipped and not (result.documents or result.unchanged):
        raise typer.Exit(1)


def ask(
    question: Annotated[str, typer.Argument(help="What to ask the project's knowledge.")],
    project: ProjectOption,
    silo: SiloOption = DEFAULT_SILO,
    k: Annotated[int, typer.Option("--passages", "-k", min=1, max=20,
                                   help="How many passages to draw on.")] = 5,
) -> None:
    """Answer a question from a project's knowledge, citing where each part comes from."""

    async def work(knowledge: KnowledgeService) -> Any:
        return await knowledge.answer(project, question, k=k, silo=silo)

    answer = _with_knowledge(work)
    out.print(answer.text, markup=False, highlight=False)
    if answer.from_model and answer.passages:
        from lugh.knowledge.ask import cite

        out.print("\nSources:", highlight=False)
        for n, hit in enumerate(answer.passages, 1):
            out.print(f"  [{n}] {cite(hit)}", markup=False, highlight=False)


def _with_knowledge(work: Callable[[KnowledgeService], Awaitable[T]]) -> T:
    # Imported here: lugh.cli imports this module to register its commands.
    from lugh import cli as lugh_cli
    from lugh.app import StartupError, open_services
    from lugh.db.database import DatabaseError
    from lugh.db.migrations import MigrationError

    settings = lugh_cli._settings()

    async def run() -> T:
        async with open_services(settings) as services:
            return await work(services.knowledge)

    try:
        return asyncio.run(run())
    except (UserError, EmbedderError, StartupError, DatabaseError, MigrationError) as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("Stopped; documents stored so far are kept, the one under way was not.")
        raise typer.Exit(130) from None


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]
