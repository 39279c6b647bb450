"""Low-priority notifications, batched: one silent message per chat and interval.

Each line is a row until its digest is queued, in the same transaction that marks it sent, so a
restart neither loses a waiting line nor sends one twice. A chat's digest goes out once its
oldest waiting line has waited `interval_s` (LUGH_DIGEST_MINUTES): digests are at least that
far apart, and a quiet day sends none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lugh.commands.reply import Reply
from lugh.db.queries import load
from lugh.services import Services
from lugh.transport.telegram.outbox import Outbox

if TYPE_CHECKING:
    from lugh.transport.telegram.notify import Deliver

Q = load(__file__, "digest")
MAX_LINES = 50  # per message; the rest wait for the next digest


class Digest:
    """Collects low-priority lines per chat and sends them together through `deliver`."""

    def __init__(
        self, services: Services, outbox: Outbox, deliver: Deliver, *, interval_s: float
    ) -> None:
        self.services = services
        self.pool = services.pool
        self.outbox = outbox
        self.deliver = deliver
        self.interval_s = interval_s

    async def add(self, chat_id: int, event_id: int, line: str) -> None:
        """Keep `line` for the chat's next digest (once per event, however often replayed)."""
        await self.pool.execute(Q.add, chat_id, event_id, line)

    async def flush(self) -> float | None:
        """Queue every digest that is due; the seconds until the next one is, or None."""
        for row in await self.pool.fetch(Q.due_chats, float(self.interval_s)):
            await self._send(row["chat_id"])
        return await self.pool.fetchval(Q.next_due, float(self.interval_s))

    async def prune(self) -> None:
        await self.pool.execute(Q.prune)

    async def _send(self, chat_id: int) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = (await conn.fetch(Q.waiting, chat_id))[:MAX_LINES]
            if not rows:
                return
            count = len(rows)
            heading = f"Digest: {count} quieter update{'' if count == 1 else 's'}."
            text = "\n".join([heading, *(f"• {r['line']}" for r in rows)])
            row = await self.deliver(
                self.services, self.outbox, chat_id, Reply(text, priority="low"), silent=True,
                dedupe_key=f"digest:{chat_id}:{rows[-1]['id']}", conn=conn,
            )  # fmt: skip
            await conn.execute(Q.sent, [r["id"] for r in rows], row)
