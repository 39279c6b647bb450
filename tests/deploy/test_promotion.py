"""deploy/promote.sh and deploy/rollback.sh run for real against a local bare repository:
staging follows the branch, production follows release tags, a failing check stops the
promotion, and a rollback over new migrations needs the pre-deploy backup.

Installing, restarting and checking an instance are the scripts' hooks (LUGH_INSTALL,
LUGH_RESTART, LUGH_CHECK, LUGH_BACKUP, LUGH_RESTORE); here they record what they were asked to
do, and the check fails while a `broken` file sits in the instance's directory.
"""

from __future__ import annotations

import datetime
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git, make_repo

ROOT = Path(__file__).resolve().parents[2]
IDENTITY = {
    "GIT_AUTHOR_NAME": "Owner", "GIT_AUTHOR_EMAIL": "owner@example.com",
    "GIT_COMMITTER_NAME": "Owner", "GIT_COMMITTER_EMAIL": "owner@example.com",
}  # fmt: skip


class Site:
    """An origin repository and a server with both instances checked out from it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.work = make_repo(tmp_path / "work", {"README.md": "v1\n", "lugh/migrations/0001_a.sql": "--\n"})
        self.origin = tmp_path / "origin.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(self.work), str(self.origin)], check=True)
        git(self.work, "remote", "add", "origin", str(self.origin))
        git(self.work, "fetch", "-q", "origin")
        self.home = tmp_path / "home"
        for instance in ("staging", "prod"):
            (self.home / instance).mkdir(parents=True)
            subprocess.run(
                ["git", "clone", "-q", str(self.origin), str(self.home / instance / "src")],
                check=True,
            )
        self.log = tmp_path / "hooks.log"

    def env(self) -> dict[str, str]:
        log = str(self.log)
        return {
            **os.environ, **IDENTITY,
            "LUGH_HOME": str(self.home),
            "LUGH_INSTALL": f'echo "install $1" >> {log}',
            "LUGH_RESTART": f'echo "restart $1" >> {log}',
            "LUGH_CHECK": f'echo "check $1" >> {log}; test ! -e "$2/broken"',
            "LUGH_BACKUP": 'echo "✓ Backed up to /var/backups/lugh/$1/before.dump"',
            "LUGH_RESTORE": f'echo "restore $1 $3" >> {log}',
            "LUGH_CHECK_TIMEOUT": "0",
        }  # fmt: skip

    def run(self, script: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["sh", str(ROOT / "deploy" / script), *args],
            env=self.env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def commit(self, branch: str, files: dict[str, str], message: str) -> str:
        git(self.work, "checkout", "-q", "-B", branch, "origin/main")
        for name, content in files.items():
            (self.work / name).parent.mkdir(parents=True, exist_ok=True)
            (self.work / name).write_text(content)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        git(self.work, "push", "-q", "-f", "origin", branch)
        git(self.work, "fetch", "-q", "origin")
        return git(self.work, "rev-parse", "HEAD")

    def head(self, instance: str) -> str:
        return git(self.home / instance / "src", "rev-parse", "HEAD")

    def origin_rev(self, ref: str) -> str:
        return git(self.origin, "rev-parse", f"{ref}^{{commit}}")

    def tags(self) -> list[str]:
        return git(self.origin, "tag", "--list", "--sort=version:refname").split()

    def hooks(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def site(tmp_path) -> Site:
    return Site(tmp_path)


def release(n: int) -> str:
    return f"v{datetime.datetime.now(datetime.UTC):%Y.%m.%d}.{n}"


def test_promoting_a_branch_merges_it_deploys_staging_tags_and_deploys_production(site):
    site.commit("feature", {"README.md": "v2\n"}, "a feature")

    result = site.run("promote.sh", "feature")

    assert result.returncode == 0, result.stderr
    main = site.origin_rev("main")
    assert "Merge feature into main" in git(site.origin, "log", "-1", "--format=%s", "main")
    assert site.tags() == [release(1)]
    assert site.origin_rev(release(1)) == main
    assert site.head("staging") == main
    assert site.head("prod") == main
    assert (site.home / "staging" / "deployed").read_text().strip() == "main"
    assert (site.home / "prod" / "deployed").read_text().strip() == release(1)
    assert site.hooks() == [
        "install staging", "restart staging", "check staging",
        "install prod", "restart prod", "check prod",
    ]  # fmt: skip


def test_staging_failing_its_checks_tags_nothing_and_leaves_production_alone(site):
    assert site.run("promote.sh").returncode == 0
    prod_before = site.head("prod")
    site.commit("main", {"README.md": "broken release\n"}, "a bad change")
    (site.home / "staging" / "broken").touch()

    result = site.run("promote.sh")

    assert result.returncode == 1
    assert "Staging fails its checks: nothing was tagged and production is unchanged." in (
        result.stderr
    )
    assert site.tags() == [release(1)]
    assert site.head("prod") == prod_before
    assert site.head("staging") == site.origin_rev("main")


def test_a_rollback_puts_production_back_on_the_previous_release(site):
    assert site.run("promote.sh").returncode == 0
    site.commit("main", {"README.md": "v2\n"}, "second release")
    assert site.run("promote.sh").returncode == 0
    assert site.head("prod") == site.origin_rev(release(2))

    result = site.run("rollback.sh")

    assert result.returncode == 0, result.stderr
    assert site.head("prod") == site.origin_rev(release(1))
    assert (site.home / "prod" / "deployed").read_text().strip() == release(1)
    assert not any(line.startswith("restore") for line in site.hooks())


def test_a_rollback_over_new_migrations_needs_the_pre_deploy_backup(site):
    assert site.run("promote.sh").returncode == 0
    site.commit("main", {"lugh/migrations/0002_b.sql": "--\n"}, "a migration")
    assert site.run("promote.sh").returncode == 0

    refused = site.run("rollback.sh")
    prod_after_refusal = site.head("prod")
    restored = site.run("rollback.sh", "--restore-backup")

    assert refused.returncode == 1
    assert "added migrations that" in refused.stderr
    assert "lugh/migrations/0002_b.sql" in refused.stderr
    assert prod_after_refusal == site.origin_rev(release(2))
    assert restored.returncode == 0, restored.stderr
    assert "restore prod /var/backups/lugh/prod/before.dump" in site.hooks()
    assert site.head("prod") == site.origin_rev(release(1))


def test_production_failing_its_checks_after_promotion_is_rolled_back(site):
    assert site.run("promote.sh").returncode == 0
    site.commit("main", {"README.md": "works on staging only\n"}, "second release")
    # Production's check fails from now on; the rollback's own check fails too, and says so.
    (site.home / "prod" / "broken").touch()

    result = site.run("promote.sh")

    assert result.returncode == 1
    assert "production fails its checks" in result.stderr
    assert site.tags() == [release(1), release(2)]
    assert site.head("prod") == site.origin_rev(release(1))


def test_deploying_an_unknown_ref_says_so_and_changes_nothing(site):
    before = site.head("staging")

    result = site.run("deploy.sh", "staging", "no-such-branch")

    assert result.returncode == 1
    assert result.stderr.strip() == "✗ The origin repository has no branch or tag 'no-such-branch'."
    assert site.head("staging") == before
    assert site.hooks() == []


def test_with_docker_the_scripts_drive_each_instances_compose_file_in_its_checkout(site):
    bin_dir = site.tmp / "bin"
    bin_dir.mkdir()
    calls = site.tmp / "docker.log"
    docker = bin_dir / "docker"
    docker.write_text(f'#!/bin/sh\necho "$(pwd) $*" >> {calls}\n')
    docker.chmod(0o755)
    env = site.env()
    for hook in ("LUGH_INSTALL", "LUGH_RESTART", "LUGH_CHECK", "LUGH_BACKUP", "LUGH_RESTORE"):
        del env[hook]
    env.update(LUGH_DEPLOY="docker", PATH=f"{bin_dir}:{env['PATH']}")

    result = subprocess.run(
        ["sh", str(ROOT / "deploy" / "promote.sh")], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    staging, prod = site.home / "staging" / "src", site.home / "prod" / "src"
    assert calls.read_text().splitlines() == [
        f"{staging} compose -f docker-compose.staging.yml up -d --build",
        f"{staging} compose -f docker-compose.staging.yml exec -T lugh lugh doctor --check",
        f"{prod} compose -f docker-compose.prod.yml up -d --build",
        f"{prod} compose -f docker-compose.prod.yml exec -T lugh lugh doctor --check",
    ]


def test_with_systemd_the_scripts_restart_the_unit_and_check_as_the_service_runs(site):
    bin_dir, etc = site.tmp / "bin", site.tmp / "etc"
    bin_dir.mkdir()
    etc.mkdir()
    calls = site.tmp / "calls.log"
    stubs = {
        "systemctl": f'echo "systemctl $*" >> {calls}',
        # runuser -u lugh -- COMMAND…: run the command as this user instead.
        "runuser": f'echo "runuser $1 $2" >> {calls}; shift 3; exec "$@"',
    }
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    for instance in ("staging", "prod"):
        (etc / f"{instance}.env").write_text(f"TELEGRAM_BOT_TOKEN=token-of-{instance}\n")
        lugh = site.home / instance / "venv" / "bin" / "lugh"
        lugh.parent.mkdir(parents=True)
        lugh.write_text(
            f'#!/bin/sh\necho "lugh $* $LUGH_INSTANCE $LUGH_DATA_DIR $TELEGRAM_BOT_TOKEN" >> {calls}\n'
        )
        lugh.chmod(0o755)
    env = site.env()
    for hook in ("LUGH_RESTART", "LUGH_CHECK"):
        del env[hook]
    env.update(LUGH_DEPLOY="systemd", LUGH_ETC=str(etc), PATH=f"{bin_dir}:{env['PATH']}")

    result = subprocess.run(
        ["sh", str(ROOT / "deploy" / "deploy.sh"), "staging", "main"], env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == [
        "systemctl restart lugh@staging",
        "runuser -u lugh",
        "lugh doctor --check staging /var/lib/lugh/staging token-of-staging",
    ]
