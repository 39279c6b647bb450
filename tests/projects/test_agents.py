import asyncio

import pytest

from lugh.errors import AlreadyExists, NotFound, UserError
from lugh.projects import DEFAULT_AGENT_NAME, InvalidName, InvalidRole
from tests.conftest import make_repo


@pytest.fixture
async def project(projects, repo):
    return await projects.register("demo", str(repo))


async def count_agents(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM agents")


async def test_a_spawned_agent_is_an_idle_engineer_with_a_prompt_naming_it_and_its_project(
    agents, project
):
    agent = await agents.spawn("demo", "ada")

    assert (agent.project, agent.name, agent.role) == ("demo", "ada", "engineer")
    assert agent.status == "idle"
    assert agent.project_id == project.id
    assert agent.model is None
    assert "You are ada, a software engineer on the demo project." in agent.system_prompt
    assert await agents.get(agent.id) == agent


@pytest.mark.parametrize(
    ("role", "phrase"),
    [
        ("reviewer", "a code reviewer"),
        ("researcher", "a researcher"),
        ("tester", "a test engineer"),
        ("Security  Auditor", "in the role of security auditor"),
    ],
)
async def test_each_role_gets_its_own_default_prompt(agents, project, role, phrase):
    agent = await agents.spawn("demo", "bo", role=role)

    assert agent.role == " ".join(role.lower().split())
    assert phrase in agent.system_prompt


async def test_a_given_model_and_system_prompt_are_kept(agents, project):
    agent = await agents.spawn(
        "demo", "cy", role="reviewer", model="claude-opus-4-1", system_prompt="Be terse."
    )

    assert agent.model == "claude-opus-4-1"
    assert agent.system_prompt == "Be terse."


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": "has space"}, InvalidName),
        ({"name": "$(touch canary)"}, InvalidName),
        ({"name": "-x"}, InvalidName),
        ({"name": "ok", "role": "rm -rf /; echo"}, InvalidRole),
        ({"name": "ok", "role": ""}, InvalidRole),
        ({"name": "ok", "model": "claude sonnet"}, UserError),
        ({"name": "ok", "system_prompt": "x" * 20_001}, UserError),
    ],
)
async def test_bad_spawn_arguments_are_refused_in_one_sentence_and_nothing_is_stored(
    agents, project, pool, kwargs, error
):
    with pytest.raises(error) as raised:
        await agents.spawn("demo", **kwargs)

    assert str(raised.value).endswith(".") and "\n" not in str(raised.value)
    assert await count_agents(pool) == 0


async def test_an_agent_name_is_unique_within_a_project_but_not_across_projects(
    agents, projects, project, tmp_path
):
    await projects.register("other", str(make_repo(tmp_path / "other")))
    await agents.spawn("demo", "ada")

    with pytest.raises(AlreadyExists, match="Project 'demo' already has an agent named 'ada'."):
        await agents.spawn("demo", "ada", role="tester")
    assert (await agents.spawn("other", "ada")).project == "other"


async def test_spawning_in_an_unknown_project_says_so(agents):
    with pytest.raises(NotFound, match="There is no project named 'nope'."):
        await agents.spawn("nope", "ada")


async def test_agents_are_listed_in_the_order_they_were_spawned(agents, project):
    for name in ("zed", "ada", "mo"):
        await agents.spawn("demo", name)

    assert [a.name for a in await agents.list("demo")] == ["zed", "ada", "mo"]


async def test_a_project_without_agents_lists_none_and_an_unknown_project_is_refused(
    agents, project
):
    assert await agents.list("demo") == []
    with pytest.raises(NotFound):
        await agents.list("nope")


async def test_a_stopped_agent_gets_no_new_tasks_until_resumed(agents, project):
    ada = await agents.spawn("demo", "ada")

    stopped = await agents.stop(ada.id)

    assert stopped.status == "stopped" and not stopped.accepts_tasks
    with pytest.raises(UserError, match="is stopped and takes no new tasks"):
        await agents.assignee("demo", "ada")
    resumed = await agents.resume(ada.id)
    assert resumed.status == "idle"
    assert await agents.assignee("demo", "ada") == resumed


async def test_resuming_a_busy_agent_leaves_it_busy(agents, project, pool):
    ada = await agents.spawn("demo", "ada")
    await pool.execute("UPDATE agents SET status = 'busy' WHERE id = $1", ada.id)

    assert (await agents.resume(ada.id)).status == "busy"


async def test_a_removed_agent_is_gone_and_its_tasks_stay_without_it(agents, project, pool):
    ada = await agents.spawn("demo", "ada")
    task_id = await pool.fetchval(
        "INSERT INTO tasks (project_id, agent_id, title) VALUES ($1, $2, 'x') RETURNING id",
        project.id, ada.id,
    )

    removed = await agents.remove(ada.id)

    assert removed.id == ada.id
    with pytest.raises(NotFound, match=f"There is no agent with id {ada.id}."):
        await agents.get(ada.id)
    assert await pool.fetchval("SELECT agent_id FROM tasks WHERE id = $1", task_id) is None


async def test_a_busy_agent_cannot_be_removed(agents, project, pool):
    ada = await agents.spawn("demo", "ada")
    await pool.execute("UPDATE agents SET status = 'busy' WHERE id = $1", ada.id)

    with pytest.raises(UserError, match="is working on a task"):
        await agents.remove(ada.id)

    assert await count_agents(pool) == 1


async def test_stopping_or_removing_an_unknown_agent_says_so(agents):
    for action in (agents.stop, agents.remove, agents.resume, agents.get):
        with pytest.raises(NotFound, match="There is no agent with id 999."):
            await action(999)


async def test_the_default_agent_is_created_on_demand_and_only_once(agents, project, pool):
    first = await agents.default_agent("demo")
    again = await agents.default_agent("demo")

    assert first == again
    assert (first.name, first.role) == (DEFAULT_AGENT_NAME, "engineer")
    assert await count_agents(pool) == 1


async def test_the_default_agent_asked_for_concurrently_is_still_one_agent(agents, project, pool):
    found = await asyncio.gather(*(agents.default_agent("demo") for _ in range(8)))

    assert len({agent.id for agent in found}) == 1
    assert await count_agents(pool) == 1


async def test_the_default_agent_of_an_unknown_project_is_refused(agents):
    with pytest.raises(NotFound, match="There is no project named 'nope'."):
        await agents.default_agent("nope")


async def test_a_new_task_goes_to_the_named_agent_or_else_the_default_one(agents, project):
    ada = await agents.spawn("demo", "ada")

    assert await agents.assignee("demo", "ada") == ada
    assert (await agents.assignee("demo")).name == DEFAULT_AGENT_NAME
    with pytest.raises(NotFound, match="Project 'demo' has no agent named 'bo'."):
        await agents.assignee("demo", "bo")
