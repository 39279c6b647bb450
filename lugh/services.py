"""The services every front door uses, built once by the composition root (lugh.app)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import asyncpg

from lugh.agents.plan import Approvals
from lugh.agents.review import ReviewService
from lugh.agents.sandbox import Sandbox, make_sandbox
from lugh.agents.worktrees import WorktreeManager
from lugh.checkpoints import CheckpointService, Retention
from lugh.commands.session import SessionStore
from lugh.config import Settings
from lugh.knowledge.ask import model_completion
from lugh.knowledge.embedders import make_embedder
from lugh.knowledge.service import KnowledgeService
from lugh.llm import AnthropicChat, ChatModel
from lugh.projects import AgentService, ProjectService
from lugh.replay import ReplayService
from lugh.tasks import Events, Listener, TaskQueue


@dataclass
class Services:
    """What components and commands are built from; each capability adds its service here."""

    settings: Settings
    pool: asyncpg.Pool
    dsn: str
    data_dir: Path
    listener: Listener
    projects: ProjectService
    agents: AgentService
    tasks: TaskQueue
    events: Events
    sessions: SessionStore
    worktrees: WorktreeManager
    review: ReviewService
    approvals: Approvals  # the owner's answers to plans and high-risk steps
    checkpoints: CheckpointService
    replay: ReplayService
    knowledge: KnowledgeService
    sandbox: Sandbox
    model: ChatModel | None  # None without ANTHROPIC_API_KEY: agents cannot run

    async def aclose(self) -> None:
        """Close the HTTP clients the services hold."""
        for client in (self.model, self.knowledge.embedder):
            close = getattr(client, "aclose", None)
            if close is not None:
                await close()


def build_services(
    settings: Settings, pool: asyncpg.Pool, dsn: str, *, hidden: list[Path] | None = None
) -> Services:
    """Every service over one pool; nothing here starts work (components do)."""
    data_dir = settings.resolved_data_dir
    listener = Listener(dsn)
    projects = ProjectService(pool, data_dir)
    tasks = TaskQueue(pool)
    worktrees = WorktreeManager(data_dir, pool)
    embedder = make_embedder(
        settings.embedder,
        openai_api_key=_secret(settings.openai_api_key),
        openai_base_url=settings.openai_base_url,
    )
    # The agents' commands must not see Lugh's own state: the data dir holds the embedded
    # database's socket, the clones' credentials and the MCP token.
    sandbox = make_sandbox(
        settings.sandbox, hidden=[data_dir, *_socket_dirs(dsn), *(hidden or [])],
        allow_uncapped_root=settings.sandbox_allow_uncapped_root,
    )
    model = _model(settings)
    # /ask answers through the model when there is one, else with the best passages.
    complete = model_completion(model, settings.model) if model is not None else None
    services = Services(
        settings=settings,
        pool=pool,
        dsn=dsn,
        data_dir=data_dir,
        listener=listener,
        projects=projects,
        agents=AgentService(pool),
        tasks=tasks,
        events=Events(pool, listener),
        sessions=SessionStore(pool),
        worktrees=worktrees,
        review=ReviewService(pool, projects, worktrees, tasks),
        approvals=Approvals(pool, projects, worktrees),
        checkpoints=CheckpointService(
            pool, projects, worktrees, tasks, data_dir,
            retention=Retention.from_settings(settings),
        ),
        replay=ReplayService(pool, projects, tasks, worktrees),
        knowledge=KnowledgeService(pool, embedder, complete=complete),
        sandbox=sandbox,
        model=model,
    )
    # The automatic checkpoints: after a merge, and before a project is removed.
    services.review.after_merge = services.checkpoints.after_merge
    services.projects.before_remove = services.checkpoints.before_remove
    services.projects.after_remove = services.worktrees.forget_project
    return services


def _model(settings: Settings) -> ChatModel | None:
    if settings.anthropic_api_key is None:
        return None
    return AnthropicChat(
        api_key=settings.anthropic_api_key.get_secret_value(),
        base_url=settings.anthropic_base_url,
    )


def _socket_dirs(dsn: str) -> list[Path]:
    """The Unix-socket directory of a `?host=/path` DSN (the embedded server's may lie outside
    the data dir when that path is too long for a socket)."""
    query = urlsplit(dsn).query
    return [Path(v) for k, v in parse_qsl(query) if k == "host" and v.startswith("/")]


def _secret(value: object) -> str | None:
    return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]
