"""The bubblewrap sandbox: the worktree writable, everything else read-only, git metadata
read-only, secrets hidden, no network, a private /proc and /tmp, rlimits, one session.

The command never meets a host shell: bwrap gets an argument list, and `/bin/sh -c <command>`
runs inside. What the mounts are, in order:
- `/` read-only; a fresh /proc (only the sandbox's processes), /dev and a size-capped /tmp;
- each hidden path (Lugh's data dir, home directories, /run, the database socket dir …) covered
  by an empty tmpfs, later remounted read-only; a hidden file covered by /dev/null;
- the worktree bound writable over that, then its `.git` (file or directory) bound read-only
  over itself, so it cannot be replaced to point host-side git at a config the agent wrote;
- the repository's git dir (where a linked worktree's `.git` file points, and its common dir)
  bound read-only: git status, diff and log work; add and commit do not (Lugh commits on the
  host side), and nothing can write .git/hooks or .git/config.
A worktree that contains a hidden path is refused: binding it would uncover that path.
Namespaces: all of them, including a user namespace in which no further ones may be made.
Limits: see `limited_shell` (rlimits through prlimit, lower priority) and pids.py (a pids cgroup
per command caps its processes, for root too; /sys/fs/cgroup is hidden so nothing leaves it).
Needs bubblewrap ≥ 0.8.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from lugh.agents.sandbox.base import (
    CommandResult,
    Limits,
    SandboxCheck,
    SandboxError,
)
from lugh.agents.sandbox.environment import SAFE_PATH, command_environment
from lugh.agents.sandbox.process import CommandProcess, limited_shell, process_cap_mechanism
from lugh.agents.sandbox.warm import WarmSandboxes

# /etc/lugh holds a server's settings files (scripts/install-server.sh: root:lugh 0640, so the
# user commands run as could read both instances' secrets).
ALWAYS_HIDDEN = (
    "/root", "/home", "/run", "/var/run", "/etc/shadow", "/etc/gshadow", "/sys/fs/cgroup",
    "/etc/lugh",
)  # fmt: skip
# The shell of a sandbox built ahead: it waits for its command on stdin (sent with an "x" after
# it, which `${c%x}` takes off again), then becomes that command's `/bin/sh -c`. Its stdin stays
# at end-of-file for the command, as /dev/null is for one started with its command.
READ_COMMAND = 'c=$(cat) && exec /bin/sh -c "${c%x}"'


class BubblewrapSandbox:
    """Commands run under `bwrap`; if it cannot start, they do not run at all."""

    name = "bubblewrap"

    def __init__(
        self, *, limits: Limits | None = None, hidden: Sequence[Path | str] = (),
        bwrap: str = "bwrap", allow_uncapped_root: bool = False,
    ) -> None:
        self.limits = limits or Limits()
        self.allow_uncapped_root = allow_uncapped_root
        self.hidden = [*ALWAYS_HIDDEN, *(os.fspath(p) for p in hidden)]
        self.bwrap = bwrap
        self._ahead = WarmSandboxes(self._build_ahead)  # type: ignore[arg-type]

    async def run(
        self, command: str, *, cwd: Path, timeout_s: float, env: Mapping[str, str]
    ) -> CommandResult:
        """Run `command` in the sandbox with `cwd` (a worktree root) as the only writable place:
        in the one built ahead for it (see `prepare`), or in one built now."""
        limited_shell(command, self.limits)  # refused (empty, NUL) before any sandbox is used
        key = _key(cwd, env)
        waiting = await self._ahead.take(key)
        if waiting is None:
            return await self._run_now(command, cwd, timeout_s, env)
        try:
            return await waiting.run(command, timeout_s)
        finally:
            self._ahead.refill(key)

    def prepare(self, cwd: Path, env: Mapping[str, str]) -> None:
        """Commands will run in `cwd` with `env`: keep a sandbox built for them ahead (until
        `release`), so a command does not wait for bubblewrap to build one (see warm.py)."""
        self._ahead.prepare(_key(cwd, env))

    async def release(self, cwd: Path, env: Mapping[str, str]) -> None:
        """No more commands in `cwd` for the run that prepared it: the waiting sandbox goes."""
        await self._ahead.release(_key(cwd, env))

    async def close(self) -> None:
        await self._ahead.close()

    async def _run_now(
        self, command: str, cwd: Path, timeout_s: float, env: Mapping[str, str]
    ) -> CommandResult:
        started = time.monotonic()
        built = await self._build(cwd, env, command)
        return await built.finish(timeout_s, since=started)

    async def _build_ahead(self, key: tuple[str, tuple[tuple[str, str], ...]]) -> Built:
        # The key's environment is already whole: command_environment passes it unchanged.
        return await self._build(Path(key[0]), dict(key[1]), None)

    async def _build(self, cwd: Path, env: Mapping[str, str], command: str | None) -> Built:
        """Start the sandbox, running `command`, or (None) a shell that reads it from stdin."""
        worktree = os.path.realpath(cwd)
        if not os.path.isdir(worktree):
            raise SandboxError(f"The command was not run because {worktree} is not a directory.")
        hidden_dirs, hidden_files = _existing(self.hidden)
        for path in (*hidden_dirs, *hidden_files):
            if path == worktree or path.startswith(worktree.rstrip("/") + "/"):
                raise SandboxError(
                    f"The command was not run because its directory {worktree} contains {path}, "
                    "which must stay hidden from agents."
                )
        environment = command_environment(env)
        # Found before anything starts: it runs behind the script that joins the pids cgroup.
        if shutil.which(self.bwrap, path=SAFE_PATH) is None:
            raise self._unavailable(f"{self.bwrap} is not installed")
        # bwrap reports on this pipe once the sandbox is built: no report, no sandbox.
        status_read, status_write = os.pipe()
        try:
            argv = self.argv(
                READ_COMMAND if command is None else command,
                worktree, environment, status_write, hidden_dirs, hidden_files,
            )  # fmt: skip
            process = await CommandProcess.start(
                argv, cwd=Path(worktree), env={"PATH": SAFE_PATH},
                output_bytes=self.limits.output_bytes, max_processes=self.limits.processes,
                allow_uncapped_root=self.allow_uncapped_root, pass_fds=(status_write,),
                stdin=command is None,
            )  # fmt: skip
        except FileNotFoundError:
            os.close(status_read)
            raise self._unavailable(f"{self.bwrap} is not installed") from None
        except OSError as exc:
            os.close(status_read)
            raise self._unavailable(f"{self.bwrap}: {exc.strerror or exc}") from None
        except BaseException:
            os.close(status_read)
            raise
        finally:
            os.close(status_write)  # bwrap has its own copy
        return Built(process, status_read, self._unavailable)

    async def check(self) -> SandboxCheck:
        """Start a trivial sandbox with the real mounts; say whether, and how well, it works."""
        try:
            with tempfile.TemporaryDirectory(prefix="lugh-sandbox-check-") as empty:
                result = await self.run("true", cwd=Path(empty), timeout_s=30, env={})
        except SandboxError as exc:
            return SandboxCheck("fail", str(exc))
        if result.exit_code != 0:
            return SandboxCheck(
                "fail", f"bubblewrap started but `true` failed: {result.stderr.strip()}"
            )
        cap = process_cap_mechanism()
        if os.geteuid() == 0:
            return SandboxCheck(
                "warn",
                f"bubblewrap works, processes capped by {cap}, but Lugh runs as root, so "
                "root-only files outside the hidden paths stay readable; run Lugh as an "
                "ordinary user.",
            )
        return SandboxCheck(
            "ok",
            f"bubblewrap works: no network, worktree-only writes, processes capped by {cap}",
        )

    def argv(
        self, command: str, worktree: str, env: Mapping[str, str], status_fd: int,
        hidden_dirs: Sequence[str], hidden_files: Sequence[str],
    ) -> list[str]:
        """The whole bwrap command line (a list: no host shell ever parses it)."""
        argv = [
            self.bwrap, "--unshare-all", "--unshare-user", "--disable-userns",
            "--die-with-parent", "--new-session", "--json-status-fd", str(status_fd), "--clearenv",
        ]
        for name, value in env.items():
            argv += ["--setenv", name, value]
        argv += ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                 "--size", str(self.limits.tmp_bytes), "--tmpfs", "/tmp"]
        # Under /tmp they are hidden already: it is a fresh tmpfs.
        hidden_dirs = [p for p in hidden_dirs if p != "/tmp" and not p.startswith("/tmp/")]
        hidden_files = [p for p in hidden_files if not p.startswith("/tmp/")]
        for path in hidden_dirs:
            argv += ["--tmpfs", path]
        for path in hidden_files:
            argv += ["--ro-bind", "/dev/null", path]
        argv += ["--bind", worktree, worktree]
        for path in git_paths(worktree):
            argv += ["--ro-bind", path, path]
        for path in hidden_dirs:
            argv += ["--remount-ro", path]
        return [*argv, "--chdir", worktree, "--", *limited_shell(command, self.limits)]

    def _unavailable(self, reason: str) -> SandboxError:
        return SandboxError(
            f"The command was not run because the bubblewrap sandbox could not start ({reason}); "
            "Lugh never runs commands unsandboxed unless LUGH_SANDBOX=none is set, "
            "so install bubblewrap or allow user namespaces."
        )


class Built:
    """A started sandbox: its process, and bwrap's report of having built it."""

    def __init__(
        self, process: CommandProcess, status_fd: int,
        unavailable: Callable[[str], SandboxError],
    ) -> None:  # fmt: skip
        self.process = process
        self.status_fd = status_fd
        self._unavailable = unavailable

    @property
    def alive(self) -> bool:
        return self.process.alive

    async def run(self, command: str, timeout_s: float) -> CommandResult:
        """Give the waiting shell (READ_COMMAND) its command, and run it to its end."""
        started = time.monotonic()
        try:
            # As argv would carry it; the "x" keeps the command's own last newlines from `$(…)`.
            await self.process.send(os.fsencode(command) + b"x")
        except BaseException:
            await self.discard()
            raise
        return await self.finish(timeout_s, since=started)

    async def finish(self, timeout_s: float, *, since: float) -> CommandResult:
        try:
            result = await self.process.finish(timeout_s, since=since)
        finally:
            status = _read_available(self.status_fd)
            os.close(self.status_fd)
        if not (result.timed_out or result.stopped) and b'"child-pid"' not in status:
            raise self._unavailable(_bwrap_reason(result.stderr))
        return result

    async def discard(self) -> None:
        try:
            await self.process.discard()
        finally:
            with contextlib.suppress(OSError):
                os.close(self.status_fd)


def _key(cwd: Path, env: Mapping[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What a sandbox built ahead is built for: the worktree and the whole environment."""
    return os.path.realpath(cwd), tuple(sorted(command_environment(env).items()))


def git_paths(worktree: str) -> list[str]:
    """The worktree's `.git` and the git directories it points to, to be bound read-only."""
    dot_git = os.path.join(worktree, ".git")
    try:
        mode = os.lstat(dot_git).st_mode
    except FileNotFoundError:
        return []
    if stat.S_ISDIR(mode):
        return [dot_git]
    if not stat.S_ISREG(mode):
        raise SandboxError(
            f"The command was not run because {dot_git} is neither a file nor a directory."
        )
    fd = os.open(dot_git, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with open(fd, "rb") as f:
        text = f.read(4096).decode("utf-8", "surrogateescape")
    found = re.match(r"gitdir: (.+)", text.strip())
    if found is None:
        return [dot_git]
    git_dir = os.path.realpath(os.path.join(worktree, found[1]))
    common = git_dir
    try:
        with open(os.path.join(git_dir, "commondir"), encoding="utf-8") as f:
            common = os.path.realpath(os.path.join(git_dir, f.read().strip()))
    except FileNotFoundError:
        pass
    inside = git_dir == common or git_dir.startswith(common + "/")
    # Only what really is a git dir, so a doctored pointer cannot uncover a hidden path.
    found_dirs = [p for p in ([common] if inside else [common, git_dir]) if _is_git_dir(p)]
    return [dot_git, *found_dirs]


def _is_git_dir(path: str) -> bool:
    def has(name: str, kind: str) -> bool:
        return getattr(os.path, kind)(os.path.join(path, name))

    return has("HEAD", "isfile") and (has("objects", "isdir") or has("commondir", "isfile"))


def _existing(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    dirs: list[str] = []
    files: list[str] = []
    for path in dict.fromkeys(os.path.realpath(p) for p in paths):
        if os.path.isdir(path):
            dirs.append(path)
        elif os.path.exists(path):
            files.append(path)
    return dirs, files


def _read_available(fd: int) -> bytes:
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 65536):
            data += chunk
    except BlockingIOError:
        pass
    return data


def _bwrap_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("bwrap:")]
    line = (ours or lines or ["no reason given"])[0]
    return line.removeprefix("bwrap:").strip().rstrip(".")
