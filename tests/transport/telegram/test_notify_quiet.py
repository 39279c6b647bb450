"""Quiet hours: a daily window, possibly across midnight, in the owner's time zone, in which
nothing rings but critical messages; bad settings are refused with one sentence."""

from __future__ import annotations

from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

import pytest

from lugh.config import ConfigError, load_settings
from lugh.transport.telegram.notify import QuietHours

BERLIN = ZoneInfo("Europe/Berlin")


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, 15, hour, minute, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("utc", "quiet"),
    [(at(20, 59), False), (at(21, 0), True), (at(23, 30), True), (at(5, 59), True),
     (at(6, 0), False), (at(12, 0), False)],
)  # fmt: skip
def test_a_window_across_midnight_is_read_in_the_owners_time_zone(utc, quiet):
    # 22:00-07:00 in Berlin is 21:00-06:00 UTC in January.
    hours = QuietHours((time(22), time(7)), BERLIN)
    assert hours.now(utc) is quiet


def test_during_quiet_hours_only_critical_rings():
    hours = QuietHours((time(22), time(7)), ZoneInfo("UTC"))
    night, day = at(23), at(12)

    assert [hours.silent(p, night) for p in ("critical", "high", "normal", "low")] == [
        False, True, True, True,
    ]  # fmt: skip
    assert [hours.silent(p, day) for p in ("critical", "high", "normal", "low")] == [
        False, False, True, True,
    ]  # fmt: skip


def test_a_daytime_window_and_no_window():
    assert QuietHours((time(12), time(14)), ZoneInfo("UTC")).now(at(13))
    assert not QuietHours((time(12), time(14)), ZoneInfo("UTC")).now(at(14))
    assert not QuietHours(None, ZoneInfo("UTC")).now(at(3))


@pytest.mark.parametrize(
    ("env", "sentence"),
    [
        ({"LUGH_QUIET_HOURS": "10pm-7am"},
         "LUGH_QUIET_HOURS must look like 22:00-07:00, got '10pm-7am'."),
        ({"LUGH_QUIET_HOURS": "25:00-07:00"},
         "LUGH_QUIET_HOURS must be two different times of day like 22:00-07:00, "
         "got '25:00-07:00'."),
        ({"LUGH_TIMEZONE": "Mars/Olympus"},
         "LUGH_TIMEZONE must be a time zone name such as Europe/Berlin, got 'Mars/Olympus'."),
        ({"LUGH_DIGEST_MINUTES": "0"}, "LUGH_DIGEST_MINUTES must be at least 1, got '0'."),
    ],
)  # fmt: skip
def test_bad_notification_settings_are_refused_with_one_sentence(env, sentence):
    with pytest.raises(ConfigError) as refused:
        load_settings(None, **env)
    assert refused.value.problems == [sentence]


def test_empty_quiet_hours_mean_none():
    assert load_settings(None, LUGH_QUIET_HOURS="").resolved_quiet_hours is None
    assert load_settings(None, LUGH_QUIET_HOURS="22:00-07:00").resolved_quiet_hours == (
        time(22), time(7),
    )  # fmt: skip
