"""When the next ``run --due`` can have work: the wake instant, from a list of pure contributors.

Input: a ``Moment`` -- the project, its DAG and cadences, the state a run left behind, the time
it ran at, and the plan ``run --due`` makes at that time from that state -> output: a ``Wake``
(the earliest instant at which ``run --due`` could do anything, and why), the run's own time
when it would do something at once, or None when nothing time-driven is left (only a change to
the project, the warehouse or the files cadence keeps could give it work; those are checked
apart, by ``build.idle``).

Invariants: pure (no clock, no database, no files); an instant is never later than the first
time ``run --due`` would build, deliver or write anything on an unchanged project and
warehouse -- a contributor may wake a run that then finds nothing to do, never sleep through
work. Each time-driven rule of SPEC §4, §7 and §9 has its contributor here; a new rule (a
freshness objective's next crossing, an alert's retry) adds a function to ``CONTRIBUTORS``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cadence.load.parser import ParsedProject
from cadence.plan.cadences import Cadences
from cadence.plan.dag import Dag
from cadence.plan.due import Plan
from cadence.plan.history import StateSnapshot
from cadence.plan.schedule import Schedule


@dataclass(frozen=True)
class Moment:
    """What a contributor sees: ``plan`` is ``decide`` at ``at`` over every model, in due mode,
    from ``state`` (the state as the run left it, which the next run reads)."""

    project: ParsedProject
    dag: Dag
    cadences: Cadences
    state: StateSnapshot
    at: dt.datetime
    plan: Plan


@dataclass(frozen=True)
class Wake:
    at: dt.datetime
    reason: str


Contributor = Callable[[Moment], "Wake | None"]


def work_now(m: Moment) -> Wake | None:
    """A model the plan builds now; a ``refresh: on_new_data`` model that skipped its tick for
    lack of new rows (it builds at the next invocation that sees new rows, which may land in
    files the warehouse does not hold); state recorded after ``at`` (every run warns of it)."""
    for d in m.plan.decisions:
        if d.builds:
            return Wake(m.at, f"{d.name} is due ({d.reason})")
        if d.current:
            return Wake(m.at, f"{d.name} waits for new rows (refresh: on_new_data)")
    if m.plan.clock_behind:
        return Wake(m.at, "state recorded after now: every run warns until the clock catches up")
    return None


def next_model_tick(m: Moment) -> Wake | None:
    """The next tick of any model (views and ephemerals pass theirs to the tables they read;
    a rebuilt upstream, a pulled-in refresh, a run-dependent view: all happen at a tick)."""
    schedules: set[Schedule] = set()
    for cadence in m.cadences.models.values():
        schedules.update(cadence.ticks.schedules)
    return _first(m, ((s, f"next tick of '{s.text}'") for s in schedules))


def next_retry(m: Moment) -> Wake | None:
    """A failed model backing off (SPEC §4: next invocation, then 2, 4, 8... minutes)."""
    found = [(d.next_retry, d.name) for d in m.plan.decisions if d.next_retry is not None]
    if not found:
        return None
    when, name = min(found)
    return Wake(when, f"{name} retries after its failure")


def next_channel_tick(m: Moment) -> Wake | None:
    """The next tick of a channel that delivers (an export) or serves: a channel delivers at
    its own ticks (SPEC §7), and a served channel's snapshot is rewritten at the first run after
    its tick (SPEC §9), even when no segment of it was rebuilt."""
    channels = m.project.config.channels
    acting = {c.name for c in channels if c.export is not None or c.serve is not None}
    chosen = (
        (schedule, f"next tick of channel {name}")
        for name, schedule in sorted(m.cadences.channels.items())
        if name in acting
    )
    return _first(m, chosen)


# history pruning (``history: {keep_days}``) is not here: it runs only after a run that
# recorded builds, and such a run is woken by a tick or a retry above.
CONTRIBUTORS: list[Contributor] = [work_now, next_model_tick, next_retry, next_channel_tick]


def next_wake(m: Moment, contributors: Iterable[Contributor] = CONTRIBUTORS) -> Wake | None:
    """The earliest wake of every contributor (None: none has one)."""
    found = [w for c in contributors if (w := c(m)) is not None]
    return min(found, key=lambda w: w.at) if found else None


def _first(m: Moment, schedules: Iterable[tuple[Schedule, str]]) -> Wake | None:
    tz = m.project.config.tz
    best: Wake | None = None
    for schedule, reason in schedules:
        tick = schedule.next_tick(m.at, tz)
        if tick is not None and (best is None or tick < best.at):
            best = Wake(tick, reason)
    return best
