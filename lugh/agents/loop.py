"""The agent loop: ask the model, run the tools it calls, until it finishes or a budget stops it.

Each step is saved before the next begins (the model's turn as soon as it arrives, then the
tool results one by one), together with its audit events (`model_turn`, `tool_call`) in the
same statement. A run taken over by another worker after a crash goes on from the last saved
point: no model turn is asked for twice, and only a tool call that was under way at the crash
runs again. A cancelled task stops at once: the model call and commands are awaited, so the
pool's cancellation interrupts them, and the loop checks its lease between steps as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import asyncpg

from lugh.agents.budget import Budget, BudgetExceeded, Spent, check, wall_time_reason
from lugh.agents.tools import Risk, ToolBox, ToolResult
from lugh.db import queries
from lugh.llm import ChatModel, ChatRequest, Message, ModelReply, Retrying, Usage, estimate_cost
from lugh.logs import get_logger
from lugh.tasks import Task, TaskContext

Q = queries.load(__file__, "loop")
log = get_logger("lugh.agents.loop")

MAX_OUTPUT_TOKENS = 8192
MAX_TURN_TEXT = 4000  # of a model turn's text in its audit event
MAX_INPUT_CHARS = 2000  # of a tool call's arguments in its audit event
MAX_EXCERPT = 1000  # of a tool result in its audit event
CUT_OFF = (
    "Your reply was cut off at the output limit. Go on from where it stopped, in smaller "
    "pieces; call finish when the task is done."
)
ENDING_TOOLS = {"finish": "finished", "propose_plan": "planned"}


class LeaseLost(Exception):
    """The task is no longer this worker's (cancelled, or its lease expired)."""


class RunStopped(Exception):
    """The run cannot go on (a budget is spent, the model refused); `str()` says why."""


@dataclass(frozen=True)
class RunSpec:
    """What a new run starts from; a resumed run has all of it saved."""

    mode: Literal["work", "plan"]
    model: str
    system: str
    first_message: str
    tools: tuple[str, ...]


@dataclass
class Run:
    id: int
    task_id: int
    mode: str
    model: str
    system: str
    tools: list[str]
    messages: list[Message]
    spent: Spent = field(default_factory=Spent)
    resumed: bool = False


@dataclass(frozen=True)
class RunOutcome:
    kind: Literal["finished", "planned", "stopped", "waiting"]
    summary: str  # the agent's summary, the plan's, or why the run stopped or waits
    run: Run
    data: dict[str, Any] = field(default_factory=dict)  # the plan, or the call awaiting approval


SpecSource = RunSpec | Callable[[], Awaitable[RunSpec]]


class StepGate(Protocol):
    """Approval before high-risk calls (lugh.agents.plan.StepApprovals)."""

    def required(self, risk: Risk) -> bool: ...

    async def decision(self, task_id: int, tool_use_id: str) -> str | None:
        """'approved', 'rejected', 'pending', or None when nobody was asked yet."""
        ...


class RunStore:
    """Agent runs and their conversations in Postgres, written only under the task's lease."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def open(self, task: Task, source: SpecSource) -> Run:
        """The task's open run, resumed as saved; or a new one made from `source` (called
        only then, when it is a function)."""
        for _ in range(2):
            row = await self.pool.fetchrow(Q.open_run, task.id)
            if row is not None:
                rows = await self.pool.fetch(Q.messages, row["id"])
                messages = [{"role": r["role"], "content": json.loads(r["content"])} for r in rows]
                return _run(row, messages, resumed=True)
            spec = source if isinstance(source, RunSpec) else await source()
            first = [{"type": "text", "text": spec.first_message}]
            row = await self.pool.fetchrow(
                Q.create_run, task.id, task.lease_token, spec.mode, spec.model, spec.system,
                list(spec.tools), json.dumps(first),
            )  # fmt: skip
            if row is not None:
                return _run(row, [{"role": "user", "content": first}], resumed=False)
            if not await self._ours(task):
                break
        raise LeaseLost(f"Task #{task.id} is no longer this worker's; its run was not started.")

    async def save(
        self,
        run: Run,
        token: int,
        *,
        seqs: Sequence[int] = (),
        events: Sequence[dict[str, Any]] = (),
        status: str | None = None,
        outcome: dict[str, Any] | None = None,
    ) -> None:
        """Save the messages at `seqs`, the spending so far, and audit `events`, atomically."""
        messages = [{"seq": s, **run.messages[s]} for s in seqs]
        saved = await self.pool.fetchval(
            Q.save, run.id, token, json.dumps(messages), json.dumps(run.spent.to_json()),
            json.dumps(list(events)), status, None if outcome is None else json.dumps(outcome),
        )  # fmt: skip
        if saved is None:
            raise LeaseLost(f"Task #{run.task_id} is no longer this worker's; its run stops.")

    async def latest(self, task_id: int, mode: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(Q.latest_run, task_id, mode)

    async def _ours(self, task: Task) -> bool:
        status = await self.pool.fetchval(Q.task_status_under_lease, task.id, task.lease_token)
        return status == "running"


class AgentLoop:
    """Runs one agent run of a task to its end: finished, planned, stopped by a budget, or
    waiting for the owner to approve a high-risk step."""

    def __init__(
        self, model: ChatModel, store: RunStore, *, max_output_tokens: int = MAX_OUTPUT_TOKENS
    ) -> None:
        self.model = model
        self.store = store
        self.max_output_tokens = max_output_tokens

    async def run(
        self,
        task: Task,
        ctx: TaskContext,
        tools: ToolBox,
        spec: SpecSource,
        budget: Budget,
        *,
        gate: StepGate | None = None,
    ) -> RunOutcome:
        run = await self.store.open(task, spec)
        tools.names = tuple(run.tools)
        step = _Step(self, run, ctx, tools, budget, gate)
        if run.resumed:
            log.info("run resumed", task=task.id, run=run.id, steps=run.spent.steps)
        try:
            return await step.until_done()
        except (BudgetExceeded, RunStopped) as exc:
            step.tick()
            reason = str(exc)
            event = {"kind": "run_stopped", "data": {"reason": reason, **run.spent.to_json()}}
            await self.store.save(
                run, ctx.token, events=[event], status="stopped", outcome={"reason": reason}
            )
            return RunOutcome("stopped", reason, run)


class _Step:
    """The state of one run while it is under way."""

    def __init__(
        self, loop: AgentLoop, run: Run, ctx: TaskContext, tools: ToolBox, budget: Budget,
        gate: StepGate | None,
    ) -> None:  # fmt: skip
        self.loop, self.run, self.ctx, self.tools = loop, run, ctx, tools
        self.budget, self.gate = budget, gate
        self.clock = asyncio.get_running_loop().time
        self.started, self.base_s = self.clock(), run.spent.elapsed_s

    def tick(self) -> None:
        self.run.spent.elapsed_s = self.base_s + self.clock() - self.started

    async def save(self, seqs: Sequence[int] = (), events: Sequence[dict] = (), **kw: Any) -> None:
        self.tick()
        await self.loop.store.save(self.run, self.ctx.token, seqs=seqs, events=events, **kw)

    async def until_done(self) -> RunOutcome:
        run = self.run
        while True:
            if self.ctx.cancelled:
                raise LeaseLost(f"Task #{run.task_id} was cancelled or lost its lease.")
            pending = unanswered(run.messages)
            if pending:
                outcome = await self.answer(pending)
                if outcome is not None:
                    return outcome
                continue
            if run.messages[-1]["role"] == "assistant":  # an end of turn saved just before a crash
                return await self.end(_text(run.messages[-1]["content"]), None)
            self.tick()
            check(self.budget, run.spent)
            reply = await self.ask()
            if reply.tool_uses:
                continue
            if reply.stop_reason == "max_tokens":
                go_on = [{"type": "text", "text": CUT_OFF}]
                run.messages.append({"role": "user", "content": go_on})
                await self.save([len(run.messages) - 1])
                continue
            if reply.stop_reason == "refusal":
                raise RunStopped("The model refused to go on with this task.")
            return await self.end(reply.text, None)

    async def ask(self) -> ModelReply:
        run = self.run
        tools, limit = self.tools.definitions(), self.loop.max_output_tokens
        request = ChatRequest(run.model, run.system, tools, run.messages, limit)
        async with self.within_budget():
            reply = await self.loop.model.complete(request, on_retry=self.retrying)
        content = _clean(reply.content) or [{"type": "text", "text": "(no reply)"}]
        run.spent.steps += 1
        run.spent.usage = run.spent.usage + reply.usage
        cost = estimate_cost(run.model, reply.usage)
        run.spent.cost_usd += cost
        run.messages.append({"role": "assistant", "content": content})
        event = {"kind": "model_turn", "data": {
            "step": run.spent.steps, "text": _excerpt(reply.text, MAX_TURN_TEXT),
            "usage": reply.usage.to_json(), "cost_usd": round(cost, 6),
            "stop_reason": reply.stop_reason, "tools": [b["name"] for b in reply.tool_uses],
        }}  # fmt: skip
        await self.save([len(run.messages) - 1], [event])
        return reply

    async def retrying(self, notice: Retrying) -> None:
        data = {"attempt": notice.attempt, "status": notice.status,
                "delay_s": round(notice.delay_s, 3), "reason": notice.reason}  # fmt: skip
        await self.save(events=[{"kind": "model_retry", "data": data}])

    async def answer(self, pending: list[dict[str, Any]]) -> RunOutcome | None:
        """Run the calls of the last model turn that have no result yet, saving each result."""
        run = self.run
        if run.messages[-1]["role"] == "assistant":
            run.messages.append({"role": "user", "content": []})
        seq = len(run.messages) - 1
        results = run.messages[seq]["content"]
        for block in pending:
            if self.ctx.cancelled:
                raise LeaseLost(f"Task #{run.task_id} was cancelled or lost its lease.")
            risk = self.tools.risk(str(block.get("name")))
            if self.gate is not None and self.gate.required(risk):
                decision = await self.gate.decision(run.task_id, str(block.get("id")))
                if decision not in ("approved", "rejected"):
                    await self.save()
                    call = {"tool_use_id": block.get("id"), "tool": block.get("name"),
                            "input": _bounded(block.get("input")), "risk": risk.value}  # fmt: skip
                    return RunOutcome("waiting", f"{block.get('name')} needs approval", run, call)
            else:
                decision = None
            if decision == "rejected":
                result = ToolResult(
                    str(block.get("id")), str(block.get("name")), block.get("input"), risk, False,
                    "The owner did not allow this call; do without it or finish and explain.",
                )  # fmt: skip
            else:
                async with self.within_budget():
                    result = await self.tools.dispatch(block)
            result.content = result.content.replace("\x00", "\ufffd")
            results.append(result.block())
            await self.save([seq], [_tool_event(run.spent.steps, result)])
            if result.ends_run:
                return await self.end(result.data.get("summary", ""), result)
        return None

    async def end(self, summary: str, ending: ToolResult | None) -> RunOutcome:
        run = self.run
        kind = ENDING_TOOLS.get(ending.name, "finished") if ending else "finished"
        if run.mode == "plan":
            kind = "planned"
        summary = summary.strip() or "The agent ended its run without a summary."
        data = dict(ending.data) if ending else {"summary": summary}
        outcome = {"summary": summary, **({"plan": data} if kind == "planned" else {})}
        event = {"kind": "agent_" + kind, "data": {**outcome, **run.spent.to_json()}}
        await self.save(events=[event], status="finished", outcome=outcome)
        return RunOutcome(kind, summary, run, data)  # type: ignore[arg-type]

    @contextlib.asynccontextmanager
    async def within_budget(self) -> AsyncIterator[None]:
        self.tick()
        left = self.budget.max_wall_s - self.run.spent.elapsed_s
        try:
            async with asyncio.timeout(max(left, 0.0)) as deadline:
                yield
        except TimeoutError:
            if deadline.expired():
                raise BudgetExceeded(wall_time_reason(self.budget)) from None
            raise


def unanswered(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The tool calls of the last model turn that have no result yet."""
    if not messages:
        return []
    last = messages[-1]
    if last["role"] == "assistant":
        turn, answered = last, set()
    elif len(messages) >= 2 and messages[-2]["role"] == "assistant":
        turn = messages[-2]
        answered = {
            b.get("tool_use_id") for b in _blocks(last["content"]) if b.get("type") == "tool_result"
        }
    else:
        return []
    calls = [b for b in _blocks(turn["content"]) if b.get("type") == "tool_use"]
    return [b for b in calls if b.get("id") not in answered]


def _run(row: asyncpg.Record, messages: list[Message], *, resumed: bool) -> Run:
    usage = row["usage"]
    spent = Spent(
        row["steps"], Usage.from_json(json.loads(usage) if isinstance(usage, str) else usage),
        row["cost_usd"], row["elapsed_s"],
    )  # fmt: skip
    return Run(
        row["id"], row["task_id"], row["mode"], row["model"], row["system"], list(row["tools"]),
        messages, spent, resumed,
    )  # fmt: skip


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _text(content: Any) -> str:
    return "\n".join(b["text"] for b in _blocks(content) if b.get("type") == "text").strip()


def _tool_event(step: int, result: ToolResult) -> dict[str, Any]:
    return {"kind": "tool_call", "data": {
        "step": step, "tool": result.name, "tool_use_id": result.tool_use_id,
        "input": _bounded(result.input), "risk": result.risk.value, "ok": result.ok,
        "excerpt": _excerpt(result.content, MAX_EXCERPT),
    }}  # fmt: skip


def _excerpt(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def _bounded(value: Any) -> Any:
    """Tool arguments small enough for an audit event: long strings shortened, and anything
    still too large kept as the start of its JSON text."""
    if isinstance(value, dict):
        value = {k: _excerpt(v, 300) if isinstance(v, str) else v for k, v in value.items()}
    text = json.dumps(_clean(value), ensure_ascii=False)
    return _clean(value) if len(text) <= MAX_INPUT_CHARS else _excerpt(text, MAX_INPUT_CHARS)


def _clean(value: Any) -> Any:
    """The value with NUL characters replaced: Postgres cannot store them in jsonb."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value
