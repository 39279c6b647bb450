import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from lugh.config import DEFAULT_MODEL

from lugh.llm import AnthropicChat, ChatRequest, LLMError, RetryPolicy, Usage, estimate_cost
from lugh.llm.prices import UNKNOWN, price_of
from tests.fakes.anthropic import API_KEY, FakeAnthropic, tool_use, turn

WAIT_S = 10.0
MODEL = DEFAULT_MODEL
FAST = RetryPolicy(retries=3, base_s=0.01, max_s=0.05)
TOOLS = [
    {"name": "read_file", "description": "Read a file.",
     "input_schema": {"type": "object", "properties": {"path": {"type": "string"}},
                      "required": ["path"]}},
    {"name": "finish", "description": "End the run.",
     "input_schema": {"type": "object", "properties": {"summary": {"type": "string"}},
                      "required": ["summary"]}},
]  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def chat(fake: FakeAnthropic) -> AsyncIterator[Callable[..., AnthropicChat]]:
    made: list[AnthropicChat] = []

    def make(**options) -> AnthropicChat:
        options.setdefault("retry", FAST)
        options.setdefault("api_key", API_KEY)
        made.append(AnthropicChat(base_url=fake.base_url, **options))
        return made[-1]

    yield make
    for client in made:
        await client.aclose()


def ask(text: str = "Read the README.", messages=None) -> ChatRequest:
    messages = messages or [{"role": "user", "content": text}]
    return ChatRequest(MODEL, "You are an engineer.", TOOLS, messages, 1024)


async def test_a_reply_comes_back_as_wire_blocks_with_its_usage(fake, chat):
    fake.script(turn("Let me look.", tool_use("read_file", {"path": "README.md"}, id="toolu_1")))

    reply = await chat().complete(ask())

    assert reply.text == "Let me look."
    assert reply.tool_uses == [
        {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "README.md"}}
    ]
    assert reply.stop_reason == "tool_use"
    assert reply.usage.output_tokens > 0 and reply.usage.cache_creation_input_tokens > 0
    assert reply.id.startswith("msg_") and reply.model == MODEL


async def test_the_stable_prefix_and_the_newest_message_carry_cache_breakpoints(fake, chat):
    fake.script(turn("ok"), turn("ok again"))
    model = chat()
    first = await model.complete(ask())
    second_messages = [
        {"role": "user", "content": "Read the README."},
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": "And now?"},
    ]
    second = await model.complete(ask(messages=second_messages))

    body = fake.bodies[-1]
    assert body["system"] == [
        {"type": "text", "text": "You are an engineer.", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in body["tools"][0]
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in str(body["messages"][:-1])
    assert second.usage.cache_read_input_tokens > 0  # the tools and system were cached by the first


async def test_an_overloaded_api_is_retried_and_the_retry_reported(fake, chat):
    fake.script(turn("done"))
    fake.fail(0, 529, times=2, retry_after_s=0.01)
    notices = []

    reply = await chat().complete(ask(), on_retry=notices.append)

    assert reply.text == "done"
    assert fake.requests_at(0) == 3
    assert [(n.attempt, n.status) for n in notices] == [(1, 529), (2, 529)]


async def test_a_rate_limit_waits_as_long_as_retry_after_says(fake, chat):
    fake.script(turn("done"))
    fake.fail(0, 429, retry_after_s=0.4)

    started = time.monotonic()
    await chat().complete(ask())

    assert time.monotonic() - started >= 0.4
    assert fake.requests_at(0) == 2


async def test_a_huge_retry_after_is_capped():
    policy = RetryPolicy(max_retry_after_s=5.0)
    assert policy.delay(1, 3600.0) == 5.0
    assert 0.5 <= RetryPolicy(base_s=1.0).delay(1, None) <= 1.0
    assert 2.0 <= RetryPolicy(base_s=1.0).delay(3, None) <= 4.0


async def test_a_server_error_that_persists_is_a_retryable_error_after_the_last_try(fake, chat):
    fake.script(turn("never"))
    fake.fail(0, 500, times=10)

    with pytest.raises(LLMError) as caught:
        await chat().complete(ask())

    assert caught.value.retryable and caught.value.status == 500
    assert "after 4 tries" in str(caught.value)
    assert fake.requests_at(0) == 4


async def test_a_malformed_conversation_is_refused_at_once_and_not_retried(fake, chat):
    fake.script(turn("never"))
    dangling = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [tool_use("read_file", {"path": "a"}, id="toolu_x")]},
        {"role": "user", "content": "where is my result?"},
    ]

    with pytest.raises(LLMError) as caught:
        await chat().complete(ask(messages=dangling))

    assert not caught.value.retryable and caught.value.status == 400
    assert "toolu_x" in str(caught.value)
    assert len(fake.bodies) == 1


async def test_a_wrong_api_key_says_which_setting_to_fix(fake, chat):
    fake.script(turn("never"))
    model = chat(api_key="sk-wrong")

    with pytest.raises(LLMError, match="ANTHROPIC_API_KEY") as caught:
        await model.complete(ask())

    assert not caught.value.retryable


async def test_a_model_that_does_not_answer_in_time_times_out(fake, chat):
    fake.script(turn("late"))
    fake.delay(0, 30.0, times=5)

    started = time.monotonic()
    with pytest.raises(LLMError, match="did not answer in time"):
        await chat(timeout_s=0.3, retry=RetryPolicy(retries=1, base_s=0.01)).complete(ask())

    assert time.monotonic() - started < 5


async def test_a_call_waiting_on_the_model_is_cancelled_at_once(fake, chat):
    fake.script(turn("late"))
    fake.delay(0, 30.0)
    call = asyncio.create_task(chat().complete(ask()))
    await asyncio.to_thread(fake.arrived(0).wait, WAIT_S)

    started = time.monotonic()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    assert time.monotonic() - started < 1


def test_costs_are_estimated_from_the_family_price_and_unknown_models_as_the_dearest():
    usage = Usage(1_000_000, 100_000, 200_000, 1_000_000)
    # sonnet: 3 in, 15 out, 3.75 cache write, 0.30 cache read per million
    assert estimate_cost("claude-sonnet-4-5", usage) == pytest.approx(3 + 1.5 + 0.75 + 0.3)
    assert price_of("claude-haiku-4-5").input == 1.0
    assert price_of("claude-opus-4-1").output == 75.0
    assert price_of("claude-opus-4-6").output == 25.0
    assert price_of("some-new-model") is UNKNOWN


def test_usage_adds_up_and_round_trips_as_json():
    total = Usage(1, 2, 3, 4) + Usage(10, 20, 30, 40)
    assert total == Usage(11, 22, 33, 44) and total.total == 110
    assert Usage.from_json(total.to_json()) == total
    assert Usage.from_json(None) == Usage()
