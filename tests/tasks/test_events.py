import asyncio

import asyncpg
import pytest

from lugh.tasks import Events, TaskEvent, TaskNotFound, TaskQueue
from lugh.tasks.events import parse_notes
from lugh.tasks.queue import batch_notes

from .conftest import WAIT_S


async def next_events(feed, n: int) -> list[TaskEvent]:
    async def take() -> list[TaskEvent]:
        return [await anext(feed) for _ in range(n)]

    return await asyncio.wait_for(take(), WAIT_S)


async def test_published_events_are_read_back_after_an_id(events: Events, queue, project_id):
    task = await queue.enqueue(project_id, "t")
    step = await events.publish(task.id, "tool_call", {"tool": "read_file", "path": "a.py"})

    after_queued = await events.read_since(step.id - 1)

    assert after_queued == [step]
    assert step.data == {"tool": "read_file", "path": "a.py"}
    assert [e.kind for e in await events.read_since(0, task_id=task.id)] == ["queued", "tool_call"]


async def test_an_event_for_a_task_that_does_not_exist_is_refused_and_nothing_is_written(
    events: Events, pool
):
    with pytest.raises(TaskNotFound, match=r"^There is no task #424242\.$"):
        await events.publish(424242, "note", {"text": "hello"})

    assert await pool.fetchval("SELECT count(*) FROM task_events WHERE task_id = 424242") == 0


async def test_the_events_of_deleted_tasks_go_with_them_and_no_others(
    events: Events, queue, project_id, pool
):
    doomed, kept = await queue.enqueue(project_id, "doomed"), await queue.enqueue(project_id, "kept")
    await events.publish(doomed.id, "note", {"text": "gone soon"})

    await pool.execute("DELETE FROM tasks WHERE id = $1", doomed.id)

    left = await pool.fetch("SELECT task_id, kind FROM task_events ORDER BY id")
    assert [(r["task_id"], r["kind"]) for r in left] == [(kept.id, "queued")]


async def test_a_subscriber_gets_new_events_as_they_happen(events: Events, queue, project_id):
    async with events.subscribe() as feed:
        task = await queue.enqueue(project_id, "t")
        claimed = await queue.claim("w", 30)
        await queue.complete(task.id, claimed.lease_token, "done")

        kinds = [e.kind for e in await next_events(feed, 3)]

    assert kinds == ["queued", "running", "done"]


async def test_a_subscriber_that_reconnects_replays_from_its_last_id(
    events: Events, queue: TaskQueue, project_id
):
    task = await queue.enqueue(project_id, "t")
    async with events.subscribe(after_id=0) as feed:
        [seen] = await next_events(feed, 1)
    # away for a while: two things happen
    await events.publish(task.id, "note", {"n": 1})
    await queue.cancel(task.id)

    async with events.subscribe(after_id=seen.id) as feed:
        missed = await next_events(feed, 2)
        await events.publish(task.id, "note", {"n": 2})
        [live] = await next_events(feed, 1)

    assert [e.kind for e in missed] == ["note", "cancelled"]
    assert live.data == {"n": 2}


async def test_a_subscription_to_one_task_skips_the_others(events: Events, queue, project_id):
    mine = await queue.enqueue(project_id, "mine")
    other = await queue.enqueue(project_id, "other")
    async with events.subscribe(after_id=0, task_id=mine.id) as feed:
        await events.publish(other.id, "note")
        await events.publish(mine.id, "note")

        got = await next_events(feed, 2)

    assert [(e.task_id, e.kind) for e in got] == [(mine.id, "queued"), (mine.id, "note")]


async def test_an_event_committed_after_a_later_one_is_still_delivered(
    events: Events, queue, project_id, database: str
):
    task = await queue.enqueue(project_id, "t")
    slow = await asyncpg.connect(database)
    try:
        async with events.subscribe() as feed:
            tx = slow.transaction()
            await tx.start()
            early = await slow.fetchval(
                "INSERT INTO task_events (task_id, kind) VALUES ($1, 'early') RETURNING id", task.id
            )
            late = await events.publish(task.id, "late")
            assert late.id > early
            [first] = await next_events(feed, 1)

            await tx.commit()
            await slow.execute("SELECT pg_notify('lugh_events', '{}')")
            [second] = await next_events(feed, 1)
    finally:
        await slow.close()

    assert (first.kind, second.kind) == ("late", "early")


async def test_a_subscriber_catches_up_by_polling_when_no_notification_comes(
    pool, queue, project_id
):
    deaf = Events(pool, listener=None, poll_s=0.05)
    task = await queue.enqueue(project_id, "t")
    async with deaf.subscribe() as feed:
        await deaf.publish(task.id, "note")
        [event] = await next_events(feed, 1)

    assert event.kind == "note"


async def test_a_fenced_event_is_dropped_once_the_lease_is_gone(events: Events, queue, project_id):
    task = await queue.enqueue(project_id, "t")
    claimed = await queue.claim("w", 30)

    assert await events.publish_fenced(task.id, claimed.lease_token, "step") is not None
    await queue.cancel(task.id)
    assert await events.publish_fenced(task.id, claimed.lease_token, "step") is None


def test_changes_announced_together_travel_as_one_notification_per_channel():
    notes = [
        ("lugh_events", '{"id": 1, "task_id": 7, "kind": "running"}'),
        ("lugh_tasks", "9"),
        ("lugh_events", '{"id": 2, "task_id": 8, "kind": "done"}'),
        ("lugh_tasks", "10"),
    ]

    batched = dict(batch_notes(notes))

    assert batched["lugh_tasks"] == "9"  # a wake-up: one is enough
    assert [n["task_id"] for n in parse_notes(batched["lugh_events"])] == [7, 8]
    assert parse_notes('{"id": 3, "task_id": 1, "kind": "queued"}')[0]["id"] == 3
    assert parse_notes("not json") == [] and parse_notes(None) == []


def test_a_batch_too_large_for_one_notify_is_split():
    notes = [("lugh_events", '{"id": %d, "task_id": 1, "kind": "done"}' % i) for i in range(500)]

    batched = batch_notes(notes, max_bytes=1000)

    assert all(len(payload) <= 1000 for _, payload in batched) and len(batched) > 1
    assert [n["id"] for _, p in batched for n in parse_notes(p)] == list(range(500))
