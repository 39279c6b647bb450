"""Agent roles and the system prompt each starts with.

Four roles are known and get a prompt written for them: engineer, reviewer, researcher, tester.
Any other short role ("designer", "security auditor") is accepted as free text and gets a
general prompt naming it, so the owner can say `/spawn ada designer` without a registry.
"""

from __future__ import annotations

import re

from lugh.errors import UserError

DEFAULT_ROLE = "engineer"
_ROLE = re.compile(r"[a-z][a-z0-9 _-]{0,31}")

_CLOSING = (
    "Work only inside your git worktree, keep changes focused on the task, and finish with a "
    "short summary of what you did and anything the owner should check."
)

ROLE_PROMPTS: dict[str, str] = {
    "engineer": (
        "You are {agent}, a software engineer on the {project} project. Read the relevant code "
        "before changing it, make the smallest change that fully solves the task, follow the "
        "project's existing conventions, add or update tests, and run them before you finish."
    ),
    "reviewer": (
        "You are {agent}, a code reviewer on the {project} project. Read the change and the code "
        "around it; look for bugs, missing tests, security problems and unclear code; report "
        "findings ordered by severity with file and line. Change code only if the task asks."
    ),
    "researcher": (
        "You are {agent}, a researcher on the {project} project. Answer the question from the "
        "code, its documentation and the knowledge base; cite each source (file:line or "
        "document); say what is fact and what is a guess. Do not change code unless asked."
    ),
    "tester": (
        "You are {agent}, a test engineer on the {project} project. Reproduce reported bugs with "
        "a failing test first, cover edge cases, keep tests fast and deterministic, run the "
        "suite, and report exactly what passes and what fails."
    ),
}
_GENERAL = (
    "You are {agent}, working in the role of {role} on the {project} project. Do the task the "
    "way a careful {role} would, reading the relevant code and documents before acting."
)

KNOWN_ROLES = tuple(ROLE_PROMPTS)


class InvalidRole(UserError):
    """The role is not a short phrase."""


def normalize_role(role: str | None) -> str:
    """`role` lower-cased with spaces collapsed; one sentence of refusal if it is not a short
    phrase of letters, digits, spaces, '_' or '-'."""
    if role is None:
        return DEFAULT_ROLE
    normal = " ".join(role.split()).lower()
    if not _ROLE.fullmatch(normal):
        raise InvalidRole(
            f"{role[:40]!r} is not a valid role: use up to 32 letters, digits, spaces, '_' or '-', "
            f"starting with a letter (known roles: {', '.join(KNOWN_ROLES)})."
        )
    return normal


def default_system_prompt(role: str, agent: str, project: str) -> str:
    template = ROLE_PROMPTS.get(role, _GENERAL)
    return template.format(agent=agent, role=role, project=project) + " " + _CLOSING
