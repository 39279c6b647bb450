"""The queue against a reference model: any sequence of operations leaves both agreeing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from hypothesis.stateful import run_state_machine_as_test

from lugh.tasks import Backoff, IllegalTransition, Task, TaskQueue, TaskStatus

S = TaskStatus
LEASE_S = 60.0
EXPIRED_S = -1.0  # a lease that has already run out when it is granted
picks = st.integers(min_value=0, max_value=1_000)


@dataclass
class Model:
    status: TaskStatus
    priority: int
    max_attempts: int
    deps: frozenset[int]
    attempts: int = 0
    token: int = 0
    expired: bool = False
    events: int = 1


@dataclass
class World:
    tasks: dict[int, Model] = field(default_factory=dict)
    keys: dict[str, int] = field(default_factory=dict)

    def ids(self, *statuses: TaskStatus) -> list[int]:
        return [i for i, t in self.tasks.items() if not statuses or t.status in statuses]

    def ready(self, deps: frozenset[int]) -> bool:
        return all(self.tasks[d].status is S.DONE for d in deps)

    def claimable(self) -> int | None:
        ready = [i for i, t in self.tasks.items() if t.status is S.QUEUED and self.ready(t.deps)]
        return min(ready, key=lambda i: (-self.tasks[i].priority, i), default=None)

    def move(self, task_id: int, to: TaskStatus) -> None:
        self.tasks[task_id].status = to
        self.tasks[task_id].events += 1


class OneSlot:
    """A pool of this process with one slot, free or not, that keeps what it is handed."""

    worker_id = "here"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.free = False
        self.lease_s = LEASE_S
        self.taken: list[Task] = []

    def connection(self) -> Any:
        return self.pool.acquire()

    def reserve_slot(self) -> bool:
        reserved, self.free = self.free, False
        return reserved

    def unreserve_slot(self) -> None:
        self.free = True

    def take(self, task: Task, last_event_id: int) -> None:
        self.taken.append(task)


async def open_pool(dsn: str) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=1, max_size=2)  # on the running loop


class QueueMachine(RuleBasedStateMachine):
    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.pool: asyncpg.Pool = self.run(open_pool(dsn))
        self.run(
            self.pool.execute(
                "TRUNCATE projects, tasks, task_dependencies, task_events RESTART IDENTITY CASCADE;"
                "INSERT INTO projects (name, repo_path) VALUES ('p', '/tmp/p')"
            )
        )
        self.queue = TaskQueue(self.pool, backoff=Backoff(base_s=0, max_s=0, jitter=0))
        self.world = World()
        self.slot = OneSlot(self.pool)
        self.queue.hand_to(self.slot)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.queue.announced())  # the last hand-off's notes, still on their way
        self.run(self.pool.close())
        self.loop.close()

    def pick(self, n: int, *statuses: TaskStatus) -> int:
        ids = self.world.ids(*statuses)
        return ids[n % len(ids)]

    @rule(
        priority=st.integers(0, 2),
        max_attempts=st.integers(1, 3),
        key=st.sampled_from([None, None, "a", "b"]),
        dep_picks=st.lists(picks, max_size=2),
        slot_free=st.booleans(),
        expired=st.booleans(),
    )
    def enqueue(self, priority, max_attempts, key, dep_picks, slot_free, expired):
        ids = self.world.ids()
        deps = frozenset(ids[n % len(ids)] for n in dep_picks) if ids else frozenset()
        self.slot.free, self.slot.taken = slot_free, []
        self.slot.lease_s = EXPIRED_S if expired else LEASE_S
        enqueued = self.queue.enqueue(
            1, "t", priority=priority, max_attempts=max_attempts, dedupe_key=key, depends_on=deps
        )
        task = self.run(enqueued)
        if key in self.world.keys:
            assert task.id == self.world.keys[key]
            assert not self.slot.taken and self.slot.free is slot_free  # the slot given back
            return
        waiting = self.world.claimable()
        handed = (
            slot_free
            and self.world.ready(deps)
            and (waiting is None or self.world.tasks[waiting].priority < priority)
        )
        assert task.id not in self.world.tasks
        m = Model(S.QUEUED, priority, max_attempts, deps)
        self.world.tasks[task.id] = m
        if key is not None:
            self.world.keys[key] = task.id
        event("enqueue: handed off" if handed else "enqueue: queued")
        if not handed:
            assert task.status is S.QUEUED and not self.slot.taken and self.slot.free is slot_free
            return
        assert task.status is S.RUNNING and self.slot.taken == [task] and not self.slot.free
        assert (task.attempts, task.lease_owner) == (1, "here") and task.lease_token > 0
        m.attempts, m.token, m.expired = 1, task.lease_token, expired
        self.world.move(task.id, S.RUNNING)

    @rule(expired=st.booleans())
    def claim(self, expired):
        task = self.run(self.queue.claim("w", EXPIRED_S if expired else LEASE_S))
        expected = self.world.claimable()
        assert (task.id if task else None) == expected
        if task is not None:
            m = self.world.tasks[task.id]
            m.attempts += 1
            assert task.lease_token > m.token  # every claim raises the fencing token
            m.token = task.lease_token
            m.expired = expired
            self.world.move(task.id, S.RUNNING)
            assert task.attempts == m.attempts

    @precondition(lambda self: self.world.ids(S.RUNNING))
    @rule(n=picks, status=st.sampled_from([S.DONE, S.AWAITING_REVIEW, S.FAILED]))
    def complete(self, n, status):
        task_id = self.pick(n, S.RUNNING)
        assert self.run(self.queue.complete(task_id, self.world.tasks[task_id].token, status))
        self.world.move(task_id, status)

    @precondition(lambda self: self.world.tasks)
    @rule(n=picks, age=st.integers(0, 2))
    def complete_with_a_stale_token(self, n, age):
        task_id = self.pick(n)
        m = self.world.tasks[task_id]
        token = m.token - age
        if m.status is S.RUNNING and age == 0:
            token = m.token + 1  # a token no claim ever handed out
        assert not self.run(self.queue.complete(task_id, token, S.DONE))
        assert not self.run(self.queue.heartbeat(task_id, token, LEASE_S))

    @precondition(lambda self: self.world.ids(S.RUNNING))
    @rule(n=picks, retry=st.booleans())
    def fail_attempt(self, n, retry):
        task_id = self.pick(n, S.RUNNING)
        m = self.world.tasks[task_id]
        moved = self.run(self.queue.fail_attempt(task_id, m.token, "boom", retry=retry))
        expected = S.QUEUED if retry and m.attempts < m.max_attempts else S.FAILED
        assert moved.status is expected
        self.world.move(task_id, expected)

    @precondition(lambda self: self.world.ids(S.RUNNING))
    @rule(n=picks)
    def heartbeat(self, n):
        task_id = self.pick(n, S.RUNNING)
        assert self.run(self.queue.heartbeat(task_id, self.world.tasks[task_id].token, LEASE_S))
        self.world.tasks[task_id].expired = False

    @rule()
    def requeue_expired(self):
        moved = {t.id: t.status for t in self.run(self.queue.requeue_expired())}
        expected = {}
        for task_id in self.world.ids(S.RUNNING):
            m = self.world.tasks[task_id]
            if m.expired:
                expected[task_id] = S.QUEUED if m.attempts < m.max_attempts else S.FAILED
                self.world.move(task_id, expected[task_id])
        assert moved == expected

    @precondition(lambda self: self.world.tasks)
    @rule(n=picks, action=st.sampled_from(["cancel", "retry", "approve", "reject"]))
    def owner_acts(self, n, action):
        task_id = self.pick(n)
        m = self.world.tasks[task_id]
        to, allowed = {
            "cancel": (S.CANCELLED, {S.QUEUED, S.RUNNING, S.AWAITING_REVIEW}),
            "retry": (S.QUEUED, {S.FAILED, S.CANCELLED, S.REJECTED, S.AWAITING_REVIEW}),
            "approve": (S.DONE, {S.AWAITING_REVIEW}),
            "reject": (S.REJECTED, {S.AWAITING_REVIEW}),
        }[action]
        try:
            task = self.run(getattr(self.queue, action)(task_id))
        except IllegalTransition:
            assert m.status not in allowed
            return
        assert m.status in allowed and task.status is to
        if to is S.QUEUED:
            m.attempts = 0
        self.world.move(task_id, to)

    @invariant()
    def the_database_agrees_with_the_model(self):
        rows = self.run(
            self.pool.fetch(
                "SELECT t.id, t.status, t.attempts, t.lease_token,"
                " (SELECT count(*) FROM task_events e WHERE e.task_id = t.id) AS events"
                " FROM tasks t ORDER BY t.id"
            )
        )
        actual = {
            r["id"]: (r["status"], r["attempts"], r["lease_token"], r["events"]) for r in rows
        }
        expected = {
            i: (m.status.value, m.attempts, m.token, m.events) for i, m in self.world.tasks.items()
        }
        assert actual == expected


def test_the_queue_behaves_like_its_reference_model(database: str):
    run_state_machine_as_test(
        lambda: QueueMachine(database),
        settings=settings(
            max_examples=30,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        ),
    )
