"""What an ingestion reports: progress while it runs, and its result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str  # one sentence for a person


@dataclass
class IngestResult:
    """What an ingestion did: documents stored (new or changed), left as they were, removed
    (their files are gone), the chunks written, and what was skipped and why."""

    documents: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    def add(self, other: IngestResult) -> IngestResult:
        self.documents += other.documents
        self.unchanged += other.unchanged
        self.removed += other.removed
        self.chunks += other.chunks
        self.skipped += other.skipped
        return self


@dataclass(frozen=True)
class Progress:
    done: int  # documents finished: stored, unchanged or skipped
    total: int
    chunks: int  # chunks written so far
    path: str  # the document just finished


ProgressCallback = Callable[[Progress], None]
