"""The tools and resources through the SDK's in-memory client."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator
from mcp import Client
from mcp.shared.exceptions import MCPError

from lugh.tasks import TaskStatus
from tests.conftest import git
from tests.mcp.conftest import error_text, payload

TOOLS = {
    "spawn_agent", "assign_task", "query_knowledge", "list_projects", "create_project",
    "get_task", "list_tasks", "cancel_task", "approve_task", "reject_task", "ingest",
    "create_checkpoint", "list_checkpoints", "restore_checkpoint",
}  # fmt: skip
RESOURCE_TEMPLATES = {
    "lugh://projects/{name}", "lugh://projects/{name}/agents", "lugh://agents/{id}",
    "lugh://tasks/{id}", "lugh://sessions/{id}",
}  # fmt: skip


@pytest.fixture
async def demo(services, repo):
    return await services.projects.register("demo", str(repo))


async def in_review(services, project, files: dict[str, str]) -> int:
    """A task an agent finished, with `files` written, awaiting the owner's review."""
    await services.tasks.enqueue(project.id, "Add a greeting", source="mcp")
    task = await services.tasks.claim("test-worker", 60)
    worktree = await services.worktrees.create(project, task.id, task.title)
    for name, text in files.items():
        (worktree.path / name).write_text(text)
    submitted = await services.review.submit(task, "wrote it")
    assert submitted.status is TaskStatus.AWAITING_REVIEW
    return task.id


async def test_every_tool_is_listed_with_a_valid_schema_and_a_description(server):
    async with Client(server) as client:
        tools = (await client.list_tools()).tools

    assert {t.name for t in tools} == TOOLS
    for tool in tools:
        Draft202012Validator.check_schema(tool.input_schema)
        assert tool.description and len(tool.description) > 30, tool.name
    schemas = {t.name: t.input_schema for t in tools}
    assert set(schemas["spawn_agent"]["required"]) == {"project", "name"}
    assert set(schemas["assign_task"]["required"]) == {"project", "title"}
    assert set(schemas["query_knowledge"]["required"]) == {"query", "project"}
    assert {"role", "model"} <= set(schemas["spawn_agent"]["properties"])
    assert {"description", "agent", "priority"} <= set(schemas["assign_task"]["properties"])


async def test_a_project_is_created_an_agent_spawned_and_a_task_assigned_to_it(
    server, services, repo
):
    async with Client(server) as client:
        project = payload(
            await client.call_tool("create_project", {"name": "demo", "repo": str(repo)})
        )
        agent = payload(await client.call_tool(
            "spawn_agent", {"project": "demo", "name": "rev-1", "role": "reviewer"}))
        task = payload(await client.call_tool("assign_task", {
            "project": "demo", "title": "add a health endpoint",
            "description": "It answers 200.", "agent": "rev-1", "priority": 5,
        }))  # fmt: skip
        listed = payload(await client.call_tool("list_projects", {}))

    assert project == {"name": "demo", "repo": str(repo), "default_branch": "main"}
    assert (agent["name"], agent["project"], agent["role"]) == ("rev-1", "demo", "reviewer")
    assert isinstance(agent["id"], int)
    assert (task["status"], task["agent"], task["project"]) == ("queued", "rev-1", "demo")
    stored = await services.tasks.get(task["id"])
    assert (stored.source, stored.priority, stored.agent_id) == ("mcp", 5, agent["id"])
    assert stored.body == "add a health endpoint\n\nIt answers 200."
    assert listed == {"projects": [project]}


async def test_a_task_without_an_agent_goes_to_the_default_engineer(server, demo):
    async with Client(server) as client:
        task = payload(
            await client.call_tool("assign_task", {"project": "demo", "title": "fix it"})
        )
    assert task["agent"] == "default"


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("assign_task", {"project": "nope", "title": "x"}, "There is no project named 'nope'"),
        ("assign_task", {"project": "demo", "title": "x", "agent": "ghost"}, "no agent named"),
        ("assign_task", {"project": "demo", "title": "   "}, "Give the task a title"),
        ("spawn_agent", {"project": "demo", "name": "bad name!"}, "name"),
        ("spawn_agent", {"project": "demo", "name": "a1", "role": "!!"}, "not a valid role"),
        ("create_project", {"name": "demo", "repo": "/nonexistent/x"}, "already exists"),
        ("get_task", {"task_id": 999}, "There is no task #999."),
        ("get_task", {"task_id": "twelve"}, "task_id"),
        ("get_task", {}, "task_id"),
        ("cancel_task", {"task_id": 999}, "There is no task #999."),
        ("approve_task", {"task_id": 999}, "#999"),
        ("reject_task", {"task_id": 999}, "#999"),
        ("list_tasks", {"status": "lost"}, "status"),
        ("list_tasks", {"project": "nope"}, "There is no project named 'nope'"),
        ("query_knowledge", {"query": "x", "project": "nope"}, "There is no project named 'nope'"),
        ("query_knowledge", {"query": "x", "project": "demo", "k": 1000}, "k"),
        ("ingest", {"project": "demo"}, "Give either text or a path"),
        ("ingest", {"project": "demo", "text": "a", "path": "/etc"}, "Give either text or a path"),
        ("ingest", {"project": "demo", "path": "/etc/passwd"}, "Lugh only ingests files inside"),
        ("ingest", {"project": "demo", "path": "../../../etc/passwd"}, "Lugh only ingests files"),
    ],
)
async def test_a_bad_call_is_a_tool_error_saying_what_to_do(
    server, demo, tool, arguments, expected
):
    async with Client(server) as client:
        result = await client.call_tool(tool, arguments)
    assert expected in error_text(result)


async def test_a_task_is_shown_with_its_events_and_listed_then_cancelled(server, services, demo):
    async with Client(server) as client:
        task = payload(await client.call_tool("assign_task", {"project": "demo", "title": "do it"}))
        shown = payload(await client.call_tool("get_task", {"task_id": task["id"]}))
        listed = payload(await client.call_tool("list_tasks", {"project": "demo"}))
        cancelled = payload(await client.call_tool("cancel_task", {"task_id": task["id"]}))
        again = await client.call_tool("cancel_task", {"task_id": task["id"]})
        finished = payload(await client.call_tool("list_tasks", {"status": "cancelled"}))

    assert shown["status"] == "queued" and shown["agent"] == "default"
    assert [e["kind"] for e in shown["events"]] == ["queued"]
    assert [t["id"] for t in listed["tasks"]] == [task["id"]]
    assert cancelled["status"] == "cancelled"
    assert "cancelled, so it cannot be cancelled" in error_text(again)
    assert [t["id"] for t in finished["tasks"]] == [task["id"]]


async def test_a_tasks_events_are_its_newest_with_their_times_and_no_records_of_mcp_calls(
    server, services, demo
):
    async with Client(server) as client:
        task = payload(await client.call_tool("assign_task", {"project": "demo", "title": "do it"}))
        for n in range(6):
            await services.events.publish(task["id"], "note", {"n": n})
        await client.call_tool("cancel_task", {"task_id": task["id"]})
        shown = payload(await client.call_tool("get_task", {"task_id": task["id"]}))

    stored = [e for e in await services.events.latest(task["id"]) if e.kind != "mcp_call"]
    assert len(stored) == 8 and shown["project"] == "demo"
    assert shown["events"] == [
        {"kind": e.kind, "data": e.data, "at": e.created_at.isoformat()} for e in stored[-5:]
    ]
    assert shown["events"][-1]["kind"] == "cancelled"


async def test_a_task_in_review_shows_its_diff_and_is_approved_into_main(
    server, services, demo, repo
):
    task_id = await in_review(services, demo, {"hello.txt": "hello\n"})
    async with Client(server) as client:
        shown = payload(await client.call_tool("get_task", {"task_id": task_id}))
        approved = payload(await client.call_tool("approve_task", {"task_id": task_id}))

    assert shown["status"] == "awaiting_review"
    assert shown["diff"]["summary"] == "+1 −0 in 1 file"
    assert shown["diff"]["files"] == [
        {"path": "hello.txt", "status": "added", "added": 1, "deleted": 0}
    ]
    assert approved["merged"] is True and approved["commit"]
    assert git(repo, "show", "main:hello.txt") == "hello"
    assert (await services.tasks.get(task_id)).status is TaskStatus.DONE
    approval = await services.pool.fetchrow(
        "SELECT method FROM approvals WHERE task_id = $1", task_id
    )
    assert approval["method"] == "mcp"


async def test_a_task_in_review_is_rejected_and_the_call_recorded_on_it(server, services, demo):
    task_id = await in_review(services, demo, {"hello.txt": "hello\n"})
    async with Client(server) as client:
        rejected = payload(await client.call_tool("reject_task", {"task_id": task_id}))
        twice = await client.call_tool("reject_task", {"task_id": task_id})

    assert rejected["status"] == "rejected"
    assert "#" in error_text(twice)
    calls = [e.data for e in await services.events.latest(task_id) if e.kind == "mcp_call"]
    assert [(c["tool"], c["ok"], c["who"]) for c in calls] == [
        ("reject_task", True, "local"), ("reject_task", False, "local"),
    ]  # fmt: skip


async def test_text_is_ingested_and_found_by_query_knowledge(server, demo):
    note = "Deployments go out on Tuesdays through the blue-green pipeline named Heron."
    async with Client(server) as client:
        ingested = payload(await client.call_tool(
            "ingest", {"project": "demo", "text": note, "title": "deploys"}))
        found = payload(await client.call_tool(
            "query_knowledge", {"query": "when do deployments go out?", "project": "demo", "k": 3}))

    assert ingested["documents"] == 1 and ingested["chunks"] >= 1
    best = found["results"][0]
    assert "Heron" in best["text"]
    assert {"text", "source", "location", "score"} <= set(best)


async def test_a_file_inside_the_project_repository_is_ingested_by_path(server, demo, repo):
    (repo / "docs.md").write_text("# Runbook\n\nRestart the Heron pipeline with `heron kick`.\n")
    async with Client(server) as client:
        ingested = payload(await client.call_tool(
            "ingest", {"project": "demo", "path": str(repo / "docs.md")}))
    assert ingested["documents"] == 1


async def test_every_resource_is_listed_and_read_as_json(server, services, demo, repo):
    async with Client(server) as client:
        task = payload(await client.call_tool("assign_task", {"project": "demo", "title": "do it"}))
        listed = await client.list_resource_templates()
        templates = {t.uri_template for t in listed.resource_templates}
        static = {str(r.uri) for r in (await client.list_resources()).resources}

        async def read(uri: str):
            [content] = (await client.read_resource(uri)).contents
            assert content.mime_type == "application/json"
            return json.loads(content.text)

        projects = await read("lugh://projects")
        project = await read("lugh://projects/demo")
        agents = await read("lugh://projects/demo/agents")
        agent = await read(f"lugh://agents/{agents[0]['id']}")
        shown = await read(f"lugh://tasks/{task['id']}")
        session = await read("lugh://sessions/1")
        with pytest.raises(MCPError, match="There is no task #77"):
            await client.read_resource("lugh://tasks/77")
        with pytest.raises(MCPError, match="no project named 'ghost'"):
            await client.read_resource("lugh://projects/ghost")

    assert static == {"lugh://projects"} and templates == RESOURCE_TEMPLATES
    assert projects == [{"name": "demo", "repo": str(repo), "default_branch": "main"}]
    assert project == projects[0]
    assert [a["name"] for a in agents] == ["default"] and agent == agents[0]
    assert shown["id"] == task["id"] and shown["events"][0]["kind"] == "queued"
    assert session["transport"] == "mcp" and session["who"] == "local"
    assert [a["action"] for a in session["asked"]] == ["assign_task"]
    assert session["created"][0]["kind"] == "task"
