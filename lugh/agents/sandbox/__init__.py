"""Where an agent's `run_command` runs: a Sandbox chosen by name (LUGH_SANDBOX)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lugh.agents.sandbox.base import (
    CommandResult,
    GiB,
    KiB,
    Limits,
    MiB,
    Sandbox,
    SandboxCheck,
    SandboxError,
)
from lugh.agents.sandbox.bubblewrap import BubblewrapSandbox
from lugh.agents.sandbox.environment import command_environment
from lugh.agents.sandbox.unsandboxed import NoSandbox

SANDBOX_NAMES = ("bubblewrap", "none")


def make_sandbox(
    name: str = "bubblewrap", *, limits: Limits | None = None, hidden: Sequence[Path | str] = (),
    bwrap: str = "bwrap", allow_uncapped_root: bool = False,
) -> Sandbox:
    """The sandbox called `name`; `hidden` paths (data dir, database socket dir, .env …) are
    invisible inside it. `none` must be asked for by name: nothing falls back to it. As root
    without a pids cgroup, commands are refused unless `allow_uncapped_root`."""
    if name == "bubblewrap":
        return BubblewrapSandbox(
            limits=limits, hidden=hidden, bwrap=bwrap, allow_uncapped_root=allow_uncapped_root
        )
    if name == "none":
        return NoSandbox(limits=limits, allow_uncapped_root=allow_uncapped_root)
    raise SandboxError(f"LUGH_SANDBOX must be one of {', '.join(SANDBOX_NAMES)}, got {name!r}.")


__all__ = [
    "GiB",
    "KiB",
    "MiB",
    "SANDBOX_NAMES",
    "BubblewrapSandbox",
    "CommandResult",
    "Limits",
    "NoSandbox",
    "Sandbox",
    "SandboxCheck",
    "SandboxError",
    "command_environment",
    "make_sandbox",
]
