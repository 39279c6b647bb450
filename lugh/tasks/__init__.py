"""Tasks and their dispatch: the model, the Postgres queue, the events bus, the worker pool."""

from lugh.tasks.bus import Bus, BusUnavailable, PostgresBus, make_bus
from lugh.tasks.events import EVENTS_CHANNEL, Events, Subscription, TaskEvent
from lugh.tasks.executor import ExecutionResult, Executor, TaskContext, TaskFailed
from lugh.tasks.listener import Listener
from lugh.tasks.model import (
    FINISHED,
    TRANSITIONS,
    IllegalTransition,
    Task,
    TaskError,
    TaskNotFound,
    TaskSource,
    TaskStatus,
    can_move,
)
from lugh.tasks.queue import TASKS_CHANNEL, Backoff, TaskQueue
from lugh.tasks.worker import WorkerPool

__all__ = [
    "EVENTS_CHANNEL",
    "FINISHED",
    "TASKS_CHANNEL",
    "TRANSITIONS",
    "Backoff",
    "Bus",
    "BusUnavailable",
    "Events",
    "ExecutionResult",
    "Executor",
    "IllegalTransition",
    "Listener",
    "PostgresBus",
    "Subscription",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskEvent",
    "TaskFailed",
    "TaskNotFound",
    "TaskQueue",
    "TaskSource",
    "TaskStatus",
    "WorkerPool",
    "can_move",
    "make_bus",
]
