"""Every command, registered: import this (not the handler modules) to run commands."""

from lugh.commands import (  # noqa: F401 (they register)
    checkpoints, guide, intents, knowledge, projects, replay, review, tasks, vision, voice,
)
from lugh.commands.intents import interpret
from lugh.commands.registry import COMMANDS, Command, Context, execute, parse

__all__ = ["COMMANDS", "Command", "Context", "execute", "interpret", "parse"]
