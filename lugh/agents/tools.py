"""The agent's tools: their JSON schemas (the names and arguments of DESIGN §6 are a contract),
the risk of each call, and the dispatcher that turns a tool_use block into a tool_result.

Whatever the model sends, a call ends in a result it can read: unknown tools, missing or
mistyped arguments and refusals become an `is_error` result saying what to do instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import asyncpg

from lugh.agents.files import WorktreeFiles
from lugh.agents.sandbox import Sandbox
from lugh.db import queries
from lugh.errors import UserError
from lugh.knowledge.ask import format_passages
from lugh.logs import get_logger

Q = queries.load(__file__, "tools")
log = get_logger("lugh.agents.tools")

MAX_RESULT_CHARS = 100_000
COMMAND_TIMEOUT_S = 120
MAX_COMMAND_TIMEOUT_S = 1800
MEMORY_KINDS = ("episodic", "semantic", "procedural", "preference")
EMPTY_KNOWLEDGE = (
    "The knowledge base of this project is empty, so there is nothing to search; rely on the "
    "code in the worktree."
)


class Risk(StrEnum):
    """What a call can change, in increasing order of concern."""

    READ_ONLY = "read_only"
    WRITES = "writes"  # files in the worktree, or Lugh's own memory
    COMMANDS = "runs_commands"
    NETWORK = "network"  # a command run where the network is reachable (LUGH_SANDBOX=none)

    @property
    def high(self) -> bool:
        return self in (Risk.COMMANDS, Risk.NETWORK)


@dataclass(frozen=True)
class Arg:
    type: str  # string | integer | number | strings | enum
    description: str
    required: bool = False
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()

    def schema(self) -> dict[str, Any]:
        if self.type == "strings":
            return {"type": "array", "items": {"type": "string"}, "description": self.description}
        if self.type == "enum":
            return {"type": "string", "enum": list(self.choices), "description": self.description}
        made: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.minimum is not None:
            made["minimum"] = self.minimum
        if self.maximum is not None:
            made["maximum"] = self.maximum
        return made


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: dict[str, Arg]
    risk: Risk

    def definition(self) -> dict[str, Any]:
        """The tool as the Messages API takes it."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": {
                "type": "object",
                "properties": {name: arg.schema() for name, arg in self.args.items()},
                "required": [name for name, arg in self.args.items() if arg.required],
                "additionalProperties": False,
            },
        }

    def usage(self) -> str:
        shown = [n if a.required else f"{n}?" for n, a in self.args.items()]
        return f"{self.name}({', '.join(shown)})"


def _path(what: str, required: bool = True) -> Arg:
    return Arg("string", f"{what}, relative to the worktree root, like 'src/app.py'", required)


SPECS: dict[str, ToolSpec] = {spec.name: spec for spec in (
    ToolSpec("read_file", "Read a text file in the worktree, whole or lines start_line to "
             "end_line (1-based, inclusive).", {
                 "path": _path("The file"),
                 "start_line": Arg("integer", "First line to read", minimum=1),
                 "end_line": Arg("integer", "Last line to read", minimum=1),
             }, Risk.READ_ONLY),
    ToolSpec("write_file", "Create a file, or replace its whole content.", {
        "path": _path("The file"),
        "content": Arg("string", "The complete new content", True),
    }, Risk.WRITES),
    ToolSpec("edit_file", "Replace one exact, unique occurrence of old with new in a file.", {
        "path": _path("The file"),
        "old": Arg("string", "The exact text to replace; it must occur exactly once", True),
        "new": Arg("string", "The replacement text", True),
    }, Risk.WRITES),
    ToolSpec("list_files", "List the files git tracks or would track (ignored ones left out), "
             "optionally under a directory and filtered by a glob pattern.", {
                 "path": _path("A directory to list (default: the whole worktree)", False),
                 "pattern": Arg("string", "A glob such as '*.py' or 'src/**/test_*.py'"),
             }, Risk.READ_ONLY),
    ToolSpec("search_code", "Search file contents with a regular expression; results are "
             "file:line: text.", {
                 "pattern": Arg("string", "A regular expression", True),
                 "path": _path("A directory or file to search (default: everywhere)", False),
             }, Risk.READ_ONLY),
    ToolSpec("run_command", "Run a shell command in the worktree root, sandboxed: no network, "
             "nothing writable outside the worktree, no git commits (Lugh commits your work).", {
                 "command": Arg("string", "The command line, run with /bin/sh -c", True),
                 "timeout_s": Arg("integer", "Seconds before it is killed (default "
                                  f"{COMMAND_TIMEOUT_S})", minimum=1,
                                  maximum=MAX_COMMAND_TIMEOUT_S),
             }, Risk.COMMANDS),
    ToolSpec("query_knowledge", "Search the project's knowledge base (documents, notes, code "
             "ingested by the owner); passages come back with their sources.", {
                 "query": Arg("string", "What to look for, in words", True),
                 "k": Arg("integer", "How many passages (default 5)", minimum=1, maximum=20),
             }, Risk.READ_ONLY),
    ToolSpec("remember", "Store a memory for later tasks: a fact, a procedure that worked, "
             "a preference of the owner.", {
                 "content": Arg("string", "What to remember, self-contained", True),
                 "kind": Arg("enum", "Which kind of memory (default semantic)",
                             choices=MEMORY_KINDS),
                 "scope": Arg("enum", "Yours alone, or every agent's on this project "
                              "(default agent)", choices=("agent", "project")),
             }, Risk.WRITES),
    ToolSpec("finish", "End the run. Lugh then commits the worktree and asks the owner to "
             "review the diff.", {
                 "summary": Arg("string", "What you did and why, for the owner", True),
             }, Risk.READ_ONLY),
)}  # fmt: skip

WORK_TOOLS = tuple(SPECS)
# What run_command adds to the sandbox's fixed environment: nothing (and the same for every
# command of a run, so the executor can have their sandbox built ahead).
COMMAND_ENV: Mapping[str, str] = MappingProxyType({})


class KnowledgeSearch(Protocol):
    """The part of KnowledgeService the tool needs."""

    async def search(self, project: str, query: str, *, k: int = 5) -> list[Any]: ...


@dataclass
class ToolResult:
    tool_use_id: str
    name: str
    input: Any
    risk: Risk
    ok: bool
    content: str
    ends_run: bool = False  # finish (or propose_plan): the run is over
    data: dict[str, Any] = field(default_factory=dict)  # what an ending tool handed over

    def block(self) -> dict[str, Any]:
        made = {"type": "tool_result", "tool_use_id": self.tool_use_id, "content": self.content}
        if not self.ok:
            made["is_error"] = True
        return made


class ToolInputError(UserError):
    """The arguments do not fit the tool; `str()` tells the model how to call it."""


def check_input(spec: ToolSpec, given: Any) -> dict[str, Any]:
    """The arguments as keyword arguments, or ToolInputError saying what is wrong."""
    if not isinstance(given, Mapping):
        raise ToolInputError(f"The arguments must be a JSON object; call it as {spec.usage()}.")
    unknown = sorted(set(given) - set(spec.args))
    if unknown:
        raise ToolInputError(
            f"{spec.name} has no argument {', '.join(map(repr, unknown))}; "
            f"call it as {spec.usage()}."
        )
    checked: dict[str, Any] = {}
    for name, arg in spec.args.items():
        value = given.get(name)
        if value is None:
            if arg.required:
                raise ToolInputError(f"{spec.name} needs {name} ({arg.type}); {spec.usage()}.")
            continue
        checked[name] = _checked(spec, name, arg, value)
    return checked


def _checked(spec: ToolSpec, name: str, arg: Arg, value: Any) -> Any:
    wrong = f"{name} of {spec.name} must be {_kind(arg)}, not {json.dumps(value)[:60]}."
    if arg.type == "string" or arg.type == "enum":
        if not isinstance(value, str):
            raise ToolInputError(wrong)
        if arg.choices and value not in arg.choices:
            raise ToolInputError(wrong)
        return value
    if arg.type == "strings":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ToolInputError(wrong)
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if arg.type == "integer" and number and float(value).is_integer():
        value = int(value)
    elif not (arg.type == "number" and number):
        raise ToolInputError(wrong)
    if (arg.minimum is not None and value < arg.minimum) or (
        arg.maximum is not None and value > arg.maximum
    ):
        raise ToolInputError(wrong)
    return value


def _kind(arg: Arg) -> str:
    if arg.type == "enum":
        return "one of " + ", ".join(arg.choices)
    if arg.type == "strings":
        return "a list of strings"
    bounds = ""
    if arg.minimum is not None and arg.maximum is not None:
        bounds = f" from {arg.minimum} to {arg.maximum}"
    elif arg.minimum is not None:
        bounds = f" of at least {arg.minimum}"
    return {"string": "a string", "integer": "a whole number", "number": "a number"}[
        arg.type
    ] + bounds


@dataclass
class ToolBox:
    """The tools of one run: the worktree's files, its sandbox, the project's knowledge and the
    memory table; `names` are the tools this run may use (fewer while it only plans)."""

    files: WorktreeFiles
    sandbox: Sandbox
    worktree: Path
    pool: asyncpg.Pool
    task_id: int
    project_id: int
    project: str
    agent_id: int | None = None
    knowledge: KnowledgeSearch | None = None
    names: Sequence[str] = WORK_TOOLS
    extra: Mapping[str, ToolSpec] = field(default_factory=dict)  # e.g. propose_plan

    def specs(self) -> list[ToolSpec]:
        every = {**SPECS, **self.extra}
        return [every[name] for name in self.names]

    def definitions(self) -> list[dict[str, Any]]:
        return [spec.definition() for spec in self.specs()]

    def risk(self, name: str) -> Risk:
        spec = SPECS.get(name) or self.extra.get(name)
        if spec is None:
            return Risk.READ_ONLY  # nothing runs
        if spec.risk is Risk.COMMANDS and self.sandbox.name == "none":
            return Risk.NETWORK
        return spec.risk

    async def dispatch(self, block: Mapping[str, Any]) -> ToolResult:
        """Run one tool_use block; every failure is an error result, never an exception."""
        name, given, use_id = block.get("name"), block.get("input"), str(block.get("id"))
        result = ToolResult(use_id, str(name), given, self.risk(str(name)), True, "")
        spec = {s.name: s for s in self.specs()}.get(str(name))
        if spec is None:
            allowed = ", ".join(self.names)
            result.ok, result.content = False, (
                f"There is no tool named {str(name)[:64]!r} here; the tools are {allowed}."
            )
            return result
        try:
            args = check_input(spec, given)
            result.content = await self._run(spec.name, args, result)
        except UserError as exc:  # ToolError, SandboxError, ToolInputError and the like
            result.ok, result.content = False, str(exc)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("tool failed", tool=spec.name, task=self.task_id, error=repr(exc))
            result.ok = False
            result.content = f"{spec.name} failed ({type(exc).__name__}: {exc}); try otherwise."
        if len(result.content) > MAX_RESULT_CHARS:
            result.content = result.content[:MAX_RESULT_CHARS] + "\n[Result cut here.]"
        return result

    async def _run(self, name: str, args: dict[str, Any], result: ToolResult) -> str:
        if name in ("read_file", "write_file", "edit_file", "list_files", "search_code"):
            return await getattr(self.files, name)(**args)
        if name == "run_command":
            timeout = args.get("timeout_s", COMMAND_TIMEOUT_S)
            ran = await self.sandbox.run(
                args["command"], cwd=self.worktree, timeout_s=timeout, env=COMMAND_ENV
            )
            return ran.render()  # a failing command is a result too: its exit code says so
        if name == "query_knowledge":
            return await self._query_knowledge(args["query"], args.get("k", 5))
        if name == "remember":
            return await self._remember(args)
        if name in ("finish", *self.extra):
            result.ends_run, result.data = True, args
            return "Noted; the run ends here."
        raise ToolInputError(f"{name} is not available in this run.")

    async def _query_knowledge(self, query: str, k: int) -> str:
        if self.knowledge is None:
            return EMPTY_KNOWLEDGE
        hits = await self.knowledge.search(self.project, query, k=k)
        if not hits:
            return f"Nothing in the knowledge base matches {query[:100]!r}."
        return format_passages(hits)

    async def _remember(self, args: dict[str, Any]) -> str:
        scope = args.get("scope", "agent" if self.agent_id is not None else "project")
        agent = self.agent_id if scope == "agent" else None
        kind = args.get("kind", "semantic")
        memory_id = await self.pool.fetchval(
            Q.remember, scope, self.project_id, agent, self.task_id, kind, args["content"]
        )
        return f"Remembered as memory #{memory_id} ({kind}, {scope} scope)."
