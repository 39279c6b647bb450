"""The command surface every front door shares: `/name argument` in, a Reply out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lugh.commands.reply import Reply
from lugh.commands.session import Session
from lugh.errors import UserError
from lugh.logs import get_logger
from lugh.services import Services
from lugh.tasks import TaskError

log = get_logger("lugh.commands")


@dataclass
class Context:
    """Who is asking, through which door, in which session."""

    services: Services
    session: Session
    source: str  # the task source this door records: telegram | voice | photo | mcp | cli | console
    method: str | None = None  # how an answer was given (button | reaction), recorded on approvals


Handler = Callable[[Context, str], Awaitable[Reply]]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    changes_state: bool
    handler: Handler
    listed: bool = True  # shown by /help (buttons' own actions are not)


COMMANDS: dict[str, Command] = {}


def command(
    name: str, usage: str, summary: str, *, changes_state: bool = False, listed: bool = True
) -> Callable[[Handler], Handler]:
    """Register a handler under `name` (the command without its slash)."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, usage, summary, changes_state, handler, listed)
        return handler

    return register


async def execute(ctx: Context, action: str, argument: str = "") -> Reply:
    """Run one command; a refusal is a Reply with one sentence, never an exception."""
    name = action.strip().lstrip("/").lower()
    spec = COMMANDS.get(name)
    if spec is None:
        return Reply.refused(f"There is no command /{name}; /help lists them.")
    await ctx.services.sessions.record_asked(ctx.session.id, name, argument)
    try:
        return await spec.handler(ctx, argument.strip())
    except (UserError, TaskError) as exc:
        return Reply.refused(str(exc))


def parse(text: str) -> tuple[str, str] | None:
    """`/task fix the tests` → ("task", "fix the tests"); None when `text` is not a command.

    Telegram appends the bot's name in groups (`/status@LughBot 12`); it is dropped.
    """
    text = text.strip()
    if not text.startswith("/") or len(text) < 2:
        return None
    head, _, rest = text[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    if not name.replace("_", "").isalnum():
        return None
    return name, rest.strip()
