"""Telegram's flood limits as send slots: about one message a second per chat, 30 overall."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    per_chat_per_s: float = 1.0
    overall_per_s: float = 30.0


class Pacer:
    """Hands out send times: a bucket of one token per chat and one overall, so messages are
    evenly spaced and no burst ever exceeds the limits. A slot is reserved without awaiting, so
    concurrent senders each get a distinct one."""

    def __init__(
        self, limits: Limits = Limits(), clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self.clock = clock
        self._chat_next: dict[int, float] = {}
        self._overall_next = 0.0

    def reserve(self, chat_id: int) -> float:
        """Seconds to wait before sending to `chat_id` (the slot is taken)."""
        now = self.clock()
        at = max(now, self._chat_next.get(chat_id, 0.0), self._overall_next)
        self._chat_next[chat_id] = at + 1.0 / self.limits.per_chat_per_s
        self._overall_next = at + 1.0 / self.limits.overall_per_s
        return at - now

    def hold(self, chat_id: int, seconds: float) -> None:
        """Telegram asked to wait (429): nothing more to this chat for `seconds`."""
        self._chat_next[chat_id] = max(self._chat_next.get(chat_id, 0.0), self.clock() + seconds)
