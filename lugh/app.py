"""The composition root: reads Settings, builds every service, runs the components, shuts down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from lugh.config import Settings
from lugh.db.database import connect, create_pool, database
from lugh.db.migrations import migrate
from lugh.logs import get_logger
from lugh.metrics import RESTARTS
from lugh.services import Services, build_services

log = get_logger("lugh.app")

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


class Component(Protocol):
    """A long-running part of Lugh (a transport, a worker pool, the MCP server).

    `run` works until cancelled. `stop`, when a component has one, asks it to finish its
    in-flight work; the root waits up to `grace_s` before cancelling `run`.
    """

    name: str

    async def run(self) -> None: ...


class StartupError(Exception):
    """Lugh cannot start; the message says why in one sentence."""


@dataclass
class Supervised:
    component: Component
    restarts: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def ensure_data_dir(path: Path) -> Path:
    """Create the data dir (and check it is writable) or raise one clear sentence."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StartupError(
            f"LUGH_DATA_DIR {path} is not a writable directory ({reason}); "
            "choose another directory or fix its permissions."
        ) from None
    return path


def unconfigured(settings: Settings) -> list[str]:
    """What is not configured, and what each missing part disables (for the start log and doctor)."""
    missing = []
    if settings.telegram_bot_token is None:
        missing.append("TELEGRAM_BOT_TOKEN is empty: no Telegram bot, console chat only")
    if settings.anthropic_api_key is None:
        missing.append("ANTHROPIC_API_KEY is empty: agents cannot run, photos cannot be read, "
                       "and plain language is understood by simple rules only")
    if settings.openai_api_key is None:
        missing.append("OPENAI_API_KEY is empty: voice notes cannot be transcribed")
    return missing


async def supervise(
    component: Component,
    *,
    backoff: tuple[float, ...] = RESTART_BACKOFF_S,
    on_restart: Callable[[int], None] | None = None,
) -> None:
    """Run a component; when it fails, log the failure and start it again after a backoff."""
    failures = 0
    while True:
        try:
            await component.run()
            log.info("component finished", component=component.name)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            delay = backoff[min(failures, len(backoff) - 1)]
            failures += 1
            log.exception(
                "component failed; restarting", component=component.name, in_s=delay, failures=failures
            )
            RESTARTS[component.name] += 1
            if on_restart is not None:
                on_restart(failures)
            await asyncio.sleep(delay)


async def run_components(
    components: list[Component], stop: asyncio.Event, *, grace_s: float = 30.0
) -> None:
    """Run components until `stop` is set, then stop them in reverse order of start."""
    async with asyncio.TaskGroup() as group:
        running = [
            group.create_task(supervise(c), name=f"component:{c.name}") for c in components
        ]
        await stop.wait()
        log.info("stopping", components=[c.name for c in components])
        for component, task in reversed(list(zip(components, running))):
            graceful = getattr(component, "stop", None)
            if graceful is not None and not task.done():
                try:
                    await asyncio.wait_for(graceful(), timeout=grace_s)
                except TimeoutError:
                    log.warning("component did not stop in time", component=component.name)
                except Exception:
                    log.exception("component failed while stopping", component=component.name)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def open_services(settings: Settings, *, apply_migrations: bool = True) -> AsyncIterator[Services]:
    """Database up, migrations applied, pool open; everything released in reverse on exit."""
    data_dir = settings.resolved_data_dir
    url = settings.database_url.get_secret_value() if settings.database_url else None
    if url is None:
        ensure_data_dir(data_dir)
    async with database(url, data_dir / "pg", settings.database_name) as dsn:
        if url is not None:
            ensure_data_dir(data_dir)
        if apply_migrations:
            conn = await connect(dsn)
            try:
                applied = await migrate(conn)
            finally:
                await conn.close()
            if applied:
                log.info("migrations applied", migrations=[m.filename for m in applied])
        # Each agent may use one; the worker pool keeps four (claims, two recorders, hand-offs).
        pool = await create_pool(dsn, max_size=max(10, settings.max_agents + 7))
        try:
            # The settings files may hold every secret: agents' commands never see them.
            files = {Path(".env").absolute(), *([settings.env_file] if settings.env_file else [])}
            hidden = sorted(p for p in files if p.is_file())
            services = build_services(settings, pool, dsn, hidden=hidden)
            try:
                yield services
            finally:
                await services.aclose()
        finally:
            await pool.close()


def build_components(
    services: Services, *, console: bool = False, stop: asyncio.Event | None = None
) -> list[Component]:
    """The components `lugh run` hosts, in start order (transports last, so work is ready)."""
    components: list[Component] = [services.listener]
    workers = build_workers(services)
    if workers is not None:
        components.append(workers)
    from lugh.mcp.http import McpHttp

    components.append(McpHttp(services, allowed_hosts=services.settings.mcp_allowed_hosts))
    from lugh.checkpoints.schedule import DailyCheckpoints

    components.append(
        DailyCheckpoints(services.checkpoints, daily=services.settings.checkpoint_daily)
    )
    from lugh.agents.pruning import WorktreePruning

    keep = failed_keep(services)
    components.append(WorktreePruning(services.worktrees, services.projects, keep_failed_for=keep))
    if services.settings.telegram_bot_token is not None:
        from lugh.transport.telegram.bot import TelegramBot

        components.append(TelegramBot(services))
    if console:
        from lugh.transport.console.chat import ConsoleChat

        components.append(ConsoleChat(services, on_exit=stop.set if stop else None))
    return components


def build_workers(services: Services) -> Component | None:
    """The agent pool (LUGH_MAX_AGENTS slots); None without a model to run agents with."""
    settings = services.settings
    if services.model is None:
        return None
    from lugh.agents.budget import Budget
    from lugh.agents.executor import AgentExecutor
    from lugh.tasks import WorkerPool

    budget = Budget(
        max_steps=settings.agent_max_steps,
        max_tokens=settings.agent_max_tokens,
        max_wall_s=settings.agent_max_seconds,
        max_cost_usd=settings.agent_max_cost_usd,
    )
    executor = AgentExecutor(
        services.pool,
        projects=services.projects,
        agents=services.agents,
        worktrees=services.worktrees,
        review=services.review,
        model=services.model,
        sandbox=services.sandbox,
        default_model=settings.model,
        knowledge=services.knowledge,
        budget=budget,
    )
    workers = WorkerPool(
        services.tasks,
        executor,
        listener=services.listener,
        events=services.events,
        slots=settings.max_agents,
    )
    # Tasks the front doors of this process create start in a free slot of this pool straight
    # from their enqueue; the pool offers none until it runs (not under `lugh chat`).
    services.tasks.hand_to(workers)
    return workers


def failed_keep(services: Services) -> timedelta:
    return timedelta(hours=services.settings.failed_worktree_keep_hours)


async def prune_worktrees(services: Services) -> None:
    """Reconcile task worktrees with the database after a crash (orphans removed, failed kept
    a while)."""
    report = await services.worktrees.prune(
        await services.projects.list(), keep_failed_for=failed_keep(services)
    )
    log.info("worktrees reconciled", report=str(report))


async def reconcile_agents(services: Services) -> None:
    """Agents busy or idle by their running tasks, whatever went around the triggers."""
    from lugh.agents.executor import reconcile_agents as set_right

    if changed := await set_right(services.pool):
        log.info("agents set busy or idle", agents=changed)


async def run(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    console: bool = False,
    chat_only: bool = False,
    workers_only: bool = False,
) -> None:
    """`lugh run`: bring everything up, serve until SIGINT/SIGTERM, shut down cleanly.

    `console` attaches the terminal chat; `chat_only` (`lugh chat`) runs the chat and what it
    needs, leaving the work to a `lugh run` elsewhere; `workers_only` (`lugh worker`) runs
    the agent pool and what it needs, for more capacity against the same database.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with open_services(settings) as services:
            components = build_components(services, console=console, stop=stop)
            if chat_only:
                components = [c for c in components if c.name in ("listener", "console")]
            if workers_only:
                components = [c for c in components if c.name in ("listener", "workers")]
            if not chat_only:
                await prune_worktrees(services)
                await reconcile_agents(services)
            for line in unconfigured(settings):
                log.warning("not configured", detail=line)
            log.info(
                "lugh is running",
                instance=settings.instance,
                data_dir=str(services.data_dir),
                components=[c.name for c in components],
                pid=os.getpid(),
            )
            await run_components(components, stop)
        log.info("lugh stopped", instance=settings.instance)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
