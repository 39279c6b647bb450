"""Per-token request rate limits for the HTTP transport (a token bucket per token)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`allow(key)`: True while `key` stays within `per_s` requests a second on average,
    with bursts of up to `burst`."""

    def __init__(
        self, per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_s, self.burst, self.clock = per_s, burst, clock
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        bucket = self._buckets.setdefault(key, _Bucket(float(self.burst), now))
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.per_s)
        bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def retry_after(self, key: str) -> int:
        bucket = self._buckets.get(key)
        missing = 1 - (bucket.tokens if bucket else 1)
        return max(1, int(missing / self.per_s + 0.999)) if self.per_s > 0 else 60
