import pytest

from lugh.commands.catalog import Context, interpret
from lugh.commands.choose import TOOL, model_chooser
from lugh.services import build_services
from tests.fakes.anthropic import API_KEY, FakeAnthropic, tool_use, turn


@pytest.fixture
def fake():
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def services(pool, database, make_settings, fake):
    settings = make_settings(ANTHROPIC_API_KEY=API_KEY, ANTHROPIC_BASE_URL=fake.base_url,
                             LUGH_MODEL="claude-test-model")
    made = build_services(settings, pool, database)
    yield made
    await made.aclose()


@pytest.fixture
async def ctx(services):
    session = await services.sessions.open("telegram", "owner")
    return Context(services=services, session=session, source="telegram")


def answers(action: str, argument: str = ""):
    return turn(tool_use(TOOL, {"action": action, "argument": argument}))


async def test_the_model_is_asked_with_the_forced_tool_the_text_and_every_listed_command(
    services, fake
):
    fake.script(answers("status", "12"))

    chosen = await model_chooser(services)("how is number twelve doing")

    assert chosen == ("status", "12")
    [body] = fake.bodies
    assert body["model"] == "claude-test-model"
    assert body["tool_choice"] == {"type": "tool", "name": TOOL}
    [tool] = body["tools"]
    assert tool["name"] == TOOL
    assert set(tool["input_schema"]["required"]) == {"action", "argument"}
    assert set(tool["input_schema"]["properties"]) == {"action", "argument"}
    offered = tool["input_schema"]["properties"]["action"]["enum"]
    assert {"task", "status", "approve", "ask"} <= set(offered)
    assert "confirm" not in offered  # buttons' own commands are never offered
    assert body["messages"][0]["content"][0]["text"] == "how is number twelve doing"
    system = body["system"][0]["text"]
    assert "/task <text>" in system and "/ask" in system


async def test_a_chosen_state_change_is_proposed_with_a_confirm_button_not_done(
    services, ctx, fake
):
    fake.script(answers("task", "add dark mode to the settings page"))

    reply = await interpret(ctx, "could we get dark mode on settings", model_chooser(services))

    assert reply.text == "Shall I do this?\n/task add dark mode to the settings page"
    assert [b.action for b in reply.buttons[0]] == ["confirm", "dismiss"]
    assert await services.tasks.list() == []


async def test_a_message_that_asks_for_no_command_gets_a_short_reply_and_changes_nothing(
    services, ctx, fake
):
    fake.script(answers("none"))

    reply = await interpret(ctx, "good morning!", model_chooser(services))

    assert reply.text == "I'm not sure what you mean; /help lists what I can do."
    assert reply.buttons == []
    assert await services.pool.fetchval("SELECT count(*) FROM approvals") == 0


@pytest.mark.parametrize("chosen", [
    {"action": "confirm", "argument": "1"},  # hidden: only a button may run it
    {"action": "rm_rf", "argument": ""},
    {"action": 3},
    "not an object",
])  # fmt: skip
async def test_an_unoffered_or_malformed_choice_means_no_action(services, fake, chosen):
    fake.script(turn(tool_use(TOOL, chosen)))

    assert await model_chooser(services)("do the thing") is None


async def test_a_reply_without_the_tool_call_means_no_action(services, fake):
    fake.script(turn("I think you want the status."))

    assert await model_chooser(services)("status please, the usual") is None


async def test_a_model_that_is_down_gets_one_sentence_and_nothing_is_proposed(services, ctx, fake):
    fake.script(answers("task", "never"))
    fake.fail(0, 529, times=20, retry_after_s=0)

    reply = await interpret(ctx, "build the thing", model_chooser(services))

    assert not reply.ok
    assert reply.text.startswith("The Anthropic API is overloaded (529).")
    assert "/help" in reply.text
    assert await services.pool.fetchval("SELECT count(*) FROM approvals") == 0


async def test_without_an_api_key_there_is_no_chooser(pool, database, make_settings):
    services = build_services(make_settings(), pool, database)

    assert model_chooser(services) is None
