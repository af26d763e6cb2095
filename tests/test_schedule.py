"""Cadence parsing and tick arithmetic, table-driven with fixed times and DST days.

Expected ticks are literal ISO strings with offsets, so each one states both the instant and how
it reads in the project timezone (02:15+02:00 and 02:15+01:00 are different ticks).

DST days used (2026): Europe/Berlin springs forward 03-29 02:00 CET -> 03:00 CEST and falls back
10-25 03:00 CEST -> 02:00 CET; America/New_York 03-08 02:00 EST -> 03:00 EDT and 11-01 02:00 EDT
-> 01:00 EST; America/Santiago changes at midnight: 04-05 00:00 -03 -> 04-04 23:00 -04 and
09-06 00:00 -04 -> 01:00 -03.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cadence.plan.schedule as schedule_module
from cadence.plan.schedule import (
    ACCEPTED_FORMS,
    CadenceSyntaxError,
    Schedule,
    TickSet,
    parse_cadence,
)

ZONES = {
    "UTC": ZoneInfo("UTC"),
    "Berlin": ZoneInfo("Europe/Berlin"),
    "NY": ZoneInfo("America/New_York"),
    "Santiago": ZoneInfo("America/Santiago"),
}


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# --- parsing ---------------------------------------------------------------------------------

# fmt: off
VALID = [
    # text, normalized text, kind, cron, minutes, repeat_in_fold
    ("*/15 * * * *", "*/15 * * * *", "cron", "*/15 * * * *", None, True),
    ("0 5 * * 1-5", "0 5 * * 1-5", "cron", "0 5 * * 1-5", None, False),
    ("  0  5 * *   MON-FRI ", "0 5 * * mon-fri", "cron", "0 5 * * mon-fri", None, False),
    ("0 0 1 jan,jul *", "0 0 1 jan,jul *", "cron", "0 0 1 jan,jul *", None, False),
    ("*/30 2 * * *", "*/30 2 * * *", "cron", "*/30 2 * * *", None, True),
    ("0 */2 * * *", "0 */2 * * *", "cron", "0 */2 * * *", None, True),
    ("0 0 29 2 *", "0 0 29 2 *", "cron", "0 0 29 2 *", None, False),
    ("@hourly", "@hourly", "cron", "0 * * * *", None, True),
    ("@daily", "@daily", "cron", "0 0 * * *", None, False),
    ("@weekly", "@weekly", "cron", "0 0 * * 0", None, False),
    ("@MONTHLY", "@monthly", "cron", "0 0 1 * *", None, False),
    ("hourly", "hourly", "cron", "0 * * * *", None, True),
    ("Daily", "daily", "cron", "0 0 * * *", None, False),
    ("weekly", "weekly", "cron", "0 0 * * 0", None, False),
    ("every 15 minutes", "every 15 minutes", "interval", None, 15, True),
    ("Every  15   Minutes", "every 15 minutes", "interval", None, 15, True),
    ("every 1 minute", "every 1 minute", "interval", None, 1, True),
    ("every 5 minute", "every 5 minutes", "interval", None, 5, True),
    ("every 1 hour", "every 1 hour", "interval", None, 60, True),
    ("every 4 hours", "every 4 hours", "interval", None, 240, True),
    ("every 90 minutes", "every 90 minutes", "interval", None, 90, True),
    ("every 1439 minutes", "every 1439 minutes", "interval", None, 1439, True),
    ("every 23 hours", "every 23 hours", "interval", None, 1380, True),
    ("daily at 05:00", "daily at 05:00", "cron", "0 5 * * *", None, False),
    ("daily at 5:07", "daily at 05:07", "cron", "7 5 * * *", None, False),
    ("weekdays at 09:00", "weekdays at 09:00", "cron", "0 9 * * 1-5", None, False),
    ("mondays at 08:00", "mondays at 08:00", "cron", "0 8 * * 1", None, False),
    ("monday at 09:00", "monday at 09:00", "cron", "0 9 * * 1", None, False),
    ("Saturdays at 00:00", "saturdays at 00:00", "cron", "0 0 * * 6", None, False),
    ("sundays at 23:30", "sundays at 23:30", "cron", "30 23 * * 0", None, False),
    ("on demand", "on demand", "on_demand", None, None, False),
    (" On   Demand ", "on demand", "on_demand", None, None, False),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "normalized", "kind", "cron", "minutes", "repeat_in_fold"),
    VALID,
    ids=[row[0].strip() for row in VALID],
)
def test_parse_accepts(
    text: str,
    normalized: str,
    kind: str,
    cron: str | None,
    minutes: int | None,
    repeat_in_fold: bool,
) -> None:
    schedule = parse_cadence(text)
    assert schedule == Schedule(normalized, kind, cron, minutes, repeat_in_fold)  # type: ignore[arg-type]
    assert schedule.on_demand is (kind == "on_demand")
    assert str(schedule) == normalized


# fmt: off
INVALID = [
    # text, message, did-you-mean (None: no simple fix)
    ("evry 5 minutes", "unknown cadence 'evry 5 minutes'", "every 5 minutes"),
    ("Evry 5 Minutes", "unknown cadence 'Evry 5 Minutes'", "every 5 minutes"),
    ("every five minutes", "unknown cadence 'every five minutes'", "every 5 minutes"),
    ("every 15min", "unknown cadence 'every 15min'", "every 15 minutes"),
    ("every 2 hrs", "unknown cadence 'every 2 hrs'", "every 2 hours"),
    ("every minute", "unknown cadence 'every minute'", "every 1 minute"),
    ("every day at 05:00", "unknown cadence 'every day at 05:00'", "daily at 05:00"),
    ("every monday at 9", "unknown cadence 'every monday at 9'", "mondays at 09:00"),
    ("weekday at 09:00", "unknown cadence 'weekday at 09:00'", "weekdays at 09:00"),
    ("dayly", "unknown cadence 'dayly'", "daily"),
    ("monthly", "unknown cadence 'monthly'", "@monthly"),
    ("@yearly", "unknown cadence '@yearly'", "0 0 1 1 *"),
    ("on-demand", "unknown cadence 'on-demand'", "on demand"),
    ("whenever", "unknown cadence 'whenever'", None),
    ("", "invalid cadence '': it is empty", None),
    ("every 0 minutes", "invalid cadence 'every 0 minutes': N must be at least 1", None),
    (
        "every 25 hours",
        "invalid cadence 'every 25 hours': every 25 hours is a day or more; "
        "use 'daily at HH:MM' or a 5-field cron",
        None,
    ),
    (
        "every 24 hours",
        "invalid cadence 'every 24 hours': every 24 hours is a day or more; "
        "use 'daily at HH:MM' or a 5-field cron",
        None,
    ),
    (
        "every 1440 minutes",
        "invalid cadence 'every 1440 minutes': every 1440 minutes is a day or more; "
        "use 'daily at HH:MM' or a 5-field cron",
        None,
    ),
    (
        "daily at 25:00",
        "invalid cadence 'daily at 25:00': time '25:00' is out of range 00:00-23:59",
        None,
    ),
    (
        "daily at 12:60",
        "invalid cadence 'daily at 12:60': time '12:60' is out of range 00:00-23:59",
        None,
    ),
    (
        "daily at 5pm",
        "invalid cadence 'daily at 5pm': time '5pm' is not HH:MM (24-hour)",
        "daily at 17:00",
    ),
    (
        "0 0 * * * *",
        "invalid cadence '0 0 * * * *': cron needs 5 fields "
        "(minute hour day-of-month month day-of-week), got 6",
        None,
    ),
    (
        "0 0 * *",
        "invalid cadence '0 0 * *': cron needs 5 fields "
        "(minute hour day-of-month month day-of-week), got 4",
        None,
    ),
    ("61 * * * *", "invalid cadence '61 * * * *': bad minute field '61'", None),
    ("*/0 * * * *", "invalid cadence '*/0 * * * *': bad minute field '*/0'", None),
    ("0 24 * * *", "invalid cadence '0 24 * * *': bad hour field '24'", None),
    ("0 5 * * mon#2", "invalid cadence '0 5 * * mon#2': bad day-of-week field 'mon#2'", None),
    ("0 0 L * *", "invalid cadence '0 0 L * *': bad day-of-month field 'L'", None),
    ("0 0 1 mon *", "invalid cadence '0 0 1 mon *': bad month field 'mon'", None),
    ("0 0 31 2 *", "invalid cadence '0 0 31 2 *': it never fires (no date matches)", None),
]
# fmt: on


@pytest.mark.parametrize(
    ("text", "message", "suggestion"), INVALID, ids=[row[0] or "empty" for row in INVALID]
)
def test_parse_rejects(text: str, message: str, suggestion: str | None) -> None:
    with pytest.raises(CadenceSyntaxError) as caught:
        parse_cadence(text)
    error = caught.value
    assert isinstance(error, ValueError)
    assert str(error) == message
    assert error.suggestion == suggestion
    if suggestion is not None:
        assert error.hint.startswith(f"did you mean '{suggestion}'?\n")
        assert parse_cadence(suggestion).text == suggestion  # the fix really parses
    for form in ACCEPTED_FORMS:
        assert f"\n  {form}" in error.hint


def test_parse_rejects_non_text() -> None:
    with pytest.raises(CadenceSyntaxError, match="a cadence is text"):
        parse_cadence(15)  # type: ignore[arg-type]


# --- latest and next -------------------------------------------------------------------------

# fmt: off
LATEST_NEXT = [
    # id, cadence, zone, at, latest tick <= at, next tick > at
    ("every15-between", "every 15 minutes", "UTC", "2026-06-10T10:07:00+00:00",
     "2026-06-10T10:00:00+00:00", "2026-06-10T10:15:00+00:00"),
    ("every15-on-tick", "every 15 minutes", "UTC", "2026-06-10T10:15:00+00:00",
     "2026-06-10T10:15:00+00:00", "2026-06-10T10:30:00+00:00"),
    ("every15-just-before-tick", "every 15 minutes", "UTC", "2026-06-10T10:14:59.999999+00:00",
     "2026-06-10T10:00:00+00:00", "2026-06-10T10:15:00+00:00"),
    ("every15-other-offset-in", "every 15 minutes", "Berlin", "2026-06-10T08:07:00+00:00",
     "2026-06-10T10:00:00+02:00", "2026-06-10T10:15:00+02:00"),
    ("every1min", "every 1 minute", "UTC", "2026-06-10T10:07:30+00:00",
     "2026-06-10T10:07:00+00:00", "2026-06-10T10:08:00+00:00"),
    ("every90-late-evening", "every 90 minutes", "Berlin", "2026-06-10T23:59:00+02:00",
     "2026-06-10T22:30:00+02:00", "2026-06-11T00:00:00+02:00"),
    ("every90-on-midnight", "every 90 minutes", "Berlin", "2026-06-11T00:00:00+02:00",
     "2026-06-11T00:00:00+02:00", "2026-06-11T01:30:00+02:00"),
    ("every90-after-midnight", "every 90 minutes", "Berlin", "2026-06-11T00:10:00+02:00",
     "2026-06-11T00:00:00+02:00", "2026-06-11T01:30:00+02:00"),
    # N not dividing the day: one continuous wall-clock grid (anchored at 2000-01-01 00:00),
    # evenly spaced across midnight
    ("every7-before-midnight", "every 7 minutes", "UTC", "2026-06-10T23:54:00+00:00",
     "2026-06-10T23:49:00+00:00", "2026-06-10T23:56:00+00:00"),
    ("every7-across-midnight", "every 7 minutes", "UTC", "2026-06-10T23:57:00+00:00",
     "2026-06-10T23:56:00+00:00", "2026-06-11T00:03:00+00:00"),
    ("every7-after-midnight", "every 7 minutes", "UTC", "2026-06-11T00:03:00+00:00",
     "2026-06-11T00:03:00+00:00", "2026-06-11T00:10:00+00:00"),
    ("every4h-afternoon", "every 4 hours", "Berlin", "2026-06-10T13:00:00+02:00",
     "2026-06-10T12:00:00+02:00", "2026-06-10T16:00:00+02:00"),
    ("every4h-late", "every 4 hours", "Berlin", "2026-06-10T22:00:00+02:00",
     "2026-06-10T20:00:00+02:00", "2026-06-11T00:00:00+02:00"),
    ("every5h-late", "every 5 hours", "UTC", "2026-06-10T23:00:00+00:00",
     "2026-06-10T22:00:00+00:00", "2026-06-11T03:00:00+00:00"),
    ("daily05-before", "daily at 05:00", "Berlin", "2026-06-10T04:59:00+02:00",
     "2026-06-09T05:00:00+02:00", "2026-06-10T05:00:00+02:00"),
    ("daily05-on-tick", "daily at 05:00", "Berlin", "2026-06-10T05:00:00+02:00",
     "2026-06-10T05:00:00+02:00", "2026-06-11T05:00:00+02:00"),
    ("weekdays09-fri", "weekdays at 09:00", "Berlin", "2026-06-12T10:00:00+02:00",
     "2026-06-12T09:00:00+02:00", "2026-06-15T09:00:00+02:00"),
    ("weekdays09-sat", "weekdays at 09:00", "Berlin", "2026-06-13T10:00:00+02:00",
     "2026-06-12T09:00:00+02:00", "2026-06-15T09:00:00+02:00"),
    ("weekdays09-sun", "weekdays at 09:00", "Berlin", "2026-06-14T23:00:00+02:00",
     "2026-06-12T09:00:00+02:00", "2026-06-15T09:00:00+02:00"),
    ("weekdays09-mon-early", "weekdays at 09:00", "Berlin", "2026-06-15T08:59:00+02:00",
     "2026-06-12T09:00:00+02:00", "2026-06-15T09:00:00+02:00"),
    ("weekdays09-mon-on-tick", "weekdays at 09:00", "Berlin", "2026-06-15T09:00:00+02:00",
     "2026-06-15T09:00:00+02:00", "2026-06-16T09:00:00+02:00"),
    ("cron-weekdays-sat", "0 5 * * 1-5", "UTC", "2026-06-13T12:00:00+00:00",
     "2026-06-12T05:00:00+00:00", "2026-06-15T05:00:00+00:00"),
    ("mondays08-wed", "mondays at 08:00", "Berlin", "2026-06-10T12:00:00+02:00",
     "2026-06-08T08:00:00+02:00", "2026-06-15T08:00:00+02:00"),
    ("sundays2330-sun-late", "sundays at 23:30", "Berlin", "2026-06-14T23:45:00+02:00",
     "2026-06-14T23:30:00+02:00", "2026-06-21T23:30:00+02:00"),
    ("weekly-wed", "@weekly", "UTC", "2026-06-10T12:00:00+00:00",
     "2026-06-07T00:00:00+00:00", "2026-06-14T00:00:00+00:00"),
    ("hourly", "hourly", "Berlin", "2026-06-10T10:30:00+02:00",
     "2026-06-10T10:00:00+02:00", "2026-06-10T11:00:00+02:00"),
    ("cron-every15", "*/15 * * * *", "UTC", "2026-06-10T10:07:00+00:00",
     "2026-06-10T10:00:00+00:00", "2026-06-10T10:15:00+00:00"),
    ("monthly-jan31", "@monthly", "Berlin", "2026-01-31T23:59:00+01:00",
     "2026-01-01T00:00:00+01:00", "2026-02-01T00:00:00+01:00"),
    ("monthly-feb28", "@monthly", "Berlin", "2026-02-28T12:00:00+01:00",
     "2026-02-01T00:00:00+01:00", "2026-03-01T00:00:00+01:00"),
    ("monthly-feb28-leap", "@monthly", "Berlin", "2028-02-28T12:00:00+01:00",
     "2028-02-01T00:00:00+01:00", "2028-03-01T00:00:00+01:00"),
    ("monthly-feb29-leap", "@monthly", "Berlin", "2028-02-29T23:59:00+01:00",
     "2028-02-01T00:00:00+01:00", "2028-03-01T00:00:00+01:00"),
    ("monthly-on-tick-to-summer", "@monthly", "Berlin", "2028-03-01T00:00:00+01:00",
     "2028-03-01T00:00:00+01:00", "2028-04-01T00:00:00+02:00"),
    ("leapday-mid-2026", "0 0 29 2 *", "UTC", "2026-06-10T12:00:00+00:00",
     "2024-02-29T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
    ("leapday-eve", "0 0 29 2 *", "UTC", "2028-02-28T23:59:00+00:00",
     "2024-02-29T00:00:00+00:00", "2028-02-29T00:00:00+00:00"),
    ("leapday-on-tick", "0 0 29 2 *", "UTC", "2028-02-29T00:00:00+00:00",
     "2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"),
    ("on-demand", "on demand", "UTC", "2026-06-10T12:00:00+00:00", None, None),
    # Berlin spring forward 2026-03-29: 02:00-03:00 does not exist.
    ("berlin-spring-daily0230-noon", "daily at 02:30", "Berlin", "2026-03-29T12:00:00+02:00",
     "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"),
    ("berlin-spring-daily0230-1am", "daily at 02:30", "Berlin", "2026-03-29T01:00:00+01:00",
     "2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00"),
    ("berlin-spring-daily0230-at-3", "daily at 02:30", "Berlin", "2026-03-29T03:00:00+02:00",
     "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"),
    ("berlin-spring-every15-gap-start", "every 15 minutes", "Berlin", "2026-03-29T01:59:00+01:00",
     "2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00"),
    ("berlin-spring-every15-gap-end", "every 15 minutes", "Berlin", "2026-03-29T03:00:00+02:00",
     "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00"),
    # Berlin fall back 2026-10-25: 02:00-03:00 happens at +02:00, then again at +01:00.
    ("berlin-fall-daily0230-first-pass", "daily at 02:30", "Berlin", "2026-10-25T02:40:00+02:00",
     "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"),
    ("berlin-fall-daily0230-second-pass", "daily at 02:30", "Berlin", "2026-10-25T02:45:00+01:00",
     "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"),
    ("berlin-fall-daily0230-before-repeat", "daily at 02:30", "Berlin", "2026-10-25T02:20:00+01:00",
     "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"),
    ("berlin-fall-every15-end-first-pass", "every 15 minutes", "Berlin",
     "2026-10-25T02:50:00+02:00", "2026-10-25T02:45:00+02:00", "2026-10-25T02:00:00+01:00"),
    ("berlin-fall-every15-second-pass", "every 15 minutes", "Berlin", "2026-10-25T02:10:00+01:00",
     "2026-10-25T02:00:00+01:00", "2026-10-25T02:15:00+01:00"),
    ("berlin-fall-every15-end-second-pass", "every 15 minutes", "Berlin",
     "2026-10-25T02:59:00+01:00", "2026-10-25T02:45:00+01:00", "2026-10-25T03:00:00+01:00"),
    ("berlin-fall-hourly-repeats", "hourly", "Berlin", "2026-10-25T02:30:00+02:00",
     "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"),
    ("berlin-fall-cron-fixed-once", "0 2 * * *", "Berlin", "2026-10-25T02:30:00+01:00",
     "2026-10-25T02:00:00+02:00", "2026-10-26T02:00:00+01:00"),
    ("berlin-fall-cron-minute-wildcard-repeats", "*/30 2 * * *", "Berlin",
     "2026-10-25T02:40:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00"),
    # New York spring forward 2026-03-08 02:00 -> 03:00, fall back 2026-11-01 02:00 -> 01:00.
    ("ny-spring-daily0230", "daily at 02:30", "NY", "2026-03-08T12:00:00-04:00",
     "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"),
    ("ny-spring-every15", "every 15 minutes", "NY", "2026-03-08T01:50:00-05:00",
     "2026-03-08T01:45:00-05:00", "2026-03-08T03:00:00-04:00"),
    ("ny-fall-every15-first-pass", "every 15 minutes", "NY", "2026-11-01T01:20:00-04:00",
     "2026-11-01T01:15:00-04:00", "2026-11-01T01:30:00-04:00"),
    ("ny-fall-every15-end-first-pass", "every 15 minutes", "NY", "2026-11-01T01:50:00-04:00",
     "2026-11-01T01:45:00-04:00", "2026-11-01T01:00:00-05:00"),
    ("ny-fall-every15-second-pass", "every 15 minutes", "NY", "2026-11-01T01:20:00-05:00",
     "2026-11-01T01:15:00-05:00", "2026-11-01T01:30:00-05:00"),
    ("ny-fall-daily0115-once", "daily at 01:15", "NY", "2026-11-01T01:20:00-05:00",
     "2026-11-01T01:15:00-04:00", "2026-11-02T01:15:00-05:00"),
    # Santiago changes at midnight: 2026-09-06 has no 00:00; 2026-04-04 has 23:00-24:00 twice.
    ("santiago-spring-daily-midnight-gap", "@daily", "Santiago", "2026-09-06T12:00:00-03:00",
     "2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"),
    ("santiago-fall-every15-repeat", "every 15 minutes", "Santiago",
     "2026-04-04T23:50:00-03:00", "2026-04-04T23:45:00-03:00", "2026-04-04T23:00:00-04:00"),
    ("santiago-fall-hourly-second-pass", "hourly", "Santiago", "2026-04-04T23:30:00-04:00",
     "2026-04-04T23:00:00-04:00", "2026-04-05T00:00:00-04:00"),
]
# fmt: on


@pytest.mark.parametrize(
    ("cadence", "zone", "at", "latest", "upcoming"),
    [row[1:] for row in LATEST_NEXT],
    ids=[row[0] for row in LATEST_NEXT],
)
def test_latest_and_next(
    cadence: str, zone: str, at: str, latest: str | None, upcoming: str | None
) -> None:
    schedule, tz = parse_cadence(cadence), ZONES[zone]
    assert iso(schedule.latest_tick(t(at), tz)) == latest
    assert iso(schedule.next_tick(t(at), tz)) == upcoming
    for result in (schedule.latest_tick(t(at), tz), schedule.next_tick(t(at), tz)):
        assert result is None or result.tzinfo is tz


def test_fall_back_input_given_as_zoneinfo_fold() -> None:
    berlin = ZONES["Berlin"]
    second_pass = datetime(2026, 10, 25, 2, 50, tzinfo=berlin, fold=1)
    schedule = parse_cadence("every 15 minutes")
    assert iso(schedule.latest_tick(second_pass, berlin)) == "2026-10-25T02:45:00+01:00"
    assert iso(schedule.next_tick(second_pass, berlin)) == "2026-10-25T03:00:00+01:00"


# fmt: off
PREVIOUS = [
    ("every15-on-tick", "every 15 minutes", "UTC", "2026-06-10T10:15:00+00:00",
     "2026-06-10T10:00:00+00:00"),
    ("every15-after-tick", "every 15 minutes", "UTC", "2026-06-10T10:16:00+00:00",
     "2026-06-10T10:15:00+00:00"),
    ("daily05-on-tick", "daily at 05:00", "UTC", "2026-06-10T05:00:00+00:00",
     "2026-06-09T05:00:00+00:00"),
    ("berlin-fall-every15-repeat-start", "every 15 minutes", "Berlin",
     "2026-10-25T02:00:00+01:00", "2026-10-25T02:45:00+02:00"),
    ("berlin-spring-every15-gap-end", "every 15 minutes", "Berlin",
     "2026-03-29T03:00:00+02:00", "2026-03-29T01:45:00+01:00"),
    ("leapday-on-tick", "0 0 29 2 *", "UTC", "2028-02-29T00:00:00+00:00",
     "2024-02-29T00:00:00+00:00"),
    ("on-demand", "on demand", "UTC", "2026-06-10T12:00:00+00:00", None),
]
# fmt: on


@pytest.mark.parametrize(
    ("cadence", "zone", "before", "expected"),
    [row[1:] for row in PREVIOUS],
    ids=[row[0] for row in PREVIOUS],
)
def test_previous_tick(cadence: str, zone: str, before: str, expected: str | None) -> None:
    assert iso(parse_cadence(cadence).previous_tick(t(before), ZONES[zone])) == expected


# --- ticks between ---------------------------------------------------------------------------

# fmt: off
BETWEEN = [
    # id, cadence, zone, start (exclusive), end (inclusive), ticks
    ("berlin-spring-every15-skips-gap", "every 15 minutes", "Berlin",
     "2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00",
     ["2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00",
      "2026-03-29T03:30:00+02:00"]),
    ("berlin-fall-every15-both-passes", "every 15 minutes", "Berlin",
     "2026-10-25T01:50:00+02:00", "2026-10-25T03:10:00+01:00",
     ["2026-10-25T02:00:00+02:00", "2026-10-25T02:15:00+02:00", "2026-10-25T02:30:00+02:00",
      "2026-10-25T02:45:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T02:15:00+01:00",
      "2026-10-25T02:30:00+01:00", "2026-10-25T02:45:00+01:00", "2026-10-25T03:00:00+01:00"]),
    ("berlin-fall-cron-every15-both-passes", "*/15 * * * *", "Berlin",
     "2026-10-25T01:50:00+02:00", "2026-10-25T02:20:00+01:00",
     ["2026-10-25T02:00:00+02:00", "2026-10-25T02:15:00+02:00", "2026-10-25T02:30:00+02:00",
      "2026-10-25T02:45:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T02:15:00+01:00"]),
    ("ny-spring-every15-skips-gap", "every 15 minutes", "NY",
     "2026-03-08T01:30:00-05:00", "2026-03-08T03:20:00-04:00",
     ["2026-03-08T01:45:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:15:00-04:00"]),
    ("ny-fall-every15-both-passes", "every 15 minutes", "NY",
     "2026-11-01T00:50:00-04:00", "2026-11-01T02:05:00-05:00",
     ["2026-11-01T01:00:00-04:00", "2026-11-01T01:15:00-04:00", "2026-11-01T01:30:00-04:00",
      "2026-11-01T01:45:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:15:00-05:00",
      "2026-11-01T01:30:00-05:00", "2026-11-01T01:45:00-05:00", "2026-11-01T02:00:00-05:00"]),
    ("berlin-spring-daily0230-at-gap-end", "daily at 02:30", "Berlin",
     "2026-03-28T00:00:00+01:00", "2026-03-30T23:00:00+02:00",
     ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    ("berlin-fall-daily0230-once", "daily at 02:30", "Berlin",
     "2026-10-24T00:00:00+02:00", "2026-10-26T12:00:00+01:00",
     ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    ("ny-fall-daily0130-once", "daily at 01:30", "NY",
     "2026-10-31T12:00:00-04:00", "2026-11-01T12:00:00-05:00",
     ["2026-11-01T01:30:00-04:00"]),
    ("berlin-spring-hourly-collapses", "hourly", "Berlin",
     "2026-03-29T01:00:00+01:00", "2026-03-29T04:00:00+02:00",
     ["2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"]),
    ("berlin-spring-every90-wall-grid", "every 90 minutes", "Berlin",
     "2026-03-28T23:59:00+01:00", "2026-03-29T06:00:00+02:00",
     ["2026-03-29T00:00:00+01:00", "2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00",
      "2026-03-29T04:30:00+02:00", "2026-03-29T06:00:00+02:00"]),
    ("berlin-fall-every90-wall-grid", "every 90 minutes", "Berlin",
     "2026-10-24T23:59:00+02:00", "2026-10-25T06:00:00+01:00",
     ["2026-10-25T00:00:00+02:00", "2026-10-25T01:30:00+02:00", "2026-10-25T03:00:00+01:00",
      "2026-10-25T04:30:00+01:00", "2026-10-25T06:00:00+01:00"]),
    ("ny-fall-every90-repeats-0130", "every 90 minutes", "NY",
     "2026-10-31T23:59:00-04:00", "2026-11-01T04:30:00-05:00",
     ["2026-11-01T00:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00",
      "2026-11-01T03:00:00-05:00", "2026-11-01T04:30:00-05:00"]),
    ("berlin-spring-every7-gap-end-added", "every 7 minutes", "Berlin",
     "2026-03-29T01:50:00+01:00", "2026-03-29T03:10:00+02:00",
     ["2026-03-29T01:54:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:04:00+02:00"]),
    ("santiago-spring-daily-midnight-gap", "@daily", "Santiago",
     "2026-09-05T12:00:00-04:00", "2026-09-07T12:00:00-03:00",
     ["2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"]),
    ("santiago-spring-every90", "every 90 minutes", "Santiago",
     "2026-09-05T22:00:00-04:00", "2026-09-06T03:00:00-03:00",
     ["2026-09-05T22:30:00-04:00", "2026-09-06T01:00:00-03:00", "2026-09-06T01:30:00-03:00",
      "2026-09-06T03:00:00-03:00"]),
    ("end-before-start", "every 15 minutes", "UTC",
     "2026-06-10T12:00:00+00:00", "2026-06-10T11:00:00+00:00", []),
    ("on-demand", "on demand", "UTC",
     "2026-06-10T00:00:00+00:00", "2026-06-11T00:00:00+00:00", []),
]
# fmt: on


@pytest.mark.parametrize(
    ("cadence", "zone", "start", "end", "expected"),
    [row[1:] for row in BETWEEN],
    ids=[row[0] for row in BETWEEN],
)
def test_ticks_between(cadence: str, zone: str, start: str, end: str, expected: list[str]) -> None:
    ticks = parse_cadence(cadence).ticks_between(t(start), t(end), ZONES[zone])
    assert [iso(tick) for tick in ticks] == expected


# fmt: off
DAY_COUNTS = [
    # id, cadence, zone, start (exclusive), end (inclusive), number of ticks that day
    # 96 wall times a day; fall back repeats 02:00-02:45 (Berlin) / 01:00-01:45 (NY): 96 + 4;
    # spring forward sends 02:00-02:45 to 03:00, which is a tick anyway: 96 - 4.
    ("ordinary-every15", "every 15 minutes", "Berlin",
     "2026-06-09T23:59:00+02:00", "2026-06-10T23:59:00+02:00", 96),
    ("berlin-fall-every15", "every 15 minutes", "Berlin",
     "2026-10-24T23:59:00+02:00", "2026-10-25T23:59:00+01:00", 100),
    ("berlin-spring-every15", "every 15 minutes", "Berlin",
     "2026-03-28T23:59:00+01:00", "2026-03-29T23:59:00+02:00", 92),
    ("ny-fall-every15", "every 15 minutes", "NY",
     "2026-10-31T23:59:00-04:00", "2026-11-01T23:59:00-05:00", 100),
    ("ny-spring-every15", "every 15 minutes", "NY",
     "2026-03-07T23:59:00-05:00", "2026-03-08T23:59:00-04:00", 92),
    ("berlin-fall-hourly", "hourly", "Berlin",
     "2026-10-24T23:59:00+02:00", "2026-10-25T23:59:00+01:00", 25),
    ("berlin-spring-hourly", "hourly", "Berlin",
     "2026-03-28T23:59:00+01:00", "2026-03-29T23:59:00+02:00", 23),
    ("berlin-fall-daily0230", "daily at 02:30", "Berlin",
     "2026-10-24T23:59:00+02:00", "2026-10-25T23:59:00+01:00", 1),
    ("berlin-spring-daily0230", "daily at 02:30", "Berlin",
     "2026-03-28T23:59:00+01:00", "2026-03-29T23:59:00+02:00", 1),
    ("berlin-spring-every90", "every 90 minutes", "Berlin",
     "2026-03-28T23:59:00+01:00", "2026-03-29T23:59:00+02:00", 16),
    ("ny-fall-every90", "every 90 minutes", "NY",
     "2026-10-31T23:59:00-04:00", "2026-11-01T23:59:00-05:00", 17),
]
# fmt: on


@pytest.mark.parametrize(
    ("cadence", "zone", "start", "end", "count"),
    [row[1:] for row in DAY_COUNTS],
    ids=[row[0] for row in DAY_COUNTS],
)
def test_ticks_per_day(cadence: str, zone: str, start: str, end: str, count: int) -> None:
    ticks = parse_cadence(cadence).ticks_between(t(start), t(end), ZONES[zone])
    instants = [tick.timestamp() for tick in ticks]
    assert len(ticks) == count
    assert instants == sorted(set(instants))  # ascending, no duplicates


# --- nominal interval ------------------------------------------------------------------------

NOMINAL = [
    ("every 15 minutes", timedelta(minutes=15)),
    ("every 7 minutes", timedelta(minutes=7)),
    ("every 4 hours", timedelta(hours=4)),
    ("hourly", timedelta(hours=1)),
    ("*/15 * * * *", timedelta(minutes=15)),
    ("* * * * *", timedelta(minutes=1)),
    ("0 9,17 * * *", timedelta(hours=8)),
    ("daily at 05:00", timedelta(days=1)),
    ("weekdays at 09:00", timedelta(days=1)),
    ("@weekly", timedelta(days=7)),
    ("mondays at 08:00", timedelta(days=7)),
    ("@monthly", timedelta(days=28)),
    ("0 0 29 2 *", timedelta(days=1461)),
    ("on demand", None),
]


@pytest.mark.parametrize(("cadence", "expected"), NOMINAL, ids=[row[0] for row in NOMINAL])
def test_nominal_interval(cadence: str, expected: timedelta | None) -> None:
    assert parse_cadence(cadence).nominal_interval() == expected


# --- tick sets -------------------------------------------------------------------------------


def tick_set(*cadences: str) -> TickSet:
    return TickSet(tuple(parse_cadence(c) for c in cadences))


def test_tick_set_union() -> None:
    utc = ZONES["UTC"]
    union = tick_set("daily at 05:00", "every 4 hours")
    at = t("2026-06-10T06:00:00+00:00")
    assert iso(union.latest_tick(at, utc)) == "2026-06-10T05:00:00+00:00"
    assert iso(union.next_tick(at, utc)) == "2026-06-10T08:00:00+00:00"
    assert iso(union.previous_tick(t("2026-06-10T05:00:00+00:00"), utc)) == (
        "2026-06-10T04:00:00+00:00"
    )
    assert [iso(x) for x in union.ticks_between(t("2026-06-10T03:00:00+00:00"), at, utc)] == [
        "2026-06-10T04:00:00+00:00",
        "2026-06-10T05:00:00+00:00",
    ]
    assert union.nominal_interval() == timedelta(hours=4)
    assert union.describe() == "daily at 05:00 + every 4 hours"
    assert not union.on_demand


def test_tick_set_compares_instants_not_wall_clock() -> None:
    # Both schedules' latest tick reads 02:30 in Berlin; the every-15 one is an hour later.
    berlin = ZONES["Berlin"]
    union = tick_set("daily at 02:30", "every 15 minutes")
    assert iso(union.latest_tick(t("2026-10-25T02:40:00+01:00"), berlin)) == (
        "2026-10-25T02:30:00+01:00"
    )
    assert iso(union.next_tick(t("2026-10-25T02:50:00+02:00"), berlin)) == (
        "2026-10-25T02:00:00+01:00"
    )
    assert iso(union.previous_tick(t("2026-10-25T02:31:00+02:00"), berlin)) == (
        "2026-10-25T02:30:00+02:00"
    )


def test_tick_set_between_dedupes_shared_ticks() -> None:
    utc = ZONES["UTC"]
    union = tick_set("every 15 minutes", "hourly", "*/30 * * * *")
    ticks = union.ticks_between(t("2026-06-10T10:00:00+00:00"), t("2026-06-10T11:00:00+00:00"), utc)
    assert [iso(x) for x in ticks] == [
        "2026-06-10T10:15:00+00:00",
        "2026-06-10T10:30:00+00:00",
        "2026-06-10T10:45:00+00:00",
        "2026-06-10T11:00:00+00:00",
    ]


# fmt: off
DESCRIBE = [
    ("single", ("every 5 minutes",), "every 5 minutes"),
    ("dedupe-keep-order", ("every 5 minutes", "every 5 minutes", "daily at 05:00",
                           "every 5 minutes"), "every 5 minutes + daily at 05:00"),
    ("normalized-texts-dedupe", ("Every 5 Minutes", "every  5 minute"), "every 5 minutes"),
    ("on-demand-omitted", ("on demand", "daily at 05:00"), "daily at 05:00"),
    ("all-on-demand", ("on demand",), "on demand"),
    ("empty", (), "on demand"),
]
# fmt: on


@pytest.mark.parametrize(
    ("cadences", "expected"), [row[1:] for row in DESCRIBE], ids=[row[0] for row in DESCRIBE]
)
def test_tick_set_describe(cadences: tuple[str, ...], expected: str) -> None:
    assert tick_set(*cadences).describe() == expected


@pytest.mark.parametrize(
    "cadences",
    [(), ("on demand",), ("on demand", "on demand")],
    ids=["empty", "on-demand", "on-demand-twice"],
)
def test_tick_set_without_ticks(cadences: tuple[str, ...]) -> None:
    utc, at = ZONES["UTC"], t("2026-06-10T12:00:00+00:00")
    empty = tick_set(*cadences)
    assert empty.on_demand
    assert empty.latest_tick(at, utc) is None
    assert empty.next_tick(at, utc) is None
    assert empty.previous_tick(at, utc) is None
    assert empty.ticks_between(at - timedelta(days=1), at, utc) == []
    assert empty.nominal_interval() is None


# --- contracts -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["latest_tick", "next_tick", "previous_tick"])
def test_naive_datetimes_are_refused(method: str) -> None:
    schedule = parse_cadence("every 15 minutes")
    with pytest.raises(ValueError, match="timezone-aware"):
        getattr(schedule, method)(datetime(2026, 6, 10, 12, 0), ZONES["UTC"])


def test_module_never_reads_the_clock() -> None:
    source = Path(schedule_module.__file__).read_text()
    for call in ("now(", "today(", "utcnow(", "time.time("):
        assert call not in source


# fmt: off
PROPERTY_CADENCES = [
    "every 15 minutes", "every 7 minutes", "every 90 minutes", "every 5 hours", "hourly",
    "*/10 * * * *", "*/30 2 * * *", "daily at 02:30", "daily at 01:15", "weekdays at 02:00",
    "sundays at 02:30", "0 0,2 * * *",
]
# fmt: on
DST_DAYS = [  # (zone, an instant on a DST change day)
    ("Berlin", "2026-03-29T01:00:00+00:00"),
    ("Berlin", "2026-10-25T01:00:00+00:00"),
    ("NY", "2026-03-08T07:00:00+00:00"),
    ("NY", "2026-11-01T06:00:00+00:00"),
    ("Santiago", "2026-04-05T03:00:00+00:00"),
    ("Santiago", "2026-09-06T04:00:00+00:00"),
]


@settings(max_examples=300, deadline=None)
@given(
    cadence=st.sampled_from(PROPERTY_CADENCES),
    day=st.sampled_from(DST_DAYS),
    offset_seconds=st.integers(min_value=-30 * 3600, max_value=30 * 3600),
)
def test_searches_agree_with_ticks_between(
    cadence: str, day: tuple[str, str], offset_seconds: int
) -> None:
    """latest/next/previous pick the right neighbours out of the full tick list near DST days."""
    schedule, tz = parse_cadence(cadence), ZONES[day[0]]
    at = t(day[1]) + timedelta(seconds=offset_seconds)
    window = timedelta(days=9)
    ticks = [x.timestamp() for x in schedule.ticks_between(at - window, at + window, tz)]
    assert ticks == sorted(set(ticks))
    latest = schedule.latest_tick(at, tz)
    upcoming = schedule.next_tick(at, tz)
    previous = schedule.previous_tick(at, tz)
    assert latest is not None and upcoming is not None and previous is not None
    assert latest.timestamp() == max(x for x in ticks if x <= at.timestamp())
    assert upcoming.timestamp() == min(x for x in ticks if x > at.timestamp())
    assert previous.timestamp() == max(x for x in ticks if x < at.timestamp())
    assert iso(schedule.latest_tick(latest, tz)) == iso(latest)
    after_previous = schedule.next_tick(previous, tz)
    assert after_previous is not None
    assert after_previous.timestamp() == min(x for x in ticks if x > previous.timestamp())
