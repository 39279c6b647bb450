"""Without Docker: the systemd units pass `systemd-analyze verify`, keep the hardening that
bubblewrap tolerates, and scripts/install-server.sh installs what the repository ships."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
TEMPLATES = ["lugh@.service", "lugh-backup@.service", "lugh-backup@.timer"]
INSTANCES = ["staging", "prod"]
# Options that would stop bubblewrap making its namespaces and mounts (see lugh@.service).
BREAK_BUBBLEWRAP = ["RestrictNamespaces", "SystemCallFilter", "PrivateUsers", "ProtectHostname"]


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


def install_script() -> str:
    return (ROOT / "scripts" / "install-server.sh").read_text()


@pytest.mark.parametrize("instance", INSTANCES)
def test_each_unit_passes_systemd_analyze_verify_without_a_warning(tmp_path, instance):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "the test setup installs systemd (scripts/system-deps.sh)"
    names = []
    for template in TEMPLATES:
        name = template.replace("@.", f"@{instance}.")
        shutil.copy(UNITS / template, tmp_path / name)
        names.append(str(tmp_path / name))

    result = subprocess.run(
        [analyze, "verify", "--man=no", *names], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_an_instance_reads_its_own_env_file_and_runs_as_lugh_in_its_own_data_dir():
    service = unit("lugh@.service")["Service"]

    assert service["EnvironmentFile"] == "/etc/lugh/%i.env"
    assert service["User"] == "lugh"
    assert "LUGH_INSTANCE=%i" in service["ExecStart"]
    assert "LUGH_DATA_DIR=/var/lib/lugh/%i" in service["ExecStart"]
    assert service["ExecStart"].endswith("/opt/lugh/%i/venv/bin/lugh run")
    assert service["StateDirectory"] == "lugh/%i"


def test_the_service_is_hardened_but_leaves_bubblewrap_its_namespaces():
    service = unit("lugh@.service")["Service"]

    for option in ("NoNewPrivileges", "PrivateTmp", "ProtectKernelModules", "RestrictSUIDSGID"):
        assert service[option] == "yes", option
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == "" and service["AmbientCapabilities"] == ""
    for option in BREAK_BUBBLEWRAP:
        assert option not in service, f"{option} would stop the agents' sandbox"
    text = (UNITS / "lugh@.service").read_text()
    for option in BREAK_BUBBLEWRAP:
        assert option in text, f"the unit says why {option} is off"


def test_a_stopping_instance_gets_longer_than_lughs_own_grace_period():
    service = unit("lugh@.service")["Service"]

    assert int(service["TimeoutStopSec"]) > 30
    assert service["Restart"] == "on-failure"


def test_backups_run_daily_with_retention_into_the_instances_backup_dir():
    timer = unit("lugh-backup@.timer")["Timer"]
    service = unit("lugh-backup@.service")["Service"]

    assert timer["OnCalendar"] == "daily"
    assert timer["Persistent"] == "true"
    assert service["Type"] == "oneshot"
    assert re.search(r"lugh backup --dir /var/backups/lugh/%i --keep \d+$", service["ExecStart"])
    assert service["ReadWritePaths"] == "/var/backups/lugh/%i"


def test_the_install_script_is_valid_shell_and_installs_every_unit_shipped():
    assert subprocess.run(["sh", "-n", str(ROOT / "scripts" / "install-server.sh")]).returncode == 0
    script = install_script()

    for template in TEMPLATES:
        assert f"deploy/systemd/{template}" in script
    assert "systemctl enable" in script and "lugh@$instance" in script
    assert "lugh-backup@$instance.timer" in script


def test_the_install_script_sets_up_both_instances_from_their_env_examples():
    script = install_script()

    assert "for instance in staging prod" in script
    assert '.env.$instance.example' in script
    assert 'chmod 0600 "$env_file"' in script and 'chown root:root "$env_file"' in script


def test_the_server_installs_the_same_system_packages_as_the_image():
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = set(re.search(r"--no-install-recommends\s+\\?\s*([^\n&]+)", dockerfile).group(1).split())
    server = install_script()

    for package in packages - {"\\"}:
        assert re.search(rf"(\s){re.escape(package)}(\s|$)", server), package


def test_the_server_installs_lugh_with_the_readme_install_script():
    hooks = (ROOT / "deploy" / "hooks.sh").read_text()

    assert 'VENV=\\"\\$2/venv\\" EDITABLE= EXTRAS= sh scripts/install.sh' in hooks


def test_lughs_sandbox_starts_under_the_units_privilege_limits():
    """NoNewPrivileges=yes and an empty CapabilityBoundingSet, as the unit sets them, applied
    with setpriv to Lugh's own bwrap command line, run as an unprivileged user."""
    from lugh.agents.sandbox.bubblewrap import BubblewrapSandbox

    worktree = Path(tempfile.mkdtemp(prefix="lugh-unit-sandbox-"))
    worktree.chmod(0o777)
    try:
        argv = BubblewrapSandbox().argv(
            "touch made-inside", str(worktree), {"PATH": "/usr/bin:/bin"}, 3, [], []
        )
        at = argv.index("--json-status-fd")
        del argv[at : at + 2]  # the status pipe is Lugh's bookkeeping, not the sandbox
        as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        limits = ["setpriv", "--no-new-privs", "--bounding-set=-all"]

        result = subprocess.run(
            [*as_user, *limits, *argv], capture_output=True, text=True, timeout=60, cwd=worktree
        )

        assert result.returncode == 0, result.stderr
        assert (worktree / "made-inside").exists()
    finally:
        shutil.rmtree(worktree)
