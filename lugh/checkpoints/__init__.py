"""Checkpoints: save a project's whole state (git, rows, agents' conversations) and restore it."""

from lugh.checkpoints.archive import DamagedCheckpoint
from lugh.checkpoints.model import KINDS, Checkpoint, RestorePlan, RestoreReport
from lugh.checkpoints.retention import Keep, Retention
from lugh.checkpoints.service import CheckpointService, CleanReport

__all__ = [
    "KINDS",
    "Checkpoint",
    "CheckpointService",
    "CleanReport",
    "DamagedCheckpoint",
    "Keep",
    "RestorePlan",
    "RestoreReport",
    "Retention",
]
