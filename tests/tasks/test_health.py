import asyncpg

from lugh.tasks import Listener
from lugh.tasks.health import (
    Percentiles,
    connections_level,
    dispatch_checks,
    latency_level,
    notify_queue_level,
    probe_latency,
)


async def test_a_healthy_database_reports_every_dispatch_signal_ok(pool: asyncpg.Pool, database):
    checks = await dispatch_checks(pool, database)

    assert [c.name for c in checks] == ["dispatch latency", "notify queue", "connections"]
    by_name = {c.name: c for c in checks}
    assert by_name["notify queue"].level == "ok"
    assert by_name["connections"].level == "ok"
    assert by_name["dispatch latency"].level in ("ok", "warn")  # a loaded machine may be noisy
    assert "floor" in by_name["dispatch latency"].detail


async def test_the_probe_can_ride_the_processes_own_listener(
    pool: asyncpg.Pool, database, listener: Listener
):
    floor, dispatch = await probe_latency(pool, database, listener, samples=5)
    again, _ = await probe_latency(pool, database, listener, samples=5)  # channel already heard

    assert 0 < floor.p50_ms <= floor.p99_ms and 0 < dispatch.p50_ms and again.p50_ms > 0


async def test_a_claim_that_scans_every_queued_task_is_reported(
    pool: asyncpg.Pool, database, project_id
):
    # A burst into a table whose statistics say it is empty: until autovacuum analyzes it, the
    # planner sorts every queued task for each claim instead of walking the claimable index.
    await pool.execute("VACUUM ANALYZE tasks")
    await pool.execute(
        "INSERT INTO tasks (project_id, title) SELECT $1, 'burst' FROM generate_series(1, 30000)",
        project_id,
    )

    floor, dispatch = await probe_latency(pool, database, samples=10)

    assert latency_level(floor, dispatch) != "ok", (floor, dispatch)


def test_latency_levels_compare_the_claim_path_with_the_floor():
    floor = Percentiles(0.3, 0.5)
    assert latency_level(floor, Percentiles(0.5, 0.9)) == "ok"
    assert latency_level(floor, Percentiles(3.0, 4.0)) == "warn"
    assert latency_level(floor, Percentiles(20.0, 30.0)) == "fail"
    assert latency_level(Percentiles(80.0, 90.0), Percentiles(90.0, 100.0)) == "warn"


def test_notify_queue_levels_follow_waits_and_usage():
    assert notify_queue_level(0.0, 0.0) == "ok"
    assert notify_queue_level(0.5, 0.0) == "warn"
    assert notify_queue_level(0.0, 0.6) == "warn"
    assert notify_queue_level(0.0, 0.95) == "fail"


def test_connection_levels_follow_the_share_in_use():
    assert connections_level(10, 97) == "ok"
    assert connections_level(80, 97) == "warn"
    assert connections_level(95, 97) == "fail"
