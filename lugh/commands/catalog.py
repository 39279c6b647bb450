"""Every command, registered: import this (not the handler modules) to run commands."""

from lugh.commands import guide, intents, knowledge, projects, review, tasks  # noqa: F401 (they register)
from lugh.commands.intents import interpret
from lugh.commands.registry import COMMANDS, Command, Context, execute, parse

__all__ = ["COMMANDS", "Command", "Context", "execute", "interpret", "parse"]
