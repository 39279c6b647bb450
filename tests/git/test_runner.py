import asyncio
import os
import stat
import time
from pathlib import Path

import psutil
import pytest

from lugh import git
from tests.conftest import git as plain_git

HOOKS = ("pre-commit", "post-commit", "post-checkout", "reference-transaction", "pre-auto-gc")


def plant_script(path: Path, canary: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\ntouch '{canary}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def hooked_repo(repo: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A repo whose own hooks, a configured hooks dir and an fsmonitor all touch canaries."""
    hook_canary, fsmonitor_canary = tmp_path / "hook-canary", tmp_path / "fsmonitor-canary"
    for name in HOOKS:
        plant_script(repo / ".git" / "hooks" / name, hook_canary)
        plant_script(tmp_path / "evil-hooks" / name, hook_canary)
    plant_script(tmp_path / "fsmonitor", fsmonitor_canary)
    return repo, hook_canary, fsmonitor_canary


def test_the_planted_hooks_and_fsmonitor_do_run_under_plain_git(hooked_repo):
    repo, hook_canary, fsmonitor_canary = hooked_repo
    plain_git(repo, "commit", "-q", "--allow-empty", "-m", "with hooks")
    plain_git(repo, "-c", f"core.fsmonitor={fsmonitor_canary.parent / 'fsmonitor'}", "status")

    assert hook_canary.exists()
    assert fsmonitor_canary.exists()


async def test_host_side_git_never_runs_a_repository_hook_or_fsmonitor(hooked_repo, tmp_path):
    repo, hook_canary, fsmonitor_canary = hooked_repo
    plain_git(repo, "config", "core.fsmonitor", str(tmp_path / "fsmonitor"))

    await git.run("checkout", "-q", "-b", "feature", cwd=repo)
    await git.run("commit", "-q", "--allow-empty", "-m", "no hooks", cwd=repo)
    await git.run("status", cwd=repo)
    await git.create_branch(repo, "another")
    await git.run("checkout", "-q", "main", cwd=repo)
    await git.run("merge", "-q", "--no-edit", "feature", cwd=repo)
    await git.clone(str(repo), tmp_path / "clone")
    plain_git(repo, "config", "core.hooksPath", str(tmp_path / "evil-hooks"))
    await git.run("commit", "-q", "--allow-empty", "-m", "configured hooks dir", cwd=repo)
    await git.run("checkout", "-q", "feature", cwd=repo)

    assert not hook_canary.exists()
    assert not fsmonitor_canary.exists()


async def test_git_gets_a_scrubbed_environment_without_secrets_or_git_variables(repo, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret")
    monkeypatch.setenv("GIT_DIR", "/nonexistent")
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'core.hookspath'='/tmp/evil'")

    result = await git.run("-c", "alias.showenv=!env", "showenv", cwd=repo)

    assert "sk-ant-very-secret" not in result.stdout
    assert "GIT_DIR=/nonexistent" not in result.stdout
    assert "/tmp/evil" not in result.stdout
    assert "GIT_TERMINAL_PROMPT=0" in result.stdout.splitlines()


async def test_a_failing_git_command_raises_one_sentence_naming_the_command(repo):
    with pytest.raises(git.GitError) as raised:
        await git.run("rev-parse", "--verify", "no-such-branch", cwd=repo)

    message = str(raised.value)
    assert message.startswith("git rev-parse failed: ")
    assert message.endswith(".") and "\n" not in message
    assert raised.value.returncode != 0


async def test_git_in_a_missing_directory_raises_one_sentence(tmp_path):
    with pytest.raises(git.GitError, match="git status could not start in .*missing"):
        await git.run("status", cwd=tmp_path / "missing")


async def test_an_unchecked_failure_is_returned_with_its_exit_code(repo):
    result = await git.run("rev-parse", "--verify", "--quiet", "nope", cwd=repo, check=False)

    assert not result.ok and result.returncode == 1


async def test_a_git_command_past_its_timeout_is_stopped_with_its_children(repo, tmp_path):
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()

    with pytest.raises(git.GitError, match="did not finish within 0.5 s"):
        await git.run(
            "-c", f"alias.hang=!sleep 60 & echo $! > '{pid_file}'; wait", "hang",
            cwd=repo, timeout_s=0.5,
        )

    assert time.monotonic() - started < 10
    assert await gone(int(pid_file.read_text()))


async def gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        await asyncio.sleep(0.02)
    return False


def test_credentials_in_urls_are_redacted():
    text = "unable to access 'https://owner:ghp_token@github.com/o/r.git/'"

    assert git.redact_url(text) == "unable to access 'https://***@github.com/o/r.git/'"


def test_the_environment_passes_only_what_git_needs(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("GIT_WORK_TREE", "/elsewhere")

    env = git.git_environment()

    assert {"PATH", "HOME", "GIT_TERMINAL_PROMPT"} <= env.keys()
    assert "OPENAI_API_KEY" not in env and "GIT_WORK_TREE" not in env
    allowed = {"PATH", "HOME", "LANG", "LC_ALL", "GIT_TERMINAL_PROMPT", *git.runner.PASSED_THROUGH}
    assert set(env) <= allowed


async def test_git_runs_in_a_session_of_its_own_so_it_can_never_prompt_on_a_terminal(repo):
    result = await git.run("-c", "alias.sid=!cut -d' ' -f6 /proc/self/stat", "sid", cwd=repo)

    assert int(result.out) != os.getsid(0)
