"""Projects (a git repository each) and their agents: the services every front door calls."""

from lugh.projects.agents import DEFAULT_AGENT_NAME, Agent, AgentService
from lugh.projects.names import InvalidName, validate_agent_name, validate_project_name
from lugh.projects.registry import Project, ProjectService
from lugh.projects.roles import KNOWN_ROLES, InvalidRole, default_system_prompt, normalize_role

__all__ = [
    "DEFAULT_AGENT_NAME",
    "KNOWN_ROLES",
    "Agent",
    "AgentService",
    "InvalidName",
    "InvalidRole",
    "Project",
    "ProjectService",
    "default_system_prompt",
    "normalize_role",
    "validate_agent_name",
    "validate_project_name",
]
