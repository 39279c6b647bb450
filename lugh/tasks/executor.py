"""What runs a task: the Executor protocol, its result, and the context it gets from the pool."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from lugh.tasks.events import Events
from lugh.tasks.model import Task
from lugh.tasks.queue import TaskQueue


@dataclass(frozen=True)
class ExecutionResult:
    status: Literal["awaiting_review", "done"] = "done"
    result: Any = None
    # The executor moved the task itself (under its lease): the pool records nothing more.
    recorded: bool = False


class TaskFailed(Exception):
    """An executor's attempt failed; with `retry=False` the task fails at once, no more attempts."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class TaskContext:
    """What an executor gets besides its task: its lease, progress events, and whether to stop.

    The pool heartbeats on its own; when the lease is lost (the task was cancelled, or requeued
    after the lease expired) `lost` is set and the executor's asyncio task is cancelled, unless
    the executor said it is `finishing`: then it is moving the task out of `running` itself.
    """

    def __init__(
        self, task: Task, queue: TaskQueue, events: Events | None, lease_s: float
    ) -> None:
        self.task = task
        self.lease_s = lease_s
        self.lost = asyncio.Event()
        self.finishing = False
        self._queue = queue
        self._events = events

    @property
    def token(self) -> int:
        return self.task.lease_token

    @property
    def cancelled(self) -> bool:
        return self.lost.is_set()

    def finish_here(self) -> None:
        """The executor now moves the task itself (to review, or to wait for an approval), in
        statements fenced by its lease: the pool keeps renewing the lease but no longer cancels
        the executor when the task leaves `running`, and the executor returns `recorded=True`."""
        self.finishing = True

    async def heartbeat(self) -> bool:
        """Renew the lease now; False (and `lost` set) when it is no longer ours."""
        if self.lost.is_set():
            return False
        ok = await self._queue.heartbeat(self.task.id, self.token, self.lease_s)
        if not ok:
            self.lost.set()
        return ok

    async def progress(self, kind: str, data: Mapping[str, Any] | None = None) -> bool:
        """Publish a progress event for the task, only while the lease is ours."""
        if self._events is None or self.lost.is_set():
            return False
        return await self._events.publish_fenced(self.task.id, self.token, kind, data) is not None


class Executor(Protocol):
    """Runs one task. Return the outcome, raise TaskFailed (or anything) for a failed attempt."""

    async def execute(self, task: Task, ctx: TaskContext) -> ExecutionResult: ...
