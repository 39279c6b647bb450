"""The settings file Lugh was started with is out of sight of agents' commands, whatever its
name (`lugh --env-file /etc/lugh/prod.env run`), not only ./.env."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from lugh.app import open_services
from lugh.config import load_settings
from lugh.services import build_services

SECRET = "sk-ant-env-file-secret-0123456789"


@pytest.fixture
def etc():
    """A directory outside /tmp and the home directories, which the sandbox hides anyway."""
    path = Path(tempfile.mkdtemp(prefix="lugh-etc-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_a_settings_file_named_on_the_command_line_cannot_be_read_by_a_command(
    tmp_path, etc, database
):
    env_file = etc / "prod.env"
    env_file.write_text(f"ANTHROPIC_API_KEY={SECRET}\n")
    env_file.chmod(0o644)  # readable by anyone on the host: only the sandbox hides it
    worktree = tmp_path / "work"
    worktree.mkdir()
    settings = load_settings(
        env_file, DATABASE_URL=database, LUGH_DATA_DIR=str(tmp_path / "data"),
        LUGH_SANDBOX="bubblewrap",
    )  # fmt: skip

    async with open_services(settings) as services:
        result = await services.sandbox.run(
            f"cat {env_file}", cwd=worktree, timeout_s=20, env={}
        )

    assert settings.env_file == env_file
    assert SECRET not in result.stdout + result.stderr
    assert result.exit_code != 0


@pytest.fixture
def server_settings_dir():
    """/etc/lugh as scripts/install-server.sh leaves it (made for the test when missing)."""
    path = Path("/etc/lugh")
    made = not path.exists()
    path.mkdir(exist_ok=True)
    env_file = path / f"test-{secrets.token_hex(4)}.env"
    env_file.write_text(f"ANTHROPIC_API_KEY={SECRET}\n")
    env_file.chmod(0o640)
    yield env_file
    env_file.unlink()
    if made:
        shutil.rmtree(path, ignore_errors=True)


async def test_a_servers_settings_directory_cannot_be_read_by_a_command(
    tmp_path, server_settings_dir, make_settings, pool, database
):
    worktree = tmp_path / "work"
    worktree.mkdir()
    services = build_services(make_settings(LUGH_SANDBOX="bubblewrap"), pool, database)

    result = await services.sandbox.run(
        f"cat {server_settings_dir}; ls -A /etc/lugh", cwd=worktree, timeout_s=20, env={}
    )

    assert SECRET not in result.stdout + result.stderr
    assert server_settings_dir.name not in result.stdout
