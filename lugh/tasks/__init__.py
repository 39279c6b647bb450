"""Tasks and their dispatch: the model, the Postgres queue, the events bus, the worker pool."""

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

__all__ = [
    "FINISHED",
    "TASKS_CHANNEL",
    "TRANSITIONS",
    "Backoff",
    "IllegalTransition",
    "Task",
    "TaskError",
    "TaskNotFound",
    "TaskQueue",
    "TaskSource",
    "TaskStatus",
    "can_move",
]
