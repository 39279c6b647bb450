"""The console chat: the same commands as Telegram, typed in a terminal."""

from __future__ import annotations

import asyncio
import getpass
import socket
import sys
from collections.abc import Callable
from typing import TextIO

from rich.console import Console

from lugh.commands.catalog import Context, execute, interpret, parse
from lugh.commands.choose import model_chooser
from lugh.commands.notifications import notification_for
from lugh.commands.reply import Button, Reply
from lugh.logs import get_logger
from lugh.services import Services
from lugh.transport.console.render import render

log = get_logger("lugh.console")
PROMPT = "lugh> "


class ConsoleChat:
    """Reads lines from `stdin`, runs them as commands, prints replies and task notifications.

    A number answers the latest numbered choices; `/quit` (or end of input) ends the chat.
    """

    name = "console"

    def __init__(self, services: Services, stdin: TextIO | None = None,
                 stdout: TextIO | None = None, on_exit: Callable[[], None] | None = None) -> None:
        self.services = services
        self.on_exit = on_exit
        self.stdin = stdin or sys.stdin
        self.console = Console(file=stdout or sys.stdout, soft_wrap=True)
        self.choices: list[Button] = []
        self.finished = asyncio.Event()
        self.attachments_dir = services.data_dir / "attachments" / "console"
        self.chooser = model_chooser(services)

    async def run(self) -> None:
        session = await self.services.sessions.open(
            "console", f"{getpass.getuser()}@{socket.gethostname()}"
        )
        ctx = Context(services=self.services, session=session, source="console")
        reader = await self._reader()
        notifier = asyncio.create_task(self._notify(), name="console:notifications")
        self.console.print("Lugh is listening. /help lists commands, /quit leaves.",
                           style="bold", highlight=False)
        try:
            while True:
                self.console.print(PROMPT, end="", markup=False, highlight=False)
                raw = await reader.readline()
                if not raw:
                    break
                line = raw.decode(errors="replace").strip()
                if line in ("/quit", "/exit"):
                    break
                if line:
                    await self._handle(ctx, line)
        finally:
            notifier.cancel()
            self.finished.set()
        if self.on_exit is not None:
            self.on_exit()

    async def _handle(self, ctx: Context, line: str) -> None:
        try:
            reply = await self._answer(ctx, line)
        except Exception:
            log.exception("console command failed", line=line[:200])
            reply = Reply.refused("Something went wrong there; the log has the details.")
        self.choices = render(reply, self.console, self.attachments_dir)

    async def _answer(self, ctx: Context, line: str) -> Reply:
        if line.isdigit() and self.choices:
            index = int(line) - 1
            if not 0 <= index < len(self.choices):
                return Reply.refused(f"Choose a number from 1 to {len(self.choices)}.")
            chosen = self.choices[index]
            return await execute(ctx, chosen.action, chosen.argument)
        parsed = parse(line)
        if parsed is not None:
            return await execute(ctx, *parsed)
        return await interpret(ctx, line, chooser=self.chooser)

    async def _notify(self) -> None:
        async with self.services.events.subscribe() as feed:
            async for event in feed:
                try:
                    reply = await notification_for(self.services, event)
                except Exception:
                    log.exception("notification failed", task=event.task_id)
                    continue
                if reply is not None:
                    self.console.print()
                    self.choices = render(reply, self.console, self.attachments_dir)

    async def _reader(self) -> asyncio.StreamReader:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), self.stdin)
        return reader
