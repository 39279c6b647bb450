import io
import json
import logging

import httpx
import pytest
import structlog
from starlette.responses import JSONResponse
from starlette.routing import Route

from lugh.config import load_settings
from lugh.logs import REDACTED, Redactor, configure_logging, get_logger
from tests.fakes.server import FakeServer

TOKEN = "7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRETS = {
    "TELEGRAM_BOT_TOKEN": TOKEN,
    "ANTHROPIC_API_KEY": "sk-ant-api03-abcdefghijklmnop",
    "OPENAI_API_KEY": "sk-proj-qrstuvwxyz012345",
    "LUGH_MCP_TOKEN": "mcp-token-5f2b9c1d",
    "DATABASE_URL": "postgresql://lugh:db-password-77@db:5432/lugh",
    "REDIS_URL": "redis://:redis-password-88@cache:6379/0",
}


@pytest.fixture
def captured():
    """Logging configured for Lugh into a buffer; the previous configuration restored after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, structlog.get_config())
    buffer = io.StringIO()
    settings = load_settings(None, **SECRETS)
    configure_logging("debug", "json", settings.secret_values(), stream=buffer)
    yield buffer
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    structlog.configure(**saved[2])


def lines(buffer):
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_no_configured_secret_reaches_a_log_line(captured):
    log = get_logger("lugh.test")
    for name, value in SECRETS.items():
        log.info("about to use a secret", name=name, value=value)
        log.info(f"inline {value} in the message")
        logging.getLogger("some.library").warning("stdlib says %s", value)
    try:
        raise RuntimeError(f"failed with {SECRETS['OPENAI_API_KEY']}")
    except RuntimeError:
        log.exception("an error with a secret in its traceback")

    output = captured.getvalue()

    for value in SECRETS.values():
        assert value not in output
    assert "db-password-77" not in output and "redis-password-88" not in output
    assert output.count(REDACTED) >= 3 * len(SECRETS)


def test_fields_named_like_secrets_are_masked_whatever_their_value(captured):
    get_logger("t").info("login", password="short", api_key="abc", authorization="Bearer x")

    [line] = lines(captured)

    assert line["password"] == line["api_key"] == line["authorization"] == REDACTED


def test_secret_shapes_are_redacted_even_when_not_configured():
    redact = Redactor()

    assert redact("GET https://api.telegram.org/bot987654321:ABCdefGHIjklMNOpqrSTUvwxYZ012345678/getMe") == (
        f"GET https://api.telegram.org/bot{REDACTED}/getMe"
    )
    assert redact("key sk-ant-api03-0123456789abcdef!") == f"key {REDACTED}!"
    assert redact("postgresql://bob:pa55word@db/x") == f"postgresql://bob:{REDACTED}@db/x"
    assert redact("Authorization: Bearer abc.def.ghi") == f"Authorization: Bearer {REDACTED}"
    assert redact('{"token": "t0p-s3cret"}') == f'{{"token": "{REDACTED}"}}'
    assert redact("nothing to see at 12:30:45") == "nothing to see at 12:30:45"


def test_http_request_lines_with_the_bot_token_in_the_url_never_reach_the_log(captured):
    async def get_me(request):
        return JSONResponse({"ok": True, "result": {"id": 1}})

    with FakeServer([Route(f"/bot{TOKEN}/getMe", get_me)]) as server:
        response = httpx.get(f"{server.url}/bot{TOKEN}/getMe")

    assert response.json()["ok"] is True
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    assert TOKEN not in captured.getvalue()


def test_context_bound_for_a_unit_of_work_appears_on_every_line(captured):
    from lugh.logs import bind_context

    with bind_context(task=42, chat=7):
        get_logger("t").info("step one")
        logging.getLogger("lib").info("step two")

    assert [(line["task"], line["chat"]) for line in lines(captured)] == [(42, 7), (42, 7)]
