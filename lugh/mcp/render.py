"""The JSON shapes MCP tools and resources return (DESIGN §8: keep the field names)."""

from __future__ import annotations

from typing import Any

from lugh.commands.session import Session
from lugh.knowledge.results import IngestResult
from lugh.projects import Agent, Project
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
