"""Waiting on an asyncio.Event with a bound, without losing a cancellation."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set or `timeout` seconds pass; True when it was set.

    Not `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that arrives as the
    event is set, and a component told to stop would keep running.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
