"""`build_server`: the MCP server named `lugh` over the services every front door uses."""

from __future__ import annotations

from typing import Any

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from lugh.mcp.audit import Audit
from lugh.mcp.resources import register_resources
from lugh.mcp.tools import register_tools
from lugh.services import Services

INSTRUCTIONS = (
    "Lugh runs coding agents on the owner's git repositories. Register a repository with "
    "create_project, queue work with assign_task, follow it with get_task, and approve_task "
    "or reject_task once it awaits review. query_knowledge searches a project's code and "
    "documents; ingest adds to them. Task ids are numbers; errors say what to do next."
)


def build_server(
    services: Services,
    *,
    local: str = "local",
    token_verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
) -> MCPServer[Any]:
    """The `lugh` server. `local` names the caller when there is no token (stdio, in process);
    `token_verifier` and `auth` are the HTTP transport's bearer-token check."""
    server: MCPServer[Any] = MCPServer(
        "lugh", instructions=INSTRUCTIONS, token_verifier=token_verifier, auth=auth,
        log_level="WARNING",
    )  # fmt: skip
    register_tools(server, services, Audit(services, local))
    register_resources(server, services)
    return server
