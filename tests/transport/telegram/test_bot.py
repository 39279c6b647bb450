"""The bot answers its owner's commands through the real PTB, the outbox and the fake Bot API."""

from __future__ import annotations

import pytest

from lugh.commands.reply import Button, Code, Reply
from lugh.transport.telegram.render import deliver
from tests.fakes.telegram import FakeTelegram, parse_html, utf16_len
from tests.transport.telegram.botkit import BOUND_S, OWNER, make_services, running_bot, say


@pytest.fixture
def fake():
    with FakeTelegram() as server:
        yield server


@pytest.fixture
async def services(make_settings, fake, pool, database):
    services = make_services(make_settings, fake, pool, database)
    yield services
    await services.aclose()


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
    ]  # fmt: skip
    answers = {}
    async with running_bot(services):
        for text in said:
            answers[text] = (await say(fake, text)).text

    assert all(answers.values()), [t for t, a in answers.items() if not a]
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
