"""Running one sandbox process: output capped while it is read, its processes capped by the kernel
(a pids cgroup, see pids.py), a wall timeout that kills all of them, and nothing left behind."""

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
from lugh.agents.sandbox.pids import CommandCgroup, PidsHierarchy, find_pids_hierarchy

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


def process_cap(
    processes: int, *, allow_uncapped_root: bool,
    find: Callable[[], PidsHierarchy | None] = find_pids_hierarchy,
) -> CommandCgroup | None:
    """A pids cgroup holding the command to `processes` tasks; None when there is none to be
    had and RLIMIT_NPROC (set by `limited_shell`) binds instead. As root it does not, so then the
    command is refused unless running uncapped was allowed explicitly."""
    hierarchy = find()
    if hierarchy is not None:
        try:
            return hierarchy.create(processes)
        except OSError as exc:
            raise SandboxError(
                f"The command was not run because its pids cgroup could not be made in "
                f"{hierarchy.parent} ({exc.strerror or exc})."
            ) from None
    if os.geteuid() == 0 and not allow_uncapped_root:
        raise SandboxError(ROOT_REFUSAL)
    return None


def process_cap_mechanism() -> str:
    """What caps a command's processes here, for `lugh doctor`."""
    hierarchy = find_pids_hierarchy()
    if hierarchy is not None:
        return hierarchy.describe()
    if os.geteuid() != 0:
        return f"RLIMIT_NPROC (no pids cgroup; Lugh runs as uid {os.geteuid()})"
    return (
        "nothing the kernel enforces (root without a pids cgroup, allowed by "
        "LUGH_SANDBOX_ALLOW_UNCAPPED_ROOT): only a watchdog that counts them"
    )


ROOT_REFUSAL = (
    "The command was not run because Lugh runs as root and no pids cgroup is available to cap "
    "its processes (the kernel ignores RLIMIT_NPROC for root); run Lugh as an ordinary user, "
    "give it a writable pids cgroup, or set LUGH_SANDBOX_ALLOW_UNCAPPED_ROOT=true."
)


class Watchdog(threading.Thread):
    """Stops the command once it has hit its process cap: with a cgroup, once the kernel refused
    a fork (then every process in the cgroup is killed); without one, once its descendants number
    more than `limit` (a best effort, for the explicitly allowed uncapped root only).

    A thread, not a task on the event loop, so a loop kept busy cannot delay it, and a pidfd, so
    the kill can never hit a recycled pid.
    """

    def __init__(
        self, pid: int, limit: int, cgroup: CommandCgroup | None, on_trip: Callable[[str], None]
    ) -> None:
        super().__init__(name=f"sandbox-watchdog-{pid}", daemon=True)
        self.pid, self.limit, self.cgroup, self.on_trip = pid, limit, cgroup, on_trip
        self.done = threading.Event()
        self.reason: str | None = None
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except OSError:
            self.pidfd = None

    def run(self) -> None:
        try:
            while not self.done.wait(WATCH_INTERVAL_S):
                if self._over() and not self.done.is_set():
                    self.reason = f"it tried to start more than {self.limit} processes"
                    self._kill()
                    self.on_trip(self.reason)
                    return
        finally:
            if self.pidfd is not None:
                os.close(self.pidfd)

    def _over(self) -> bool:
        if self.cgroup is not None:
            return self.cgroup.tripped()
        return count_tasks(self.pid, self.limit) > self.limit

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroup.kill()


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    output_bytes: int,
    max_processes: int,
    allow_uncapped_root: bool = False,
    pass_fds: Sequence[int] = (),
) -> CommandResult:
    """Run `argv` in its own session and its own pids cgroup; when it ends, times out or hits
    `max_processes`, its whole process group and everything in its cgroup are killed."""
    started = time.monotonic()
    process = await CommandProcess.start(
        argv, cwd=cwd, env=env, output_bytes=output_bytes, max_processes=max_processes,
        allow_uncapped_root=allow_uncapped_root, pass_fds=pass_fds,
    )  # fmt: skip
    return await process.finish(timeout_s, since=started)


class CommandProcess:
    """One command's process from its start to its end, in its own session and pids cgroup.

    It may be started before its command is known (`stdin=True`: a sandbox built ahead, whose
    shell reads the command from stdin, see bubblewrap.py); `finish` then runs it under its
    timeout and watchdog, and kills everything it left. A process never finished is `discard`ed.
    """

    def __init__(
        self, proc: asyncio.subprocess.Process, cgroup: CommandCgroup | None,
        output_bytes: int, max_processes: int,
    ) -> None:  # fmt: skip
        self.proc = proc
        self.cgroup = cgroup
        self.max_processes = max_processes
        self.out, self.err = CappedOutput(output_bytes), CappedOutput(output_bytes)
        self.readers = [
            asyncio.create_task(_drain(proc.stdout, self.out)),  # type: ignore[arg-type]
            asyncio.create_task(_drain(proc.stderr, self.err)),  # type: ignore[arg-type]
        ]
        self.ended = asyncio.create_task(proc.wait())
        self._over = False

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        output_bytes: int,
        max_processes: int,
        allow_uncapped_root: bool = False,
        pass_fds: Sequence[int] = (),
        stdin: bool = False,
    ) -> CommandProcess:
        cgroup = process_cap(max_processes, allow_uncapped_root=allow_uncapped_root)
        try:
            proc = await asyncio.create_subprocess_exec(
                *(cgroup.join_argv(list(argv)) if cgroup else argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=tuple(pass_fds),
            )
        except BaseException:
            if cgroup is not None:
                await asyncio.shield(cgroup.remove())
            raise
        return cls(proc, cgroup, output_bytes, max_processes)

    @property
    def alive(self) -> bool:
        """Whether the process is still running now (asked of the kernel: the event loop
        learns of an exit a little later)."""
        if self.proc.returncode is not None or self.ended.done():
            return False
        try:
            exited = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # already reaped by the child watcher
            return False
        return exited is None

    async def send(self, data: bytes) -> None:
        """Write `data` to the process's stdin and close it (a process already gone is found
        gone by `finish`)."""
        stdin = self.proc.stdin
        if stdin is None:
            raise ValueError("this process was started without a stdin to send to")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(data)
            await stdin.drain()
        stdin.close()

    async def finish(self, timeout_s: float, *, since: float | None = None) -> CommandResult:
        """Wait for the end, at most `timeout_s` from now; then kill what is left and clean up."""
        started = time.monotonic() if since is None else since
        loop = asyncio.get_running_loop()
        tripped: asyncio.Future[str] = loop.create_future()
        watchdog = Watchdog(
            self.proc.pid, self.max_processes, self.cgroup,
            lambda why: loop.call_soon_threadsafe(
                lambda: tripped.done() or tripped.set_result(why)
            ),
        )  # fmt: skip
        watchdog.start()
        timed_out, stopped = False, None
        try:
            done, _ = await asyncio.wait(
                {self.ended, tripped}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if tripped in done:
                stopped = tripped.result()
            elif not done:
                timed_out = True
        finally:
            watchdog.done.set()
            tripped.cancel()
            try:
                await self._end()
            finally:
                await asyncio.to_thread(watchdog.join)  # no callback may come after we return
        if watchdog.reason and not timed_out:
            stopped = watchdog.reason  # it may have killed the command just before it ended
        return CommandResult(
            exit_code=None if (timed_out or stopped) else self.proc.returncode,
            stdout=self.out.text(),
            stderr=self.err.text(),
            timed_out=timed_out,
            duration_s=time.monotonic() - started,
            stopped=stopped,
        )

    async def discard(self) -> None:
        """Kill a process whose command never came (or no longer matters), leaving nothing."""
        await self._end()

    async def _end(self) -> None:
        if self._over:
            return
        self._over = True
        try:
            _kill_group(self.proc.pid)
            if self.cgroup is not None:
                self.cgroup.kill()
            await asyncio.shield(self.ended)
            # Everything in the group (and the cgroup) is dead, so the pipes close; a process
            # that left both (only possible without a sandbox and a cgroup) is not waited for.
            _, late = await asyncio.wait(self.readers, timeout=DRAIN_AFTER_KILL_S)
            for reader in late:
                reader.cancel()
        finally:
            if self.cgroup is not None:
                await asyncio.shield(self.cgroup.remove())


async def _drain(stream: asyncio.StreamReader, into: CappedOutput) -> None:
    while chunk := await stream.read(65536):
        into.add(chunk)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
