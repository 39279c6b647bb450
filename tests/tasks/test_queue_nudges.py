"""The owner's nudges that are not moves: 🔥 raises a task's priority, 😴 holds a queued task."""

import pytest

from lugh.tasks import TaskError, TaskNotFound, TaskQueue

LEASE_S = 30.0


async def test_a_raised_task_is_claimed_before_an_older_one(queue: TaskQueue, project_id):
    older = await queue.enqueue(project_id, "older")
    newer = await queue.enqueue(project_id, "newer")

    raised = await queue.raise_priority(newer.id)

    assert raised.priority == newer.priority + 1
    assert (await queue.claim("w1", LEASE_S)).id == newer.id
    assert (await queue.claim("w1", LEASE_S)).id == older.id


async def test_a_paused_task_is_not_claimed_until_it_is_resumed(queue: TaskQueue, project_id):
    task = await queue.enqueue(project_id, "wait for me")

    paused = await queue.pause(task.id)
    assert paused.options.get("paused") is True
    assert await queue.claim("w1", LEASE_S) is None
    assert await queue.next_due_in() is not None  # the workers' wait stays finite-safe

    resumed = await queue.resume(task.id)
    assert "paused" not in resumed.options
    assert (await queue.claim("w1", LEASE_S)).id == task.id


async def test_only_a_queued_task_can_be_paused_and_each_refusal_is_a_sentence(
    queue: TaskQueue, project_id, pool
):
    task = await queue.enqueue(project_id, "running soon")
    await queue.claim("w1", LEASE_S)

    with pytest.raises(TaskError, match=r"Cannot pause #\d+: it is running\."):
        await queue.pause(task.id)
    with pytest.raises(TaskError, match="Cannot resume"):
        await queue.resume(task.id)
    with pytest.raises(TaskNotFound):
        await queue.raise_priority(999_999)
    kinds = await pool.fetch("SELECT kind FROM task_events WHERE task_id = $1 ORDER BY id", task.id)
    assert [k["kind"] for k in kinds] == ["queued", "running"]
