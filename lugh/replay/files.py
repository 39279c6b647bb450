"""The files a run had changed by some step, rebuilt from its recorded file-tool calls.

Every successful `write_file` and `edit_file` call is in the conversation with its full
arguments, so applying them in order to the task's base commit gives the files as the agent
left them, at no cost to the run itself. What `run_command` did to files is not recorded;
the steps that ran commands are named (`commands_at`) so nobody mistakes the picture for
complete. Recording a tree per step would be exact, but costs a `git add -A` over the whole
worktree on every step of every run, for a view that is rarely asked for.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from lugh.agents.files import ToolError, path_parts
from lugh.replay.steps import Step

FILE_TOOLS = ("write_file", "edit_file")
COMMAND_TOOLS = ("run_command",)

BaseReader = Callable[[str], Awaitable[str | None]]  # a path's text at the base commit, or None


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str  # added, modified, or unknown (edited, but its earlier text is not known)
    content: str | None  # None when unknown
    added: int = 0
    deleted: int = 0
    diff: str = ""  # unified, against the base commit


@dataclass
class FileState:
    """The changed files after a step, and the steps whose commands may have changed more."""

    changes: list[FileChange] = field(default_factory=list)
    commands_at: list[int] = field(default_factory=list)
    unavailable: str | None = None  # why the files could not be rebuilt (the repository is gone)

    @property
    def contents(self) -> dict[str, str]:
        return {c.path: c.content for c in self.changes if c.content is not None}


async def files_after(steps: Sequence[Step], base: BaseReader) -> FileState:
    """The files as `steps` (the first ones of a task, in order) left them."""
    current: dict[str, str | None] = {}
    originals: dict[str, str | None] = {}
    state = FileState()
    for step in steps:
        if any(c.name in COMMAND_TOOLS for c in step.calls):
            state.commands_at.append(step.number)
        for call in step.calls:
            if call.name not in FILE_TOOLS or not call.ok or not isinstance(call.input, dict):
                continue
            path = _normal(call.input.get("path"))
            if path is None:
                continue
            if path not in originals:
                originals[path] = await base(path)
            if call.name == "write_file":
                content = call.input.get("content")
                current[path] = content if isinstance(content, str) else None
            else:
                before = current[path] if path in current else originals[path]
                old, new = call.input.get("old"), call.input.get("new")
                fits = isinstance(before, str) and isinstance(old, str) and isinstance(new, str)
                edited = before.replace(old, new, 1) if fits else None  # type: ignore[union-attr]
                current[path] = edited
    for path in sorted(current):
        change = _change(path, originals[path], current[path])
        if change is not None:
            state.changes.append(change)
    return state


def _change(path: str, original: str | None, content: str | None) -> FileChange | None:
    if content is None:
        return FileChange(path, "unknown", None)
    if content == original:
        return None
    before = (original or "").splitlines(keepends=True)
    after = content.splitlines(keepends=True)
    lines = list(difflib.unified_diff(before, after, f"a/{path}", f"b/{path}"))
    added = sum(1 for x in lines[2:] if x.startswith("+"))
    deleted = sum(1 for x in lines[2:] if x.startswith("-"))
    status = "added" if original is None else "modified"
    return FileChange(path, status, content, added, deleted, "".join(lines))


def _normal(path: object) -> str | None:
    """The path as the file tools resolve it, or None when they refused it."""
    try:
        return "/".join(path_parts(path))  # type: ignore[arg-type]
    except ToolError:
        return None
