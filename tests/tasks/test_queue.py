import asyncpg
import pytest

from lugh.tasks import IllegalTransition, TaskError, TaskNotFound, TaskQueue, TaskStatus

LEASE_S = 30.0


async def test_an_enqueued_task_is_claimed_and_completed(queue: TaskQueue, project_id):
    task = await queue.enqueue(project_id, "write the README", body="short", source="telegram")

    claimed = await queue.claim("w1", LEASE_S)
    assert claimed is not None and claimed.id == task.id
    assert claimed.status is TaskStatus.RUNNING
    assert (claimed.attempts, claimed.lease_owner) == (1, "w1")
    assert claimed.lease_token > task.lease_token  # a fresh fencing token

    assert await queue.complete(task.id, claimed.lease_token, "done", result={"ok": True})
    done = await queue.get(task.id)
    assert done.status is TaskStatus.DONE and done.result == {"ok": True}
    assert done.lease_owner is None and done.finished_at is not None
    assert await queue.claim("w1", LEASE_S) is None


async def test_every_transition_is_recorded_as_an_event(queue: TaskQueue, pool, project_id):
    task = await queue.enqueue(project_id, "t")
    claimed = await queue.claim("w1", LEASE_S)
    await queue.complete(task.id, claimed.lease_token, "awaiting_review")
    await queue.approve(task.id)

    kinds = await pool.fetch("SELECT kind FROM task_events WHERE task_id = $1 ORDER BY id", task.id)
    assert [k["kind"] for k in kinds] == ["queued", "running", "awaiting_review", "done"]


async def test_a_dedupe_key_returns_the_existing_task_instead_of_queueing_another(
    queue: TaskQueue, project_id
):
    first = await queue.enqueue(project_id, "from a voice note", dedupe_key="voice:42")
    again = await queue.enqueue(project_id, "from a voice note", dedupe_key="voice:42")

    assert again.id == first.id
    assert len(await queue.list(project_id=project_id)) == 1


async def test_higher_priority_is_claimed_first_then_the_oldest(queue: TaskQueue, project_id):
    low = await queue.enqueue(project_id, "low")
    high = await queue.enqueue(project_id, "high", priority=5)
    low2 = await queue.enqueue(project_id, "low too")

    order = [(await queue.claim("w", LEASE_S)).id for _ in range(3)]

    assert order == [high.id, low.id, low2.id]


async def test_a_task_is_not_claimable_until_all_its_dependencies_are_done(
    queue: TaskQueue, project_id
):
    a = await queue.enqueue(project_id, "a")
    b = await queue.enqueue(project_id, "b")
    c = await queue.enqueue(project_id, "c", depends_on=[a.id, b.id])
    assert c.depends_on == (a.id, b.id)

    first, second = await queue.claim("w", LEASE_S), await queue.claim("w", LEASE_S)
    assert {first.id, second.id} == {a.id, b.id}
    assert await queue.claim("w", LEASE_S) is None

    await queue.complete(a.id, first.lease_token if first.id == a.id else second.lease_token)
    assert await queue.claim("w", LEASE_S) is None  # b still runs

    await queue.complete(b.id, first.lease_token if first.id == b.id else second.lease_token)
    assert (await queue.claim("w", LEASE_S)).id == c.id


async def test_a_dependency_on_a_missing_task_is_refused(queue: TaskQueue, project_id):
    with pytest.raises(TaskError, match="depends on does not exist"):
        await queue.enqueue(project_id, "orphan", depends_on=[9999])


async def test_a_task_for_a_missing_project_is_refused_with_a_sentence(queue: TaskQueue):
    with pytest.raises(TaskError, match=r"There is no project #404; register the project first\."):
        await queue.enqueue(404, "nowhere")


async def test_an_enqueue_rolled_back_with_its_transaction_leaves_nothing_to_claim(
    queue: TaskQueue, pool: asyncpg.Pool, project_id
):
    class Abort(Exception):
        pass

    async with pool.acquire() as conn:
        with pytest.raises(Abort):
            async with conn.transaction():
                await queue.enqueue(project_id, "never", conn=conn)
                raise Abort

    assert await queue.claim("w", LEASE_S) is None
    assert await pool.fetchval("SELECT count(*) FROM task_events") == 0


async def test_a_completion_with_a_stale_token_after_the_lease_expired_changes_nothing(
    queue: TaskQueue, project_id
):
    task = await queue.enqueue(project_id, "slow")
    stale = await queue.claim("paused-worker", lease_s=0)  # expired as soon as it is taken

    requeued = await queue.requeue_expired()
    assert [t.id for t in requeued] == [task.id]
    assert requeued[0].status is TaskStatus.QUEUED
    assert "paused-worker" in requeued[0].error

    assert not await queue.complete(task.id, stale.lease_token, "done")
    assert not await queue.heartbeat(task.id, stale.lease_token, LEASE_S)
    assert (await queue.get(task.id)).status is TaskStatus.QUEUED

    await queue_due(queue)
    fresh = await queue.claim("other-worker", LEASE_S)
    assert fresh.id == task.id and fresh.lease_token > stale.lease_token
    assert not await queue.complete(task.id, stale.lease_token, "done")
    assert await queue.complete(task.id, fresh.lease_token, "done")


async def test_a_heartbeat_extends_the_lease_only_for_the_current_token(
    queue: TaskQueue, project_id
):
    task = await queue.enqueue(project_id, "long")
    claimed = await queue.claim("w", lease_s=5)

    assert await queue.heartbeat(task.id, claimed.lease_token, 600)
    assert not await queue.heartbeat(task.id, claimed.lease_token - 1, 600)

    extended = await queue.get(task.id)
    assert (extended.lease_expires_at - claimed.lease_expires_at).total_seconds() > 500
    assert await queue.requeue_expired() == []


async def test_failed_attempts_back_off_then_fail_the_task_with_its_error(
    queue: TaskQueue, project_id
):
    task = await queue.enqueue(project_id, "flaky", max_attempts=3)
    delays = []
    for attempt in (1, 2, 3):
        await queue_due(queue)
        claimed = await queue.claim("w", LEASE_S)
        assert claimed.attempts == attempt
        moved = await queue.fail_attempt(task.id, claimed.lease_token, f"boom {attempt}")
        if moved.status is TaskStatus.QUEUED:
            delays.append((moved.run_after - moved.updated_at).total_seconds())

    final = await queue.get(task.id)
    assert final.status is TaskStatus.FAILED
    assert (final.attempts, final.error) == (3, "boom 3")
    assert delays == pytest.approx([0.01, 0.02])


async def test_a_failure_without_retry_fails_the_task_at_once(queue: TaskQueue, project_id):
    task = await queue.enqueue(project_id, "hopeless", max_attempts=5)
    claimed = await queue.claim("w", LEASE_S)

    moved = await queue.fail_attempt(task.id, claimed.lease_token, "no such repo", retry=False)

    assert (moved.status, moved.attempts, moved.error) == (TaskStatus.FAILED, 1, "no such repo")


async def test_an_expired_lease_past_max_attempts_fails_the_task(queue: TaskQueue, project_id):
    task = await queue.enqueue(project_id, "crashes its worker", max_attempts=1)
    await queue.claim("doomed", lease_s=0)

    [moved] = await queue.requeue_expired()

    assert moved.id == task.id and moved.status is TaskStatus.FAILED
    assert "doomed" in moved.error


async def test_a_released_task_is_claimable_again_and_the_attempt_is_not_counted(
    queue: TaskQueue, project_id
):
    task = await queue.enqueue(project_id, "interrupted")
    claimed = await queue.claim("stopping", LEASE_S)

    assert await queue.release(task.id, claimed.lease_token)

    again = await queue.claim("another", LEASE_S)
    assert again.id == task.id and again.attempts == 1


async def test_cancelling_a_task_stops_its_lease_and_makes_it_unclaimable(
    queue: TaskQueue, project_id
):
    task = await queue.enqueue(project_id, "never mind")
    claimed = await queue.claim("w", LEASE_S)

    cancelled = await queue.cancel(task.id, reason="owner changed their mind")

    assert cancelled.status is TaskStatus.CANCELLED
    assert not await queue.heartbeat(task.id, claimed.lease_token, LEASE_S)
    assert not await queue.complete(task.id, claimed.lease_token, "done")
    with pytest.raises(IllegalTransition, match=r"#\d+ is cancelled, so it cannot be cancelled\."):
        await queue.cancel(task.id)


async def test_a_retried_task_runs_again_with_fresh_attempts(queue: TaskQueue, project_id):
    task = await queue.enqueue(project_id, "try again", max_attempts=1)
    claimed = await queue.claim("w", LEASE_S)
    await queue.fail_attempt(task.id, claimed.lease_token, "broke")

    retried = await queue.retry(task.id)

    assert (retried.status, retried.attempts, retried.error) == (TaskStatus.QUEUED, 0, None)
    assert (await queue.claim("w", LEASE_S)).lease_token > claimed.lease_token


async def test_review_moves_only_apply_to_a_task_awaiting_review(queue: TaskQueue, project_id):
    task = await queue.enqueue(project_id, "change the logo")
    with pytest.raises(IllegalTransition, match="is queued, so it cannot be approved"):
        await queue.approve(task.id)

    claimed = await queue.claim("w", LEASE_S)
    await queue.complete(task.id, claimed.lease_token, "awaiting_review", result={"diff": "+1"})
    rejected = await queue.reject(task.id, reason="wrong colour")

    assert rejected.status is TaskStatus.REJECTED and rejected.result == {"diff": "+1"}
    with pytest.raises(TaskNotFound, match=r"There is no task #999\."):
        await queue.reject(999)


async def test_completing_as_anything_but_a_finish_is_a_programming_error(
    queue: TaskQueue, project_id
):
    with pytest.raises(ValueError):
        await queue.complete(1, 1, "queued")


async def test_tasks_are_listed_newest_first_by_filter(queue: TaskQueue, pool, project_id):
    other = await pool.fetchval(
        "INSERT INTO projects (name, repo_path) VALUES ('other', '/tmp/o') RETURNING id"
    )
    a = await queue.enqueue(project_id, "a")
    b = await queue.enqueue(project_id, "b", parent_id=a.id)
    c = await queue.enqueue(other, "c")
    await queue.cancel(a.id)

    assert [t.id for t in await queue.list()] == [c.id, b.id, a.id]
    assert [t.id for t in await queue.list(project_id=project_id)] == [b.id, a.id]
    assert [t.id for t in await queue.list(status="cancelled")] == [a.id]
    assert [t.id for t in await queue.list(status=["queued"], parent_id=a.id)] == [b.id]
    assert [t.id for t in await queue.list(before_id=c.id, limit=1)] == [b.id]


async def queue_due(queue: TaskQueue) -> None:
    """Make any task waiting out its (test-sized) backoff due now, as time would."""
    await queue.pool.execute("UPDATE tasks SET run_after = now() WHERE status = 'queued'")
