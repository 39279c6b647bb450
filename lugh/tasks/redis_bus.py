"""The bus over Redis Streams (FEAT-019): one stream per channel, read through consumer groups.

Each entry is delivered once per consumer group. By default every process is a group of its own,
so it hears every message as it would hear a NOTIFY; processes given the same `group` share the
deliveries (each entry to one of them), and entries a dead member read but never acknowledged are
taken over with XAUTOCLAIM once idle for `claim_idle_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from lugh.logs import get_logger
from lugh.tasks.bus import BusUnavailable
from lugh.tasks.listener import RECONNECT_BACKOFF_S, Callback
from lugh.tasks.waiting import to_the_end, wait_event

log = get_logger("lugh.tasks.redis_bus")

FIELD = "p"
PRIVATE = "p:"  # prefix of the groups of one process, pruned once every consumer is gone
_LOST = (RedisError, OSError)


def _client(url: str, timeout_s: float | None, connect_s: float) -> Redis:
    # No library retries: a bus that is down must say so at once; run() owns reconnecting.
    return Redis.from_url(
        url,
        decode_responses=True,
        protocol=2,
        socket_timeout=timeout_s,
        socket_connect_timeout=connect_s,
        retry=Retry(NoBackoff(), 0),
    )


class RedisBus:
    """The Bus over Redis Streams: XADD (MAXLEN ~), XREADGROUP BLOCK, XACK, XAUTOCLAIM."""

    name = "bus"
    hears_sql_notify = False

    def __init__(
        self,
        url: str,
        *,
        group: str | None = None,
        consumer: str | None = None,
        prefix: str = "lugh:",
        maxlen: int = 10_000,
        block_s: float = 5.0,
        claim_idle_s: float = 30.0,
        stale_s: float = 600.0,
        timeout_s: float = 1.0,
        backoff: tuple[float, ...] = RECONNECT_BACKOFF_S,
    ) -> None:
        self.url = url
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.group = group or PRIVATE + self.consumer
        self.prefix = prefix
        self.maxlen = maxlen
        self.block_s = block_s
        self.claim_idle_s = claim_idle_s
        self.stale_s = stale_s  # a private group whose consumers were all this idle is dropped
        self.timeout_s = timeout_s
        self.backoff = backoff
        self.connected = asyncio.Event()
        self.connections = 0  # how many times a connection was made (1 + reconnects)
        self._callbacks: defaultdict[str, list[Callback]] = defaultdict(list)
        self._kick = asyncio.Event()
        self._writer: Redis | None = None
        self._down_until = 0.0
        self._publish_failing = False

    @property
    def where(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 6379}"

    def stream(self, channel: str) -> str:
        return self.prefix + channel

    def subscribe(self, channel: str, callback: Callback) -> Callable[[], None]:
        """Call `callback` for every message on `channel`; returns the unsubscribe."""
        self._callbacks[channel].append(callback)
        self._kick.set()

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks[channel].remove(callback)

        return unsubscribe

    async def publish(self, channel: str, payload: str) -> None:
        """Append to the channel's stream; BusUnavailable when Redis cannot be reached (and,
        for `timeout_s` after, without trying, so a dead Redis does not slow every enqueue)."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._down_until:
            raise BusUnavailable(f"Redis at {self.where} was unreachable a moment ago.")
        if self._writer is None:
            self._writer = _client(self.url, self.timeout_s, self.timeout_s)
        try:
            await self._writer.xadd(
                self.stream(channel), {FIELD: payload}, maxlen=self.maxlen, approximate=True
            )
            _honour_swallowed_cancel()
        except _LOST as exc:
            self._down_until = loop.time() + self.timeout_s
            if not self._publish_failing:
                log.warning("cannot publish to redis; workers will poll", error=repr(exc))
            self._publish_failing = True
            raise BusUnavailable(f"Redis at {self.where} is unreachable: {exc}") from exc
        if self._publish_failing:
            log.info("publishing to redis again", redis=self.where)
            self._publish_failing = False

    async def aclose(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.aclose()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        reader = _client(self.url, self.block_s + 5.0, self.timeout_s)
        failures = 0
        try:
            while True:
                started = loop.time()
                try:
                    await self._serve(reader)
                except _LOST as exc:
                    log.warning("redis bus connection lost; reconnecting", error=repr(exc))
                finally:
                    self.connected.clear()
                if loop.time() - started > self.backoff[-1]:
                    failures = 0
                await asyncio.sleep(self.backoff[min(failures, len(self.backoff) - 1)])
                failures += 1
        finally:
            await to_the_end(self._close(reader))

    async def _close(self, reader: Redis) -> None:
        with contextlib.suppress(*_LOST):
            async with asyncio.timeout(self.timeout_s):
                await self._leave(reader)
        await reader.aclose()
        await self.aclose()

    async def _serve(self, reader: Redis) -> None:
        listening: set[str] = set()
        # Where each stream is read from: "0" is this consumer's own delivered-but-unacked
        # entries (a read cut short leaves some), ">" is what no consumer of the group has had.
        position: dict[str, str] = {}
        claim_at = 0.0
        loop = asyncio.get_running_loop()
        await reader.ping()
        while True:
            _honour_swallowed_cancel()
            self._kick.clear()
            new = [c for c in self._callbacks if c not in listening]
            for channel in new:
                await self._join(reader, channel)
                listening.add(channel)
                position[self.stream(channel)] = "0"
            if not self.connected.is_set():
                await self._prune(reader, listening)
                self.connections += 1
                self._down_until = 0.0  # Redis is back: publish again at once
                self.connected.set()
                log.info("redis bus listening", channels=sorted(listening), redis=self.where)
            for channel in new:
                self._fan_out(channel, None)
            if loop.time() >= claim_at:
                await self._take_over(reader, listening)
                claim_at = loop.time() + self.claim_idle_s
            if not position:
                await wait_event(self._kick, self.block_s)
                await reader.ping()  # a connection cut without a FIN only shows when used
                continue
            block_s = min(self.block_s, max(claim_at - loop.time(), 0.001))
            if not await self._read(reader, position, block_s):
                for stream in position:  # cut short: what was delivered meanwhile is pending
                    position[stream] = "0"

    async def _read(self, reader: Redis, position: dict[str, str], block_s: float) -> bool:
        """One XREADGROUP, or until kicked by a new subscription; False when kicked."""
        history = any(p == "0" for p in position.values())
        read = asyncio.ensure_future(
            reader.xreadgroup(
                self.group,
                self.consumer,
                dict(position),
                count=100,
                block=None if history else max(1, int(block_s * 1000)),
            )
        )
        kicked = asyncio.ensure_future(self._kick.wait())
        try:
            await asyncio.wait({read, kicked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            kicked.cancel()
            if not read.done():
                read.cancel()  # redis-py may still finish it, failing once the group is gone
            # Retrieved whatever happens: when this task is cancelled just as the read fails,
            # nothing else would look at its exception and asyncio would log it at exit.
            read.add_done_callback(_quietly)
        if not read.done() or read.cancelled():
            return False
        try:
            reply = read.result()
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # Redis restarted empty, or a group was pruned
                raise ConnectionResetError(str(exc)) from exc
            raise
        for stream, entries in _streams(reply):
            if position.get(stream) == "0" and not entries:
                position[stream] = ">"  # this consumer's history is done
            await self._deliver(reader, stream, entries)
        return True

    async def _deliver(self, reader: Redis, stream: str, entries: list[Any]) -> None:
        if not entries:
            return
        channel = stream[len(self.prefix) :]
        for _id, fields in entries:
            if fields:  # None: trimmed away since it was delivered
                self._fan_out(channel, fields.get(FIELD))
        await reader.xack(stream, self.group, *[entry_id for entry_id, _ in entries])

    async def _join(self, reader: Redis, channel: str) -> None:
        try:
            await reader.xgroup_create(self.stream(channel), self.group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _take_over(self, reader: Redis, channels: set[str]) -> None:
        """Claim and deliver the entries other consumers of the group read but never acked."""
        idle_ms = int(self.claim_idle_s * 1000)
        for channel in channels:
            stream, start = self.stream(channel), "0-0"
            while True:
                reply = await reader.xautoclaim(
                    stream, self.group, self.consumer, idle_ms, start_id=start, count=100
                )
                start, entries = reply[0], reply[1]
                if entries:
                    log.info("took over unacknowledged messages", channel=channel, n=len(entries))
                    await self._deliver(reader, stream, entries)
                if start in ("0-0", b"0-0"):
                    break

    async def _prune(self, reader: Redis, channels: set[str]) -> None:
        """Drop the private groups of processes long gone (killed before they could)."""
        stale_ms = self.stale_s * 1000
        for channel in channels:
            stream = self.stream(channel)
            for group in await reader.xinfo_groups(stream):
                name = group["name"]
                if not name.startswith(PRIVATE) or name == self.group:
                    continue
                consumers = await reader.xinfo_consumers(stream, name)
                if all(c["idle"] >= stale_ms for c in consumers):
                    await reader.xgroup_destroy(stream, name)
                    log.info("dropped the group of a process gone", channel=channel, group=name)

    async def _leave(self, reader: Redis) -> None:
        for channel in list(self._callbacks):
            stream = self.stream(channel)
            with contextlib.suppress(ResponseError):  # a stream or group already gone
                if self.group.startswith(PRIVATE):
                    await reader.xgroup_destroy(stream, self.group)
                    continue
                mine = await reader.xpending_range(
                    stream, self.group, min="-", max="+", count=1, consumername=self.consumer
                )
                if not mine:  # with entries pending, they stay for another to take over
                    await reader.xgroup_delconsumer(stream, self.group, self.consumer)

    def _fan_out(self, channel: str, payload: str | None) -> None:
        for callback in list(self._callbacks.get(channel, ())):
            try:
                callback(payload)
            except Exception:
                log.exception("bus callback failed", channel=channel)


def _quietly(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so that asyncio does not log it


def _honour_swallowed_cancel() -> None:
    # redis-py can swallow a cancellation that lands mid-command (redis/redis-py#2028 and its
    # kin; seen here with 8.x on XACK): honour it, or a component told to stop would run on.
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _streams(reply: Any) -> list[tuple[str, list[Any]]]:
    """XREADGROUP's RESP2 reply as (stream, entries) pairs."""
    return [(stream, entries) for stream, entries in reply or ()]
