"""The notifier tells the owner's chat about tasks, by priority, through the real outbox, the
real PTB Bot and the fake Bot API; it resumes after a restart without losing or repeating."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone

import pytest

from lugh.projects import Project
from lugh.services import Services, build_services
from lugh.transport.telegram.render import deliver
from tests.fakes.telegram import FakeTelegram, SentMessage
from tests.transport.telegram.notify_kit import (
    BOUND_S, FAKE_LIMITS, OWNER_CHAT, in_review, labels, notifying, running_task,
)  # fmt: skip

# PTB 22 warns when it builds a RetryAfter unless PTB_TIMEDELTA=1.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*retry_after:telegram.warnings.PTBDeprecationWarning"
)

NIGHT = datetime(2026, 1, 15, 23, 30, tzinfo=timezone.utc)


def said(fake: FakeTelegram, words: str) -> list[SentMessage]:
    return [m for m in fake.sent(OWNER_CHAT) if words in m.text]


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram(rate_limits=FAKE_LIMITS) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def services(pool, database, make_settings) -> AsyncIterator[Services]:
    built = build_services(make_settings(LUGH_QUIET_HOURS="22:00-07:00"), pool, database)
    yield built
    await built.aclose()


@pytest.fixture
async def project(services: Services, repo) -> Project:
    return await services.projects.register("demo", str(repo))


async def test_a_task_awaiting_review_rings_once_with_the_approval_buttons(services, project, fake):
    async with notifying(services, fake):
        task = await in_review(services, project, {"hello.py": "print('hello')\n"})
        await fake.wait_for(lambda: said(fake, "ready for review"), BOUND_S)
    [message] = [m for m in fake.sent(OWNER_CHAT) if "ready for review" in m.text]

    assert f"#{task.id} Add a greeting is ready for review" in message.text
    assert "+1 −0 in 1 file" in message.text and "hello.py" in message.text
    assert not message.silent
    assert labels(message.reply_markup) == ["Approve & merge", "Reject", "Diff", "Retry", "Why"]


async def test_a_finished_task_is_announced_silently(services, project, fake):
    async with notifying(services, fake):
        task = await running_task(services, project, "Tidy up")
        await fake.wait_sent(OWNER_CHAT, 1, BOUND_S)  # the progress message
        await services.tasks.complete(task.id, task.lease_token, "done", result={"summary": "ok"})
        sent = await fake.wait_sent(OWNER_CHAT, 2, BOUND_S)

    assert sent[1].text == f"#{task.id} Tidy up is done. ok"
    assert sent[1].silent


async def test_low_priority_events_become_one_silent_digest(services, project, fake):
    async with notifying(services, fake, digest_s=1.0):
        queued = [await services.tasks.enqueue(project.id, f"chore {n}", source="console")
                  for n in range(3)]  # fmt: skip
        for task in queued:
            await services.tasks.cancel(task.id)
        [digest] = await fake.wait_sent(OWNER_CHAT, 1, BOUND_S)

    assert digest.silent
    assert digest.text.splitlines() == [
        "Digest: 3 quieter updates.",
        *(f"• #{t.id} chore {n} was cancelled." for n, t in enumerate(queued)),
    ]


async def test_quiet_hours_silence_everything_but_critical(services, project, fake):
    async with notifying(services, fake, clock=lambda: NIGHT):
        plain = await running_task(services, project, "Nightly job")
        await services.tasks.fail_attempt(plain.id, plain.lease_token, "boom", retry=False)
        urgent = await running_task(services, project, "Prod is down", priority=5)
        await services.tasks.fail_attempt(urgent.id, urgent.lease_token, "boom", retry=False)
        await fake.wait_for(lambda: len(said(fake, "failed: boom")) == 2, BOUND_S)

    failures = {m.text.split()[0]: m for m in said(fake, "failed: boom")}
    assert failures[f"#{plain.id}"].silent  # high, but the owner sleeps
    assert not failures[f"#{urgent.id}"].silent  # an urgent task's failure is critical


async def test_a_progress_message_is_edited_in_place_throttled_and_never_resent(
    services, project, fake
):
    async with notifying(services, fake, progress_s=1.0) as notifier:
        task = await running_task(services, project, "Long job")
        [progress] = await fake.wait_sent(OWNER_CHAT, 1, BOUND_S)
        for step in range(1, 21):
            turn = {"step": step, "tools": ["run_command"]}
            await services.events.publish(task.id, "model_turn", turn)
            await services.events.publish(task.id, "tool_call", {
                "step": step, "tool": "run_command", "input": {"command": f"pytest -k case{step}"},
                "ok": True,
            })  # fmt: skip
        await fake.wait_for(lambda: "pytest -k case20" in progress.text, BOUND_S)
        edits_while_working = progress.edits
        await services.tasks.complete(task.id, task.lease_token, "done", result={"summary": "ok"})
        await fake.wait_for(lambda: "Done" in progress.text, BOUND_S)
        await fake.wait_sent(OWNER_CHAT, 2, BOUND_S)  # the done notification itself

    assert progress.text.startswith(f"#{task.id} Long job\n✅ Done")
    assert labels(progress.reply_markup) == []  # its Status/Cancel buttons are gone
    assert 1 <= edits_while_working <= 4  # 40 steps in well under the interval: few edits
    assert [m.method for m in fake.sent(OWNER_CHAT)] == ["sendMessage", "sendMessage"]
    assert notifier.handled >= 42


async def test_a_restarted_notifier_loses_and_repeats_nothing(services, project, fake):
    async with notifying(services, fake):
        first = await running_task(services, project, "First")
        await fake.wait_sent(OWNER_CHAT, 1, BOUND_S)
        await services.tasks.complete(first.id, first.lease_token, "failed", error="one")
        await fake.wait_for(lambda: said(fake, "failed: one"), BOUND_S)
        second = await running_task(services, project, "Second")
        await fake.wait_for(lambda: said(fake, f"#{second.id} Second\n⏳"), BOUND_S)
    # While no notifier runs, the second task works and fails, and an MCP client adds a task.
    step = {"step": 1, "tool": "read_file", "input": {"path": "app.py"}}
    await services.events.publish(second.id, "tool_call", step)
    await services.tasks.complete(second.id, second.lease_token, "failed", error="two")
    third = await services.tasks.enqueue(project.id, "Third", source="mcp")

    async with notifying(services, fake):
        await fake.wait_for(
            lambda: said(fake, "Third was queued") and said(fake, "failed: two"), BOUND_S
        )
        await fake.wait_for(lambda: said(fake, "❌ Failed: two"), BOUND_S)

    texts = [m.text for m in fake.sent(OWNER_CHAT)]
    assert sum("failed: one" in t for t in texts) == 1
    assert sum("failed: two" in t for t in texts) == 1
    assert sum(f"#{third.id} Third was queued by an MCP client." == t for t in texts) == 1
    # Each progress message went out once; the second's was edited after the restart.
    assert sum(t.startswith(f"#{first.id} First\n") for t in texts) == 1
    [progress] = [m for m in fake.sent(OWNER_CHAT) if m.text.startswith(f"#{second.id} Second\n")]
    assert progress.text.startswith(f"#{second.id} Second\n❌ Failed: two") and progress.edits == 1


async def test_a_notifier_without_owner_chats_sends_nothing(services, project, fake):
    async with notifying(services, fake, chats=()) as notifier:
        task = await running_task(services, project, "Alone")
        await services.tasks.complete(task.id, task.lease_token, "done")
        [done] = await services.events.latest(task.id, limit=1)
        await asyncio.wait_for(notifier.handled_up_to(done.id), BOUND_S)
    assert fake.sent(OWNER_CHAT) == []


async def test_a_failing_notifier_goes_on_from_its_cursor_and_loses_nothing(
    services, project, fake
):
    calls = 0

    async def flaky_owner_chats() -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the owners could not be read")
        return [OWNER_CHAT]

    async with notifying(services, fake, owner_chats=flaky_owner_chats):
        task = await services.tasks.enqueue(project.id, "From a script", source="cli")
        await fake.wait_for(lambda: said(fake, "From a script was queued"), BOUND_S)

    assert calls >= 2
    assert [m.text for m in fake.sent(OWNER_CHAT)] == [
        f"#{task.id} From a script was queued by the command line."
    ]


async def test_digest_lines_waiting_at_a_restart_go_out_once_afterwards(services, project, fake):
    queued = [await services.tasks.enqueue(project.id, f"chore {n}", source="console")
              for n in range(2)]  # fmt: skip
    async with notifying(services, fake, digest_s=3600) as notifier:
        for task in queued:
            await services.tasks.cancel(task.id)
        [last] = await services.events.latest(queued[-1].id, limit=1)
        await asyncio.wait_for(notifier.handled_up_to(last.id), BOUND_S)
    assert fake.sent(OWNER_CHAT) == []  # the lines wait for their digest

    async with notifying(services, fake, digest_s=0.5):
        [digest] = await fake.wait_sent(OWNER_CHAT, 1, BOUND_S)
    assert digest.text.splitlines()[1:] == [f"• #{t.id} chore {n} was cancelled."
                                            for n, t in enumerate(queued)]  # fmt: skip
    assert len(fake.sent(OWNER_CHAT)) == 1


async def test_what_piled_up_while_away_is_read_a_page_at_a_time_and_a_restart_keeps_the_page(
    services, project, fake
):
    async with notifying(services, fake):
        pass  # its cursor: now
    away = [await services.tasks.enqueue(project.id, f"Job {n}", source="cli") for n in range(7)]
    calls: list[str] = []

    async def deliver_failing_once(*args, **kw):  # the fifth delivery: the database went away
        calls.append(kw["dedupe_key"])
        if len(calls) == 5:
            raise ConnectionResetError("the connection was reset")
        return await deliver(*args, **kw)

    async with notifying(services, fake, read_page=3, deliver=deliver_failing_once):
        await fake.wait_for(lambda: all(said(fake, f"Job {n} was queued") for n in range(7)),
                            BOUND_S)  # fmt: skip

    texts = [m.text for m in fake.sent(OWNER_CHAT)]
    assert all(sum(f"#{t.id} Job" in text for text in texts) == 1 for t in away)
    times_read = [calls.count(key) for key in dict.fromkeys(calls)]
    assert times_read == [1, 1, 1, 2, 2, 1, 1]  # the second page again, not the first
