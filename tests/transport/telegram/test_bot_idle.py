"""An idle bot leaves the database alone: with nothing to send, the outbox sender sleeps until
woken or its poll interval, instead of asking every millisecond what is due."""

from lugh.transport.telegram.outbox import Q, Outbox


async def test_nothing_waiting_in_the_outbox_means_no_due_time(pool):
    assert await pool.fetchval(Q.seconds_to_next_due, []) is None
    await Outbox(pool).enqueue(7, "sendMessage", {"text": "hi"})
    assert await pool.fetchval(Q.seconds_to_next_due, []) <= 0  # due now
    assert await pool.fetchval(Q.seconds_to_next_due, [7]) is None  # that chat is in flight
