"""The model behind plain language: a message no rule recognises becomes one command, chosen by
LUGH_MODEL through the `choose_action` tool (DESIGN §9, a contract)."""

from __future__ import annotations

import asyncio
from typing import Any

from lugh.commands.intents import Chooser
from lugh.commands.catalog import COMMANDS
from lugh.llm import ChatModel, ChatRequest, LLMError
from lugh.logs import get_logger
from lugh.services import Services

log = get_logger("lugh.commands.choose")

TOOL = "choose_action"
NOTHING = "none"  # the model's way to say the message asks for no command
MAX_TOKENS = 512
# A chat message waits for this answer: better one sentence saying the model is slow than a
# minute of silence while the client retries.
TIMEOUT_S = 30.0
SYSTEM = """You are Lugh's dispatcher. The owner of a small AI engineering team sends short
messages from a phone (typed, or transcribed from a voice note). Pick the one command the message
asks for and call the choose_action tool once with:
- action: the command name without the slash, exactly as listed below;
- argument: what follows the command, e.g. a task number (12) or the task's text in the owner's
  own words; "" when the command takes none.
A request to build, fix, change or investigate something is action "task" with the request as
argument. If the message asks for none of these commands (a greeting, a question about
something else), use action "none" and argument "".

Commands:
{commands}"""


def model_chooser(services: Services) -> Chooser | None:
    """The chooser `interpret` asks for plain language; None without a model (no
    ANTHROPIC_API_KEY), and unrecognised text then becomes a proposed task."""
    model = services.model
    if model is None:
        return None
    name = services.settings.model

    async def choose(text: str) -> tuple[str, str] | None:
        return await choose_action(model, name, text)

    return choose


async def choose_action(model: ChatModel, model_name: str, text: str) -> tuple[str, str] | None:
    """(action, argument) for `text`, or None when the model names no listed command. Raises
    LLMError (one sentence) when the model cannot be asked."""
    listed = sorted((c for c in COMMANDS.values() if c.listed), key=lambda c: c.name)
    request = ChatRequest(
        model=model_name,
        system=SYSTEM.format(commands="\n".join(f"{c.usage} — {c.summary}" for c in listed)),
        tools=[tool_spec([c.name for c in listed])],
        messages=[{"role": "user", "content": text.strip() or "(empty message)"}],
        max_tokens=MAX_TOKENS,
        tool_choice={"type": "tool", "name": TOOL},
    )
    try:
        async with asyncio.timeout(TIMEOUT_S):
            reply = await model.complete(request)
    except TimeoutError:
        raise LLMError("The model did not answer in time.", retryable=True) from None
    for use in reply.tool_uses:
        if use.get("name") == TOOL:
            return _chosen(use.get("input"))
    log.info("the model chose no action", stop_reason=reply.stop_reason)
    return None


def tool_spec(names: list[str]) -> dict[str, Any]:
    return {
        "name": TOOL,
        "description": "Run one of Lugh's commands for the owner's message.",
        "input_schema": {
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": [*names, NOTHING],
                           "description": "a command name without the slash"},
                "argument": {"type": "string", "description": "the command's argument"},
            },
            "required": ["action", "argument"],
            "additionalProperties": False,
        },
    }  # fmt: skip


def _chosen(data: Any) -> tuple[str, str] | None:
    if not isinstance(data, dict):
        return None
    action, argument = data.get("action"), data.get("argument", "")
    if not isinstance(action, str) or not isinstance(argument, str):
        return None
    action = action.strip().lstrip("/").lower()
    spec = COMMANDS.get(action)
    if spec is None or not spec.listed:
        return None  # "none", a hidden command or an invented one: never run what was not offered
    return action, argument.strip()
