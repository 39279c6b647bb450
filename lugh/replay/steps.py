"""A task's runs cut into steps. A step is one model turn: what was sent to the model for it
(the system prompt and the conversation so far), what the model answered, and the tool calls
it made with their results. Steps are numbered from 1 across the task's runs in order (a plan
run, the work, a retry), because later runs go on in the same worktree.

Everything comes from `agent_messages`, which holds every turn and every tool result in full
(the `task_events` of the audit trail only keep bounded excerpts).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lugh.llm import Message


@dataclass(frozen=True)
class Call:
    """One tool call of a step and its result (None: it had not finished when the run ended)."""

    id: str
    name: str
    input: Any
    result: str | None
    ok: bool | None


@dataclass(frozen=True)
class Step:
    number: int  # across the task's runs, from 1
    run_id: int
    run_step: int  # within its run, from 1
    mode: str  # the run's: work or plan
    system: str
    sent: list[Message]  # the conversation sent to the model for this turn
    reply: list[dict[str, Any]]  # the model's turn: text and tool_use blocks
    calls: list[Call]

    @property
    def text(self) -> str:
        return "\n".join(b.get("text", "") for b in self.reply if b.get("type") == "text").strip()


def run_steps(run: Mapping[str, Any], messages: Sequence[Message], first: int) -> list[Step]:
    """The steps of one run (an `agent_runs` row and its messages), numbered from `first`."""
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    steps = []
    for k, at in enumerate(turns):
        reply = blocks(messages[at]["content"])
        after = messages[at + 1] if at + 1 < len(messages) else None
        results = {} if after is None or after["role"] != "user" else _results(after["content"])
        uses = [b for b in reply if b.get("type") == "tool_use"]
        calls = [_call(b, results.get(str(b.get("id")))) for b in uses]
        steps.append(Step(
            first + k, run["id"], k + 1, run["mode"], run["system"], list(messages[:at]), reply,
            calls,
        ))  # fmt: skip
    return steps


def task_steps(runs: Iterable[tuple[Mapping[str, Any], Sequence[Message]]]) -> list[Step]:
    steps: list[Step] = []
    for run, messages in runs:
        steps.extend(run_steps(run, messages, len(steps) + 1))
    return steps


def blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)]


def result_text(block: Mapping[str, Any]) -> str:
    content = block.get("content", "")
    if isinstance(content, str):
        return content
    return "\n".join(
        b.get("text", "") if isinstance(b, dict) and b.get("type") == "text" else json.dumps(b)
        for b in content
    )


def _results(content: Any) -> dict[str, Mapping[str, Any]]:
    return {
        str(b.get("tool_use_id")): b for b in blocks(content) if b.get("type") == "tool_result"
    }


def _call(use: Mapping[str, Any], result: Mapping[str, Any] | None) -> Call:
    if result is None:
        return Call(str(use.get("id")), str(use.get("name")), use.get("input"), None, None)
    return Call(
        str(use.get("id")), str(use.get("name")), use.get("input"), result_text(result),
        not result.get("is_error", False),
    )  # fmt: skip
