"""The sandboxes as the agent loop uses them: results, limits, refusals, the registry, and the
`none` backend."""

import os
import re
import secrets
from pathlib import Path

import psutil
import pytest

from lugh.agents.sandbox import (
    BubblewrapSandbox,
    Limits,
    NoSandbox,
    SandboxError,
    command_environment,
    make_sandbox,
)
from lugh.agents.sandbox.pids import find_pids_hierarchy
from lugh.agents.sandbox.process import ROOT_REFUSAL, CappedOutput, process_cap

SECRET = "sk-ant-api03-canary0123456789abcdefghij"


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "wt"
    path.mkdir()
    return path


@pytest.fixture(params=["bubblewrap", "none"])
def sandbox(request: pytest.FixtureRequest) -> BubblewrapSandbox | NoSandbox:
    return make_sandbox(request.param, limits=Limits(output_bytes=1000))


async def test_a_command_runs_in_the_worktree_with_its_exit_code_and_output(
    sandbox: BubblewrapSandbox | NoSandbox, worktree: Path
) -> None:
    result = await sandbox.run(
        "pwd; echo oops >&2; echo made > made.txt; exit 3", cwd=worktree, timeout_s=30, env={}
    )
    assert (result.exit_code, result.stdout, result.stderr) == (3, f"{worktree}\n", "oops\n")
    assert not result.timed_out and result.stopped is None and result.duration_s < 30
    assert (worktree / "made.txt").read_text() == "made\n"
    assert result.render() == (
        f"Exit code 3 after {result.duration_s:.1f} s.\n--- stdout ---\n{worktree}\n"
        "--- stderr ---\noops"
    )


async def test_the_environment_is_the_allowlist_plus_given_variables(
    sandbox: BubblewrapSandbox | NoSandbox, worktree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("LUGH_SOMETHING", "from-the-host")
    result = await sandbox.run("env", cwd=worktree, timeout_s=30, env={"CI": "1"})
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines()}
    assert names == {"PATH", "HOME", "TMPDIR", "LANG", "TERM", "GIT_OPTIONAL_LOCKS", "CI", "PWD"}
    assert SECRET not in result.stdout and "from-the-host" not in result.stdout


async def test_the_limits_are_set_on_the_command(
    sandbox: BubblewrapSandbox | NoSandbox, worktree: Path
) -> None:
    result = await sandbox.run(
        "grep -E 'processes|data|cpu|file size|open files|core' /proc/self/limits; nice",
        cwd=worktree, timeout_s=30, env={},
    )
    soft = dict(re.findall(r"^(Max [a-z ]+?)  +(\S+)", result.stdout, re.M))
    limits = Limits()
    assert soft["Max processes"] == str(limits.processes)
    assert soft["Max data size"] == str(limits.memory_bytes)
    assert soft["Max cpu time"] == str(limits.cpu_seconds)
    assert soft["Max file size"] == str(limits.file_size_bytes)
    assert soft["Max open files"] == str(limits.open_files)
    assert soft["Max core file size"] == "0"
    assert result.stdout.splitlines()[-1] == "19"  # the niceness: the host wins for the CPU


async def test_output_is_capped_keeping_its_start_and_end(
    sandbox: BubblewrapSandbox | NoSandbox, worktree: Path
) -> None:
    result = await sandbox.run(
        "echo FIRST; head -c 5000000 /dev/zero | tr '\\0' x; echo; echo LAST",
        cwd=worktree, timeout_s=30, env={},
    )
    assert result.exit_code == 0
    assert result.stdout.startswith("FIRST\nxxx") and result.stdout.endswith("xxx\nLAST\n")
    assert "[… 4999012 bytes of output omitted …]" in result.stdout
    assert len(result.stdout) < 1100


async def test_a_command_past_its_time_limit_is_stopped(
    sandbox: BubblewrapSandbox | NoSandbox, worktree: Path
) -> None:
    result = await sandbox.run("echo started; sleep 60", cwd=worktree, timeout_s=0.5, env={})
    assert result.timed_out and result.exit_code is None
    assert result.stdout == "started\n" and 0.5 <= result.duration_s < 10
    assert result.render().startswith("Stopped after 0.5 s: it ran past its time limit.")


@pytest.mark.parametrize("env", [
    {"GITHUB_TOKEN": "abc"}, {"DATABASE_URL": "postgresql://x"}, {"AWS_SECRET_ACCESS_KEY": "x"},
    {"NOTES": SECRET}, {"REPO": "https://user:hunter22@example.com/x.git"}, {"BAD NAME": "x"},
])
async def test_variables_that_look_like_secrets_are_refused(
    sandbox: BubblewrapSandbox | NoSandbox, worktree: Path, env: dict[str, str]
) -> None:
    with pytest.raises(SandboxError) as error:
        await sandbox.run("env", cwd=worktree, timeout_s=30, env=env)
    assert str(error.value).endswith((
        "looks like a secret, and secrets are never passed to sandboxed commands.",
        "is not valid.",
    ))


def test_ordinary_variables_pass() -> None:
    env = command_environment({"GIT_AUTHOR_NAME": "Lugh agent", "PYTHONUNBUFFERED": "1"})
    assert env["GIT_AUTHOR_NAME"] == "Lugh agent" and env["HOME"] == "/tmp"


async def test_a_command_with_a_nul_byte_is_refused(
    sandbox: BubblewrapSandbox | NoSandbox, worktree: Path
) -> None:
    with pytest.raises(SandboxError, match="contains a NUL byte"):
        await sandbox.run("echo a\x00b", cwd=worktree, timeout_s=30, env={})


async def test_a_missing_directory_is_an_error_sentence(
    sandbox: BubblewrapSandbox | NoSandbox, tmp_path: Path
) -> None:
    with pytest.raises(SandboxError, match="nowhere"):
        await sandbox.run("true", cwd=tmp_path / "nowhere", timeout_s=30, env={})


async def test_a_configured_but_missing_bubblewrap_refuses_to_run_anything(worktree: Path) -> None:
    broken = make_sandbox("bubblewrap", bwrap=str(worktree / "no-such-bwrap"))
    with pytest.raises(SandboxError) as error:
        await broken.run("touch ran.txt", cwd=worktree, timeout_s=30, env={})
    assert str(error.value) == (
        f"The command was not run because the bubblewrap sandbox could not start "
        f"({worktree / 'no-such-bwrap'} is not installed); Lugh never runs commands unsandboxed "
        "unless LUGH_SANDBOX=none is set, so install bubblewrap or allow user namespaces."
    )
    assert not (worktree / "ran.txt").exists()
    check = await broken.check()
    assert check.level == "fail" and "is not installed" in check.detail


async def test_a_bubblewrap_that_cannot_build_the_sandbox_refuses_to_run_anything(
    worktree: Path, tmp_path: Path
) -> None:
    # What bwrap does where user namespaces are denied: a message, exit 1, no status report.
    fake = tmp_path / "fake-bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    sandbox = BubblewrapSandbox(bwrap=str(fake))
    with pytest.raises(SandboxError, match=r"start \(setting up uid map: Permission denied\)"):
        await sandbox.run("touch ran.txt", cwd=worktree, timeout_s=30, env={})
    assert not (worktree / "ran.txt").exists()


async def test_the_check_reports_a_working_bubblewrap() -> None:
    check = await make_sandbox("bubblewrap").check()
    expected = "warn" if os.geteuid() == 0 else "ok"
    assert check.level == expected and "bubblewrap works" in check.detail


async def test_the_check_says_what_caps_a_commands_processes() -> None:
    hierarchy = find_pids_hierarchy()
    check = await make_sandbox("bubblewrap").check()
    if hierarchy is not None:
        assert f"processes capped by {hierarchy.describe()}" in check.detail
    else:
        assert check.level == "fail" if os.geteuid() == 0 else "RLIMIT_NPROC" in check.detail


def test_as_root_without_a_pids_cgroup_commands_are_refused_unless_allowed() -> None:
    if os.geteuid() == 0:
        with pytest.raises(SandboxError) as error:
            process_cap(64, allow_uncapped_root=False, find=lambda: None)
        assert str(error.value) == ROOT_REFUSAL
    assert process_cap(64, allow_uncapped_root=True, find=lambda: None) is None


async def test_a_command_runs_in_a_pids_cgroup_of_its_own_that_goes_with_it(
    worktree: Path,
) -> None:
    hierarchy = find_pids_hierarchy()
    if hierarchy is None:  # then RLIMIT_NPROC must bind: only an ordinary user gets here
        assert os.geteuid() != 0
        return
    sandbox = make_sandbox("none", limits=Limits(processes=32))
    field = "pids" if hierarchy.version == 1 else ""
    result = await sandbox.run(
        f"own=$(grep '^[0-9]*:{field}:' /proc/self/cgroup | cut -d: -f3); echo $own;"
        f" cat {hierarchy.parent}/$(basename $own)/pids.max",
        cwd=worktree, timeout_s=30, env={},
    )
    own, limit = result.stdout.split()
    assert Path(own).parent.name == "lugh-sandbox" and Path(own).name.startswith("cmd-")
    assert limit == "32"
    assert not (hierarchy.parent / Path(own).name).exists()


async def test_a_process_that_left_the_session_is_still_killed_with_its_command(
    worktree: Path,
) -> None:
    if find_pids_hierarchy() is None:
        assert os.geteuid() != 0
        return
    marker = f"1000.{secrets.randbelow(10**9):09d}"
    result = await make_sandbox("none").run(
        f"setsid sleep {marker} > /dev/null 2>&1 & echo started", cwd=worktree, timeout_s=30,
        env={},
    )
    assert result.stdout == "started\n"
    assert not [p for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or ())]


async def test_the_none_backend_says_it_is_not_isolation() -> None:
    check = await make_sandbox("none").check()
    assert check.level == "warn" and "without isolation" in check.detail


def test_sandboxes_are_chosen_by_name_and_nothing_else() -> None:
    assert isinstance(make_sandbox("bubblewrap"), BubblewrapSandbox)
    assert isinstance(make_sandbox("none"), NoSandbox)
    with pytest.raises(SandboxError, match="must be one of bubblewrap, none, got 'docker'."):
        make_sandbox("docker")


def test_capped_output_keeps_the_first_and_last_halves() -> None:
    out = CappedOutput(10)
    for chunk in (b"abc", b"defgh", b"ijklmnop", b"qrst"):
        out.add(chunk)
    assert out.text() == "abcde\n[… 10 bytes of output omitted …]\npqrst"
    small = CappedOutput(10)
    small.add(b"0123456789")
    assert small.text() == "0123456789"
