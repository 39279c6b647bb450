"""One owner chat while an update is handled: where replies go and how commands run there.

The bot builds a `Chat` per update and hands it to the handlers (text, callbacks, reactions,
voice, photos, documents). Handlers answer with a `Reply`; the bot renders and queues it. A
handler that shows progress (a document being ingested) queues and edits its own message through
`outbox` (`enqueue(chat_id, "sendMessage", ...)`, then `edit_or_send(chat_id, row, text)`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from telegram import Bot

from lugh.commands.intents import Chooser
from lugh.commands.registry import Context
from lugh.services import Services
from lugh.transport.telegram.outbox import Outbox


@dataclass
class Chat:
    services: Services
    bot: Bot  # for downloads (get_file); messages go through `outbox`, never straight to the bot
    outbox: Outbox
    chat_id: int
    user_id: int
    ctx: Context  # the chat's session; source "telegram"
    chooser: Chooser | None = None  # the model behind plain language (choose_action), if any

    def from_source(self, source: str) -> Context:
        """The command context for input that arrived as `source` (voice, photo)."""
        return replace(self.ctx, source=source)
