"""Time travel over agent runs (FEAT-033): a run as it was at step N, and forks from there."""

from lugh.replay.files import FileState
from lugh.replay.service import Fork, Replay, ReplayService
from lugh.replay.steps import Call, Step

__all__ = ["Call", "FileState", "Fork", "Replay", "ReplayService", "Step"]
