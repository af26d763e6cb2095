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
from bisect import bisect_left
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
    # day d is [edges[d], edges[d + 1]) in real minutes since the week's first midnight
    edges = [round((u - utc[0]).total_seconds() / 60) for u in utc]

    def per_day(instants: list[dt.datetime]) -> list[int]:
        """Pattern index per day of these instants (minutes since that day's midnight)."""
        minutes = sorted(
            round((t.astimezone(dt.timezone.utc) - utc[0]).total_seconds() / 60) for t in instants
        )
        out = []
        for d in range(7):
            lo, hi = bisect_left(minutes, edges[d]), bisect_left(minutes, edges[d + 1])
            day = tuple(m - edges[d] for m in minutes[lo:hi])
            if day not in known:
                known[day] = len(patterns)
                patterns.append(list(day))
            out.append(known[day])
        return out

    rebuilt = {
        m.name: per_day(times.get(m.name, [])) for m in project.parsed.models if m.config.channels
    }
    channels = []
    for ch in project.parsed.config.channels:
        schedule = project.cadences.channels.get(ch.name)
        ticks = (
            schedule.ticks_between(bounds[0] - _SECOND, bounds[-1] - _SECOND, tz)
            if schedule is not None
            else []
        )
        receives = per_day(ticks)
        segments = [
            {"name": m.name, "builds": rebuilt[m.name]}
            for m in project.parsed.models
            if ch.name in m.config.channels
        ]
        looks = [
            (receives[d], tuple(s["builds"][d] for s in segments), edges[d + 1] - edges[d])
            for d in range(7)
        ]
        channels.append(
            {
                "name": ch.name,
                "cadence": ch.cadence,
                "kind": ch.kind or "",
                "description": ch.description or "",
                "varies": len(set(looks)) > 1,
                "receives": receives,
                "segments": segments,
            }
        )
    return {
        "timezone": str(tz),
        "at": now.astimezone(tz).date().isoformat(),
        "days": [
            {
                "date": d.isoformat(),
                "weekday": WEEKDAYS[d.weekday()],
                "minutes": edges[i + 1] - edges[i],
            }
            for i, d in enumerate(days)
        ],
        "patterns": patterns,
        "channels": channels,
    }
