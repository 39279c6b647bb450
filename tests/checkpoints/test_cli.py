import asyncio

import pytest
from typer.testing import CliRunner

from lugh.checkpoints.cli import checkpoint_app


@pytest.fixture
def lugh(two_projects, database, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no developer's .env
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setenv("LUGH_DATA_DIR", str(two_projects.data_dir))
    monkeypatch.setenv("LUGH_SANDBOX", "none")

    async def invoke(*args: str, input: str | None = None):
        return await asyncio.to_thread(CliRunner().invoke, checkpoint_app, list(args), input=input)

    return invoke


async def test_lugh_checkpoint_create_list_verify_and_delete(lugh, two_projects):
    made = await lugh("create", "alpha", "--label", "from the terminal")
    [saved] = await two_projects.checkpoints.list("alpha")
    listed = await lugh("list")
    verified = await lugh("verify", str(saved.id))
    deleted = await lugh("delete", str(saved.id))

    assert made.exit_code == 0, made.output
    assert f'Saved checkpoint #{saved.id} (manual "from the terminal") of alpha' in made.output
    assert "from the terminal" in listed.output and "alpha" in listed.output
    assert verified.exit_code == 0 and f"Checkpoint #{saved.id} is intact." in verified.output
    assert deleted.exit_code == 0 and await two_projects.checkpoints.list("alpha") == []


async def test_lugh_checkpoint_restore_shows_the_plan_and_changes_nothing_when_declined(
    lugh, two_projects
):
    services = two_projects
    project = await services.projects.get("alpha")
    saved = await services.checkpoints.create("alpha")
    later = await services.tasks.enqueue(project.id, "after the checkpoint")

    declined = await lugh("restore", str(saved.id), input="n\n")
    assert await services.tasks.get(later.id) is not None
    accepted = await lugh("restore", str(saved.id), "--yes")

    assert f"tasks removed: #{later.id} after the checkpoint" in declined.output
    assert "Nothing was changed." in declined.output
    assert accepted.exit_code == 0, accepted.output
    assert f"Restored alpha to checkpoint #{saved.id}" in accepted.output
    assert await services.tasks.get(later.id) is None


async def test_lugh_checkpoint_of_an_unknown_project_fails_with_one_sentence(lugh):
    result = await lugh("create", "nope")

    assert result.exit_code == 1
    assert "There is no project named 'nope'." in result.output
