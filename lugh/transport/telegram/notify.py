"""The notifier: follows the task events and tells the owner's chats, by priority.

It reads `task_events` through a durable cursor (`notify_cursors`): the snapshot under which
it last read, saved after each batch is handled, so after a restart it goes on from there and
misses nothing, even events whose ids committed out of order. What piled up meanwhile is read a
page at a time, the cursor saved after each page with the position it reached, so a long
absence is neither one huge read nor started over by a restart in the middle of it. A page cut
short by a crash is handled again; every message has a dedupe key in the outbox
(`notify:<event>:<chat>`), digest lines are unique per event and progress states only move
forward, so nothing is sent twice.

Whatever front door created a task (Telegram, console, MCP, CLI), its owner hears about it
here. How loudly (see lugh.commands.notifications): critical and high with sound, normal
silent, low into the digest; running tasks get a progress message instead. During quiet hours
(LUGH_QUIET_HOURS in LUGH_TIMEZONE) nothing rings but critical: a message still arrives at once,
silently, so a review waiting in the morning is already there, and only what cannot wait wakes
the owner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time, timezone
from typing import Protocol
from zoneinfo import ZoneInfo

import asyncpg

from lugh.commands.notifications import notification_for
from lugh.commands.reply import Priority, Reply
from lugh.db.queries import load
from lugh.logs import get_logger
from lugh.services import Services
from lugh.tasks import TaskEvent, TaskStatus
from lugh.tasks.events import EVENTS_CHANNEL
from lugh.tasks.events import Q as EVENTS_Q
from lugh.tasks.waiting import wait_event
from lugh.transport.telegram.digest import Digest
from lugh.transport.telegram.outbox import Outbox
from lugh.transport.telegram.progress import STEP_KINDS, ProgressMessages

log = get_logger("lugh.transport.telegram.notify")
Q = load(__file__, "notify")

POLL_S = 5.0
READ_PAGE = 500  # events handled between two saves of the cursor
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
PRUNE_S = 3600.0  # how often finished progress messages and sent digest lines are forgotten
RINGING: frozenset[Priority] = frozenset({"critical", "high"})


class Deliver(Protocol):
    """How a Reply reaches a chat (lugh.transport.telegram.render.deliver)."""

    def __call__(
        self, services: Services, outbox: Outbox, chat_id: int, reply: Reply, *,
        silent: bool | None = None, edit_of: int | None = None, dedupe_key: str | None = None,
        conn: asyncpg.Connection | None = None,
    ) -> Awaitable[int]: ...  # fmt: skip


class QuietHours:
    """A daily window in which nothing rings but critical messages."""

    def __init__(self, window: tuple[time, time] | None, zone: ZoneInfo) -> None:
        self.window = window
        self.zone = zone

    def now(self, at: datetime | None = None) -> bool:
        if self.window is None:
            return False
        local = (at or datetime.now(timezone.utc)).astimezone(self.zone).time()
        start, end = self.window
        return start <= local < end if start < end else local >= start or local < end

    def silent(self, priority: Priority, at: datetime | None = None) -> bool:
        """Whether a message of `priority` arrives without a sound."""
        if priority not in RINGING:
            return True
        return priority != "critical" and self.now(at)


@dataclass(frozen=True)
class Cursor:
    """Every event visible in `snapshot` is handled; during a paged read up to snapshot
    `reading_to`, so are those up to (`after_tx`, `after_id`) in (transaction, id) order."""

    snapshot: str
    reading_to: str | None = None
    after_tx: str = "0"
    after_id: int = 0

    @classmethod
    def of(cls, row: asyncpg.Record) -> Cursor:
        if row["reading_to"] is None:
            return cls(row["snapshot"])
        return cls(row["snapshot"], row["reading_to"], row["read_after_tx"], row["read_after_id"])


class Notifier:
    """The component that turns task events into Telegram messages for the owner's chats.

    `owner_chats` returns the chats to tell (the owners' private chats); `deliver` renders and
    queues a Reply (render.deliver). The bot constructs and starts it next to the outbox sender.
    """

    name = "notifier"

    def __init__(
        self,
        services: Services,
        outbox: Outbox,
        *,
        owner_chats: Callable[[], Awaitable[list[int]]],
        deliver: Deliver,
        cursor: str = "telegram",
        poll_s: float = POLL_S,
        clock: Callable[[], datetime] | None = None,
        digest_s: float | None = None,
        progress_s: float | None = None,
        read_page: int = READ_PAGE,
    ) -> None:
        """`digest_s` and `progress_s` override the settings' intervals (tests use seconds)."""
        settings = services.settings
        self.services = services
        self.pool = services.pool
        self.outbox = outbox
        self.owner_chats = owner_chats
        self.deliver = deliver
        self.cursor = cursor
        self.poll_s = poll_s
        self.read_page = read_page
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.quiet = QuietHours(settings.resolved_quiet_hours, ZoneInfo(settings.timezone))
        self.progress = ProgressMessages(
            services, outbox, deliver, interval_s=progress_s or settings.progress_edit_seconds
        )
        self.digest = Digest(
            services, outbox, deliver, interval_s=digest_s or settings.digest_minutes * 60
        )
        self.handled = 0  # events read, for tests and the log
        self.last_event_id = 0
        self._batch_done = asyncio.Event()
        self.ready = asyncio.Event()  # set once the cursor is read: later events are announced
        self._wake = asyncio.Event()
        self._stop_asked = asyncio.Event()
        self._stopping = False

    def wake(self, _payload: str | None = None) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Finish the batch in hand, save the cursor, and return from `run`. Final: a stop
        that comes before `run` has started is not lost."""
        self._stopping = True
        self._stop_asked.set()
        self._wake.set()

    async def handled_up_to(self, event_id: int) -> None:
        """Return once the events up to `event_id` are handled (bound it with a timeout)."""
        while self.last_event_id < event_id:
            self._batch_done.clear()
            await self._batch_done.wait()

    async def run(self) -> None:
        """Follow the events until stopped. A failure (the database gone a while) is logged and
        the notifier goes on from its saved cursor after a backoff: it runs inside the bot, and
        must not silently end while the bot keeps answering."""
        unsubscribe = self.services.listener.subscribe(EVENTS_CHANNEL, self.wake)
        failures = 0
        try:
            while not self._stopping:
                try:
                    await self._follow()
                except Exception:
                    delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
                    failures += 1
                    log.exception("the notifier failed; it goes on from its cursor", in_s=delay)
                    await wait_event(self._stop_asked, delay)
        finally:
            unsubscribe()

    async def _follow(self) -> None:
        row = await self.pool.fetchrow(Q.cursor, self.cursor)
        if row is None:
            row = await self.pool.fetchrow(Q.start_cursor, self.cursor)
        cursor = Cursor.of(row)
        self.ready.set()
        loop = asyncio.get_running_loop()
        pruned_at = -PRUNE_S
        while not self._stopping:
            self._wake.clear()
            cursor = await self._read(cursor)
            if loop.time() - pruned_at >= PRUNE_S:
                await self.progress.prune()
                await self.digest.prune()
                pruned_at = loop.time()
            due = [s for s in (await self.progress.flush(), await self.digest.flush())
                   if s is not None]  # fmt: skip
            await wait_event(self._wake, min([self.poll_s, *(max(s, 0.01) for s in due)]))

    async def _read(self, cursor: Cursor) -> Cursor:
        """Handle the events visible now but not in the cursor's snapshot, a page at a time;
        the cursor to read from next (a paged read's own when stopped in the middle of it)."""
        upto = cursor.reading_to or await self.pool.fetchval(EVENTS_Q.snapshot)
        cursor = Cursor(cursor.snapshot, upto, cursor.after_tx, cursor.after_id)
        while True:
            rows = await self.pool.fetch(
                EVENTS_Q.visible_between, cursor.snapshot, upto, cursor.after_tx,
                cursor.after_id, self.read_page,
            )  # fmt: skip
            if rows:
                await self._handle_page([TaskEvent.from_row(r) for r in rows])
            last_id = max((r["id"] for r in rows), default=0)
            if len(rows) < self.read_page:
                if rows or cursor.after_id:  # else the saved cursor is as good: nothing was read
                    await self.pool.execute(Q.save_cursor, self.cursor, upto, last_id,
                                            None, None, None)  # fmt: skip
                    self._page_done(last_id, len(rows))
                return Cursor(upto)
            cursor = Cursor(cursor.snapshot, upto, rows[-1]["tx"], rows[-1]["id"])
            await self.pool.execute(
                Q.save_cursor, self.cursor, cursor.snapshot, last_id, upto, cursor.after_tx,
                cursor.after_id,
            )  # fmt: skip
            self._page_done(last_id, len(rows))
            if self._stopping:
                return cursor

    async def _handle_page(self, events: list[TaskEvent]) -> None:
        chats = await self.owner_chats()
        for event in sorted(events, key=lambda e: e.id):  # in id order within a page
            try:
                await self._handle(event, chats)
            except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
                raise  # the database is gone: restarted, this page is read again
            except Exception:  # one bad event must not stop every later notification
                log.exception("an event could not be notified", event_id=event.id,
                              task=event.task_id)  # fmt: skip

    def _page_done(self, last_id: int, count: int) -> None:
        self.handled += count
        self.last_event_id = max(self.last_event_id, last_id)
        self._batch_done.set()

    async def _handle(self, event: TaskEvent, chats: list[int]) -> None:
        if event.kind in STEP_KINDS or _leaves_running(event):
            task = await self.services.tasks.get(event.task_id)
            if task is not None:
                await self.progress.advance(task, event)
            if event.kind in STEP_KINDS:
                return
        if event.kind == TaskStatus.RUNNING.value:
            task = await self.services.tasks.get(event.task_id)
            if task is not None and task.status is TaskStatus.RUNNING and chats:
                await self.progress.open(task, event, chats)
            return  # the progress message is the notification
        reply = await notification_for(self.services, event)
        if reply is None:
            return
        for chat in chats:
            if reply.priority == "low":
                await self.digest.add(chat, event.id, reply.text.splitlines()[0])
                continue
            await self.deliver(
                self.services, self.outbox, chat, reply,
                silent=self.quiet.silent(reply.priority, self.clock()),
                dedupe_key=f"notify:{event.id}:{chat}",
            )  # fmt: skip


def _leaves_running(event: TaskEvent) -> bool:
    return event.data.get("from") == TaskStatus.RUNNING.value and event.kind != "running"
