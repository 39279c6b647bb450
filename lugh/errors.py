"""Errors meant for the owner: `str(error)` is one sentence saying what happened and what to do."""

from __future__ import annotations


class UserError(Exception):
    """Something the owner asked for cannot be done; every front door shows `str()` as is."""


class NotFound(UserError):
    """The named thing (project, agent, task …) does not exist."""


class AlreadyExists(UserError):
    """A thing with that name already exists."""
