import asyncio

import asyncpg
import pytest
from redis.asyncio import Redis

from lugh.tasks import Events, PostgresBus, TaskQueue, WorkerPool, make_bus
from lugh.tasks.redis_bus import RedisBus

from .conftest import (
    WAIT_S,
    RecordingExecutor,
    RedisServer,
    enqueue_many,
    running,
    wait_for_statuses,
)
from .test_listener import Inbox

NEVER_S = 600.0


async def until(condition, timeout: float = WAIT_S) -> None:
    async def check() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(check(), timeout)


def bus_on(server: RedisServer, prefix: str, **options) -> RedisBus:
    options.setdefault("backoff", (0.05, 0.2))
    return RedisBus(server.url, prefix=prefix, **options)


async def test_a_published_message_reaches_the_subscribers_of_its_channel(redis_bus: RedisBus):
    tasks, events = Inbox(), Inbox()
    redis_bus.subscribe("lugh_tasks", tasks)
    redis_bus.subscribe("lugh_events", events)
    await tasks.wait_for(None)  # the stream is read: from here nothing is missed
    await events.wait_for(None)

    await redis_bus.publish("lugh_tasks", "7")
    await redis_bus.publish("lugh_events", "e")

    await tasks.wait_for("7")
    await events.wait_for("e")
    assert "e" not in tasks.items and "7" not in events.items


async def test_each_message_is_delivered_once_per_consumer_group(redis_server, redis_prefix):
    inboxes = {name: Inbox() for name in ("a1", "a2", "b")}
    groups = {"a1": "A", "a2": "A", "b": "B"}
    buses = {n: bus_on(redis_server, redis_prefix, group=groups[n], consumer=n) for n in inboxes}
    for name, bus in buses.items():
        bus.subscribe("lugh_tasks", inboxes[name])
    async with running(buses["a1"]), running(buses["a2"]), running(buses["b"]):
        for inbox in inboxes.values():
            await inbox.wait_for(None)

        sent = [str(i) for i in range(40)]
        for payload in sent:
            await buses["b"].publish("lugh_tasks", payload)

        await inboxes["b"].wait_for(sent[-1])
        await until(lambda: sum(len(inboxes[n].items) for n in ("a1", "a2")) >= 2 + len(sent))
    assert [p for p in inboxes["b"].items if p is not None] == sent
    a1, a2 = ([p for p in inboxes[n].items if p is not None] for n in ("a1", "a2"))
    assert sorted(a1 + a2, key=int) == sent and not set(a1) & set(a2)


async def test_entries_a_dead_consumer_never_acknowledged_are_taken_over(
    redis_server: RedisServer, redis_prefix: str
):
    raw = Redis.from_url(redis_server.url, decode_responses=True)
    stream = f"{redis_prefix}lugh_tasks"
    try:
        await raw.xgroup_create(stream, "pool", id="$", mkstream=True)
        for i in range(3):
            await raw.xadd(stream, {"p": f"orphan {i}"})
        # A member of the group reads them, then dies before it can acknowledge them.
        delivered = await raw.xreadgroup("pool", "dead", {stream: ">"})
        assert len(delivered[0][1]) == 3

        heir = bus_on(redis_server, redis_prefix, group="pool", consumer="heir", claim_idle_s=0.05)
        inbox = Inbox()
        heir.subscribe("lugh_tasks", inbox)
        async with running(heir):
            await inbox.wait_for("orphan 2")

            async def acknowledged() -> None:
                while (await raw.xpending(stream, "pool"))["pending"]:
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(acknowledged(), WAIT_S)
        assert [p for p in inbox.items if p] == ["orphan 0", "orphan 1", "orphan 2"]
    finally:
        await raw.aclose()


async def test_a_worker_pool_woken_through_redis_runs_tasks_without_polling(
    pool: asyncpg.Pool, redis_bus: RedisBus, project_id, effects
):
    queue = TaskQueue(pool, bus=redis_bus)
    events = Events(pool, redis_bus)
    workers = WorkerPool(
        queue, RecordingExecutor(pool), listener=redis_bus, poll_s=NEVER_S, sweep_s=None
    )
    async with running(workers):
        await until(lambda: redis_bus.connected.is_set())
        tasks = await enqueue_many(queue, project_id, 5)
        await wait_for_statuses(events, {t.id: "done" for t in tasks})

    assert await pool.fetchval("SELECT sum(writes) FROM effects") == 5
    listening = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE query ILIKE 'LISTEN%' AND datname = current_database()"
    )
    assert listening == 0  # no LISTEN connection: Redis carries the wake-ups


async def test_with_redis_killed_tasks_complete_by_polling_and_the_bus_comes_back(
    pool: asyncpg.Pool, project_id, effects, tmp_path, redis_prefix
):
    events = Events(pool, poll_s=0.05)  # an observer that needs no bus
    server = RedisServer(tmp_path / "redis")
    server.start()
    bus = bus_on(server, redis_prefix)
    queue = TaskQueue(pool, bus=bus)
    workers = WorkerPool(queue, RecordingExecutor(pool), listener=bus, poll_s=0.1, sweep_s=None)
    wakes = Inbox()
    bus.subscribe("lugh_tasks", wakes)
    try:
        async with running(bus), running(workers):
            await wakes.wait_for(None)
            before = await enqueue_many(queue, project_id, 5)
            await wait_for_statuses(events, {t.id: "done" for t in before})

            server.kill()
            during = await enqueue_many(queue, project_id, 5)  # Redis cannot be told: no error
            await wait_for_statuses(events, {t.id: "done" for t in during})
            assert not bus.connected.is_set()

            server.start()
            await until(lambda: bus.connections == 2 and bus.connected.is_set())
            after = await queue.enqueue(project_id, "after the outage")
            await wakes.wait_for(str(after.id))  # woken through Redis again
            await wait_for_statuses(events, {after.id: "done"})
    finally:
        server.stop()
    assert await pool.fetchval("SELECT count(*) FROM effects WHERE writes = 1") == 11


async def test_the_bus_is_chosen_by_its_name(database: str, pool: asyncpg.Pool, redis_server):
    assert isinstance(make_bus("postgres", dsn=database, pool=pool), PostgresBus)
    redis = make_bus("redis", dsn=database, redis_url=redis_server.url)
    assert isinstance(redis, RedisBus) and not redis.hears_sql_notify
    with pytest.raises(ValueError, match="REDIS_URL"):
        make_bus("redis", dsn=database)
    with pytest.raises(ValueError, match="postgres or redis"):
        make_bus("kafka", dsn=database)


async def test_the_postgres_bus_publishes_by_notify_to_its_own_subscribers(
    database: str, pool: asyncpg.Pool
):
    bus = make_bus("postgres", dsn=database, pool=pool)
    inbox = Inbox()
    bus.subscribe("lugh_tasks", inbox)
    async with running(bus):
        await inbox.wait_for(None)
        await bus.publish("lugh_tasks", "42")
        await inbox.wait_for("42")


async def test_a_process_leaving_drops_its_own_group_and_prunes_those_of_dead_ones(
    redis_server: RedisServer, redis_prefix: str
):
    raw = Redis.from_url(redis_server.url, decode_responses=True)
    stream = f"{redis_prefix}lugh_tasks"
    try:
        # A process killed before it could leave: its private group stays behind.
        await raw.xgroup_create(stream, "p:killed", id="$", mkstream=True)
        await raw.xreadgroup("p:killed", "killed", {stream: ">"})
        bus = bus_on(redis_server, redis_prefix, stale_s=0.0)
        inbox = Inbox()
        bus.subscribe("lugh_tasks", inbox)
        async with running(bus):
            await inbox.wait_for(None)
            assert [g["name"] for g in await raw.xinfo_groups(stream)] == [bus.group]
        assert await raw.xinfo_groups(stream) == []
    finally:
        await raw.aclose()


async def test_a_bus_cancelled_while_it_acknowledges_a_message_stops(
    redis_server: RedisServer, redis_prefix: str
):
    bus = bus_on(redis_server, redis_prefix)
    runner: asyncio.Task[None] | None = None
    inbox = Inbox()

    def cancel_on_message(payload: str | None) -> None:
        inbox(payload)
        if payload is not None and runner is not None:
            runner.cancel()  # lands on the XACK that follows this callback

    bus.subscribe("lugh_tasks", cancel_on_message)
    runner = asyncio.create_task(bus.run())
    try:
        await inbox.wait_for(None)
        await bus.publish("lugh_tasks", "stop")
        done, _ = await asyncio.wait({runner}, timeout=WAIT_S)
        assert runner in done and runner.cancelled()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await bus.aclose()
