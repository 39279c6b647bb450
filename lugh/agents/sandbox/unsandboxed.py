"""The `none` backend: the command runs directly on the host. It still gets a cleared
environment, the same rlimits, a new session and the wall timeout, but it is not isolation: it
can read and write whatever Lugh can and reach the network. Used only when LUGH_SANDBOX=none."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lugh.agents.sandbox.base import CommandResult, Limits, SandboxCheck, SandboxError
from lugh.agents.sandbox.environment import command_environment
from lugh.agents.sandbox.process import limited_shell, process_cap_mechanism, run_process


class NoSandbox:
    """Runs commands unisolated, within limits; only ever chosen explicitly."""

    name = "none"

    def __init__(self, *, limits: Limits | None = None, allow_uncapped_root: bool = False) -> None:
        self.limits = limits or Limits()
        self.allow_uncapped_root = allow_uncapped_root

    async def run(
        self, command: str, *, cwd: Path, timeout_s: float, env: Mapping[str, str]
    ) -> CommandResult:
        environment = command_environment(env)
        argv = limited_shell(command, self.limits)
        try:
            return await run_process(
                argv, cwd=Path(cwd), env=environment, timeout_s=timeout_s,
                output_bytes=self.limits.output_bytes, max_processes=self.limits.processes,
                allow_uncapped_root=self.allow_uncapped_root,
            )
        except OSError as exc:
            raise SandboxError(
                f"The command could not start in {cwd} ({exc.strerror or exc})."
            ) from None

    def prepare(self, cwd: Path, env: Mapping[str, str]) -> None:
        """Nothing to build ahead: a host command starts in a few milliseconds."""

    async def release(self, cwd: Path, env: Mapping[str, str]) -> None:
        pass

    async def check(self) -> SandboxCheck:
        return SandboxCheck(
            "warn",
            "LUGH_SANDBOX=none: agent commands run on this machine without isolation "
            "(limits and a clean environment only; processes capped by "
            f"{process_cap_mechanism()}).",
        )
