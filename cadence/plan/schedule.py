"""Cadence strings -> schedules -> ticks in the project timezone, DST-correct.

Input: the cadence a user wrote for a channel or model (``"every 15 minutes"``,
``"weekdays at 09:00"``, ``"0 5 * * 1-5"``, ``"on demand"``, see ``ACCEPTED_FORMS``) and, for tick
queries, an aware instant plus the project timezone. Output: a frozen ``Schedule`` (or a
``TickSet`` uniting several) answering "latest tick at or before T", "next tick after T",
"ticks in (start, end]".

Invariants:

- Time is always passed in; nothing here reads the clock.
- Every datetime in and out is timezone-aware; results are expressed in the zone passed in.
  Ticks are instants: they are compared, sorted and deduplicated in UTC (Python compares two
  datetimes sharing a tzinfo by wall clock, which would merge the two 02:15s of a fall-back day).
- croniter is used here and nowhere else in cadence.

How ticks are made: a schedule generates local wall-clock (naive) times -- cron expressions via
croniter on naive datetimes; ``every N minutes|hours`` arithmetically as one continuous wall-clock
grid of step N anchored at local midnight 2000-01-01 (so it falls on every midnight when N divides
the day, and stays evenly spaced across midnight when it does not) -- and each wall time is
mapped to instants in the zone. DST rules, after classic vixie cron:

- A wall time that does not exist (spring-forward gap, e.g. 02:30 on 2026-03-29 in Europe/Berlin)
  fires at the first instant after the gap (03:00 CEST). Wall times that land on the same instant
  this way collapse into one tick, also with a tick that is due there anyway.
- A wall time that occurs twice (fall-back, e.g. 02:30 on 2026-10-25 in Berlin): fixed-time
  schedules fire once, at the first occurrence (02:30 CEST); interval schedules fire at both
  (02:30 CEST and 02:30 CET) because their real-time spacing matters. Interval schedules are
  ``every N minutes|hours``, ``hourly``/``@hourly`` and cron whose minute or hour field starts with
  ``*`` (vixie's "wildcard jobs", e.g. ``*/15 * * * *``); the rest are fixed-time: ``daily at``,
  ``weekdays at``, ``<weekday>s at``, ``@daily``/``@weekly``/``@monthly``, ``0 5 * * 1-5``.
- ``every N`` stays on the local wall-clock grid across DST: ``every 90 minutes`` fires at 00:00,
  01:30, 03:00 local on a spring-forward day even though one real gap is then 30 minutes.

Searches scan wall times within ``_MAX_SHIFT`` (3 hours) of the query, which is exact as long as
a zone's UTC offset never drops by more than that (true of every DST rule in the tz database).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

ACCEPTED_FORMS: tuple[str, ...] = (
    "5-field cron, e.g. '*/15 * * * *' or '0 5 * * 1-5'",
    "@hourly, @daily, @weekly, @monthly",
    "hourly, daily, weekly",
    "every N minutes, every N hours (N >= 1, less than 24 hours)",
    "daily at HH:MM (24-hour)",
    "weekdays at HH:MM",
    "mondays at HH:MM (any weekday)",
    "on demand",
)

Kind = Literal["cron", "interval", "on_demand"]

_UTC = timezone.utc
_MINUTE = timedelta(minutes=1)
_DAY_MINUTES = 24 * 60
_MAX_SHIFT = timedelta(hours=3)
_SAMPLE_START = datetime(2001, 1, 1)  # fixed base for validating and measuring cron expressions

_NAMED_CRON = {
    "@hourly": "0 * * * *",
    "hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}
_WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_AT_DAYS = {
    "daily": "*",
    "weekdays": "1-5",
    **{name: str(i) for i, name in enumerate(_WEEKDAYS)},
    **{name + "s": str(i) for i, name in enumerate(_WEEKDAYS)},
}
_EVERY = re.compile(r"every (\d+) (minute|hour)s?")
_AT = re.compile(r"([a-z]+) at (\S+)")
_HH_MM = re.compile(r"(\d{1,2}):(\d{2})")

_CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_CRON_ATOM = re.compile(r"(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/\d+)?")
_MONTH_NAMES = frozenset(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
)
_DAY_NAMES = frozenset(name[:3] for name in _WEEKDAYS)


class CadenceSyntaxError(ValueError):
    """A cadence that is none of ``ACCEPTED_FORMS``. The caller adds file and model.

    ``str()`` is the message (``unknown cadence 'evry 5 minutes'``); ``hint`` holds a
    "did you mean" when a simple fix exists, then the accepted forms.
    """

    def __init__(self, text: str, reason: str | None = None, suggestion: str | None = None):
        self.text = text
        self.reason = reason
        self.suggestion = suggestion
        if reason:
            self.message = f"invalid cadence '{text}': {reason}"
        else:
            self.message = f"unknown cadence '{text}'"
        lines = [f"did you mean '{suggestion}'?"] if suggestion else []
        lines.append("accepted forms:")
        lines.extend(f"  {form}" for form in ACCEPTED_FORMS)
        self.hint = "\n".join(lines)
        super().__init__(self.message)


@dataclass(frozen=True)
class Schedule:
    """One parsed cadence. Build it with ``parse_cadence``.

    ``cron`` is set for kind "cron" (named and ``... at HH:MM`` forms compile to cron),
    ``minutes`` for kind "interval"; ``repeat_in_fold`` says whether a wall time that occurs
    twice on a fall-back day fires twice.
    """

    text: str
    kind: Kind
    cron: str | None = None
    minutes: int | None = None
    repeat_in_fold: bool = False

    def __str__(self) -> str:
        return self.text

    @property
    def on_demand(self) -> bool:
        return self.kind == "on_demand"

    def latest_tick(self, at: datetime, tz: ZoneInfo) -> datetime | None:
        """The last tick at or before ``at``; None for on demand."""
        return self._nearest(at, tz, later=False, inclusive=True)

    def next_tick(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """The first tick strictly after ``after``; None for on demand."""
        return self._nearest(after, tz, later=True, inclusive=False)

    def previous_tick(self, before: datetime, tz: ZoneInfo) -> datetime | None:
        """The last tick strictly before ``before``; None for on demand."""
        return self._nearest(before, tz, later=False, inclusive=False)

    def ticks_between(self, start: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
        """Every tick t with start < t <= end, sorted, without duplicates."""
        low, high = _to_utc(start, "start"), _to_utc(end, "end")
        if self.on_demand or high <= low:
            return []
        limit = _wall(end, tz) + _MAX_SHIFT
        found: set[datetime] = set()
        for wall in self._walls_from(_wall(start, tz) - _MAX_SHIFT):
            if wall > limit:
                break
            found.update(t for t in _instants(wall, tz, self.repeat_in_fold) if low < t <= high)
        return [t.astimezone(tz) for t in sorted(found)]

    def nominal_interval(self) -> timedelta | None:
        """Typical spacing: N for ``every N``, the smallest gap for cron, None for on demand."""
        if self.minutes is not None:
            return timedelta(minutes=self.minutes)
        if self.cron is not None:
            return _smallest_gap(self.cron)
        return None

    def _nearest(
        self, point: datetime, tz: ZoneInfo, *, later: bool, inclusive: bool
    ) -> datetime | None:
        target = _to_utc(point, "the time passed in")
        if self.on_demand:
            return None
        origin = _wall(point, tz)
        if later:
            walls = self._walls_from(origin - _MAX_SHIFT)
        else:
            walls = self._walls_until(origin + _MAX_SHIFT)
        best: datetime | None = None
        best_wall = origin
        for wall in walls:
            # Past _MAX_SHIFT from the best wall time no instant can beat it.
            if best is not None and (
                wall > best_wall + _MAX_SHIFT if later else wall < best_wall - _MAX_SHIFT
            ):
                break
            for instant in _instants(wall, tz, self.repeat_in_fold):
                if instant == target and not inclusive:
                    continue
                if (instant < target) if later else (instant > target):
                    continue
                if best is None or ((instant < best) if later else (instant > best)):
                    best, best_wall = instant, _wall(instant, tz)
        return None if best is None else best.astimezone(tz)

    def _walls_from(self, start: datetime) -> Iterator[datetime]:
        """Wall times >= ``start`` (naive), ascending."""
        if self.minutes is not None:
            return _grid_from(self.minutes, start)
        if self.cron is not None:
            return _cron_from(self.cron, start)
        return iter(())

    def _walls_until(self, end: datetime) -> Iterator[datetime]:
        """Wall times <= ``end`` (naive), descending."""
        if self.minutes is not None:
            return _grid_until(self.minutes, end)
        if self.cron is not None:
            return _cron_until(self.cron, end)
        return iter(())


@dataclass(frozen=True)
class TickSet:
    """The union of several schedules' ticks (a model fed by several channels).

    Empty or all on demand: no ticks, every query answers None (or [] / "on demand").
    """

    schedules: tuple[Schedule, ...] = ()

    @property
    def on_demand(self) -> bool:
        return all(s.on_demand for s in self.schedules)

    def latest_tick(self, at: datetime, tz: ZoneInfo) -> datetime | None:
        return _latest(s.latest_tick(at, tz) for s in self.schedules)

    def next_tick(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        return _earliest(s.next_tick(after, tz) for s in self.schedules)

    def previous_tick(self, before: datetime, tz: ZoneInfo) -> datetime | None:
        return _latest(s.previous_tick(before, tz) for s in self.schedules)

    def ticks_between(self, start: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
        found = {
            _to_utc(t, "tick") for s in self.schedules for t in s.ticks_between(start, end, tz)
        }
        return [t.astimezone(tz) for t in sorted(found)]

    def nominal_interval(self) -> timedelta | None:
        intervals = [i for s in self.schedules if (i := s.nominal_interval()) is not None]
        return min(intervals, default=None)

    def describe(self) -> str:
        """E.g. ``"daily at 05:00 + every 4 hours"``: distinct texts in order, on demand omitted."""
        texts = dict.fromkeys(s.text for s in self.schedules if not s.on_demand)
        return " + ".join(texts) if texts else "on demand"


def parse_cadence(text: str) -> Schedule:
    """Parse one cadence string (case and extra whitespace ignored); raise CadenceSyntaxError."""
    if not isinstance(text, str):
        raise CadenceSyntaxError(str(text), "a cadence is text, e.g. 'every 15 minutes'")
    shown = " ".join(text.split())
    normalized = shown.lower()
    try:
        return _parse(shown)
    except _Rejected as rejected:
        suggestion = rejected.suggestion or _suggest(normalized)
        raise CadenceSyntaxError(shown, rejected.reason, suggestion) from None


# --- parsing -------------------------------------------------------------------------------


class _Rejected(Exception):
    def __init__(self, reason: str | None = None, suggestion: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.suggestion = suggestion


def _parse(shown: str) -> Schedule:
    """Parse whitespace-normalized text; errors quote cron fields as written."""
    text = shown.lower()
    if not text:
        raise _Rejected("it is empty")
    if text == "on demand":
        return Schedule(text, "on_demand")
    if text in _NAMED_CRON:
        expression = _NAMED_CRON[text]
        return Schedule(text, "cron", cron=expression, repeat_in_fold=_is_wildcard(expression))
    if text[0] in "0123456789*":
        return _parse_cron(text, shown)
    if match := _EVERY.fullmatch(text):
        return _parse_every(int(match[1]), match[2])
    if (match := _AT.fullmatch(text)) and match[1] in _AT_DAYS:
        return _parse_at(match[1], match[2])
    raise _Rejected()


def _parse_every(n: int, unit: str) -> Schedule:
    if n < 1:
        raise _Rejected("N must be at least 1")
    minutes = n * 60 if unit == "hour" else n
    if minutes >= _DAY_MINUTES:
        raise _Rejected(
            f"every {n} {unit}s is a day or more; use 'daily at HH:MM' or a 5-field cron"
        )
    return Schedule(
        f"every {n} {unit}{'' if n == 1 else 's'}", "interval", minutes=minutes, repeat_in_fold=True
    )


def _parse_at(days: str, clock: str) -> Schedule:
    match = _HH_MM.fullmatch(clock)
    if not match:
        raise _Rejected(f"time '{clock}' is not HH:MM (24-hour)")
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        raise _Rejected(f"time '{clock}' is out of range 00:00-23:59")
    return Schedule(
        f"{days} at {hour:02d}:{minute:02d}", "cron", cron=f"{minute} {hour} * * {_AT_DAYS[days]}"
    )


def _parse_cron(text: str, shown: str) -> Schedule:
    from croniter import CroniterBadDateError, croniter  # noqa: F401  # lazy: slow import

    fields = text.split(" ")
    if len(fields) != 5:
        raise _Rejected(
            f"cron needs 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    for i, (name, field, written) in enumerate(
        zip(_CRON_FIELDS, fields, shown.split(" "), strict=True)
    ):
        names = _MONTH_NAMES if i == 3 else _DAY_NAMES if i == 4 else frozenset()
        alone = " ".join(field if j == i else "*" for j in range(5))
        if not _plain_cron_field(field, names) or not croniter.is_valid(alone):
            raise _Rejected(f"bad {name} field '{written}'")
    if not croniter.is_valid(text):
        raise _Rejected("not a valid cron expression")
    try:
        croniter(text, _SAMPLE_START).get_next(datetime)
    except CroniterBadDateError:
        raise _Rejected("it never fires (no date matches)") from None
    return Schedule(text, "cron", cron=text, repeat_in_fold=_is_wildcard(text))


def _plain_cron_field(field: str, names: frozenset[str]) -> bool:
    """Vixie syntax only (numbers, names, * / - ,): no croniter extensions like L, #, H."""
    for part in field.split(","):
        match = _CRON_ATOM.fullmatch(part)
        if not match:
            return False
        if match[1] != "*" and not all(
            bound.isdigit() or bound in names for bound in match[1].split("-")
        ):
            return False
    return True


def _is_wildcard(expression: str) -> bool:
    minute, hour = expression.split(" ")[:2]
    return minute.startswith("*") or hour.startswith("*")


# --- did you mean --------------------------------------------------------------------------

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@midnight": "@daily",
    "monthly": "@monthly",
    "every minute": "every 1 minute",
    "every hour": "every 1 hour",
    "every day": "daily",
    "every week": "weekly",
    "on-demand": "on demand",
    "ondemand": "on demand",
    "manual": "on demand",
    "never": "on demand",
}
_NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve"
_WORD_FIXES = {
    **{word: str(i) for i, word in enumerate(_NUMBER_WORDS.split())},
    **{"fifteen": "15", "twenty": "20", "thirty": "30", "forty-five": "45", "sixty": "60"},
    **dict.fromkeys(("m", "min", "mins"), "minutes"),
    **dict.fromkeys(("h", "hr", "hrs"), "hours"),
}
_EVERY_DAY_AT = re.compile(r"^every (day|weekday|[a-z]+day)s? at ")
_PHRASE_WORDS = "every minutes hours at on demand weekdays"
_VOCABULARY = (
    *_PHRASE_WORDS.split(),
    *_NAMED_CRON,
    *_WEEKDAYS,
    *(day + "s" for day in _WEEKDAYS),
)


def _suggest(text: str) -> str | None:
    """A corrected cadence when a simple fix exists (typos, number words, 5pm), else None."""
    if text[:1] in "0123456789*":
        return None  # cron errors name the bad field instead
    candidate = _ALIASES.get(text, text)
    candidate = re.sub(r"\b(\d+)(m|mins?|h|hrs?|minutes?|hours?)\b", r"\1 \2", candidate)
    candidate = re.sub(_EVERY_DAY_AT, _every_day_at, candidate)
    candidate = " ".join(_fix_word(word) for word in candidate.split())
    candidate = re.sub(_EVERY_DAY_AT, _every_day_at, candidate)  # again after typo fixes
    if match := _AT.fullmatch(candidate):
        candidate = f"{match[1]} at {_fix_clock(match[2])}"
    candidate = _ALIASES.get(candidate, candidate)
    try:
        fixed = _parse(candidate).text
    except _Rejected:
        return None
    return fixed if fixed != text else None


def _fix_word(word: str) -> str:
    if word in _WORD_FIXES:
        return _WORD_FIXES[word]
    if word in _VOCABULARY or not word.lstrip("@").isalpha():
        return word
    close = difflib.get_close_matches(word, _VOCABULARY, n=1, cutoff=0.75)
    return close[0] if close else word


def _every_day_at(match: re.Match[str]) -> str:
    day = match[1]
    return ("daily" if day == "day" else day + "s") + " at "


def _fix_clock(clock: str) -> str:
    """'5pm' -> '17:00', '5' -> '05:00', '0530' / '5.30' -> '05:30'; otherwise unchanged."""
    if match := re.fullmatch(r"(\d{1,2})(?:[:.](\d{2}))?(am|pm)", clock):
        hour = int(match[1]) % 12 + (12 if match[3] == "pm" else 0)
        return f"{hour:02d}:{match[2] or '00'}"
    if match := re.fullmatch(r"(\d{1,2})(?:[.h](\d{2}))?|(\d{2})(\d{2})", clock):
        hours, minutes = (match[1], match[2]) if match[1] else (match[3], match[4])
        return f"{int(hours):02d}:{minutes or '00'}"
    return clock


# --- ticks -----------------------------------------------------------------------------------


def _to_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(_UTC)


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    # Through UTC: astimezone() to a datetime's own tzinfo returns it unchanged, even in a gap.
    return moment.astimezone(_UTC).astimezone(tz).replace(tzinfo=None)


def _instants(wall: datetime, tz: ZoneInfo, repeat_in_fold: bool) -> tuple[datetime, ...]:
    """The UTC instants a local wall time fires at (DST rules in the module docstring)."""
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return (first.astimezone(_UTC),)
    if _wall(first, tz) != wall:  # does not exist: zoneinfo put it on the other side
        return (_gap_end(wall, tz, second, first),)
    if repeat_in_fold:
        return (first.astimezone(_UTC), second.astimezone(_UTC))
    return (first.astimezone(_UTC),)


def _gap_end(wall: datetime, tz: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The transition instant ending the gap that swallows ``wall``.

    ``low`` (wall at the new offset) is before the transition and ``high`` (wall at the old
    offset) after it; the transition is the first second whose local time is not before ``wall``.
    """
    lo, hi = int(low.timestamp()), int(high.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, _UTC)


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


_GRID_ANCHOR = datetime(
    2000, 1, 1
)  # a local midnight: grids that divide the day align to every midnight


def _grid_from(step: int, start: datetime) -> Iterator[datetime]:
    """Wall times anchor + k*step >= start: one continuous, evenly spaced grid in wall-clock
    minutes. When step divides the day it falls on every local midnight."""
    delta = timedelta(minutes=step)
    k = -((_GRID_ANCHOR - start) // delta)  # ceil((start - anchor) / step)
    while True:
        yield _GRID_ANCHOR + k * delta
        k += 1


def _grid_until(step: int, end: datetime) -> Iterator[datetime]:
    delta = timedelta(minutes=step)
    k = (end - _GRID_ANCHOR) // delta
    while True:
        yield _GRID_ANCHOR + k * delta
        k -= 1


def _cron_from(expression: str, start: datetime) -> Iterator[datetime]:
    from croniter import CroniterBadDateError, croniter  # noqa: F401  # lazy: slow import

    floor = _floor_minute(start)
    base = floor - _MINUTE if floor == start else floor  # croniter yields strictly after base
    ticks = croniter(expression, base)
    try:
        while True:
            yield ticks.get_next(datetime)
    except CroniterBadDateError:
        return


def _cron_until(expression: str, end: datetime) -> Iterator[datetime]:
    from croniter import CroniterBadDateError, croniter  # noqa: F401  # lazy: slow import

    ticks = croniter(expression, _floor_minute(end) + _MINUTE)  # strictly before base
    try:
        while True:
            yield ticks.get_prev(datetime)
    except CroniterBadDateError:
        return


@lru_cache(maxsize=256)
def _smallest_gap(expression: str) -> timedelta:
    """Smallest wall-clock gap between consecutive ticks over four sample years (or 1000 ticks)."""
    walls = _cron_from(expression, _SAMPLE_START)
    previous = next(walls)
    smallest = timedelta.max
    for count, wall in enumerate(walls):
        smallest = min(smallest, wall - previous)
        if smallest == _MINUTE or count >= 1000 or wall - _SAMPLE_START > timedelta(days=1462):
            break
        previous = wall
    return smallest


def _latest(candidates: Iterable[datetime | None]) -> datetime | None:
    found = [c for c in candidates if c is not None]
    return max(found, key=lambda t: t.timestamp(), default=None)


def _earliest(candidates: Iterable[datetime | None]) -> datetime | None:
    found = [c for c in candidates if c is not None]
    return min(found, key=lambda t: t.timestamp(), default=None)
