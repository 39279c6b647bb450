"""The MCP resources: Lugh's state as JSON documents under `lugh://` (DESIGN §8)."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError

from lugh.errors import NotFound
from lugh.mcp.render import (
    agent_json, event_json, files_json, project_json, session_json, step_json, task_json,
)
from lugh.services import Services

JSON = "application/json"
TASK_EVENTS = 20
TASK_STEPS = 30  # the last ones; `lugh replay` shows any


def register_resources(server: MCPServer[Any], services: Services) -> None:
    """Add Lugh's resources to `server`."""

    @server.resource("lugh://projects", mime_type=JSON)
    async def projects() -> str:
        """Every project: name, repository and default branch."""
        return _json([project_json(p) for p in await services.projects.list()])

    @server.resource("lugh://projects/{name}", mime_type=JSON)
    async def project(name: str) -> str:
        """One project."""
        return _json(project_json(await _found(services.projects.get(name))))

    @server.resource("lugh://projects/{name}/agents", mime_type=JSON)
    async def project_agents(name: str) -> str:
        """The agents of a project."""
        return _json([agent_json(a) for a in await _found(services.agents.list(name))])

    @server.resource("lugh://agents/{id}", mime_type=JSON)
    async def agent(id: str) -> str:
        """One agent."""
        return _json(agent_json(await _found(services.agents.get(_number(id, "agent")))))

    @server.resource("lugh://tasks/{id}", mime_type=JSON)
    async def task(id: str) -> str:
        """One task with its latest events, the last steps of its agent runs (what the model
        said, its tool calls and their results), and the files changed so far."""
        found = await services.tasks.get(_number(id, "task"))
        if found is None:
            raise ResourceNotFoundError(f"There is no task #{id}.")
        events = await services.events.latest(found.id, limit=TASK_EVENTS)
        replay = await services.replay.show(found.id)
        return _json(task_json(found) | {
            "events": [event_json(e) for e in events],
            "step_count": replay.total,
            "steps": [step_json(s) for s in replay.steps[-TASK_STEPS:]],
            "files": files_json(replay.files),
        })  # fmt: skip

    @server.resource("lugh://sessions/{id}", mime_type=JSON)
    async def session(id: str) -> str:
        """A chat or MCP session: who, what it asked, what it created."""
        found = await services.sessions.get(_number(id, "session"))
        if found is None:
            raise ResourceNotFoundError(f"There is no session {id}.")
        return _json(session_json(found))


async def _found(awaitable: Any) -> Any:
    try:
        return await awaitable
    except NotFound as exc:
        raise ResourceNotFoundError(str(exc)) from None


def _number(text: str, kind: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**31:
        raise ResourceNotFoundError(f"There is no {kind} {text!r}; {kind}s are numbered.")
    return int(text)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
