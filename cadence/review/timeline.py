"""The docs site's refresh timeline: a representative week, per channel (SPEC §10).

Input: a loaded ``Project`` and ``now`` -> output: the timeline section of data.js: the seven
days (Monday to Sunday) of the week holding ``now`` in the project timezone, and per channel the
ticks at which it receives (its own cadence) and, per segment feeding it, the instants it is
rebuilt (its ticks and the builds a faster consumer pulls in: ``cost.build_times``), each day.

Invariants: times are real minutes since the day's local midnight (a DST day is 23 or 25 hours
long and says so); a tick at midnight belongs to the day it starts; a channel is marked
``varies`` when any of its days differs from another (a weekday cadence, a DST day), and the page
then shows one row per day, else one row standing for every day; minute lists are stored once
(``patterns``) and referred to by index, so a week of 5-minute ticks stays small.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cadence.review.cost import build_times

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_SECOND = dt.timedelta(seconds=1)


def week_of(day: dt.date) -> list[dt.date]:
    monday = day - dt.timedelta(days=day.weekday())
    return [monday + dt.timedelta(days=i) for i in range(7)]


def _midnight(day: dt.date, tz: Any) -> dt.datetime:
    """The first instant of a local day (a zone may skip midnight: fold into the real instant)."""
    wall = dt.datetime.combine(day, dt.time(), tzinfo=tz)
    return wall.astimezone(dt.timezone.utc).astimezone(tz)


def timeline(project: Any, now: dt.datetime) -> dict[str, Any]:
    """Days, minute patterns and per channel its receiving ticks and segments' rebuilds."""
    tz = project.tz
    days = week_of(now.astimezone(tz).date())
    bounds = [_midnight(d, tz) for d in days] + [_midnight(days[-1] + dt.timedelta(days=1), tz)]
    utc = [b.astimezone(dt.timezone.utc) for b in bounds]
    # ticks in [start, end): (start - 1s, end - 1s], ticks fall on whole minutes
    times = build_times(
        project.parsed,
        project.dag,
        project.cadences,
        bounds[0] - _SECOND,
        bounds[-1] - _SECOND,
        tz,
    )
    patterns: list[list[int]] = []
    known: dict[tuple[int, ...], int] = {}

    def pattern(instants: list[dt.datetime], day: int) -> int:
        start, end = utc[day], utc[day + 1]
        minutes = tuple(
            round((t.astimezone(dt.timezone.utc) - start).total_seconds() / 60)
            for t in instants
            if start <= t.astimezone(dt.timezone.utc) < end
        )
        if minutes not in known:
            known[minutes] = len(patterns)
            patterns.append(list(minutes))
        return known[minutes]

    channels = []
    for ch in project.parsed.config.channels:
        schedule = project.cadences.channels.get(ch.name)
        ticks = (
            schedule.ticks_between(bounds[0] - _SECOND, bounds[-1] - _SECOND, tz)
            if schedule is not None
            else []
        )
        receives = [pattern(ticks, d) for d in range(7)]
        segments = [
            {"name": m.name, "builds": [pattern(times.get(m.name, []), d) for d in range(7)]}
            for m in project.parsed.models
            if ch.name in m.config.channels
        ]
        per_day = [
            (receives[d], tuple(s["builds"][d] for s in segments), _length(utc, d))
            for d in range(7)
        ]
        channels.append(
            {
                "name": ch.name,
                "cadence": ch.cadence,
                "kind": ch.kind or "",
                "description": ch.description or "",
                "varies": len(set(per_day)) > 1,
                "receives": receives,
                "segments": segments,
            }
        )
    return {
        "timezone": str(tz),
        "at": now.astimezone(tz).date().isoformat(),
        "days": [
            {"date": d.isoformat(), "weekday": WEEKDAYS[d.weekday()], "minutes": _length(utc, i)}
            for i, d in enumerate(days)
        ],
        "patterns": patterns,
        "channels": channels,
    }


def _length(utc: list[dt.datetime], day: int) -> int:
    return round((utc[day + 1] - utc[day]).total_seconds() / 60)
