"""Sandboxes built ahead of their command: a prepared worktree always has one waiting, each
serves one command exactly as one built for it would, and nothing is left once released.
(The escape suite runs every attempt in both kinds of sandbox.)"""

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from lugh.agents.sandbox import BubblewrapSandbox, Limits, SandboxError
from lugh.agents.sandbox.bubblewrap import READ_COMMAND
from lugh.agents.sandbox.pids import find_pids_hierarchy

WAIT_S = 10.0


@pytest.fixture
async def sandbox() -> AsyncIterator[BubblewrapSandbox]:
    sandbox = BubblewrapSandbox(limits=Limits(output_bytes=4000))
    try:
        yield sandbox
    finally:
        await sandbox.close()


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "wt"
    path.mkdir()
    return path


def waiting_shells() -> set[int]:
    """The shells of this process's sandboxes built ahead, waiting for their command."""
    found = set()
    for proc in psutil.Process().children(recursive=True):
        # Exactly the shell, reading through its `cat`: not the bwrap, nice or prlimit that lead
        # to it with the same words, nor its fork on the way to becoming that cat.
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.cmdline() == ["/bin/sh", "-c", READ_COMMAND] and any(
                child.name() == "cat" for child in proc.children()
            ):
                found.add(proc.pid)
    return found


def children_running() -> bool:
    for child in psutil.Process().children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            pass
    return False


async def eventually(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def prepared(sandbox: BubblewrapSandbox, worktree: Path) -> tuple[set[int], set[int]]:
    """Prepare `worktree`; once its sandbox is built ahead: the waiting shells of before, and
    the one built for it."""
    before = waiting_shells()
    sandbox.prepare(worktree, {})
    await eventually(lambda: len(waiting_shells() - before) == 1, "no sandbox was built ahead")
    return before, waiting_shells() - before


async def test_a_prepared_worktree_has_a_sandbox_waiting_and_each_command_takes_one(
    sandbox: BubblewrapSandbox, worktree: Path
) -> None:
    before, first = await prepared(sandbox, worktree)

    result = await sandbox.run("echo made > made.txt; pwd", cwd=worktree, timeout_s=30, env={})

    assert (result.exit_code, result.stdout) == (0, f"{worktree}\n")
    assert (worktree / "made.txt").read_text() == "made\n"
    await eventually(
        lambda: len(waiting_shells() - before) == 1 and not (waiting_shells() & first),
        "the used sandbox was not replaced by a new one",
    )
    await sandbox.release(worktree, {})
    await eventually(lambda: not (waiting_shells() - before), "a sandbox was left waiting")


async def test_the_command_arrives_intact_with_its_quotes_newlines_and_non_ascii(
    sandbox: BubblewrapSandbox, worktree: Path
) -> None:
    sandbox.prepare(worktree, {})
    command = "cat <<'EOF'\n$HOME `id` \"x\" 'y' \\ é ✓\nEOF\nprintf 'end\\n\\n'\n\n\n"
    result = await sandbox.run(command, cwd=worktree, timeout_s=30, env={})
    assert result.exit_code == 0, result.render()
    assert result.stdout == "$HOME `id` \"x\" 'y' \\ é ✓\nend\n\n"


async def test_the_command_reads_end_of_file_and_sees_only_the_allowlisted_environment(
    sandbox: BubblewrapSandbox, worktree: Path
) -> None:
    sandbox.prepare(worktree, {})
    result = await sandbox.run(
        "cat; echo read:$?; env | cut -d= -f1 | sort | tr '\\n' ' '; echo; echo $0",
        cwd=worktree, timeout_s=30, env={},
    )  # fmt: skip
    assert result.stdout.splitlines() == [
        "read:0", "GIT_OPTIONAL_LOCKS HOME LANG PATH PWD TERM TMPDIR ", "/bin/sh",
    ]  # fmt: skip


async def test_a_command_with_other_variables_gets_a_sandbox_built_for_it(
    sandbox: BubblewrapSandbox, worktree: Path
) -> None:
    sandbox.prepare(worktree, {})
    result = await sandbox.run("echo $CI", cwd=worktree, timeout_s=30, env={"CI": "1"})
    assert result.stdout == "1\n"


async def test_a_waiting_sandbox_killed_from_outside_is_replaced_by_one_built_now(
    sandbox: BubblewrapSandbox, worktree: Path
) -> None:
    await prepared(sandbox, worktree)
    for child in psutil.Process().children():  # the waiting sandbox's bwrap
        child.kill()
    await eventually(lambda: not children_running(), "the killed sandbox did not end")
    result = await sandbox.run("echo still", cwd=worktree, timeout_s=30, env={})
    assert (result.exit_code, result.stdout) == (0, "still\n")


async def test_refusals_come_before_the_waiting_sandbox_is_used(
    sandbox: BubblewrapSandbox, worktree: Path
) -> None:
    before, waiting = await prepared(sandbox, worktree)
    for bad in ("  ", "echo a\x00b"):
        with pytest.raises(SandboxError):
            await sandbox.run(bad, cwd=worktree, timeout_s=30, env={})
    assert waiting_shells() - before == waiting


async def test_the_timeout_counts_from_the_command_not_from_the_build(
    sandbox: BubblewrapSandbox, worktree: Path
) -> None:
    _, [shell] = await prepared(sandbox, worktree)

    def waited_past_the_timeout() -> bool:
        return time.time() - psutil.Process(shell).create_time() > 0.6

    await eventually(waited_past_the_timeout, "the built sandbox vanished")
    result = await sandbox.run("sleep 5", cwd=worktree, timeout_s=0.5, env={})
    assert result.timed_out and 0.5 <= result.duration_s < 3
    fast = await sandbox.run("true", cwd=worktree, timeout_s=0.5, env={})
    assert fast.exit_code == 0


async def test_released_and_closed_sandboxes_leave_no_cgroup_behind(
    sandbox: BubblewrapSandbox, worktree: Path
) -> None:
    hierarchy = find_pids_hierarchy()
    if hierarchy is None:  # then RLIMIT_NPROC caps commands: only an ordinary user gets here
        assert os.geteuid() != 0
        return
    mine = f"cmd-{os.getpid()}-"

    def cgroups() -> set[str]:
        return {p.name for p in hierarchy.parent.iterdir() if p.name.startswith(mine)}

    before = cgroups()
    sandbox.prepare(worktree, {})
    await sandbox.run("true", cwd=worktree, timeout_s=30, env={})
    await eventually(lambda: cgroups() - before, "the next sandbox has no cgroup")
    await sandbox.release(worktree, {})
    assert cgroups() == before
    sandbox.prepare(worktree, {})
    await sandbox.close()
    assert cgroups() == before
