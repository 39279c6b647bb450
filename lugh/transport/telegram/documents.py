"""Documents: PDF, Markdown, text and code files ingested into the current project's knowledge,
with one progress message edited in place that ends as the summary."""

from __future__ import annotations

import html
import time

import telegram
from telegram.error import TelegramError

from lugh.commands.projects import current_project
from lugh.commands.reply import Reply
from lugh.db import queries
from lugh.errors import UserError
from lugh.knowledge.chunking import is_secret, kind_of, size_limit
from lugh.knowledge.chunking.documents import SUPPORTED, human_size
from lugh.knowledge.silos import DEFAULT_SILO
from lugh.logs import get_logger
from lugh.transport.telegram.chat import Chat

log = get_logger("lugh.transport.telegram.documents")
Q = queries.load(__file__, "documents")
SUFFIXES = {"application/pdf": ".pdf", "text/markdown": ".md", "text/plain": ".txt"}
EDIT_EVERY_S = 2.0  # Telegram allows about one edit a second per chat; leave room for others


class ProgressMessage:
    """One message shown while work goes on, edited in place at most every `every_s` seconds;
    the last word (`finish`) is always shown."""

    def __init__(self, chat: Chat, every_s: float = EDIT_EVERY_S) -> None:
        self.chat = chat
        self.every_s = every_s
        self.row: int | None = None
        self.shown_at = 0.0

    async def show(self, text: str) -> None:
        now = time.monotonic()
        if self.row is None:
            self.row = await self.chat.outbox.enqueue(
                self.chat.chat_id, "sendMessage", {"text": text, "parse_mode": "HTML"}
            )
            self.shown_at = now
        elif now - self.shown_at >= self.every_s:
            await self.finish(text)

    async def finish(self, text: str) -> None:
        if self.row is None:
            await self.show(text)
            return
        await self.chat.outbox.edit_or_send(self.chat.chat_id, self.row, text)
        self.shown_at = time.monotonic()


async def on_document(chat: Chat, message: telegram.Message) -> Reply | None:
    """Ingest a document; the progress message carries the outcome, so nothing is returned
    once it exists. Refusals before any download are a Reply."""
    document = message.document
    if document is None:
        return None
    name = _named(document.file_name, document.mime_type)
    refusal = _refusal(name, document.file_size, chat.services.settings.upload_max_bytes)
    if refusal:
        return Reply.refused(refusal)
    ctx = chat.from_source("telegram")
    try:
        project = await current_project(ctx)
    except UserError as exc:
        return Reply.refused(str(exc))
    shown, where = f"<b>{html.escape(name)}</b>", html.escape(project.name)
    progress = ProgressMessage(chat)
    await progress.show(f"📄 Downloading {shown}…")
    try:
        data = bytes(await (await chat.bot.get_file(document.file_id)).download_as_bytearray())
    except TelegramError as exc:
        log.warning("document download failed", error=str(exc))
        await progress.finish(f"📄 I couldn't download {shown} from Telegram; send it again.")
        return None
    await progress.show(f"📄 Reading {shown} ({human_size(len(data))}) into {where}…")
    paths: list[str] = []
    try:
        result = await chat.services.knowledge.ingest_bytes(
            project.name, name, data, on_progress=lambda p: paths.append(p.path)
        )
    except UserError as exc:
        await progress.finish(f"📄 {html.escape(str(exc))}")
        return None
    if result.skipped:
        reason = result.skipped[0].reason
        await progress.finish(f"📄 Nothing was added: {html.escape(reason)}")
        return None
    if result.unchanged:
        await progress.finish(f"📄 {shown} is already in {where}'s knowledge, unchanged.")
        return None
    stored = paths[-1] if paths else name
    row = await chat.services.pool.fetchrow(Q.summary, project.name, DEFAULT_SILO, stored)
    await progress.finish(f"📄 Added {shown} to {where}'s knowledge: "
                          f"{_parts(row, result.chunks)}. Ask about it with /ask.")  # fmt: skip
    return None


def _named(file_name: str | None, mime_type: str | None) -> str:
    """The file's name, with the suffix its MIME type implies when it has none (the suffix is
    what decides how a file is read)."""
    name = (file_name or "").strip() or "upload"
    if "." not in name.lstrip("."):
        name += SUFFIXES.get((mime_type or "").split(";")[0].strip().lower(), "")
    return name


def _refusal(name: str, size: int | None, upload_max: int) -> str | None:
    """Why this file is not read (one sentence), decided from its name and size alone."""
    if is_secret(name):
        return f"{name} may hold keys or passwords, so I don't add it to the knowledge base."
    kind = kind_of(name)
    if kind is not None and kind[0] == "unsupported":
        return f"I can't read {name}: I add {SUPPORTED} files to the knowledge base."
    limit = min(upload_max, size_limit(name))
    if size and size > limit:
        return f"{name} is {human_size(size)}, over the {human_size(limit)} I read from one file."
    return None


def _parts(row, chunks: int) -> str:
    said = [f"{chunks} chunk" + ("" if chunks == 1 else "s")]
    if row is not None and row["pages"]:
        said.append(f"{row['pages']} page" + ("" if row["pages"] == 1 else "s"))
    elif row is not None and row["sections"]:
        said.append(f"{row['sections']} section" + ("" if row["sections"] == 1 else "s"))
    return " from ".join(said)
