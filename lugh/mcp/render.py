"""The JSON shapes MCP tools and resources return (DESIGN §8: keep the field names)."""

from __future__ import annotations

from typing import Any

from lugh.commands.session import Session
from lugh.knowledge.results import IngestResult
from lugh.projects import Agent, Project
from lugh.replay import FileState, Step
from lugh.replay.render import excerpt, message_text
from lugh.tasks import Task, TaskEvent


def project_json(project: Project) -> dict[str, Any]:
    return {"name": project.name, "repo": project.repo, "default_branch": project.default_branch}


def agent_json(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id, "name": agent.name, "project": agent.project, "role": agent.role,
        "model": agent.model, "status": agent.status,
    }  # fmt: skip


def task_json(task: Task, project: str | None = None) -> dict[str, Any]:
    return {
        "id": task.id, "title": task.title, "status": task.status.value, "project": project,
        "agent_id": task.agent_id, "priority": task.priority, "source": task.source,
        "attempts": task.attempts, "max_attempts": task.max_attempts, "error": task.error,
        "created_at": _when(task.created_at), "finished_at": _when(task.finished_at),
    }  # fmt: skip


def event_json(event: TaskEvent) -> dict[str, Any]:
    return {"kind": event.kind, "data": event.data, "at": _when(event.created_at)}


STEP_EXCERPT = 500  # characters of a step's text, of each tool result, of the message sent
INPUT_EXCERPT = 300  # of each string in a tool call's arguments


def step_json(step: Step) -> dict[str, Any]:
    """One step of a task's runs, bounded: the model's text, its calls with their results,
    and the latest message sent to it (the whole conversation is `lugh replay --full`)."""
    latest = step.sent[-1] if step.sent else None
    return {
        "step": step.number, "run_id": step.run_id, "run_step": step.run_step, "mode": step.mode,
        "messages_sent": len(step.sent),
        "last_sent": None if latest is None else {
            "role": latest["role"], "text": message_text(latest["content"], STEP_EXCERPT)},
        "text": excerpt(step.text, STEP_EXCERPT),
        "calls": [{
            "tool": c.name, "input": _bounded(c.input), "ok": c.ok,
            "result": None if c.result is None else excerpt(c.result, STEP_EXCERPT),
        } for c in step.calls],
    }  # fmt: skip


def files_json(state: FileState) -> dict[str, Any]:
    return {
        "changed": [{"path": c.path, "status": c.status, "added": c.added, "deleted": c.deleted}
                    for c in state.changes],
        "commands_at": state.commands_at, "unavailable": state.unavailable,
    }  # fmt: skip


def _bounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: excerpt(v, INPUT_EXCERPT) if isinstance(v, str) else v for k, v in value.items()}
    return excerpt(value, INPUT_EXCERPT) if isinstance(value, str) else value


def session_json(session: Session) -> dict[str, Any]:
    return {
        "id": session.id, "transport": session.transport, "who": session.external_id,
        "project_id": session.project_id, "asked": session.asked, "created": session.created,
    }  # fmt: skip


def ingest_json(result: IngestResult) -> dict[str, Any]:
    return {
        "documents": result.documents, "unchanged": result.unchanged, "removed": result.removed,
        "chunks": result.chunks,
        "skipped": [{"path": s.path, "reason": s.reason} for s in result.skipped],
    }  # fmt: skip


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
