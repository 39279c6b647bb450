import asyncio

import asyncpg

from lugh.tasks import Listener

from .conftest import WAIT_S


class Inbox:
    """A subscriber that keeps what it was told: payloads, and None for 'poll now'."""

    def __init__(self) -> None:
        self.items: list[str | None] = []
        self.changed = asyncio.Event()

    def __call__(self, payload: str | None) -> None:
        self.items.append(payload)
        self.changed.set()

    async def wait_for(self, item: str | None) -> None:
        async def seen() -> None:
            while item not in self.items:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(seen(), WAIT_S)


async def test_one_connection_delivers_every_channel_to_its_subscribers(
    listener: Listener, pool: asyncpg.Pool
):
    tasks, events = Inbox(), Inbox()
    listener.subscribe("lugh_tasks", tasks)
    listener.subscribe("lugh_events", events)
    await tasks.wait_for(None)  # the channel is listened: from here nothing is missed
    await events.wait_for(None)

    await pool.execute("SELECT pg_notify('lugh_tasks', '7'), pg_notify('lugh_events', 'e')")

    await tasks.wait_for("7")
    await events.wait_for("e")
    listening = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE query ILIKE 'LISTEN%' AND datname = current_database()"
    )
    assert listening == 1


async def test_an_unsubscribed_callback_hears_nothing_more(listener: Listener, pool):
    kept, dropped = Inbox(), Inbox()
    listener.subscribe("lugh_tasks", kept)
    unsubscribe = listener.subscribe("lugh_tasks", dropped)
    await kept.wait_for(None)
    unsubscribe()

    await pool.execute("SELECT pg_notify('lugh_tasks', '1')")

    await kept.wait_for("1")
    assert "1" not in dropped.items


async def test_a_terminated_listen_connection_reconnects_and_tells_subscribers_to_poll(
    listener: Listener, pool: asyncpg.Pool
):
    inbox = Inbox()
    listener.subscribe("lugh_tasks", inbox)
    await inbox.wait_for(None)
    first_pid = listener.backend_pid
    inbox.items.clear()

    assert await pool.fetchval("SELECT pg_terminate_backend($1)", first_pid)

    await inbox.wait_for(None)  # back, and asked to poll for what it may have missed
    assert listener.connections == 2 and listener.backend_pid != first_pid
    await pool.execute("SELECT pg_notify('lugh_tasks', 'after')")
    await inbox.wait_for("after")


async def test_a_listener_started_before_its_database_exists_keeps_trying(postgres):
    name = "late_database"
    listener = Listener(postgres.dsn(name), backoff=(0.05,))
    inbox = Inbox()
    listener.subscribe("lugh_tasks", inbox)
    runner = asyncio.create_task(listener.run())
    try:
        await postgres.clone(name)
        await inbox.wait_for(None)
        assert listener.connected.is_set()
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await postgres.drop(name)
