"""The bot answers its owner's commands through the real PTB, the outbox and the fake Bot API."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
import structlog

from lugh.commands.reply import Button, Code, Reply
from lugh.logs import configure_logging
from lugh.transport.telegram.render import deliver
from tests.fakes.telegram import TOKEN, parse_html, utf16_len
from tests.transport.telegram.botkit import BOUND_S, OWNER, make_services, running_bot, say


async def test_help_lists_the_commands_and_the_phone_menu_is_set(services, fake):
    async with running_bot(services):
        answer = await say(fake, "/help")
    assert "/task <text>" in answer.text
    assert {c["command"] for c in fake.commands} >= {"task", "tasks", "status", "approve", "help"}


async def test_every_command_of_the_design_answers(services, fake, repo):
    said = [
        "/start", "/help", "/project", f"/project new demo {repo}", "/project use demo",
        "/task add a health endpoint", "/tasks", "/status", "/status 1", "/agents",
        "/spawn reviewer reviews code", "/diff 1", "/approve 1", "/reject 1", "/why 1",
        "/retry 1", "/cancel 1", "/checkpoint before lunch", "/checkpoints", "/restore 999",
        "/ask where is the health endpoint?", "/replay 1",
    ]  # fmt: skip
    answers = {}
    async with running_bot(services):
        for text in said:
            answers[text] = (await say(fake, text)).text

    assert all(answers.values()), [t for t, a in answers.items() if not a]
    assert not [t for t, a in answers.items() if "went wrong" in a]
    assert answers["/task add a health endpoint"].startswith("Queued #1")
    assert "Registered project demo" in answers[f"/project new demo {repo}"]
    assert "#1" in answers["/status 1"] and "#1" in answers["/cancel 1"]
    assert "reviewer" in answers["/spawn reviewer reviews code"]


async def test_plain_language_is_confirmed_with_a_button_before_anything_changes(
    services, fake, repo
):
    await services.projects.register("demo", str(repo))
    async with running_bot(services):
        proposal = await say(fake, "add a health endpoint")
        assert await services.tasks.list() == []
        [[yes, _no]] = proposal.reply_markup["inline_keyboard"]
        before = len(fake.sent(OWNER))
        fake.push_callback(OWNER, proposal.message_id, yes["callback_data"])
        await fake.wait_for(lambda: "Queued #1" in proposal.text, BOUND_S)
        assert len(fake.sent(OWNER)) == before  # the proposal became the outcome, in place

    assert proposal.text.startswith("Queued #1")
    [task] = await services.tasks.list()
    assert (task.title, task.source) == ("add a health endpoint", "telegram")
    method = await services.pool.fetchval("SELECT method FROM approvals WHERE kind = 'confirm'")
    assert method == "button"


async def test_a_ten_thousand_character_answer_arrives_as_valid_parts_with_the_buttons_last(
    services, fake
):
    text = "\n".join(f"line {n}: <tag> & more text to make it long" for n in range(220))
    diff = "\n".join(f"+added line {n} <b>" for n in range(100))
    reply = Reply(text, code=[Code(diff, "diff")], buttons=[[Button("Why", "why", "1")]])
    assert len(text) + len(diff) > 10_000
    async with running_bot(services) as bot:
        await deliver(services, bot.outbox, OWNER, reply)
        await fake.wait_for(lambda: any(m.reply_markup for m in fake.sent(OWNER)), BOUND_S)
    parts = fake.sent(OWNER)

    assert len(parts) >= 3
    assert all(utf16_len(m.text) <= 4096 for m in parts)
    assert all(parse_html(m.source) for m in parts)  # each part is valid HTML on its own
    assert "".join(m.text for m in parts).replace("\n", "") == (text + diff).replace("\n", "")
    assert [bool(m.reply_markup) for m in parts] == [False] * (len(parts) - 1) + [True]
    assert any(e.get("language") == "diff" for e in parts[-1].entities)


async def test_a_normal_reply_is_silent_and_a_high_priority_one_rings(services, fake):
    async with running_bot(services) as bot:
        await deliver(services, bot.outbox, OWNER, Reply("quiet news"))
        await deliver(services, bot.outbox, OWNER, Reply("needs you", priority="high"))
        await fake.wait_sent(OWNER, 2, BOUND_S)

    requests = [r.body for r in fake.requests_to("/sendMessage")]
    assert [b"disable_notification=true" in b.lower() for b in requests] == [True, False]


async def test_a_cancel_button_works_while_the_model_is_still_thinking_about_another_message(
    make_settings, fake, pool, database, repo
):
    from tests.fakes.anthropic import API_KEY, FakeAnthropic, tool_use, turn

    asked = "what is happening with everything"
    with FakeAnthropic() as anthropic:
        chosen = tool_use("choose_action", {"action": "tasks", "argument": ""})
        anthropic.script(turn(chosen), key=asked)
        anthropic.delay(0, 5.0, key=asked)
        services = make_services(make_settings, fake, pool, database, ANTHROPIC_API_KEY=API_KEY,
                                 ANTHROPIC_BASE_URL=anthropic.base_url)  # fmt: skip
        await services.projects.register("demo", str(repo))
        try:
            async with running_bot(services):
                queued = await say(fake, "/task add a health endpoint")
                fake.push_message(OWNER, asked)
                await asyncio.to_thread(anthropic.arrived(0, key=asked).wait, BOUND_S)
                [cancel] = [b for b in queued.reply_markup["inline_keyboard"][0]
                            if b["text"] == "Cancel"]  # fmt: skip
                fake.push_callback(OWNER, queued.message_id, cancel["callback_data"])
                await fake.wait_for(lambda: queued.text.startswith("Cancelled #1"), BOUND_S)
                waiting = len(fake.sent(OWNER))
                answer = (await fake.wait_sent(OWNER, waiting + 1, BOUND_S))[-1]
        finally:
            await services.aclose()

    assert waiting == 1  # the cancel went through while the model had not answered yet
    assert "Open tasks" in answer.text or "No open tasks" in answer.text
    [task] = await services.tasks.list()
    assert task.status == "cancelled"


async def test_the_bot_token_never_reaches_the_log_even_at_debug(services, fake, captured_log):
    async with running_bot(services):
        await say(fake, "/help")
        fake.push_callback(OWNER, 1, "forged")
        await fake.wait_for(lambda: fake.answered_callbacks, BOUND_S)
    output = captured_log.getvalue()

    assert "getUpdates" in output or "telegram" in output  # the libraries did log
    assert TOKEN not in output and TOKEN.split(":")[1] not in output


@pytest.fixture
def captured_log():
    root = logging.getLogger()
    noisy = [logging.getLogger(n) for n in ("httpx", "httpcore", "telegram")]
    saved = (list(root.handlers), root.level, structlog.get_config(), [n.level for n in noisy])
    buffer = io.StringIO()
    configure_logging("debug", "json", [TOKEN], stream=buffer)
    for logger in noisy:  # the loudest they can be: every request URL carries the token
        logger.setLevel(logging.DEBUG)
    yield buffer
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    structlog.configure(**saved[2])
    for logger, level in zip(noisy, saved[3]):
        logger.setLevel(level)


def test_lugh_run_hosts_the_bot_only_with_a_token(make_settings, fake, pool, database):
    from lugh.app import build_components
    from lugh.services import build_services

    with_token = make_services(make_settings, fake, pool, database)
    without = build_services(make_settings(), pool, database)

    assert "telegram" in [c.name for c in build_components(with_token)]
    assert "telegram" not in [c.name for c in build_components(without, console=True)]
