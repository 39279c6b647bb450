"""A replayed step as text, the same for the chat commands and the CLI (MCP has JSON)."""

from __future__ import annotations

import json
from typing import Any

from lugh.replay.service import Replay
from lugh.replay.steps import Call, blocks, result_text

EXCERPT = 300
RECENT = 3  # messages shown from the end of the conversation sent (and always the first)
DIFF_LINES = 60


def excerpt(text: str, limit: int | None) -> str:
    text = text.strip()
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def step_text(shown: Replay, *, limit: int | None = EXCERPT, recent: int | None = RECENT) -> str:
    """What was sent, what came back, the calls and the files so far; each piece cut to
    `limit` characters and the conversation to its first and `recent` last messages (None:
    everything)."""
    task, step = shown.task, shown.step
    if step is None:
        return f"#{task.id} {task.title} has no recorded steps yet."
    lines = [
        f"#{task.id} {task.title} — step {step.number} of {shown.total} "
        f"({step.mode} run, its step {step.run_step})",
        f"Sent to the model: the system prompt ({len(step.system)} characters) and "
        f"{len(step.sent)} message{'s' if len(step.sent) != 1 else ''}:",
    ]
    if limit is None:
        lines.append(step.system)
    picked = list(enumerate(step.sent, 1))
    if recent is not None and len(picked) > recent + 1:
        gap = {"role": "", "content": f"… {len(picked) - recent - 1} more"}
        picked = [picked[0], (0, gap), *picked[-recent:]]
    for n, message in picked:
        if n == 0:
            lines.append(f"  {message['content']}")
            continue
        lines.append(f"  {n} {message['role']}: {message_text(message['content'], limit)}")
    lines.append(f"The model answered: {excerpt(step.text, limit) or '(no text)'}")
    if step.calls:
        lines.append("Tool calls:")
        lines.extend(f"  {call_text(c, limit)}" for c in step.calls)
    lines.extend(_files(shown))
    return "\n".join(lines)


def files_diff(shown: Replay, *, max_lines: int | None = DIFF_LINES) -> str:
    """The changed files against the task's base commit, as a unified diff."""
    text = "".join(c.diff for c in shown.files.changes)
    lines = text.splitlines()
    if max_lines is None or len(lines) <= max_lines:
        return text
    return "\n".join(lines[:max_lines]) + f"\n… {len(lines) - max_lines} more lines"


def _files(shown: Replay) -> list[str]:
    state = shown.files
    if state.unavailable:
        return [state.unavailable]
    if not state.changes:
        lines = ["No files changed by the file tools so far."]
    else:
        lines = ["Files changed so far:"]
        for c in state.changes:
            counts = "" if c.content is None else f" (+{c.added} −{c.deleted})"
            lines.append(f"  {c.status[0].upper()} {c.path}{counts}")
    if state.commands_at:
        at = ", ".join(str(n) for n in state.commands_at)
        lines.append(f"Commands ran at step {at}; what they changed in files is not recorded.")
    return lines


def message_text(content: Any, limit: int | None) -> str:
    """A message's blocks on one line: text, → tool calls, ← results, each cut to `limit`."""
    parts = []
    for b in blocks(content):
        kind = b.get("type")
        if kind == "text":
            parts.append(excerpt(b.get("text", ""), limit))
        elif kind == "tool_use":
            parts.append(f"→ {b.get('name')}({excerpt(_json(b.get('input')), limit)})")
        elif kind == "tool_result":
            failed = " (error)" if b.get("is_error") else ""
            parts.append(f"← result{failed}: {excerpt(result_text(b), limit)}")
    return " ".join(parts) or "(empty)"


def call_text(call: Call, limit: int | None) -> str:
    head = f"{call.name}({excerpt(_json(call.input), limit)})"
    if call.result is None:
        return f"{head} → no result recorded (the run ended during this call)"
    return f"{head} → {'ok' if call.ok else 'error'}: {excerpt(call.result, limit)}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
