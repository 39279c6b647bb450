"""Escape attempts against the bubblewrap sandbox, each denied or contained: 0 breaches.

The scene lives under /var/tmp (not /tmp, which the sandbox replaces anyway), so only the hidden
list keeps the data dir and the .env file out of sight; a linked worktree sits in the data dir, as
Lugh makes them."""

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from lugh import git as host_git
from lugh.agents.sandbox import BubblewrapSandbox, CommandResult, Limits, MiB, SandboxError
from lugh.agents.sandbox.pids import find_pids_hierarchy
from tests.conftest import git, make_repo

SECRET = "sk-ant-api03-escape-canary-0123456789abcdef"
WAIT_S = 10.0
LIMITS = Limits(processes=64, memory_bytes=256 * MiB, cpu_seconds=2, file_size_bytes=16 * MiB,
                tmp_bytes=32 * MiB, output_bytes=16 * 1024)
# bubblewrap is installed by the test setup (scripts/system-deps.sh); without it these must fail.


@dataclass
class Scene:
    base: Path
    repo: Path
    data: Path
    worktree: Path
    dotenv: Path
    outside: Path
    sandbox: BubblewrapSandbox

    @property
    def common_git_dir(self) -> Path:
        return self.repo / ".git"

    async def run(self, command: str, timeout_s: float = 30) -> CommandResult:
        return await self.sandbox.run(command, cwd=self.worktree, timeout_s=timeout_s, env={})

    async def breaches(self, attempts: list[str]) -> list[str]:
        """The attempts (shell lines) that succeeded inside the sandbox."""
        script = "; ".join(
            f"if ( {attempt} ) >/dev/null 2>&1; then echo BREACH:{n}; fi"
            for n, attempt in enumerate(attempts)
        )
        result = await self.run(script)
        assert result.exit_code == 0, result.render()
        numbers = [int(line[7:]) for line in result.stdout.split() if line.startswith("BREACH:")]
        return [attempts[n] for n in numbers]


# Every attempt is made twice: in a sandbox built for the command, and in one built ahead of it
# (a run's commands get those: the sandbox waits, its shell reading the command from stdin).
@pytest.fixture(params=["built for the command", "built ahead"])
async def scene(request: pytest.FixtureRequest) -> AsyncIterator[Scene]:
    base = Path(tempfile.mkdtemp(prefix="lugh-escape-", dir="/var/tmp"))
    try:
        repo = make_repo(base / "repo", {"README.md": "# demo\n", "src/app.py": "print('hi')\n"})
        data = base / "data"
        worktree = data / "worktrees" / "task-1"
        git(repo, "worktree", "add", "-q", "-b", "lugh/1-escape", str(worktree))
        (data / "lugh.env").write_text(f"ANTHROPIC_API_KEY={SECRET}\n")
        dotenv = base / "app" / ".env"
        dotenv.parent.mkdir()
        dotenv.write_text(f"ANTHROPIC_API_KEY={SECRET}\n")
        outside = base / "outside.txt"
        outside.write_text("untouched\n")
        sandbox = BubblewrapSandbox(limits=LIMITS, hidden=[data, dotenv])
        ahead = request.param == "built ahead"
        if ahead:
            sandbox.prepare(worktree, {})
        try:
            yield Scene(base, repo, data, worktree, dotenv, outside, sandbox)
        finally:
            await sandbox.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def test_writes_outside_the_worktree_fail(scene: Scene) -> None:
    tag = secrets.token_hex(4)
    attempts = [
        f"echo changed > {scene.outside}",
        f"touch {scene.base}/new-{tag}",
        f"touch /etc/lugh-{tag}",
        f"touch /usr/lugh-{tag}",
        f"touch /var/tmp/lugh-{tag}",
        f"mkdir /root/lugh-{tag}",
        f"echo changed > {scene.repo}/README.md",
        f"touch {scene.data}/planted-{tag}",
        f"touch {scene.data}/worktrees/sibling-{tag}",
        f"rm -rf {scene.common_git_dir}/objects",
        f"touch {scene.common_git_dir}/worktrees/task-1/planted",
        f"ln -s / {scene.base}/root-{tag}",
    ]
    assert await scene.breaches(attempts) == []
    assert await scene.breaches(["echo mine > inside.txt"]) == ["echo mine > inside.txt"]
    assert (scene.worktree / "inside.txt").read_text() == "mine\n"
    assert scene.outside.read_text() == "untouched\n"
    assert (scene.repo / "README.md").read_text() == "# demo\n"
    places = [scene.base, Path("/etc"), Path("/usr"), Path("/var/tmp"), Path("/root"), scene.data,
              scene.data / "worktrees"]
    assert not [q for p in places for q in p.iterdir() if tag in q.name]
    assert git(scene.repo, "fsck", "--no-progress") == ""


async def test_secrets_in_lughs_environment_are_not_readable(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:" + SECRET)
    result = await scene.run(
        "env; for p in /proc/[0-9]*; do"
        " tr '\\0' '\\n' < $p/environ; tr '\\0' ' ' < $p/cmdline; done;"
        f" cat /proc/{os.getpid()}/environ"
    )
    assert SECRET not in result.stdout + result.stderr


async def test_proc_shows_only_the_sandboxs_processes(scene: Scene) -> None:
    result = await scene.run("ls -d /proc/[0-9]*; cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    pids = [line for line in result.stdout.splitlines() if line.startswith("/proc/")]
    assert 1 <= len(pids) <= 6
    assert "pytest" not in result.stdout


async def test_hidden_files_and_directories_are_empty_inside(scene: Scene) -> None:
    result = await scene.run(
        f"cat {scene.data}/lugh.env {scene.dotenv}; ls -A {scene.data} /root /home /run"
    )
    assert SECRET not in result.stdout
    assert result.stdout.split() == ["/home:", "/root:", "/run:", f"{scene.data}:", "worktrees"]
    assert "lugh.env: No such file" in result.stderr and ".env: Permission denied" in result.stderr
    # The control: without the hidden list, the same files would be readable.
    bare = BubblewrapSandbox(limits=LIMITS)
    exposed = await bare.run(f"cat {scene.dotenv}", cwd=scene.worktree, timeout_s=30, env={})
    assert SECRET in exposed.stdout


async def test_a_directory_holding_a_hidden_path_is_refused(scene: Scene) -> None:
    with pytest.raises(SandboxError, match=f"its directory {scene.base} contains {scene.data}, "
                                           "which must stay hidden from agents"):
        await scene.sandbox.run("true", cwd=scene.base, timeout_s=30, env={})


async def test_a_directory_under_tmp_holding_a_hidden_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    sandbox = BubblewrapSandbox(hidden=[tmp_path / "data"])
    with pytest.raises(SandboxError, match="which must stay hidden from agents"):
        await sandbox.run("true", cwd=tmp_path, timeout_s=30, env={})


async def test_a_doctored_git_pointer_uncovers_nothing(scene: Scene) -> None:
    for n, target in enumerate(["/root", str(scene.data), f"{scene.data}/worktrees"]):
        fake = scene.base / f"fake-{n}"
        fake.mkdir()
        (fake / ".git").write_text(f"gitdir: {target}\n")
        result = await scene.sandbox.run(f"ls -A {target}", cwd=fake, timeout_s=30, env={})
        assert result.stdout.split() == [], result.render()
        assert "lugh.env" not in result.stdout


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A canary TCP server on the host's loopback."""
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


async def test_the_network_is_unreachable(scene: Scene, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    attempts = [
        f"curl -sS -m 3 http://127.0.0.1:{port}/",
        f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)\"",
        f"bash -c 'echo hi > /dev/tcp/127.0.0.1/{port}'",
        f"bash -c 'echo hi > /dev/tcp/localhost/{port}'",
        "curl -sS -m 3 http://1.1.1.1/",
        "getent hosts example.com",
    ]
    assert await scene.breaches(attempts) == []
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing ever connected


async def test_the_database_socket_is_unreachable(postgres, tmp_path: Path) -> None:
    pid_file = (postgres.server.pgdata / "postmaster.pid").read_text().splitlines()
    socket_path = Path(pid_file[4]) / f".s.PGSQL.{pid_file[3]}"
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(socket_path))  # the control: the host reaches it
    worktree = tmp_path / "wt"
    worktree.mkdir()
    sandbox = BubblewrapSandbox(limits=LIMITS, hidden=[postgres.server.pgdata, Path(pid_file[4])])
    result = await sandbox.run(
        f"python3 -c \"import socket; socket.socket(socket.AF_UNIX).connect('{socket_path}')\""
        " && echo BREACH", cwd=worktree, timeout_s=30, env={},
    )
    assert "BREACH" not in result.stdout and result.exit_code != 0


async def test_git_works_read_only_and_nothing_planted_runs_on_the_host(scene: Scene) -> None:
    canary = scene.base / "HOOK-RAN"
    hook = f"#!/bin/sh\\ntouch {canary}\\n"
    (scene.worktree / "src/app.py").write_text("print('changed')\n")
    result = await scene.run("git status --short; git diff --stat; git log -1 --format=%s")
    assert result.exit_code == 0, result.render()
    assert result.stdout.split("\n")[0] == " M src/app.py" and "initial commit" in result.stdout
    attempts = [
        f"printf '{hook}' > {scene.common_git_dir}/hooks/post-commit",
        f"chmod +x {scene.common_git_dir}/hooks/pre-commit.sample",
        f"git config core.hooksPath {scene.worktree}/hooks",
        f"git config --worktree core.fsmonitor 'touch {canary}'",
        f"printf '[core]\\n\\thooksPath = hooks\\n' >> {scene.common_git_dir}/config",
        f"printf 'gitdir: {scene.worktree}/evil\\n' > .git",
        "rm -f .git", "mv .git moved", "git add -A", "git commit -qm sneaky",
    ]
    assert await scene.breaches(attempts) == []
    planted = [
        f"mkdir -p hooks && printf '{hook}' > hooks/post-commit && chmod +x hooks/post-commit"
    ]
    assert await scene.breaches(planted) == planted  # inside the worktree: allowed, and harmless
    await host_git.run("add", "-A", cwd=scene.worktree)
    await host_git.run("commit", "-q", "-m", "agent work", cwd=scene.worktree)
    await host_git.run("status", cwd=scene.worktree)
    assert not canary.exists()
    assert not (scene.common_git_dir / "hooks/post-commit").exists()
    assert git(scene.worktree, "log", "-1", "--format=%s") == "agent work"


def leftovers(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in " ".join(proc.info["cmdline"] or ()):
            found.append(proc)
    return found


async def no_leftovers(marker: str) -> bool:
    deadline = time.monotonic() + WAIT_S
    while leftovers(marker):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def count_marked(marker: str) -> int:
    """Processes on the host whose command line holds `marker` (a quick /proc scan)."""
    count = 0
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                count += marker.encode() in f.read()
        except (OSError, ValueError):
            continue
    return count


async def test_a_fork_bomb_is_stopped_by_the_kernel_and_the_host_stays_responsive(
    scene: Scene,
) -> None:
    # As root, only a pids cgroup binds (the kernel exempts root from RLIMIT_NPROC).
    assert find_pids_hierarchy() is not None or os.geteuid() != 0
    marker = f"bomb{secrets.token_hex(4)}"
    bomb = asyncio.create_task(
        scene.run(f"{marker}() {{ {marker} | {marker} & }}; {marker}; sleep 30", timeout_s=20)
    )
    slowest, most = 0.0, 0
    while not bomb.done() or slowest == 0.0:
        most = max(most, count_marked(marker))
        started = time.monotonic()
        probe = await asyncio.create_subprocess_exec("/bin/true")
        await asyncio.wait_for(probe.wait(), WAIT_S)
        slowest = max(slowest, time.monotonic() - started)
    result = await bomb
    if find_pids_hierarchy() is not None:  # the kernel refused a fork: stopped at once
        assert result.stopped == "it tried to start more than 64 processes", result.render()
    else:  # an ordinary user's RLIMIT_NPROC holds it at the cap until its timeout
        assert result.timed_out, result.render()
    assert most <= LIMITS.processes
    assert slowest < 3.0
    assert await no_leftovers(marker)


async def test_nothing_inside_can_leave_or_raise_its_process_cap(scene: Scene) -> None:
    attempts = [
        "echo $$ > /sys/fs/cgroup/pids/cgroup.procs",
        "echo $$ > /sys/fs/cgroup/pids/lugh-sandbox/cgroup.procs",
        "echo max > /sys/fs/cgroup/pids/lugh-sandbox/pids.max",
        "for f in /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs; do"
        " echo $$ > $f && exit 0; done; exit 1",
        "mkdir -p /tmp/cg && mount -t cgroup -o pids none /tmp/cg",
        "mkdir -p /tmp/cg2 && mount -t cgroup2 none /tmp/cg2",
        "ls /sys/fs/cgroup/pids/cgroup.procs",
    ]
    assert await scene.breaches(attempts) == []


async def test_memory_and_disk_hogs_are_contained(scene: Scene) -> None:
    result = await scene.run("python3 -c 'b = bytearray(1024 ** 3)'")
    assert result.exit_code != 0 and "MemoryError" in result.stderr
    result = await scene.run("python3 -c 'a = []\nwhile True: a.append(bytearray(10 ** 7))'")
    assert result.exit_code != 0 and "MemoryError" in result.stderr
    result = await scene.run("for n in 1 2 3; do head -c 15M /dev/zero > /tmp/$n || exit 1; done")
    assert result.exit_code != 0 and "No space left on device" in result.stderr
    result = await scene.run("head -c 40M /dev/zero > big.bin")
    assert result.exit_code != 0
    assert (scene.worktree / "big.bin").stat().st_size <= LIMITS.file_size_bytes


async def test_a_busy_loop_is_killed_at_its_cpu_limit(scene: Scene) -> None:
    sandbox = BubblewrapSandbox(limits=Limits(cpu_seconds=1))
    result = await sandbox.run("while :; do :; done", cwd=scene.worktree, timeout_s=30, env={})
    assert not result.timed_out and result.exit_code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL)
    assert result.duration_s < 10


@pytest.mark.parametrize("shape", ["sleep {n}", "while :; do :; done; : {n}",
                                   "setsid sleep {n} & nohup sleep {n} & (sleep {n} &); sleep {n}"])
async def test_a_runaway_command_is_killed_at_its_timeout_with_nothing_left(
    scene: Scene, shape: str
) -> None:
    marker = f"1000.{secrets.randbelow(10**9):09d}"
    result = await scene.run(shape.format(n=marker), timeout_s=0.5)
    assert result.timed_out and result.exit_code is None
    assert await no_leftovers(marker)


async def test_a_cancelled_command_is_killed_with_nothing_left(scene: Scene) -> None:
    marker = f"1000.{secrets.randbelow(10**9):09d}"
    running = asyncio.create_task(scene.run(f"sleep {marker} & sleep {marker}", timeout_s=60))
    deadline = time.monotonic() + WAIT_S
    while not leftovers(marker):
        assert time.monotonic() < deadline, "the sandboxed command never started"
        await asyncio.sleep(0.05)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await no_leftovers(marker)


async def test_an_output_flood_is_capped_while_it_is_read(scene: Scene) -> None:
    result = await scene.run("yes", timeout_s=0.5)
    assert result.timed_out
    assert len(result.stdout) < LIMITS.output_bytes + 200
    assert "bytes of output omitted" in result.stdout


async def test_the_sandbox_dies_with_the_process_that_started_it(scene: Scene) -> None:
    marker = f"1000.{secrets.randbelow(10**9):09d}"
    starter = subprocess.Popen([
        sys.executable, "-c",
        "import asyncio, sys; from pathlib import Path;"
        "from lugh.agents.sandbox import make_sandbox;"
        "asyncio.run(make_sandbox().run(sys.argv[1], cwd=Path(sys.argv[2]), timeout_s=60, env={}))",
        f"sleep {marker}", str(scene.worktree),
    ])
    try:
        deadline = time.monotonic() + WAIT_S
        while not leftovers(marker):
            assert time.monotonic() < deadline, "the sandboxed command never started"
            await asyncio.sleep(0.05)
        starter.send_signal(signal.SIGKILL)
        assert await no_leftovers(marker)
    finally:
        starter.kill()
        starter.wait()
