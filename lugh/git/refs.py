"""Branch names that are safe to hand to git and to show in a shell: validated, never quoted."""

from __future__ import annotations

import re

from lugh.errors import UserError

MAX_BRANCH_LENGTH = 200

# Stricter than git: letters, digits and `._/-` only, so no shell metacharacter, space, control
# character or anything git itself refuses (~ ^ : ? * [ \ @{) can get through.
_ALLOWED = re.compile(r"[A-Za-z0-9._/-]+")


class InvalidBranchName(UserError):
    """The branch name is refused; the message says why."""


def branch_name_problem(name: str) -> str | None:
    """Why `name` is not an acceptable branch name, or None when it is."""
    if not name:
        return "it is empty"
    if len(name) > MAX_BRANCH_LENGTH:
        return f"it is longer than {MAX_BRANCH_LENGTH} characters"
    if not _ALLOWED.fullmatch(name):
        return "it may only contain letters, digits, '.', '_', '-' and '/'"
    if name.startswith("-"):
        return "it starts with '-'"
    if name == "HEAD":
        return "HEAD is not a branch name"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "it has an empty part between slashes"
    if ".." in name:
        return "it contains '..'"
    if name.endswith("."):
        return "it ends with '.'"
    for part in name.split("/"):
        if part.startswith("."):
            return "a part of it starts with '.'"
        if part.endswith(".lock"):
            return "a part of it ends with '.lock'"
    return None


def is_valid_branch_name(name: str) -> bool:
    return branch_name_problem(name) is None


def validate_branch_name(name: str) -> str:
    """Return `name` if it is a safe branch name (git's check-ref-format rules, plain characters
    only, no leading '-'), else raise InvalidBranchName with one sentence."""
    problem = branch_name_problem(name)
    if problem is not None:
        shown = name if len(name) <= 60 else name[:59] + "…"
        raise InvalidBranchName(f"The branch name {shown!r} is refused because {problem}.")
    return name
