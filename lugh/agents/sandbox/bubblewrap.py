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

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from lugh.agents.sandbox.base import (
    CommandResult,
    Limits,
    SandboxCheck,
    SandboxError,
)
from lugh.agents.sandbox.environment import SAFE_PATH, command_environment
from lugh.agents.sandbox.process import limited_shell, process_cap_mechanism, run_process

# /etc/lugh holds a server's settings files (scripts/install-server.sh: root:lugh 0640, so the
# user commands run as could read both instances' secrets).
ALWAYS_HIDDEN = (
    "/root", "/home", "/run", "/var/run", "/etc/shadow", "/etc/gshadow", "/sys/fs/cgroup",
    "/etc/lugh",
)  # fmt: skip


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

    async def run(
        self, command: str, *, cwd: Path, timeout_s: float, env: Mapping[str, str]
    ) -> CommandResult:
        """Run `command` in the sandbox with `cwd` (a worktree root) as the only writable place."""
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
                command, worktree, environment, status_write, hidden_dirs, hidden_files
            )
            try:
                result = await run_process(
                    argv, cwd=Path(worktree), env={"PATH": SAFE_PATH}, timeout_s=timeout_s,
                    output_bytes=self.limits.output_bytes, max_processes=self.limits.processes,
                    allow_uncapped_root=self.allow_uncapped_root, pass_fds=(status_write,),
                )
            except FileNotFoundError:
                raise self._unavailable(f"{self.bwrap} is not installed") from None
            except OSError as exc:
                raise self._unavailable(f"{self.bwrap}: {exc.strerror or exc}") from None
        finally:
            os.close(status_write)
            status = _read_available(status_read)
            os.close(status_read)
        if not (result.timed_out or result.stopped) and b'"child-pid"' not in status:
            raise self._unavailable(_bwrap_reason(result.stderr))
        return result

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
