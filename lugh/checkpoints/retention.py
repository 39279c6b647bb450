"""How long each kind of checkpoint is kept (LUGH_CHECKPOINT_KEEP_* settings)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Keep:
    """At most `count` per project (None: any number), none older than `age` (None: forever)."""

    age: timedelta | None = None
    count: int | None = None

    def expired(self, created_at: datetime, rank: int, now: datetime) -> bool:
        too_many = self.count is not None and rank > self.count
        too_old = self.age is not None and now - created_at > self.age
        return too_many or too_old


@dataclass(frozen=True)
class Retention:
    manual: Keep = Keep()  # kept until deleted
    merge: Keep = Keep(timedelta(days=30), 50)
    daily: Keep = Keep(timedelta(days=7), 7)
    pre_operation: Keep = Keep(timedelta(hours=24), 10)

    @classmethod
    def from_settings(cls, settings: Any) -> Retention:
        return cls(
            merge=Keep(
                timedelta(days=settings.checkpoint_keep_merge_days),
                settings.checkpoint_keep_merge_count,
            ),
            daily=Keep(
                timedelta(days=settings.checkpoint_keep_daily),
                settings.checkpoint_keep_daily,
            ),
            pre_operation=Keep(
                timedelta(hours=settings.checkpoint_keep_pre_operation_hours),
                settings.checkpoint_keep_pre_operation_count,
            ),
        )

    def of(self, kind: str) -> Keep:
        return getattr(self, kind)


def expired_ids(
    retention: Retention, kind: str, rows: list[asyncpg.Record], now: datetime
) -> list[int]:
    keep = retention.of(kind)
    return [r["id"] for r in rows if keep.expired(r["created_at"], r["rank"], now)]
