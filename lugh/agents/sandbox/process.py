"""Running one sandbox process: output capped while it is read, a wall timeout and a process-count
watchdog that kill the whole process group, and nothing left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lugh.agents.sandbox.base import CommandResult, Limits, SandboxError
from lugh.agents.sandbox.environment import SAFE_PATH

WATCH_INTERVAL_S = 0.005
DRAIN_AFTER_KILL_S = 2.0
NICENESS = "19"  # the host (and the bot, and the watchdog) win any fight for the CPU


def limited_shell(command: str, limits: Limits) -> list[str]:
    """`/bin/sh -c command` at a lower priority, under `limits` set by util-linux `prlimit`
    (which sets them on itself and execs the shell: no preexec_fn in our threaded process, and
    sizes in bytes whatever the shell's `ulimit` units)."""
    if not isinstance(command, str) or not command.strip():
        raise SandboxError("The command was not run because it is empty.")
    if "\x00" in command:
        raise SandboxError("The command was not run because it contains a NUL byte.")
    return [
        _tool("nice"), "-n", NICENESS, _tool("prlimit"), *limits.prlimit_args(), "--",
        "/bin/sh", "-c", command,
    ]


def _tool(name: str) -> str:
    found = shutil.which(name, path=SAFE_PATH)
    if found is None:
        raise SandboxError(
            f"The command was not run because `{name}`, which applies its limits, is not installed."
        )
    return found


class CappedOutput:
    """Keeps the first and the last half of `cap` bytes of a stream, counting the rest."""

    def __init__(self, cap: int) -> None:
        self.head_cap = cap // 2
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            del self.tail[: -self.tail_cap or len(self.tail)]

    def text(self) -> str:
        omitted = self.total - len(self.head) - len(self.tail)
        if omitted <= 0:
            return (self.head + self.tail).decode("utf-8", "replace")
        return (
            self.head.decode("utf-8", "replace")
            + f"\n[… {omitted} bytes of output omitted …]\n"
            + self.tail.decode("utf-8", "replace")
        )


def count_tasks(pid: int, stop: int) -> int:
    """How many tasks (processes and their threads, as RLIMIT_NPROC counts them) descend from
    `pid`; counting stops past `stop`."""
    count, pending = 0, [pid]
    while pending and count <= stop:
        parent = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        if parent != pid:
            count += len(tasks)
        for tid in tasks:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", "rb") as f:
                    pending += [int(child) for child in f.read().split()]
            except (OSError, ValueError):
                continue
    return count


class TaskWatchdog(threading.Thread):
    """Kills process `pid` once its descendants number more than `limit` tasks.

    RLIMIT_NPROC is the real limit, but the kernel does not apply it to uid 0; this catches a
    fork bomb there too. A thread, not a task on the event loop, so a loop kept busy cannot
    delay it, and a pidfd, so the kill can never hit a recycled pid.
    """

    def __init__(self, pid: int, limit: int, on_trip: Callable[[str], None]) -> None:
        super().__init__(name=f"sandbox-watchdog-{pid}", daemon=True)
        self.pid, self.limit, self.on_trip = pid, limit, on_trip
        self.done = threading.Event()
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except OSError:
            self.pidfd = None

    def run(self) -> None:
        try:
            while not self.done.wait(WATCH_INTERVAL_S):
                if count_tasks(self.pid, self.limit) > self.limit and not self.done.is_set():
                    self._kill()
                    self.on_trip(f"it started more than {self.limit} processes")
                    return
        finally:
            if self.pidfd is not None:
                os.close(self.pidfd)

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    output_bytes: int,
    max_processes: int,
    pass_fds: Sequence[int] = (),
) -> CommandResult:
    """Run `argv` in its own session; when it ends, times out or starts more than
    `max_processes` descendants, its whole process group is killed."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
    out, err = CappedOutput(output_bytes), CappedOutput(output_bytes)
    readers = [
        asyncio.create_task(_drain(proc.stdout, out)),  # type: ignore[arg-type]
        asyncio.create_task(_drain(proc.stderr, err)),  # type: ignore[arg-type]
    ]
    ended = asyncio.create_task(proc.wait())
    loop = asyncio.get_running_loop()
    tripped: asyncio.Future[str] = loop.create_future()
    watchdog = TaskWatchdog(
        proc.pid, max_processes,
        lambda why: loop.call_soon_threadsafe(lambda: tripped.done() or tripped.set_result(why)),
    )
    watchdog.start()
    timed_out, stopped = False, None
    try:
        done, _ = await asyncio.wait(
            {ended, tripped}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if tripped in done:
            stopped = tripped.result()
        elif not done:
            timed_out = True
    finally:
        watchdog.done.set()
        tripped.cancel()
        _kill_group(proc.pid)
        await asyncio.shield(ended)
        await asyncio.to_thread(watchdog.join)  # no callback may come after we return
        # Everything in the group is dead, so the pipes close; a process that left the group
        # (only possible without a sandbox) is not waited for.
        _, late = await asyncio.wait(readers, timeout=DRAIN_AFTER_KILL_S)
        for reader in late:
            reader.cancel()
    return CommandResult(
        exit_code=None if (timed_out or stopped) else proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
        stopped=stopped,
    )


async def _drain(stream: asyncio.StreamReader, into: CappedOutput) -> None:
    while chunk := await stream.read(65536):
        into.add(chunk)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
