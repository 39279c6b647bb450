"""Lugh's own handling time per Telegram update, next to a bare python-telegram-bot handler.
Prints one JSON line.

    python bench/telegram.py [--updates 200] [--burst 200]

Both run against the fake Bot API of tests/fakes (a real HTTP server in a process of its own,
answering at once) with the real PTB polling it. A handler in group -1
stamps when PTB hands an update over and one in group 1 when the update's handling is done, so
the time measured is Lugh's: from receiving the update to its reply being queued in the outbox
(for a button press also its answerCallbackQuery round trip to the fake). Updates go one at a
time for p50/p99 (the next one once the previous reply was delivered): text (`/status 1`: the
session, the task, its events, a keyboard of signed buttons, the outbox row), callback (its [Status] button, pressed again and again) and reaction
(🤔 on the task's message: the binding looked up, /why run and queued). Throughput: `--burst`
`/status 1` messages from 8 owners pushed at once, until every one is handled; the outbox sender
and the notifier run meanwhile, as in `lugh run`. The bare handler appends the text to a list.
Target (issue 7): Lugh's own overhead p99 ≤ 20 ms per update.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name shadows PTB.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fakes

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from typing import Any  # noqa: E402

os.environ.setdefault("PTB_TIMEDELTA", "1")

import asyncpg  # noqa: E402
from telegram import Update  # noqa: E402
from telegram.ext import Application, ContextTypes, TypeHandler  # noqa: E402

from lugh.app import run_components  # noqa: E402
from lugh.config import load_settings  # noqa: E402
from lugh.db.database import create_pool  # noqa: E402
from lugh.db.embedded import EmbeddedPostgres  # noqa: E402
from lugh.db.migrations import migrate  # noqa: E402
from lugh.logs import configure_logging  # noqa: E402
from lugh.services import build_services  # noqa: E402
from lugh.transport.telegram.bot import TelegramBot  # noqa: E402
from lugh.transport.telegram.pacing import Limits  # noqa: E402
from tests.fakes.telegram import TOKEN, FakeTelegram, SentMessage  # noqa: E402

OWNERS = list(range(1001, 1009))
OWNER = OWNERS[0]
TARGET_P99_MS = 20.0
BOUND_S = 30.0


def serve_fake(conn: Any) -> None:
    """The fake Bot API in a process of its own, so that its work (and the interpreter lock it
    would hold meanwhile) is not counted as Lugh's; driven through `conn`."""
    with FakeTelegram() as fake:
        conn.send(fake.url)
        while True:
            name, args = conn.recv()
            if name == "stop":
                return
            if name == "wait_sent":
                conn.send(asyncio.run(fake.wait_sent(*args)))
                continue
            conn.send(getattr(fake, name)(*args))


class RemoteFake:
    """The parts of FakeTelegram the benchmark uses, in the other process."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=serve_fake, args=(child,), daemon=True)
        self._process.start()
        self.url = self._conn.recv()

    def _call(self, name: str, *args: Any) -> Any:
        self._conn.send((name, args))
        return self._conn.recv()

    def push_message(self, chat_id: int, text: str) -> dict[str, Any]:
        return self._call("push_message", chat_id, text)

    def push_callback(self, chat_id: int, message_id: int, data: str) -> dict[str, Any]:
        return self._call("push_callback", chat_id, message_id, data)

    def push_reaction(self, chat_id: int, message_id: int, emoji: str) -> dict[str, Any]:
        return self._call("push_reaction", chat_id, message_id, emoji)

    async def wait_sent(self, chat_id: int, count: int, timeout: float) -> list[SentMessage]:
        return await asyncio.to_thread(self._call, "wait_sent", chat_id, count, timeout)

    def __enter__(self) -> RemoteFake:
        return self

    def __exit__(self, *_: Any) -> None:
        self._conn.send(("stop", ()))
        self._process.join(BOUND_S)


class Stamps:
    """When PTB handed each update over, and how long until its handling was done."""

    def __init__(self) -> None:
        self.started: dict[int, tuple[float, float]] = {}
        self.took: dict[int, float] = {}
        self.cpu: dict[int, float] = {}  # the loop thread's CPU time meanwhile
        self.want = 0
        self.reached = asyncio.Event()

    def install(self, application: Application) -> None:
        application.add_handler(TypeHandler(Update, self._begin), group=-1)
        application.add_handler(TypeHandler(Update, self._end), group=1)

    async def _begin(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        self.started[update.update_id] = (time.perf_counter(), time.thread_time())

    async def _end(self, update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        wall, cpu = self.started.pop(update.update_id)
        self.took[update.update_id] = time.perf_counter() - wall
        self.cpu[update.update_id] = time.thread_time() - cpu
        if len(self.took) >= self.want:
            self.reached.set()

    async def until(self, count: int) -> None:
        self.want = count
        while len(self.took) < count:
            self.reached.clear()
            await asyncio.wait_for(self.reached.wait(), BOUND_S)

    async def one_by_one(
        self, n: int, push: Callable[[int], dict[str, Any]],
        settle: Callable[[], Awaitable[Any]] | None = None,
    ) -> list[float]:  # fmt: skip
        """Push `n` updates, each once the previous one was handled (and `settle`d: its reply
        delivered, so the sender's work is not inside the next one's time); times in ms."""
        ids = []
        for i in range(n):
            ids.append(push(i)["update_id"])
            await self.until(len(self.took) + 1)
            if settle is not None:
                await settle()
        return [(self.took[u] * 1000, self.cpu[u] * 1000) for u in ids]

    async def burst(self, n: int, push: Callable[[int], dict[str, Any]]) -> float:
        """Push `n` updates at once; updates per second until all were handled."""
        done = len(self.took)
        started = time.perf_counter()
        for i in range(n):
            push(i)
        await self.until(done + n)
        return n / (time.perf_counter() - started)


def percentiles(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 3), "p99": round(p99, 3)}


def timing(pairs: list[tuple[float, float]]) -> dict[str, float]:
    """Wall-clock p50/p99 and the CPU the event loop spent meanwhile (p50), in ms."""
    wall = percentiles([w for w, _ in pairs])
    return {**wall, "cpu_p50": percentiles([c for _, c in pairs])["p50"]}


async def bare_ptb(fake: RemoteFake, n: int, burst: int) -> dict[str, Any]:
    replies: list[str] = []

    async def echo(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
        replies.append(update.message.text)  # type: ignore[union-attr]

    builder = Application.builder().token(TOKEN).base_url(f"{fake.url}/bot")
    application = builder.base_file_url(f"{fake.url}/file/bot").concurrent_updates(64).build()
    application.add_handler(TypeHandler(Update, echo))
    stamps = Stamps()
    stamps.install(application)
    async with application:
        await application.start()
        updater = application.updater
        assert updater is not None
        await updater.start_polling(allowed_updates=["message"])
        try:
            await stamps.one_by_one(10, lambda i: fake.push_message(OWNER, "warm up"))
            took = await stamps.one_by_one(n, lambda i: fake.push_message(OWNER, f"echo {i}"))
            rate = await stamps.burst(burst, lambda i: fake.push_message(OWNERS[i % 8], f"b {i}"))
        finally:
            await updater.stop()
            await application.stop()
    return {"ms": timing(took), "updates_per_s": round(rate, 1)}


async def lugh(fake: RemoteFake, pool: asyncpg.Pool, dsn: str, work: Path, n: int,
               burst: int) -> dict[str, Any]:  # fmt: skip
    settings = load_settings(
        None, LUGH_DATA_DIR=str(work / "data"), TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=fake.url, TELEGRAM_ALLOWED_USER_IDS=",".join(map(str, OWNERS)),
        LUGH_LOG_LEVEL="warning",
    )  # fmt: skip
    services = build_services(settings, pool, dsn)
    repo = work / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["-c", "user.name=B", "-c", "user.email=b@b",
                                                 "commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    await services.projects.register("bench", str(repo))
    bot = TelegramBot(services, limits=Limits(per_chat_per_s=1000, overall_per_s=5000))
    stamps = Stamps()
    stamps.install(bot.application)
    stop = asyncio.Event()
    running = asyncio.create_task(run_components([services.listener, bot], stop))
    try:
        await asyncio.wait_for(bot.started.wait(), BOUND_S)
        await stamps.one_by_one(1, lambda i: fake.push_message(OWNER, "/task benchmark task"))
        shown = (await fake.wait_sent(OWNER, 1, BOUND_S))[0]
        status = next(b["callback_data"] for b in shown.reply_markup["inline_keyboard"][0]
                      if b["text"] == "Status")  # fmt: skip
        replies = [1]

        async def delivered() -> None:  # each of these updates is answered by one message
            replies[0] += 1
            await fake.wait_sent(OWNER, replies[0], BOUND_S)

        await stamps.one_by_one(10, lambda i: fake.push_message(OWNER, "/status 1"), delivered)
        text = await stamps.one_by_one(
            n, lambda i: fake.push_message(OWNER, "/status 1"), delivered)
        callback = await stamps.one_by_one(
            n, lambda i: fake.push_callback(OWNER, shown.message_id, status), delivered)
        reaction = await stamps.one_by_one(
            n, lambda i: fake.push_reaction(OWNER, shown.message_id, "🤔"), delivered)
        rate = await stamps.burst(burst, lambda i: fake.push_message(OWNERS[i % 8], "/status 1"))
    finally:
        stop.set()
        await asyncio.wait_for(running, BOUND_S)
        await services.aclose()
    return {"ms": {"text": timing(text), "callback": timing(callback),
                   "reaction": timing(reaction)},
            "updates_per_s": round(rate, 1)}  # fmt: skip


async def floor(pool: asyncpg.Pool, n: int) -> dict[str, Any]:
    """What one round trip to Postgres costs here: a read, and a committed insert (with its WAL
    flush), for scale: handling an update takes about a dozen of them."""
    await pool.execute("CREATE TABLE IF NOT EXISTS bench_floor (id serial PRIMARY KEY)")
    read, commit = [], []
    async with pool.acquire() as conn:
        for _ in range(n):
            started = time.perf_counter()
            await conn.fetchval("SELECT 1")
            read.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await conn.execute("INSERT INTO bench_floor DEFAULT VALUES")
            commit.append((time.perf_counter() - started) * 1000)
    return {"read_ms": percentiles(read), "commit_ms": percentiles(commit)}


async def main(n: int, burst: int) -> dict[str, Any]:
    configure_logging("warning", "json")
    work = Path(tempfile.mkdtemp(prefix="lugh-bench-telegram-"))
    server = EmbeddedPostgres(work / "pg", delete_on_stop=True)
    try:
        admin = await server.start()
        conn = await asyncpg.connect(admin)
        await conn.execute("CREATE DATABASE bench")
        await conn.close()
        dsn = server.dsn("bench")
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        await conn.close()
        pool = await create_pool(dsn)
        try:
            postgres = await floor(pool, n)
            with RemoteFake() as fake:
                bare = await bare_ptb(fake, n, burst)
            with RemoteFake() as fake:
                ours = await lugh(fake, pool, dsn, work, n, burst)
        finally:
            await pool.close()
    finally:
        await server.stop()
        shutil.rmtree(work, ignore_errors=True)
    worst = max(v["p99"] for v in ours["ms"].values())
    return {
        "bench": "telegram", "updates_each": n, "burst": burst,
        "lugh": ours, "bare_ptb": bare, "postgres": postgres,
        "overhead_p50_ratio": round(ours["ms"]["text"]["p50"] / bare["ms"]["p50"], 1),
        "target_p99_ms": TARGET_P99_MS, "worst_p99_ms": worst, "met": worst <= TARGET_P99_MS,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200, help="updates of each kind, one by one")
    parser.add_argument("--burst", type=int, default=200, help="updates pushed at once")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.updates, args.burst)), ensure_ascii=False))
