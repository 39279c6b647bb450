import asyncio
import contextlib

from lugh.checkpoints.schedule import DailyCheckpoints


async def _one_round(component: DailyCheckpoints) -> None:
    running = asyncio.create_task(component.run())
    try:
        await asyncio.wait_for(component.round_done.wait(), timeout=60)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_the_component_takes_one_daily_checkpoint_per_project_per_day(two_projects):
    checkpoints = two_projects.checkpoints

    await _one_round(DailyCheckpoints(checkpoints))
    again = await checkpoints.daily()

    listed = await checkpoints.list()
    assert sorted((c.project, c.kind) for c in listed) == [("alpha", "daily"), ("beta", "daily")]
    assert again == []


async def test_the_component_finishes_a_restore_that_a_crash_cut_short(two_projects):
    services = two_projects
    project = await services.projects.get("alpha")
    saved = await services.checkpoints.create("alpha")
    later = await services.tasks.enqueue(project.id, "after the checkpoint")
    # What a restore killed right after writing its journal leaves behind.
    await services.pool.execute(
        "INSERT INTO checkpoint_restores (checkpoint_id, project_id) VALUES ($1, $2)",
        saved.id, project.id,
    )  # fmt: skip

    await _one_round(DailyCheckpoints(services.checkpoints, daily=False))

    assert await services.tasks.get(later.id) is None
    assert await services.pool.fetchval(
        "SELECT status FROM checkpoint_restores WHERE checkpoint_id = $1", saved.id
    ) == "done"
