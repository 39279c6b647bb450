import pytest
from pydantic import SecretStr

from lugh.config import MCP_PORTS, ConfigError, Settings, load_settings


def problems(**env):
    with pytest.raises(ConfigError) as caught:
        load_settings(None, **env)
    return caught.value.problems


def test_defaults_give_a_working_dev_instance(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)

    settings = load_settings(None)

    assert settings.instance == "dev"
    assert settings.resolved_data_dir == tmp_path / ".local/share/lugh/dev"
    assert settings.database_url is None
    assert settings.embedder == "local"
    assert settings.max_agents == 4
    assert settings.resolved_mcp_port == 8765
    assert settings.resolved_vision_model == settings.model


def test_a_non_numeric_allowed_user_id_is_named_in_one_sentence():
    assert problems(TELEGRAM_ALLOWED_USER_IDS="123, bob") == [
        "TELEGRAM_ALLOWED_USER_IDS must be numbers, got 'bob'."
    ]


def test_allowed_user_ids_are_read_from_a_comma_separated_list():
    settings = load_settings(None, TELEGRAM_ALLOWED_USER_IDS=" 1, 22 ,333,")

    assert settings.telegram_allowed_user_ids == [1, 22, 333]


def test_every_problem_is_reported_at_once_each_in_its_own_sentence():
    found = problems(LUGH_INSTANCE="qa", LUGH_MAX_AGENTS="lots", LUGH_EMBEDDER="magic")

    assert found == [
        "LUGH_INSTANCE must be one of 'dev', 'staging' or 'prod', got 'qa'.",
        "LUGH_EMBEDDER must be one of 'local' or 'openai', got 'magic'.",
        "LUGH_MAX_AGENTS must be a whole number, got 'lots'.",
    ]


@pytest.mark.parametrize(
    ("env", "sentence"),
    [
        ({"LUGH_MAX_AGENTS": "0"}, "LUGH_MAX_AGENTS must be at least 1, got '0'."),
        ({"LUGH_MCP_PORT": "70000"}, "LUGH_MCP_PORT must be at most 65535, got '70000'."),
        ({"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL must be a postgresql:// URL."),
        (
            {"TELEGRAM_API_BASE_URL": "api.telegram.org"},
            "TELEGRAM_API_BASE_URL must start with http:// or https://, got 'api.telegram.org'.",
        ),
        ({"LUGH_BUS": "redis"}, "REDIS_URL must be set when LUGH_BUS is redis."),
        ({"LUGH_EMBEDDER": "openai"}, "OPENAI_API_KEY must be set when LUGH_EMBEDDER is openai."),
        (
            {"LUGH_MCP_ALLOWED_HOSTS": "localhost, evil host"},
            "LUGH_MCP_ALLOWED_HOSTS must be host names (name or name:port), got 'evil host'.",
        ),
    ],
)
def test_a_malformed_setting_is_refused_with_a_clear_sentence(env, sentence):
    assert problems(**env) == [sentence]


def test_empty_values_mean_unset():
    settings = load_settings(None, DATABASE_URL="", TELEGRAM_BOT_TOKEN=" ", LUGH_MCP_PORT="")

    assert settings.database_url is None
    assert settings.telegram_bot_token is None
    assert settings.resolved_mcp_port == 8765


def test_instances_get_their_own_data_dir_database_and_mcp_port(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    staging = load_settings(None, LUGH_INSTANCE="staging")
    prod = load_settings(None, LUGH_INSTANCE="prod")

    assert staging.resolved_data_dir == tmp_path / "lugh/staging"
    assert prod.resolved_data_dir == tmp_path / "lugh/prod"
    assert (staging.database_name, prod.database_name) == ("lugh_staging", "lugh_prod")
    assert (staging.resolved_mcp_port, prod.resolved_mcp_port) == (
        MCP_PORTS["staging"],
        MCP_PORTS["prod"],
    )
    assert len(set(MCP_PORTS.values())) == 3


def test_settings_are_read_from_the_environment_by_their_documented_names(monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:abcdefghijklmnopqrstuvwxyz0123456789")
    monkeypatch.setenv("LUGH_MAX_AGENTS", "7")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1/")

    settings = load_settings(None)

    assert settings.max_agents == 7
    assert settings.openai_base_url == "http://127.0.0.1:9999/v1"
    assert settings.telegram_bot_token.get_secret_value().startswith("123456:")


def test_settings_are_read_from_an_env_file(tmp_path):
    env_file = tmp_path / ".env.staging"
    env_file.write_text("LUGH_INSTANCE=staging\nLUGH_MAX_AGENTS=2\n")

    settings = load_settings(env_file)

    assert (settings.instance, settings.max_agents) == ("staging", 2)


def test_secrets_are_never_shown_by_repr_or_str():
    settings = load_settings(
        None,
        ANTHROPIC_API_KEY="sk-ant-verysecretvalue",
        DATABASE_URL="postgresql://lugh:hunter2hunter2@db/lugh",
    )

    shown = repr(settings) + str(settings)

    assert "verysecretvalue" not in shown
    assert "hunter2hunter2" not in shown


def test_every_secret_setting_is_a_secret_str_and_offered_to_the_redactor():
    secret_names = {"DATABASE_URL", "TELEGRAM_BOT_TOKEN", "ANTHROPIC_API_KEY", "OPENAI_API_KEY",
                    "LUGH_MCP_TOKEN", "REDIS_URL"}
    values = {name: f"postgresql://u:secret-{name}@h/d" if "URL" in name else f"secret-{name}"
              for name in secret_names}
    values["REDIS_URL"] = "redis://:secret-REDIS_URL@localhost:6379/0"

    settings = load_settings(None, **values)

    for name, field in Settings.model_fields.items():
        if field.alias in secret_names:
            assert isinstance(getattr(settings, name), SecretStr), field.alias
    assert sorted(settings.secret_values()) == sorted(values.values())
