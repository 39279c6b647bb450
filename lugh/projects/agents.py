"""The agents of a project: who works on its tasks, in which role, with which model and prompt."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from lugh.db import queries
from lugh.errors import AlreadyExists, NotFound, UserError
from lugh.projects.names import validate_agent_name
from lugh.projects.roles import DEFAULT_ROLE, default_system_prompt, normalize_role

Q = queries.load(__file__, "agents")

DEFAULT_AGENT_NAME = "default"
MAX_PROMPT_CHARS = 20_000
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,99}")


@dataclass(frozen=True)
class Agent:
    id: int
    project_id: int
    project: str
    name: str
    role: str
    model: str | None  # None: the configured LUGH_MODEL at run time
    system_prompt: str
    status: str  # idle | busy | stopped
    created_at: datetime | None = None

    @property
    def accepts_tasks(self) -> bool:
        return self.status != "stopped"


def _agent(row: asyncpg.Record) -> Agent:
    return Agent(**dict(row))


class AgentService:
    """Spawn, list, stop, resume and remove the agents of a project.

    Roles: engineer (the default), reviewer, researcher and tester have prompts written for
    them; any other short phrase is accepted as a free-text role with a general prompt (see
    `lugh.projects.roles`). A stopped agent keeps its history but is given no new tasks:
    `assignee` refuses it, and the dispatcher must not start queued work for it; stopping does
    not interrupt a run already under way (cancel the task for that).
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def spawn(
        self,
        project: str,
        name: str,
        role: str | None = DEFAULT_ROLE,
        model: str | None = None,
        system_prompt: str | None = None,
    ) -> Agent:
        """Create agent `name` in `project`; without a system prompt it gets its role's default,
        without a model it uses the configured one."""
        validate_agent_name(name)
        role = normalize_role(role)
        model = _checked_model(model)
        prompt = _checked_prompt(system_prompt) or default_system_prompt(role, name, project)
        try:
            row = await self.pool.fetchrow(Q.insert_agent, project, name, role, model, prompt)
        except asyncpg.UniqueViolationError:
            raise AlreadyExists(
                f"Project {project!r} already has an agent named {name!r}."
            ) from None
        if row is None:
            raise _no_project(project)
        return _agent(row)

    async def default_agent(self, project: str) -> Agent:
        """The project's default engineer, created the first time it is asked for (once, however
        many callers ask at the same moment)."""
        prompt = default_system_prompt(DEFAULT_ROLE, DEFAULT_AGENT_NAME, project)
        row = await self.pool.fetchrow(
            Q.insert_agent_unless_exists, project, DEFAULT_AGENT_NAME, DEFAULT_ROLE, None, prompt
        )
        if row is None:
            row = await self.pool.fetchrow(Q.agent_by_name, project, DEFAULT_AGENT_NAME)
        if row is None:
            raise _no_project(project)
        return _agent(row)

    async def assignee(self, project: str, name: str | None = None) -> Agent:
        """The agent a new task in `project` goes to: `name`, or the default agent; refused with
        one sentence when that agent is stopped."""
        agent = await self.find(project, name) if name else await self.default_agent(project)
        if not agent.accepts_tasks:
            raise UserError(
                f"Agent {agent.name!r} of project {project!r} is stopped and takes no new tasks; "
                "resume it or choose another agent."
            )
        return agent

    async def list(self, project: str) -> list[Agent]:
        rows = await self.pool.fetch(Q.agents_of_project, project)
        if not rows and not await self.pool.fetchval(Q.project_exists, project):
            raise _no_project(project)
        return [_agent(row) for row in rows]

    async def get(self, agent_id: int) -> Agent:
        row = await self.pool.fetchrow(Q.agent_by_id, agent_id)
        if row is None:
            raise _no_agent(agent_id)
        return _agent(row)

    async def find(self, project: str, name: str) -> Agent:
        """The agent called `name` in `project`."""
        row = await self.pool.fetchrow(Q.agent_by_name, project, name)
        if row is not None:
            return _agent(row)
        if not await self.pool.fetchval(Q.project_exists, project):
            raise _no_project(project)
        raise NotFound(f"Project {project!r} has no agent named {name!r}.")

    async def stop(self, agent_id: int) -> Agent:
        """Mark the agent stopped: it gets no new tasks until resumed (a run under way goes on)."""
        row = await self.pool.fetchrow(Q.stop_agent, agent_id)
        if row is None:
            raise _no_agent(agent_id)
        return _agent(row)

    async def resume(self, agent_id: int) -> Agent:
        """Let a stopped agent take tasks again; any other agent is returned unchanged."""
        row = await self.pool.fetchrow(Q.resume_agent, agent_id)
        return _agent(row) if row is not None else await self.get(agent_id)

    async def remove(self, agent_id: int) -> Agent:
        """Delete the agent; its past tasks stay, without an agent. A busy agent is refused."""
        row = await self.pool.fetchrow(Q.delete_idle_agent, agent_id)
        if row is not None:
            return _agent(row)
        agent = await self.get(agent_id)
        raise UserError(
            f"Agent {agent.name!r} is working on a task; cancel it or wait, then remove the agent."
        )


def _no_project(project: str) -> NotFound:
    return NotFound(f"There is no project named {project!r}.")


def _no_agent(agent_id: int) -> NotFound:
    return NotFound(f"There is no agent with id {agent_id}.")


def _checked_model(model: str | None) -> str | None:
    if model is None or not model.strip():
        return None
    model = model.strip()
    if not _MODEL.fullmatch(model):
        raise UserError(f"{model[:40]!r} is not a model id; use one like 'claude-sonnet-4-5'.")
    return model


def _checked_prompt(prompt: str | None) -> str | None:
    if prompt is None or not prompt.strip():
        return None
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UserError(
            f"The system prompt has {len(prompt)} characters; keep it under {MAX_PROMPT_CHARS}."
        )
    return prompt.strip()
