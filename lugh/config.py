"""Every knob Lugh has, read from the environment or `.env`, validated once at start."""

from __future__ import annotations

import os
import re
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Instance = Literal["dev", "staging", "prod"]

DEFAULT_MODEL = "claude-sonnet-5-5"
# Each instance gets its own MCP port so staging and production can share a machine.
MCP_PORTS: dict[str, int] = {"dev": 8765, "staging": 8766, "prod": 8767}


class ConfigError(Exception):
    """The settings are wrong; each line of the message is one problem, in one sentence."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class Settings(BaseSettings):
    """Lugh's settings. Field aliases are the environment variable names (a contract)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    # The settings file this was read from (`load_settings`), hidden from agents' commands.
    _env_file: Path | None = PrivateAttr(default=None)

    instance: Instance = Field("dev", alias="LUGH_INSTANCE")
    data_dir: Path | None = Field(None, alias="LUGH_DATA_DIR")
    database_url: SecretStr | None = Field(None, alias="DATABASE_URL")

    telegram_bot_token: SecretStr | None = Field(None, alias="TELEGRAM_BOT_TOKEN")
    telegram_api_base_url: str = Field("https://api.telegram.org", alias="TELEGRAM_API_BASE_URL")
    telegram_allowed_user_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, alias="TELEGRAM_ALLOWED_USER_IDS"
    )

    anthropic_api_key: SecretStr | None = Field(None, alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(None, alias="ANTHROPIC_BASE_URL")
    openai_api_key: SecretStr | None = Field(None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL")

    model: str = Field(DEFAULT_MODEL, alias="LUGH_MODEL")
    vision_model: str | None = Field(None, alias="LUGH_VISION_MODEL")
    transcribe_model: str = Field("whisper-1", alias="LUGH_TRANSCRIBE_MODEL")
    embedder: Literal["local", "openai"] = Field("local", alias="LUGH_EMBEDDER")
    # Telegram media: limits checked before anything is downloaded (the Bot API serves 20 MB).
    voice_max_bytes: int = Field(20 * 1024 * 1024, alias="LUGH_VOICE_MAX_BYTES", ge=1)
    voice_max_seconds: int = Field(120, alias="LUGH_VOICE_MAX_SECONDS", ge=1)
    voice_min_confidence: float = Field(0.6, alias="LUGH_VOICE_MIN_CONFIDENCE", ge=0, le=1)
    upload_max_bytes: int = Field(20 * 1024 * 1024, alias="LUGH_UPLOAD_MAX_BYTES", ge=1)

    mcp_host: str = Field("127.0.0.1", alias="LUGH_MCP_HOST")
    mcp_port: int | None = Field(None, alias="LUGH_MCP_PORT", ge=1, le=65535)
    mcp_token: SecretStr | None = Field(None, alias="LUGH_MCP_TOKEN")
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="LUGH_MCP_ALLOWED_HOSTS"
    )

    bus: Literal["postgres", "redis"] = Field("postgres", alias="LUGH_BUS")
    redis_url: SecretStr | None = Field(None, alias="REDIS_URL")
    max_agents: int = Field(4, alias="LUGH_MAX_AGENTS", ge=1, le=64)
    # What one agent run may spend by default (a project's or task's `budget` may change it).
    agent_max_steps: int = Field(50, alias="LUGH_AGENT_MAX_STEPS", ge=1)
    agent_max_tokens: int = Field(5_000_000, alias="LUGH_AGENT_MAX_TOKENS", ge=1)
    agent_max_seconds: float = Field(1800.0, alias="LUGH_AGENT_MAX_SECONDS", gt=0)
    agent_max_cost_usd: float = Field(5.0, alias="LUGH_AGENT_MAX_COST_USD", gt=0)
    # A failed task's worktree is kept this long for a look, then pruned (checked hourly).
    failed_worktree_keep_hours: float = Field(
        24.0, alias="LUGH_FAILED_WORKTREE_KEEP_HOURS", ge=0
    )
    sandbox: Literal["bubblewrap", "none"] = Field("bubblewrap", alias="LUGH_SANDBOX")
    # As root without a pids cgroup nothing the kernel enforces caps a command's processes.
    sandbox_allow_uncapped_root: bool = Field(False, alias="LUGH_SANDBOX_ALLOW_UNCAPPED_ROOT")

    digest_minutes: int = Field(60, alias="LUGH_DIGEST_MINUTES", ge=1, le=1440)
    quiet_hours: str | None = Field(None, alias="LUGH_QUIET_HOURS")
    timezone: str = Field("UTC", alias="LUGH_TIMEZONE")
    progress_edit_seconds: float = Field(5.0, alias="LUGH_PROGRESS_EDIT_SECONDS", ge=1, le=600)

    # Checkpoints: how long each automatic kind is kept (manual ones stay until deleted).
    checkpoint_keep_merge_days: int = Field(30, alias="LUGH_CHECKPOINT_KEEP_MERGE_DAYS", ge=1)
    checkpoint_keep_merge_count: int = Field(50, alias="LUGH_CHECKPOINT_KEEP_MERGE_COUNT", ge=1)
    checkpoint_keep_daily: int = Field(7, alias="LUGH_CHECKPOINT_KEEP_DAILY", ge=1)
    checkpoint_keep_pre_operation_hours: int = Field(
        24, alias="LUGH_CHECKPOINT_KEEP_PRE_OPERATION_HOURS", ge=1
    )
    checkpoint_keep_pre_operation_count: int = Field(
        10, alias="LUGH_CHECKPOINT_KEEP_PRE_OPERATION_COUNT", ge=1
    )
    checkpoint_daily: bool = Field(True, alias="LUGH_CHECKPOINT_DAILY")

    log_level: Literal["debug", "info", "warning", "error"] = Field("info", alias="LUGH_LOG_LEVEL")
    log_format: Literal["auto", "console", "json"] = Field("auto", alias="LUGH_LOG_FORMAT")

    @field_validator(
        "database_url",
        "telegram_bot_token",
        "anthropic_api_key",
        "openai_api_key",
        "mcp_token",
        "redis_url",
        "anthropic_base_url",
        "openai_base_url",
        "data_dir",
        "vision_model",
        "mcp_port",
        "quiet_hours",
        mode="before",
    )
    @classmethod
    def _empty_means_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("telegram_allowed_user_ids", mode="before")
    @classmethod
    def _parse_user_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            ids = []
            for part in (p.strip() for p in value.split(",")):
                if not part:
                    continue
                if not part.lstrip("-").isdigit():
                    raise ValueError(f"must be numbers, got {part!r}")
                ids.append(int(part))
            return ids
        return value

    @field_validator("mcp_allowed_hosts", mode="before")
    @classmethod
    def _parse_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            hosts = [h.strip() for h in value.split(",") if h.strip()]
            for host in hosts:
                if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", host):
                    raise ValueError(f"must be host names (name or name:port), got {host!r}")
            return hosts
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        if value is not None:
            quiet_window(value)  # raises ValueError with the reason
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"must be a time zone name such as Europe/Berlin, got {value!r}"
            ) from None
        return value

    @field_validator("telegram_api_base_url", "anthropic_base_url", "openai_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/") if value else value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgres://", "postgresql://")
        ):
            raise ValueError("must be a postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.bus == "redis" and self.redis_url is None:
            raise ValueError("REDIS_URL must be set when LUGH_BUS is redis")
        if self.embedder == "openai" and self.openai_api_key is None:
            raise ValueError("OPENAI_API_KEY must be set when LUGH_EMBEDDER is openai")
        return self

    @property
    def env_file(self) -> Path | None:
        """The settings file `load_settings` read (it may hold secrets), if any."""
        return self._env_file

    @property
    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir.expanduser()
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
        return base / "lugh" / self.instance

    @property
    def resolved_mcp_port(self) -> int:
        return self.mcp_port if self.mcp_port is not None else MCP_PORTS[self.instance]

    @property
    def resolved_vision_model(self) -> str:
        return self.vision_model or self.model

    @property
    def resolved_quiet_hours(self) -> tuple[time, time] | None:
        """LUGH_QUIET_HOURS as (start, end) in LUGH_TIMEZONE; None when there are none."""
        return quiet_window(self.quiet_hours) if self.quiet_hours else None

    @property
    def database_name(self) -> str:
        """The embedded server's database; each instance has its own."""
        return f"lugh_{self.instance}"

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log redactor."""
        values = []
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values


def quiet_window(value: str) -> tuple[time, time]:
    """`HH:MM-HH:MM` as two times; the window may wrap past midnight (22:00-07:00)."""
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
    if not match:
        raise ValueError(f"must look like 22:00-07:00, got {value!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59 or (h1, m1) == (h2, m2):
        raise ValueError(f"must be two different times of day like 22:00-07:00, got {value!r}")
    return time(h1, m1), time(h2, m2)


def _env_name(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "settings"
    field = Settings.model_fields.get(str(loc[0]))
    return field.alias if field is not None and field.alias else str(loc[0])


def _sentence(error: dict[str, Any]) -> str:
    name = _env_name(error.get("loc", ()))
    given = error.get("input")
    kind = error.get("type", "")
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    if kind == "value_error" and not error.get("loc"):
        return message[0].upper() + message[1:] + "."
    if kind == "value_error":
        return f"{name} {message}."
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{name} must be one of {expected}, got {given!r}."
    if kind in ("int_parsing", "int_type"):
        return f"{name} must be a whole number, got {given!r}."
    if kind in ("greater_than_equal", "less_than_equal"):
        ctx = error.get("ctx", {})
        bound = ctx.get("ge", ctx.get("le"))
        word = "at least" if kind == "greater_than_equal" else "at most"
        return f"{name} must be {word} {bound}, got {given!r}."
    return f"{name} is not valid ({message}), got {given!r}."


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Read and validate the settings; raise ConfigError with one sentence per problem."""
    try:
        settings = Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError([_sentence(e) for e in exc.errors()]) from None
    settings._env_file = Path(env_file).absolute() if env_file is not None else None
    return settings
