"""The notifier running for tests: the listener, the real outbox sender with the real PTB Bot
against the fake Bot API, and the Notifier, stopped the way the Telegram bot stops them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from telegram import Bot

from lugh.app import run_components
from lugh.projects import Project
from lugh.services import Services
from lugh.tasks import Task, TaskStatus
from lugh.transport.telegram.notify import Notifier
from lugh.transport.telegram.outbox import Outbox, OutboxSender
from lugh.transport.telegram.pacing import Limits
from lugh.transport.telegram.render import deliver
from tests.fakes.telegram import TOKEN, FakeTelegram, RateLimits

OWNER_CHAT = 1001
BOUND_S = 20.0
FAKE_LIMITS = RateLimits(per_chat_per_s=50, overall_per_s=100)
FAST = Limits(per_chat_per_s=40, overall_per_s=80)
# The notifier's clock unless a test names another: midday, so a test never depends on whether
# CI runs it inside the quiet hours some fixtures set.
MIDDAY = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)


@asynccontextmanager
async def notifying(
    services: Services, fake: FakeTelegram, chats: tuple[int, ...] = (OWNER_CHAT,), **kw: Any
) -> AsyncIterator[Notifier]:
    """The notifier telling `chats` until the block ends, then stopped as `lugh run` stops it."""

    async def owner_chats() -> list[int]:
        return list(chats)

    kw.setdefault("owner_chats", owner_chats)
    kw.setdefault("poll_s", 0.2)
    kw.setdefault("progress_s", 1.0)
    kw.setdefault("clock", lambda: MIDDAY)
    kw.setdefault("deliver", deliver)
    async with Bot(TOKEN, base_url=f"{fake.url}/bot", base_file_url=f"{fake.url}/file/bot") as bot:
        outbox = Outbox(services.pool)
        sender = OutboxSender(services.pool, bot, listener=services.listener, limits=FAST)
        notifier = Notifier(services, outbox, **kw)
        stop = asyncio.Event()
        listening = asyncio.create_task(run_components([services.listener], stop))
        notifying = asyncio.create_task(notifier.run())
        sending = asyncio.create_task(sender.run())
        try:
            await asyncio.wait_for(notifier.ready.wait(), BOUND_S)
            yield notifier
        finally:
            # As the bot does: the notifier finishes its batch, then the sender what is in flight
            # (cancelling it mid-call would leave a row `sending` until its lease runs out).
            await notifier.stop()
            await asyncio.wait_for(notifying, BOUND_S)
            await sender.stop()
            await asyncio.wait_for(sending, BOUND_S)
            stop.set()
            await asyncio.wait_for(listening, BOUND_S)


async def running_task(services: Services, project: Project, title: str, **kw: Any) -> Task:
    """A task claimed by a worker, as an agent would have it."""
    kw.setdefault("source", "console")  # a chat front door: no "queued" notice
    queued = await services.tasks.enqueue(project.id, title, **kw)
    task = await services.tasks.claim("test-worker", 60)
    assert task is not None and task.id == queued.id
    return task


async def in_review(services: Services, project: Project, files: dict[str, str],
                    title: str = "Add a greeting") -> Task:  # fmt: skip
    """A task whose agent wrote `files` and which now waits for the owner's review."""
    task = await running_task(services, project, title)
    wt = await services.worktrees.create(project, task.id, task.title)
    for name, content in files.items():
        target = Path(wt.path) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    review = await services.review.submit(task, "wrote it")
    assert review.status is TaskStatus.AWAITING_REVIEW
    return task


def labels(markup: dict[str, Any] | None) -> list[str]:
    return [b["text"] for row in (markup or {}).get("inline_keyboard", []) for b in row]
