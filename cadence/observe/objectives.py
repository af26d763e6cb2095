"""Freshness objectives: a channel's (or source's) lag and state at an instant, from values.

Input: the channel's schedule, its declared objective (or none), the time of the data it was
last brought up to date with, when cadence first saw it, and ``now`` -> output: a ``Standing``
(lag, the thresholds in force, ok|warn|error, and the next instant the state would worsen if
nothing happened). Pure: no clock, no files, no warehouse.
Invariants: the default objective is tick-based: warn when the data is older than the channel's
second-latest tick <= now, error when older than its fourth-latest (a weekdays channel is not
late on Sunday); a channel never brought up to date has no lag and is at error once the fourth
tick after cadence first saw it has passed; a declared objective compares the lag with
``warn_after``/``error_after`` seconds (error without error_after: never; warn without
warn_after: at error).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

STATES = ("ok", "warn", "error")
DEFAULT_WARN_TICK = 2
DEFAULT_ERROR_TICK = 4


class Ticks(Protocol):
    def latest_tick(self, at: dt.datetime, tz: ZoneInfo) -> dt.datetime | None: ...

    def previous_tick(self, before: dt.datetime, tz: ZoneInfo) -> dt.datetime | None: ...

    def next_tick(self, after: dt.datetime, tz: ZoneInfo) -> dt.datetime | None: ...


@dataclass(frozen=True)
class Standing:
    name: str
    data_at: dt.datetime | None  # the time of the data it was last brought up to date with
    lag_s: float | None  # now - data_at (None: never brought up to date)
    warn_after_s: float | None  # thresholds in force at now (default: from the ticks)
    error_after_s: float | None
    state: str  # ok | warn | error
    declared: bool  # an objective in cadence.yml (else the tick default)
    next_change: dt.datetime | None  # when the state worsens if nothing happens (None: never)
    reason: str = ""

    def to_json(self, tz: ZoneInfo | None = None) -> dict[str, object]:
        """For ``status --json``: ``data_at`` in ``tz`` (the project's), as its other times."""
        data_at = self.data_at.astimezone(tz) if self.data_at and tz else self.data_at
        return {
            "channel": self.name,
            "data_at": data_at.isoformat() if data_at else None,
            "lag_s": None if self.lag_s is None else round(self.lag_s, 3),
            "objective": {
                "warn_after_s": self.warn_after_s,
                "error_after_s": self.error_after_s,
                "declared": self.declared,
            },
            "state": self.state,
            "reason": self.reason,
        }


def latest_ticks(ticks: Ticks, tz: ZoneInfo, now: dt.datetime, n: int) -> list[dt.datetime]:
    """The ``n`` latest ticks <= now, newest first (fewer when the schedule has fewer)."""
    out: list[dt.datetime] = []
    tick = ticks.latest_tick(now, tz)
    while tick is not None and len(out) < n:
        out.append(tick)
        tick = ticks.previous_tick(tick, tz)
    return out


def _default_state(
    ticks: Ticks,
    tz: ZoneInfo,
    data_at: dt.datetime | None,
    since: dt.datetime | None,
    now: dt.datetime,
) -> tuple[str, float | None, float | None, str]:
    recent = latest_ticks(ticks, tz, now, DEFAULT_ERROR_TICK)
    warn_tick = recent[DEFAULT_WARN_TICK - 1] if len(recent) >= DEFAULT_WARN_TICK else None
    error_tick = recent[DEFAULT_ERROR_TICK - 1] if len(recent) >= DEFAULT_ERROR_TICK else None
    warn_s = (now - warn_tick).total_seconds() if warn_tick else None
    error_s = (now - error_tick).total_seconds() if error_tick else None
    if data_at is None:
        if error_tick is not None and (since is None or error_tick > since):
            return "error", warn_s, error_s, "never brought up to date, 4 ticks have passed"
        return "ok", warn_s, error_s, "not brought up to date yet"
    if error_tick is not None and data_at < error_tick:
        return "error", warn_s, error_s, "older than its fourth-latest tick"
    if warn_tick is not None and data_at < warn_tick:
        return "warn", warn_s, error_s, "older than its second-latest tick"
    return "ok", warn_s, error_s, ""


def _declared_state(warn_s: float | None, error_s: float | None, lag_s: float) -> tuple[str, str]:
    if error_s is not None and lag_s > error_s:
        return "error", f"{human(lag_s)} old, error_after {human(error_s)}"
    if warn_s is not None and lag_s > warn_s:
        return "warn", f"{human(lag_s)} old, warn_after {human(warn_s)}"
    return "ok", ""


def standing(
    name: str,
    ticks: Ticks | None,
    tz: ZoneInfo,
    objective: tuple[float | None, float | None] | None,
    data_at: dt.datetime | None,
    since: dt.datetime | None,
    now: dt.datetime,
) -> Standing:
    """A channel's freshness at ``now``. ``objective``: declared (warn_after_s, error_after_s),
    or None for the tick default; ``since``: when cadence first saw the channel."""
    lag = None if data_at is None else max(0.0, (now - data_at).total_seconds())
    if objective is None:
        if ticks is None:
            return Standing(name, data_at, lag, None, None, "ok", False, None, "on demand")
        state, warn_s, error_s, reason = _default_state(ticks, tz, data_at, since, now)
        nxt = _next_default_change(ticks, tz, data_at, since, now, state)
        return Standing(name, data_at, lag, warn_s, error_s, state, False, nxt, reason)
    warn_s, error_s = objective
    if data_at is None or lag is None:
        # never brought up to date: at error once the fourth tick after it was first seen
        if ticks is None:
            return Standing(name, None, None, warn_s, error_s, "ok", True, None, "")
        state, _, _, reason = _default_state(ticks, tz, None, since, now)
        nxt = _next_default_change(ticks, tz, None, since, now, state)
        return Standing(name, None, None, warn_s, error_s, state, True, nxt, reason)
    state, reason = _declared_state(warn_s, error_s, lag)
    crossings = [data_at + dt.timedelta(seconds=s) for s in (warn_s, error_s) if s is not None]
    nxt = None if state == "error" else _next_crossing(crossings, now)
    return Standing(name, data_at, lag, warn_s, error_s, state, True, nxt, reason)


def _next_default_change(
    ticks: Ticks,
    tz: ZoneInfo,
    data_at: dt.datetime | None,
    since: dt.datetime | None,
    now: dt.datetime,
    state: str,
) -> dt.datetime | None:
    """The first coming tick at which the default state is worse than ``state`` (the state
    changes only at ticks: the thresholds are ticks)."""
    if state == "error":
        return None
    rank = STATES.index(state)
    tick = ticks.next_tick(now, tz)
    for _ in range(DEFAULT_ERROR_TICK + 1):
        if tick is None:
            return None
        if STATES.index(_default_state(ticks, tz, data_at, since, tick)[0]) > rank:
            return tick
        tick = ticks.next_tick(tick, tz)
    return None


def source_standing(
    name: str,
    warn_s: float | None,
    error_s: float | None,
    loaded_at: dt.datetime | None,
    now: dt.datetime,
) -> Standing:
    """A source table's dbt freshness: its newest ``loaded_at`` against warn/error_after."""
    if loaded_at is None:
        return Standing(name, None, None, warn_s, error_s, "ok", True, None, "loaded_at unknown")
    lag = max(0.0, (now - loaded_at).total_seconds())
    state, reason = _declared_state(warn_s, error_s, lag)
    crossings = [loaded_at + dt.timedelta(seconds=s) for s in (warn_s, error_s) if s is not None]
    nxt = None if state == "error" else _next_crossing(crossings, now)
    return Standing(name, loaded_at, lag, warn_s, error_s, state, True, nxt, reason)


def _next_crossing(crossings: list[dt.datetime], now: dt.datetime) -> dt.datetime | None:
    """The next look: the first threshold not passed yet. A state worsens only once the lag is
    over its threshold, so a crossing at ``now`` itself is still ahead (at ``now`` the state is
    the better one): it is returned, and any later invocation observes the worse state."""
    return min((c for c in crossings if c >= now), default=None)


def human(seconds: float) -> str:
    """30 min, 2 h, 5 h 10 min, 3 d: a duration as people read it."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h" + (f" {m} min" if m else "")
    d, rest = divmod(s, 86400)
    return f"{d} d" + (f" {rest // 3600} h" if rest // 3600 else "")


def worst(states: list[str]) -> str:
    return max(states, key=STATES.index, default="ok")
