"""The kernel's cap on a sandboxed command's processes: a pids cgroup of its own.

RLIMIT_NPROC alone does not hold: the kernel never applies it to uid 0 (Lugh often runs as root
in a container, and bubblewrap maps root to root), and a watchdog that counts processes loses the
race against a fork bomb on a loaded machine. A pids cgroup is checked by fork() itself, for root
too, and lets Lugh kill every process of the command, wherever it went, at once.

Where the cgroups are made (`find_pids_hierarchy`, once per process):
- cgroup v1: under Lugh's own cgroup in the `pids` hierarchy (usually /sys/fs/cgroup/pids);
- cgroup v2: under Lugh's own cgroup when it offers the pids controller. A v2 cgroup holding
  processes cannot hand controllers to children, so Lugh first moves itself into a `lugh` leaf
  beside them (what a container's init does with its delegated cgroup).
The command joins its cgroup before it execs anything (`join_argv`), so no process of it ever
runs outside, and the sandbox hides /sys/fs/cgroup so nothing inside can leave it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

EMPTY_WAIT_S = 5.0
PREFIX = "cmd-"
_numbers = itertools.count(1)
# `0` written to cgroup.procs is the writer itself; then the real command replaces the shell.
JOIN = 'echo 0 > "$0" || exit 125; exec "$@"'


@dataclass(frozen=True)
class PidsHierarchy:
    """Where per-command pids cgroups can be made."""

    version: int  # 1 or 2
    parent: Path

    def describe(self) -> str:
        return f"a pids cgroup per command (cgroup v{self.version}, {self.parent})"

    def create(self, limit: int) -> CommandCgroup:
        path = self.parent / f"{PREFIX}{os.getpid()}-{next(_numbers)}"
        path.mkdir()
        try:
            (path / "pids.max").write_text(str(limit))
        except OSError:
            path.rmdir()
            raise
        return CommandCgroup(path, limit, self.version)


@dataclass(frozen=True)
class CommandCgroup:
    """One command's cgroup: at most `limit` tasks (processes and threads) at any moment."""

    path: Path
    limit: int
    version: int

    def join_argv(self, argv: list[str]) -> list[str]:
        """`argv`, run by a process that has joined this cgroup first (a fixed shell script:
        the command's own words are only ever its arguments)."""
        return ["/bin/sh", "-c", JOIN, str(self.path / "cgroup.procs"), *argv]

    def tripped(self) -> bool:
        """Whether a fork was refused because the cgroup was full."""
        try:
            events = (self.path / "pids.events").read_text()
        except OSError:
            return False
        for line in events.splitlines():
            name, _, count = line.partition(" ")
            if name == "max" and count.strip() not in ("", "0"):
                return True
        return False

    def members(self) -> list[int]:
        try:
            return [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill(self) -> None:
        """SIGKILL everything in the cgroup (v2 in one write; v1 process by process, and again
        until nothing is left, since the cap keeps a fork bomb from outrunning it)."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                (self.path / "cgroup.kill").write_text("1")
                return
        for _ in range(1000):
            pids = self.members()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    async def remove(self) -> None:
        """Kill what is left and remove the cgroup once it is empty."""
        deadline = time.monotonic() + EMPTY_WAIT_S
        while True:
            self.kill()
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return  # left for the next start's prune
                await asyncio.sleep(0.01)


@functools.cache
def find_pids_hierarchy() -> PidsHierarchy | None:
    """The pids hierarchy Lugh can make cgroups in, or None (then only rlimits remain)."""
    mounts = _cgroup_mounts()
    own = _own_cgroups()
    v1 = mounts.get("pids")
    if v1 is not None and "pids" in own:
        found = _usable(1, Path(v1 + own["pids"]) / "lugh-sandbox")
        if found is not None:
            return found
    v2 = mounts.get("cgroup2")
    if v2 is not None and "" in own:
        return _delegate_v2(Path(v2 + own[""]))
    return None


def _usable(version: int, parent: Path) -> PidsHierarchy | None:
    try:
        parent.mkdir(exist_ok=True)
        hierarchy = PidsHierarchy(version, parent)
        _prune(parent)
        hierarchy.create(1).path.rmdir()  # proves pids.max can be written
    except OSError:
        return None
    return hierarchy


def _delegate_v2(own: Path) -> PidsHierarchy | None:
    try:
        if "pids" not in (own / "cgroup.controllers").read_text().split():
            return None
        enabled = (own / "cgroup.subtree_control").read_text().split()
    except OSError:
        return None
    if "pids" not in enabled:
        leaf = own / "lugh"
        try:
            leaf.mkdir(exist_ok=True)
            (leaf / "cgroup.procs").write_text(str(os.getpid()))
            (own / "cgroup.subtree_control").write_text("+pids")
        except OSError:
            with contextlib.suppress(OSError):
                (own / "cgroup.procs").write_text(str(os.getpid()))
                leaf.rmdir()
            return None
    parent = own / "lugh-sandbox"
    try:
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text("+pids")
    except OSError:
        return None
    return _usable(2, parent)


def _prune(parent: Path) -> None:
    """Remove the empty cgroups of Lugh processes that are gone (a crash leaves them)."""
    for child in parent.glob(f"{PREFIX}*"):
        owner = child.name.removeprefix(PREFIX).split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            with contextlib.suppress(OSError):
                child.rmdir()


def _cgroup_mounts() -> dict[str, str]:
    """Mount points: "pids" for the v1 pids hierarchy, "cgroup2" for the unified one."""
    found: dict[str, str] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3 or "rw" not in fields[5].split(","):
            continue
        if tail[0] == "cgroup" and "pids" in tail[2].split(","):
            found.setdefault("pids", _unescape(fields[4]))
        elif tail[0] == "cgroup2":
            found.setdefault("cgroup2", _unescape(fields[4]))
    return found


def _own_cgroups() -> dict[str, str]:
    """Lugh's own cgroup path per v1 controller, and under "" the v2 one."""
    own: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return own
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller] = path.rstrip("/")
    return own


def _unescape(path: str) -> str:
    return path.encode().decode("unicode_escape") if "\\" in path else path
