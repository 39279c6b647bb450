import json

import pytest

from lugh.checkpoints import DamagedCheckpoint
from lugh.errors import UserError
from tests.checkpoints.helpers import fill_project, fingerprint, git


def _where(services, project):
    return services.pool, project.id, project.repo_path, services.worktrees.root / project.name


async def test_a_checkpoint_is_complete_on_disk_with_a_manifest_of_sizes_and_hashes(
    two_projects, checkpoints
):
    services = two_projects
    filled = await fill_project(services, "alpha")

    checkpoint = await checkpoints.create("alpha", label="before the refactor")

    assert checkpoint.project == "alpha" and checkpoint.kind == "manual"
    assert checkpoint.path.is_dir() and checkpoint.path.parent.name == "alpha"
    manifest = json.loads((checkpoint.path / "manifest.json").read_text())
    assert set(manifest["files"]) >= {"git/repo.bundle", "rows/chunks.copy", "rows/tasks.copy",
                                      f"patches/{filled['running']}.patch"}  # fmt: skip
    assert manifest["rows"]["tables"]["chunks"]["rows"] == 5
    assert "refs/heads/lugh/" in " ".join(manifest["git"]["refs"])
    assert checkpoint.size_bytes == sum(f["size"] for f in manifest["files"].values()) + len(
        (checkpoint.path / "manifest.json").read_bytes()
    )
    await checkpoints.verify(checkpoint.id)
    assert [c.id for c in await checkpoints.list("alpha")] == [checkpoint.id]
    assert not [p for p in checkpoint.path.parent.iterdir() if p.name.startswith(".tmp-")]


async def test_a_checkpoint_with_a_flipped_byte_is_refused_and_nothing_changes(
    two_projects, checkpoints
):
    services = two_projects
    filled = await fill_project(services, "alpha")
    checkpoint = await checkpoints.create("alpha")
    await services.tasks.enqueue(filled["project"].id, "made after the checkpoint")
    before = await fingerprint(*_where(services, filled["project"]))
    target = checkpoint.path / "rows" / "tasks.copy"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))

    with pytest.raises(DamagedCheckpoint, match=r"is damaged \(rows/tasks.copy does not match"):
        await checkpoints.restore(checkpoint.id)

    assert await fingerprint(*_where(services, filled["project"])) == before


async def test_restore_puts_rows_branches_and_the_running_tasks_worktree_back_exactly(
    two_projects, checkpoints
):
    services = two_projects
    filled = await fill_project(services, "alpha")
    project = filled["project"]
    checkpoint = await checkpoints.create("alpha")
    saved = await fingerprint(*_where(services, project))
    # Everything changes afterwards: new task, cancelled task, deleted branch, new knowledge.
    extra = await services.tasks.enqueue(project.id, "made after the checkpoint")
    await services.tasks.cancel(filled["queued"])
    git(project.repo_path, "branch", "-D", "feature-alpha")
    git(project.repo_path, "branch", "later")
    await services.pool.execute("DELETE FROM memories")
    await services.pool.execute("DELETE FROM chunks WHERE ordinal = 0")

    plan = await checkpoints.preview_restore(checkpoint.id)
    report = await checkpoints.restore(checkpoint.id)

    assert (extra.id, "made after the checkpoint") in plan.tasks_removed
    assert "refs/heads/later" in plan.refs.deleted and "refs/heads/feature-alpha" in plan.refs.made
    assert plan.memories_back == 2 and plan.running == [filled["running"]]
    assert report.requeued == [filled["running"]] and report.worktrees == [filled["running"]]
    assert report.pre_checkpoint_id is not None
    after = await fingerprint(*_where(services, project))
    requeued = ("tasks", "agents")  # the running task is queued again, its agent idle
    assert {k: v for k, v in after.items() if k not in requeued} == {
        k: v for k, v in saved.items() if k not in requeued
    }
    task = await services.tasks.get(filled["running"])
    assert task.status == "queued" and task.lease_owner is None
    agent = await services.pool.fetchrow(
        "SELECT status, running_tasks FROM agents WHERE id = $1", filled["agent"].id
    )
    assert (agent["status"], agent["running_tasks"]) == ("idle", 0)
    assert (filled["worktree"] / "README.md").read_text() == "# changed by the agent\n"
    assert (filled["worktree"] / "new_file.py").read_text() == "print('new')\n"
    embeddings = await services.pool.fetchval("SELECT count(*) FROM chunks")
    assert embeddings == 5


async def test_restoring_the_same_checkpoint_twice_gives_the_same_state(two_projects, checkpoints):
    services = two_projects
    filled = await fill_project(services, "alpha")
    checkpoint = await checkpoints.create("alpha")

    await checkpoints.restore(checkpoint.id)
    first = await fingerprint(*_where(services, filled["project"]))
    await services.tasks.enqueue(filled["project"].id, "in between")
    await checkpoints.restore(checkpoint.id)
    second = await fingerprint(*_where(services, filled["project"]))

    assert first == second


async def test_restoring_project_a_leaves_project_b_rows_branches_and_files_identical(
    two_projects, checkpoints
):
    services = two_projects
    alpha = await fill_project(services, "alpha", seed=1)
    beta = await fill_project(services, "beta", seed=2)
    checkpoint = await checkpoints.create("alpha")
    await services.tasks.enqueue(alpha["project"].id, "alpha later")
    b_before = await fingerprint(*_where(services, beta["project"]))

    await checkpoints.restore(checkpoint.id)

    assert await fingerprint(*_where(services, beta["project"])) == b_before
    assert (await services.tasks.get(beta["running"])).status == "running"


async def test_a_restore_with_uncommitted_changes_in_the_checked_out_branch_is_refused(
    two_projects, checkpoints
):
    services = two_projects
    project = await services.projects.get("alpha")
    checkpoint = await checkpoints.create("alpha")
    (project.repo_path / "src" / "app.py").write_text("x = 2\n")
    git(project.repo_path, "commit", "-qam", "moves main")
    (project.repo_path / "README.md").write_text("local edit\n")

    with pytest.raises(UserError, match="has uncommitted changes on main"):
        await checkpoints.restore(checkpoint.id)

    assert (project.repo_path / "README.md").read_text() == "local edit\n"
    assert git(project.repo_path, "log", "-1", "--format=%s") == "moves main"


async def test_a_clean_checked_out_branch_follows_the_restore(two_projects, checkpoints):
    services = two_projects
    project = await services.projects.get("alpha")
    checkpoint = await checkpoints.create("alpha")
    (project.repo_path / "src" / "app.py").write_text("x = 2\n")
    git(project.repo_path, "commit", "-qam", "moves main")

    await checkpoints.restore(checkpoint.id)

    assert (project.repo_path / "src" / "app.py").read_text() == "x = 1\n"
    assert git(project.repo_path, "status", "--porcelain") == ""


async def test_retention_keeps_at_most_the_configured_number_of_pre_operation_checkpoints(
    two_projects, checkpoints
):
    from lugh.checkpoints import Keep, Retention

    checkpoints.retention = Retention(pre_operation=Keep(None, 2))
    made = [await checkpoints.create("alpha", kind="pre_operation") for _ in range(3)]
    manual = await checkpoints.create("alpha")

    listed = [c.id for c in await checkpoints.list("alpha")]
    assert listed == [manual.id, made[2].id, made[1].id]
    assert not made[0].path.exists()


async def test_deleting_a_checkpoint_removes_its_row_and_files(two_projects, checkpoints):
    checkpoint = await checkpoints.create("alpha")

    await checkpoints.delete(checkpoint.id)

    assert await checkpoints.list("alpha") == []
    assert not checkpoint.path.exists()
    with pytest.raises(UserError, match="There is no checkpoint"):
        await checkpoints.delete(checkpoint.id)


async def test_knowledge_identical_to_the_checkpoints_is_left_in_place_by_a_restore(
    two_projects, checkpoints
):
    services = two_projects
    filled = await fill_project(services, "alpha", chunks=20)
    checkpoint = await checkpoints.create("alpha")
    versions = "SELECT array_agg(xmin::text ORDER BY id) FROM chunks"
    before = await services.pool.fetchval(versions)
    await services.tasks.enqueue(filled["project"].id, "after the checkpoint")

    await checkpoints.restore(checkpoint.id)

    assert await services.pool.fetchval(versions) == before
    assert await services.pool.fetchval("SELECT count(*) FROM tasks") == 3


async def restore_under_way(services, checkpoints, name: str):
    """A restore of project `name` journalled as started; the project and the checkpoint."""
    project = await services.projects.get(name)
    saved = await checkpoints.create(name)
    await services.pool.execute(
        "INSERT INTO checkpoint_restores (checkpoint_id, project_id) VALUES ($1, $2)",
        saved.id, project.id,
    )  # fmt: skip
    return project, saved


async def test_no_checkpoint_but_the_restores_own_is_taken_while_a_restore_is_under_way(
    two_projects, checkpoints
):
    await restore_under_way(two_projects, checkpoints, "alpha")

    with pytest.raises(UserError, match="A restore of alpha is under way"):
        await checkpoints.create("alpha")
    await checkpoints.create("alpha", kind="pre_operation")
    await checkpoints.create("beta")


async def test_a_restore_running_in_another_process_is_not_joined(two_projects, checkpoints):
    services = two_projects
    project, saved = await restore_under_way(services, checkpoints, "alpha")
    async with services.pool.acquire() as other:  # what the other process holds
        await other.fetchval(
            "SELECT pg_advisory_lock(hashtext('lugh.checkpoints.restore'), $1)", project.id
        )
        with pytest.raises(UserError, match="is running right now"):
            await checkpoints.restore(saved.id)
        await other.execute("SELECT pg_advisory_unlock_all()")

    report = await checkpoints.restore(saved.id)

    assert report.checkpoint.id == saved.id
