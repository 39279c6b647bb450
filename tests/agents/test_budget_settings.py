"""The LUGH_AGENT_MAX_* settings are the budget every agent run of `lugh run` gets."""

from __future__ import annotations

import asyncio
import contextlib

from lugh.agents.budget import Budget
from lugh.app import build_workers
from lugh.services import build_services
from lugh.tasks import TaskStatus
from tests.agents.test_loop import REPO_FILES, WAIT_S, fake  # noqa: F401 (fixtures)
from tests.conftest import make_repo
from tests.fakes.anthropic import API_KEY, tool_use, turn


def test_the_budget_settings_default_to_the_budgets_defaults(make_settings):
    settings = make_settings()
    assert Budget(
        settings.agent_max_steps, settings.agent_max_tokens, settings.agent_max_seconds,
        settings.agent_max_cost_usd,
    ) == Budget()


async def test_lugh_agent_max_steps_stops_a_run_of_the_worker_pool_at_that_step(
    make_settings, database, pool, tmp_path, fake
):
    settings = make_settings(
        DATABASE_URL=database, ANTHROPIC_API_KEY=API_KEY, ANTHROPIC_BASE_URL=fake.base_url,
        LUGH_AGENT_MAX_STEPS="1", LUGH_AGENT_MAX_COST_USD="2.5",
    )
    services = build_services(settings, pool, database)
    workers = build_workers(services)
    assert workers is not None
    assert workers.executor.budget == Budget(max_steps=1, max_cost_usd=2.5)
    fake.script(
        turn(tool_use("write_file", {"path": "hello.txt", "content": "hello\n"})),
        turn(tool_use("finish", {"summary": "Added hello.txt."})),
    )
    repo = make_repo(tmp_path / "repo", REPO_FILES)
    project = await services.projects.register("demo", str(repo))
    listening = asyncio.create_task(services.listener.run())
    working = asyncio.create_task(workers.run())
    try:
        await asyncio.wait_for(services.listener.connected.wait(), WAIT_S)
        task = await services.tasks.enqueue(project.id, "Add a greeting")
        async with services.events.subscribe(task_id=task.id) as feed:
            async with asyncio.timeout(WAIT_S):
                async for event in feed:
                    if event.kind == "awaiting_review":
                        break
    finally:
        for running in (working, listening):
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        await services.aclose()

    reviewed = await services.tasks.get(task.id)
    assert reviewed.status is TaskStatus.AWAITING_REVIEW
    assert reviewed.result["summary"].startswith(
        "Stopped before finishing: The run used all 1 of its steps."
    )
