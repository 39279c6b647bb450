import pytest

from lugh.commands.catalog import Context, execute, parse
from tests.checkpoints.helpers import fill_project, git


@pytest.fixture
async def chat(two_projects):
    services = two_projects
    session = await services.sessions.open("console", "owner")
    ctx = Context(services=services, session=session, source="console")
    await execute(ctx, "project", "use alpha")

    async def say(text: str):
        action, argument = parse(text)
        return await execute(ctx, action, argument)

    return say


def _button(reply, label_start: str):
    return next(b for row in reply.buttons for b in row if b.label.startswith(label_start))


async def test_checkpoint_saves_the_current_project_and_checkpoints_lists_it_with_size_and_age(
    chat, two_projects
):
    saved = await chat("/checkpoint before the refactor")
    listed = await chat("/checkpoints")

    [made] = await two_projects.checkpoints.list("alpha")
    shown = f'#{made.id} (manual "before the refactor")'
    assert saved.ok and saved.text.startswith(f"Saved checkpoint {shown} of alpha (")
    assert listed.ok and listed.text.startswith("Checkpoints of alpha (newest first):")
    assert f"{shown} — " in listed.text and "s ago" in listed.text
    assert _button(listed, f"Restore #{made.id}").action == "restore"


async def test_restore_shows_what_would_change_and_restores_only_once_confirmed(chat, two_projects):
    services = two_projects
    project = await services.projects.get("alpha")
    await chat("/checkpoint")
    [made] = await services.checkpoints.list("alpha")
    later = await services.tasks.enqueue(project.id, "written after the checkpoint")

    shown = await chat(f"/restore {made.id}")

    assert shown.ok and f"tasks removed: #{later.id} written after the checkpoint" in shown.text
    assert await services.tasks.get(later.id) is not None
    yes = _button(shown, "Yes")
    done = await execute_button(chat, yes)
    assert done.ok and done.text.startswith(f"Restored alpha to checkpoint #{made.id} (manual).")
    assert await services.tasks.get(later.id) is None
    again = await execute_button(chat, yes)
    assert not again.ok and "already answered" in again.text


async def test_restore_of_a_damaged_checkpoint_is_refused_in_one_sentence(chat, two_projects):
    await chat("/checkpoint")
    [made] = await two_projects.checkpoints.list("alpha")
    bundle = made.path / "git" / "repo.bundle"
    data = bytearray(bundle.read_bytes())
    data[-5] ^= 0xFF
    bundle.write_bytes(bytes(data))

    reply = await chat(f"/restore {made.id}")

    assert not reply.ok and not reply.buttons
    assert reply.text == (
        f"Checkpoint #{made.id} is damaged (git/repo.bundle does not match its recorded sha256), "
        "so it was not used; choose another checkpoint."
    )


@pytest.mark.parametrize("argument", ["", "abc", "99999"])
async def test_restore_with_a_wrong_number_is_refused_and_changes_nothing(chat, argument):
    reply = await chat(f"/restore {argument}")

    assert not reply.ok and reply.text.endswith("/checkpoints lists them.")


async def test_checkpoints_delete_asks_first_then_deletes(chat, two_projects):
    await chat("/checkpoint")
    [made] = await two_projects.checkpoints.list("alpha")

    asked = await chat(f"/checkpoints delete {made.id}")
    assert await two_projects.checkpoints.list("alpha") != []
    deleted = await execute_button(chat, _button(asked, "Yes"))

    assert deleted.ok and deleted.text == f"Deleted checkpoint #{made.id} (manual) of alpha."
    assert await two_projects.checkpoints.list("alpha") == []


async def test_a_merge_of_a_reviewed_task_takes_a_merge_checkpoint(two_projects):
    services = two_projects
    filled = await fill_project(services, "alpha")
    from lugh.tasks import Task

    task = await services.tasks.get(filled["running"])
    (filled["worktree"] / "src" / "feature.py").write_text("done = True\n")
    review = await services.review.submit(Task(**{**task.__dict__}), "did it")
    await services.review.approve(review.task_id, "command")

    [merged] = await services.checkpoints.list("alpha")
    assert (merged.kind, merged.label) == ("merge", f"after merging #{task.id}")


async def test_removing_a_project_takes_a_checkpoint_first_that_brings_it_back(two_projects):
    services = two_projects
    await fill_project(services, "alpha")
    before = await services.tasks.list()

    await services.projects.remove("alpha")
    [saved] = await services.checkpoints.list("alpha")
    assert saved.kind == "pre_operation" and saved.project_id is None
    await services.checkpoints.restore(saved.id)

    assert (await services.projects.get("alpha")).name == "alpha"
    assert sorted(t.id for t in await services.tasks.list()) == sorted(t.id for t in before)


async def execute_button(chat, button):
    return await chat(f"/{button.action} {button.argument}".strip())


async def test_a_removed_clone_comes_back_from_its_checkpoint_with_its_branches_and_files(
    two_projects, tmp_path
):
    services = two_projects
    origin = (await services.projects.get("beta")).repo_path
    cloned = await services.projects.register("gamma", f"file://{origin}")
    git(cloned.repo_path, "branch", "topic")
    refs = ("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/tags")
    branches = git(cloned.repo_path, *refs)

    await services.projects.remove("gamma")
    assert not cloned.repo_path.exists()
    [saved] = await services.checkpoints.list("gamma")
    await services.checkpoints.restore(saved.id)

    assert git(cloned.repo_path, *refs) == branches
    assert (cloned.repo_path / "src" / "app.py").read_text() == "x = 1\n"
    assert git(cloned.repo_path, "status", "--porcelain") == ""
    assert git(cloned.repo_path, "remote", "get-url", "origin") == f"file://{origin}"
