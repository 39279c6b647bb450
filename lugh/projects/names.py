"""Project and agent names: the rules the database checks, refused earlier in one sentence."""

from __future__ import annotations

import re

from lugh.errors import UserError

# The same patterns as the CHECK constraints in migrations/0001_data_model.sql.
PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class InvalidName(UserError):
    """A project or agent name breaks the naming rules."""


def _shown(name: str) -> str:
    return repr(name if len(name) <= 40 else name[:39] + "…")


def validate_project_name(name: str) -> str:
    if not PROJECT_NAME.fullmatch(name):
        raise InvalidName(
            f"{_shown(name)} is not a valid project name: use 1 to 63 lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter or digit (for example 'my-app')."
        )
    return name


def validate_agent_name(name: str) -> str:
    if not AGENT_NAME.fullmatch(name):
        raise InvalidName(
            f"{_shown(name)} is not a valid agent name: use 1 to 63 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit (for example 'ada')."
        )
    return name
