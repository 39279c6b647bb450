"""Who may use the bot: the owner, and nobody else.

Owners are TELEGRAM_ALLOWED_USER_IDS plus whoever paired with `/start <code>`. Without either,
a one-time pairing code is made at start and printed in the log; only its sha256 is stored, and
using it deletes it in the same transaction that records the owner, so it works once. Everyone
else is told once that the bot is private (remembered in the database, so not after a restart
either) and otherwise ignored.
"""

from __future__ import annotations

import hashlib
import secrets

import asyncpg

from lugh.db.queries import load

Q = load(__file__, "access")

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
CODE_LENGTH = 10  # 50 bits: guessing it over the Bot API is hopeless


class Access:
    def __init__(self, pool: asyncpg.Pool, allowed: list[int]) -> None:
        self.pool = pool
        self.allowed = frozenset(allowed)
        self.owners: set[int] = set(allowed)

    async def load(self) -> str | None:
        """Read the paired owners; when there is no owner at all, return a new pairing code."""
        paired = await self.pool.fetch(Q.owners)
        self.owners = set(self.allowed) | {r["user_id"] for r in paired}
        if self.owners:
            return None
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        await self.pool.execute(Q.set_code, _hash(code))
        return code

    def is_owner(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.owners

    async def pair(self, user_id: int, code: str) -> bool:
        """Make `user_id` an owner if `code` is the pairing code (which is then used up)."""
        wanted = code.strip().upper().replace("-", "").replace(" ", "")
        if not wanted:
            return False
        if await self.pool.fetchval(Q.pair, _hash(wanted), user_id) is None:
            return False
        self.owners.add(user_id)
        return True

    async def refuse_once(self, user_id: int) -> bool:
        """True the first time `user_id` is refused (tell them), False after that."""
        return await self.pool.fetchval(Q.refuse, user_id) is not None


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
