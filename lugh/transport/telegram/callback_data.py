"""`callback_data` for inline buttons: a button's id and a MAC, never the action itself.

Telegram hands callback data back verbatim from whoever presses, so it is untrusted input. The
MAC (HMAC-SHA256 over the chat and the id, with a per-instance secret kept in the database)
makes a forged id, or one copied from another chat, fail before anything is looked up. The
result stays far below Telegram's 64 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import weakref

from lugh.db.queries import load
from lugh.transport.telegram.outbox import Outbox

Q = load(__file__, "callback_data")

BUTTON_TTL_S = 7 * 24 * 3600  # a keyboard not bound to an expiring approval lasts a week
MAC_BYTES = 12
_known: weakref.WeakKeyDictionary[Outbox, bytes] = weakref.WeakKeyDictionary()


async def callback_secret(outbox: Outbox) -> bytes:
    """The instance's signing secret, created on first use (it never changes, so it is read
    once per outbox, i.e. per pool)."""
    known = _known.get(outbox)
    while known is None:
        # None when another process stored its secret between this statement's snapshot and its
        # insert (ON CONFLICT waited for that commit, then saw nothing): read it again.
        value = await outbox.pool.fetchval(Q.secret, secrets.token_urlsafe(32))
        if value is not None:
            known = _known[outbox] = value.encode()
    return known


def sign(secret: bytes, chat_id: int, button_id: int) -> str:
    return f"{button_id}.{_mac(secret, chat_id, button_id)}"


def verify(secret: bytes, chat_id: int, data: str) -> int | None:
    """The button id `data` names, or None when it was not made by us for this chat."""
    ref, _, mac = (data or "").partition(".")
    if not ref.isdigit() or len(ref) > 19:
        return None
    if not hmac.compare_digest(mac, _mac(secret, chat_id, int(ref))):
        return None
    return int(ref)


def _mac(secret: bytes, chat_id: int, button_id: int) -> str:
    digest = hmac.new(secret, f"{chat_id}:{button_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:MAC_BYTES]).decode().rstrip("=")
