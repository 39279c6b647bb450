"""Media through the whole bot: PTB polling, the handlers, the outbox and the fake APIs."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from lugh.commands.choose import TOOL as CHOOSE
from lugh.llm.vision import TOOL as PROPOSE
from tests.fakes import anthropic as fake_anthropic
from tests.fakes import openai as fake_openai
from tests.fakes.anthropic import FakeAnthropic, tool_use, turn
from tests.fakes.openai import FakeOpenAI, fake_audio
from tests.fakes.telegram import FakeTelegram
from tests.transport.telegram.botkit import BOUND_S, OWNER, make_services, running_bot, say


@pytest.fixture
def apis():
    with FakeOpenAI() as openai_api, FakeAnthropic() as anthropic_api:
        yield openai_api, anthropic_api


@pytest.fixture
async def services(make_settings, fake, apis, pool, database):
    openai_api, anthropic_api = apis
    services = make_services(
        make_settings, fake, pool, database,
        OPENAI_API_KEY=fake_openai.API_KEY, OPENAI_BASE_URL=openai_api.base_url,
        ANTHROPIC_API_KEY=fake_anthropic.API_KEY, ANTHROPIC_BASE_URL=anthropic_api.base_url,
    )  # fmt: skip
    yield services
    await services.aclose()


async def press(fake: FakeTelegram, message, label: str):
    """Tap the button labelled `label` on `message`; the message once edited to the outcome."""
    [data] = [b["callback_data"] for row in message.reply_markup["inline_keyboard"]
              for b in row if b["text"] == label]  # fmt: skip
    edits = message.edits
    fake.push_callback(OWNER, message.message_id, data)
    await fake.wait_for(lambda: message.edits > edits, BOUND_S)
    return message


async def next_message(fake: FakeTelegram, push, count: int = 1) -> object:
    """Push an update; the last of the `count` messages the bot sends in answer."""
    before = len(fake.sent(OWNER))
    push()
    return (await fake.wait_sent(OWNER, before + count, BOUND_S))[before + count - 1]


async def test_a_voice_note_becomes_a_confirmed_task(services, fake, apis, repo):
    _, anthropic_api = apis
    anthropic_api.script(turn(tool_use(CHOOSE, {"action": "task",
                                                "argument": "add a health endpoint"})))
    async with running_bot(services):
        await say(fake, f"/project new demo {repo}")
        shown = await next_message(fake, lambda: fake.push_voice(
            OWNER, fake_audio("Could you add a health endpoint?")), count=2)
        heard = fake.sent(OWNER)[-2].text
        proposal = shown.text
        queued = await press(fake, shown, "Yes, do it")

    [task] = await services.tasks.list()
    assert heard == "🎙 Could you add a health endpoint?"
    assert proposal == "Shall I do this?\n/task add a health endpoint"
    assert queued.text.startswith(f"Queued #{task.id}")
    assert (task.title, task.source) == ("add a health endpoint", "voice")
    row = await services.pool.fetchrow("SELECT status, task_id FROM voice_commands")
    assert (row["status"], row["task_id"]) == ("confirmed", task.id)


async def test_a_photo_reaches_the_model_and_its_proposals_become_tasks_by_button_one_by_one(
    services, fake, apis, repo
):
    _, anthropic_api = apis
    anthropic_api.script(turn(tool_use(PROPOSE, {"tasks": [
        {"title": "Add a login page", "details": "As sketched."},
        {"title": "Show the error count", "details": "A red badge."}]})))
    picture = io.BytesIO()
    Image.new("RGB", (2000, 1000), "white").save(picture, "JPEG")
    async with running_bot(services):
        await say(fake, f"/project new demo {repo}")
        shown = await next_message(fake, lambda: fake.push_photo(
            OWNER, picture.getvalue(), caption="the new screens"))
        proposal = shown.text
        first = (await press(fake, shown, "➕ 1. Add a login page")).text
        second = (await press(fake, shown, "➕ 2. Show the error count")).text

    [body] = anthropic_api.bodies
    assert [b["type"] for b in body["messages"][0]["content"]] == ["image", "text"]
    login, errors = sorted(await services.tasks.list(), key=lambda t: t.id)
    assert proposal.startswith("📷 I see 2 tasks in that photo:")
    assert first.startswith(f"Queued #{login.id}") and "Still proposed: 2." in first
    assert second.startswith(f"Queued #{errors.id}")
    assert (login.source, errors.source) == ("photo", "photo")


async def test_a_document_is_ingested_with_one_progress_message(services, fake, apis, repo):
    notes = b"# Runbook\n\nRestart the worker with lugh worker.\n"
    async with running_bot(services):
        await say(fake, f"/project new demo {repo}")
        progress = await next_message(fake, lambda: fake.push_document(OWNER, notes, "run.md"))
        await fake.wait_for(lambda: progress.text.startswith("📄 Added"), BOUND_S)

    assert progress.text.startswith("📄 Added run.md to demo's knowledge: 1 chunk")
    assert len(fake.sent(OWNER)) == 2  # the /project reply and the one progress message


async def test_an_oversized_or_corrupt_voice_note_gets_a_clear_message_and_no_api_call(
    services, fake, apis
):
    openai_api, _ = apis
    async with running_bot(services):
        too_long = await next_message(fake, lambda: fake.push_voice(
            OWNER, fake_audio("a very long story"), duration=500))
        corrupt = await next_message(fake, lambda: fake.push_voice(OWNER, b"\x00 not audio"))

    assert too_long.text == ("That voice note is 8 min 20 s long, over the 2 min I take; send a "
                             "shorter one or type it.")  # fmt: skip
    assert corrupt.text.startswith("I couldn't make out that voice note")
    assert openai_api.requests_to("/audio/transcriptions") == []
    assert len(fake.requests_to("/getFile")) == 1  # the corrupt one only: too long is not fetched
