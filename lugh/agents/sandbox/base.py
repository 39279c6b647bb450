"""What a command sandbox is: the Sandbox protocol, its limits, its result and its refusals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from lugh.errors import UserError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class SandboxError(UserError):
    """The command was not run (the sandbox cannot start, or the request is unsafe); `str()`
    says why in one sentence."""


@dataclass(frozen=True)
class Limits:
    """What one command may use. Memory is RLIMIT_DATA (heap and private writable mappings), not
    RLIMIT_AS, so runtimes that reserve large virtual ranges (V8, the JVM, Go) still start;
    `address_space_bytes` adds RLIMIT_AS for those who want it."""

    processes: int = 256
    memory_bytes: int = 2 * GiB
    cpu_seconds: int = 600
    file_size_bytes: int = 1 * GiB
    open_files: int = 1024
    output_bytes: int = 64 * KiB  # per stream: the first and last halves are kept
    tmp_bytes: int = 512 * MiB  # the private /tmp (bubblewrap only)
    address_space_bytes: int | None = None

    def prlimit_args(self) -> list[str]:
        args = [
            f"--nproc={self.processes}",
            f"--data={self.memory_bytes}",
            f"--cpu={self.cpu_seconds}",
            f"--fsize={self.file_size_bytes}",
            f"--nofile={self.open_files}",
            "--core=0",
        ]
        if self.address_space_bytes is not None:
            args.append(f"--as={self.address_space_bytes}")
        return args


@dataclass(frozen=True)
class CommandResult:
    exit_code: int | None  # None when Lugh stopped the command (timeout or a limit)
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    stopped: str | None = None  # why Lugh stopped it before its end, as a clause

    def render(self) -> str:
        """The result as the model sees it."""
        if self.timed_out:
            head = f"Stopped after {self.duration_s:.1f} s: it ran past its time limit."
        elif self.stopped:
            head = f"Stopped after {self.duration_s:.1f} s because {self.stopped}."
        else:
            head = f"Exit code {self.exit_code} after {self.duration_s:.1f} s."
        parts = [head]
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            if text:
                parts.append(f"--- {name} ---\n{text.rstrip(chr(10))}")
        return "\n".join(parts)


@dataclass(frozen=True)
class SandboxCheck:
    """For `lugh doctor`: whether commands can run, and how safely."""

    level: Literal["ok", "warn", "fail"]
    detail: str


class Sandbox(Protocol):
    """Runs an agent's shell line in a worktree, away from the host's secrets, within limits."""

    name: str

    async def run(
        self, command: str, *, cwd: Path, timeout_s: float, env: Mapping[str, str]
    ) -> CommandResult:
        """Run `command` with `/bin/sh -c` in `cwd` (the worktree root, the only writable place)."""
        ...

    def prepare(self, cwd: Path, env: Mapping[str, str]) -> None:
        """Commands will run in `cwd` with `env` until `release`: a sandbox may be made ready
        for them ahead of time (bubblewrap does)."""
        ...

    async def release(self, cwd: Path, env: Mapping[str, str]) -> None:
        """No more commands in `cwd` for the run that prepared it."""
        ...

    async def check(self) -> SandboxCheck:
        ...
