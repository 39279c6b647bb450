"""Sandboxes built ahead of their command, so a run's `run_command` does not wait for one.

Building a bubblewrap sandbox (namespaces, the network namespace above all, and the mounts) takes
10–15 ms, most of a short command's time. A run that will run commands asks for them ahead
(`prepare`); from then on one sandbox for its worktree is always being built or waiting, its shell
blocked reading the command from stdin, while the model thinks. A command takes the waiting one,
and the next is built behind it. Each sandbox still serves exactly one command, with its own pids
cgroup, rlimits, timeout and kill of everything it left: what the escape suite proves of a sandbox
holds for these unchanged; only the moment the command arrives is later.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Protocol

from lugh.agents.sandbox.base import CommandResult
from lugh.logs import get_logger

log = get_logger("lugh.agents.sandbox")


class Waiting(Protocol):
    """A sandbox built and waiting for its one command."""

    @property
    def alive(self) -> bool: ...

    async def run(self, command: str, timeout_s: float) -> CommandResult: ...

    async def discard(self) -> None: ...


class WarmSandboxes:
    """At most one sandbox waiting (or being built) per key, for the keys someone prepared."""

    def __init__(self, build: Callable[[Hashable], Awaitable[Waiting]]) -> None:
        self._build = build
        self._wanted: dict[Hashable, int] = {}  # how many runs prepared each key
        self._next: dict[Hashable, asyncio.Task[Waiting]] = {}

    def prepare(self, key: Hashable) -> None:
        """Keep a sandbox ready for `key` until as many `release`s as `prepare`s came."""
        self._wanted[key] = self._wanted.get(key, 0) + 1
        self.refill(key)

    async def release(self, key: Hashable) -> None:
        left = self._wanted.get(key, 0) - 1
        if left > 0:
            self._wanted[key] = left
            return
        self._wanted.pop(key, None)
        building = self._next.pop(key, None)
        if building is not None:
            await _discard_when_built(building)

    async def take(self, key: Hashable) -> Waiting | None:
        """The sandbox waiting for `key` (waiting for its build if it is not done yet); None
        when there is none, or it could not be built. `refill` once its command is over."""
        building = self._next.pop(key, None)
        if building is None:
            return None
        try:
            waiting = await asyncio.shield(building)
        except asyncio.CancelledError:
            building.add_done_callback(_discard_later)
            raise
        except Exception as exc:  # the caller builds one the slow way, and says why it fails
            log.info("a sandbox built ahead failed; building one now", error=repr(exc))
            return None
        if not waiting.alive:  # e.g. killed from outside meanwhile
            await waiting.discard()
            return None
        return waiting

    async def close(self) -> None:
        self._wanted.clear()
        building, self._next = list(self._next.values()), {}
        for task in building:
            await _discard_when_built(task)

    def refill(self, key: Hashable) -> None:
        """Start building the next sandbox for `key`, if it is still wanted. Called once a
        command is over rather than when it starts, so the build does not compete with it for
        the CPU: it overlaps the model's next turn instead."""
        if key in self._wanted and key not in self._next:
            self._next[key] = asyncio.create_task(self._build(key), name="sandbox-ahead")


async def _discard_when_built(building: asyncio.Task[Waiting]) -> None:
    with contextlib.suppress(Exception):
        waiting = await asyncio.shield(building)
        await waiting.discard()


def _discard_later(building: asyncio.Task[Waiting]) -> None:
    if building.cancelled() or building.exception() is not None:
        return
    task = asyncio.get_running_loop().create_task(building.result().discard())
    _LATE.add(task)
    task.add_done_callback(_LATE.discard)


_LATE: set[asyncio.Task[None]] = set()  # discards under way, kept from the garbage collector
