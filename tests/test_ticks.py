"""Months of ticks at once (cadence/plan/ticks.py): exactly ``Schedule.ticks_between``'s ticks,
across DST days in zones that shift by an hour, at midnight, by 30 minutes, or skip a day."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from cadence.plan.schedule import parse_cadence
from cadence.plan.ticks import instants_between

CADENCES = [
    "every 5 minutes",
    "every 7 minutes",
    "every 90 minutes",
    "hourly",
    "every 4 hours",
    "daily at 02:30",
    "daily at 00:00",
    "weekdays at 09:00",
    "sundays at 02:15",
    "*/15 * * * *",
    "0,30 9-17 * * 1-5",
    "30 1-3 * * 0,7",
    "@monthly",
    "0 5 1,15 * *",
    "on demand",
]
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",  # at midnight
    "Australia/Lord_Howe",  # by 30 minutes
    "Pacific/Apia",  # skipped 2011-12-30
]
WINDOWS = [
    ("2026-03-01T00:00+00:00", "2026-04-15T00:00+00:00"),  # spring forward (and Santiago's)
    ("2026-09-01T00:00+00:00", "2026-11-05T07:13+00:00"),  # fall back, Santiago at midnight
    ("2011-12-25T00:00+00:00", "2012-01-05T00:00+00:00"),  # Apia skips a day
]


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize("text", CADENCES)
@pytest.mark.parametrize("zone", ZONES)
def test_equal_to_ticks_between(text: str, zone: str) -> None:
    tz = ZoneInfo(zone)
    schedule = parse_cadence(text)
    for start, end in WINDOWS:
        ticks = schedule.ticks_between(t(start), t(end), tz)
        expected = [x.astimezone(timezone.utc) for x in ticks]
        assert instants_between(schedule, t(start), t(end), tz) == expected, (start, end)


def test_a_5_minute_cron_over_90_days_is_fast() -> None:
    """25,908 ticks from the weekly pattern: ticks_between walks croniter (about 3 s here)."""
    schedule = parse_cadence("*/5 * * * *")
    tz = ZoneInfo("Europe/Berlin")
    started = time.perf_counter()
    ticks = instants_between(schedule, t("2026-01-01T00:00+01:00"), t("2026-04-01T00:00+02:00"), tz)
    assert len(ticks) == 90 * 288 - 12  # the spring-forward hour has no ticks
    assert time.perf_counter() - started < 1.0
