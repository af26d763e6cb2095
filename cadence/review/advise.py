"""``cadence advise``: what each channel's speed buys and what it costs, from recorded history
alone (SPEC §11).

Input: a loaded ``Project``, ``now``, the window start, the channels asked for and the candidate
cadences -> output: ``Advice`` (frozen): per channel its cadence and objective, what was
observed (entries, missed, pending, reach delays, builds and compute per day as ``plan`` counts
them), and per candidate cadence the same figures as they would have been (``reach``) with the
project's cost at that cadence (``cost``: only this channel's cadence changed, so a build another
channel already pays for costs nothing extra), the cheapest candidate that meets the objective,
and what each faster step costs per minute of delay saved.

Invariants: never builds and never writes; the warehouse is attached read-only once, for the
moment it takes to copy the history advise reads into memory, and is free again before any
figure is computed; while a cadence run holds it, advise says so and reads nothing (the history
is not in the state snapshot).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cadence.engines import attach_state
from cadence.errors import CadenceError, UsageError, did_you_mean
from cadence.load.channelconfig import ChannelConfig
from cadence.load.costconfig import CostConfig
from cadence.plan.cadences import resolve_cadences
from cadence.plan.history import StateSnapshot
from cadence.plan.schedule import CadenceSyntaxError, Schedule, parse_cadence
from cadence.plan.ticks import instants_between
from cadence.review.cost import CostReport, cost_report, per_month
from cadence.review.reach import ChannelReach, Delays, copy_history, read_reach

DEFAULT_CANDIDATES = ("every 5 minutes", "every 15 minutes", "hourly", "every 4 hours")
MIN_ENTRIES = 20  # fewer entries than this: the note says the figures are no basis yet
ADVISE_SINCE = dt.timedelta(days=30)  # the history read by default (``--since 30d``)
COST_SPAN = dt.timedelta(days=7)  # builds/day averaged over a week: weekday cadences included


@dataclass(frozen=True)
class Objective:
    """How old a channel's data may get: warn and error thresholds in seconds (None: a
    channel without ticks has none); ``declared`` False: the default rule."""

    warn_after_s: float | None
    error_after_s: float | None
    declared: bool = False


@dataclass(frozen=True)
class Observed:
    entered: int
    missed: int
    pending: int
    delays: Delays
    builds_per_day: float
    compute_s_per_day: float | None


@dataclass(frozen=True)
class Candidate:
    cadence: str
    builds_per_day: float  # the project's total with this channel at this cadence
    compute_s_per_day: float | None  # None: no recorded build durations
    cost_per_month: float | None  # None without ``cost:`` in cadence.yml
    delays: Delays
    missed_at_least: int
    meets_objective: bool
    faster: bool  # ticks more often than the channel does: its missed is a lower bound


@dataclass(frozen=True)
class Step:
    """Going from ``slower`` to the faster candidate ``faster``: the extra cost per month
    (money, or compute seconds per day without a price) for the minutes of p90 delay saved."""

    slower: str
    faster: str
    extra: float
    minutes_saved: float

    @property
    def per_minute(self) -> float:
        return self.extra / self.minutes_saved


@dataclass(frozen=True)
class ChannelAdvice:
    channel: str
    cadence: str
    objective: Objective
    observed: Observed
    candidates: tuple[Candidate, ...]
    recommended: str | None
    note: str | None
    exported: bool  # reach is a destination's acknowledgement (else the publish)
    event_time: bool  # some entries carry an event_time (else delays start at the publish)
    current_builds_per_day: float  # the project's total as it is: the chart's marked point
    current_compute_s_per_day: float | None
    current_cost_per_month: float | None
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Advice:
    at: dt.datetime
    since: dt.datetime
    channels: tuple[ChannelAdvice, ...]
    price: CostConfig | None = None


# -- inputs --------------------------------------------------------------------------------------


def parse_candidates(text: str) -> tuple[str, ...]:
    """``--cadences "every 5 minutes; hourly; 0 9 * * 1-5"``: cadences separated by ``;`` (cron
    expressions contain commas), each as cadence.yml accepts it; returned in canonical text."""
    out: list[str] = []
    for part in text.split(";"):
        if not part.strip():
            continue
        try:
            schedule = parse_cadence(part)
        except CadenceSyntaxError as exc:
            raise UsageError(f"--cadences: {exc.message}", hint=exc.hint) from None
        if schedule.on_demand:
            raise UsageError(
                "--cadences: 'on demand' never delivers; it cannot be a candidate",
                hint='give cadences with ticks, e.g. --cadences "every 15 minutes; hourly"',
            )
        if schedule.text not in out:
            out.append(schedule.text)
    if not out:
        raise UsageError(
            "--cadences names no cadence",
            hint='separate cadences with ";", e.g. --cadences "every 5 minutes; hourly"',
        )
    return tuple(out)


def parse_since(text: str, now: dt.datetime, tz: Any) -> dt.datetime:
    """``--since``: a span back from ``now`` (``90m``, ``24h``, ``30d``) or a time (ISO 8601;
    naive in the project timezone), before ``now``."""
    from cadence.plan.due import parse_at
    from cadence.record.reports import parse_horizon

    value = text.strip()
    try:
        start = now - parse_horizon(value) if value[-1:] in ("m", "h", "d") else parse_at(value, tz)
    except UsageError:
        raise UsageError(
            f"--since: cannot read '{text}'",
            hint="a span back from now (90m, 24h, 30d) or a time (2026-06-01T06:00)",
        ) from None
    if start >= now:
        raise UsageError(
            f"--since {text} is not before now ({now.isoformat()})",
            hint="give a span back from now, e.g. --since 30d",
        )
    return start


def default_candidates(schedule: Schedule | None) -> tuple[str, ...]:
    """Every 5 and 15 minutes, hourly, every 4 hours, and daily at the channel's hour (the
    time of day of a fixed-time cadence such as ``weekdays at 09:00``, else midnight)."""
    return (*DEFAULT_CANDIDATES, f"daily at {_hour_of(schedule)}")


def _hour_of(schedule: Schedule | None) -> str:
    if schedule is not None and schedule.cron is not None:
        minute, hour = schedule.cron.split(" ")[:2]
        if minute.isdigit() and hour.isdigit():
            return f"{int(hour):02d}:{int(minute):02d}"
    return "00:00"


def objective_of(
    channel: ChannelConfig, schedule: Schedule | None, tz: Any, now: dt.datetime
) -> Objective:
    """The channel's freshness objective: its ``freshness: {warn_after, error_after}`` (SPEC
    §11; a channel that declares only ``error_after`` warns at it), else the default rule
    (``default_objective``)."""
    declared = channel.freshness
    warn = declared.warn_after_s if declared is not None else None
    error = declared.error_after_s if declared is not None else None
    if warn is None and error is None:
        return default_objective(schedule, tz, now)
    first = warn if warn is not None else error
    assert first is not None
    return Objective(float(first), None if error is None else float(error), declared=True)


def default_objective(schedule: Schedule | None, tz: Any, now: dt.datetime) -> Objective:
    """SPEC §11's default: a channel warns when its data is older than its second-latest tick
    and errors when older than its fourth-latest. As a duration: the longest such age over
    the ticks of the weeks before ``now`` (two tick intervals to warn, four to err; a
    weekdays channel's weekend counts, so it is not late on Sunday)."""
    if schedule is None or schedule.on_demand:
        return Objective(None, None)
    ticks: list[dt.datetime] = []
    for days in (35, 400):  # five weeks hold a weekly cadence's ticks; a monthly one needs more
        ticks = instants_between(schedule, now - dt.timedelta(days=days), now, tz)
        if len(ticks) >= 5:
            break
    if len(ticks) < 5:  # a few ticks a year: their one spacing
        gap = dt.timedelta(days=365)
        if len(ticks) > 1:
            gap = (ticks[-1] - ticks[0]) / (len(ticks) - 1)
        return Objective(2 * gap.total_seconds(), 4 * gap.total_seconds())
    warn = max((ticks[i + 1] - ticks[i - 1]).total_seconds() for i in range(1, len(ticks) - 1))
    error = max((ticks[i + 1] - ticks[i - 3]).total_seconds() for i in range(3, len(ticks) - 1))
    return Objective(warn, error)


# -- the advice ----------------------------------------------------------------------------------


def advise(
    project: Any,
    now: dt.datetime,
    since: dt.datetime,
    channels: Sequence[str] = (),
    candidates: Sequence[str] | None = None,
) -> Advice:
    """The one library call behind ``cadence advise``: every channel (or ``channels``), with
    ``candidates`` (default: ``default_candidates`` of each channel)."""
    parsed = project.parsed
    configs = _chosen(parsed.config.channels, channels)
    tz = project.tz
    schedules = {c.name: project.cadences.channels.get(c.name) for c in configs}
    wanted = {
        c.name: tuple(candidates) if candidates else default_candidates(schedules[c.name])
        for c in configs
    }
    ticks: dict[tuple[str, dt.datetime], list[dt.datetime]] = {}

    def tick_source(name: str) -> Any:
        def make(floor: dt.datetime) -> list[tuple[str, list[dt.datetime]]]:
            out = []
            for text in wanted[name]:
                if (text, floor) not in ticks:
                    schedule = parse_cadence(text)
                    start = floor - dt.timedelta(seconds=1)  # a tick at the floor counts
                    end = schedule.next_tick(now, tz) or now  # the last entries' delivery
                    ticks[(text, floor)] = instants_between(schedule, start, end, tz)
                out.append((text, ticks[(text, floor)]))
            return out

        return make

    reach, state = _read_history(project, configs, since, now, tick_source)
    durations = {n: state.of(n).avg_duration_s for n in project.model_names()}
    current = cost_report(parsed, project.dag, project.cadences, durations, now, COST_SPAN, "7d")
    price = parsed.config.cost
    out = []
    for config in configs:
        found = reach.get(config.name, ChannelReach())
        objective = objective_of(config, schedules[config.name], tz, now)
        costs = {
            text: _cost_at(project, config.name, text, durations, now)
            for text in wanted[config.name]
        }
        out.append(
            _channel_advice(
                config, schedules[config.name], objective, found, current, costs, since, price, tz
            )
        )
    return Advice(now, since, tuple(out), price)


def _chosen(configs: tuple[ChannelConfig, ...], names: Sequence[str]) -> list[ChannelConfig]:
    known = [c.name for c in configs]
    for name in names:
        if name not in known:
            guess = did_you_mean(name, known)
            raise UsageError(
                f"unknown channel '{name}'",
                hint=f"did you mean '{guess}'?" if guess else "channels: " + ", ".join(known),
            )
    return [c for c in configs if not names or c.name in names]


def _read_history(
    project: Any,
    configs: Sequence[ChannelConfig],
    since: dt.datetime,
    now: dt.datetime,
    tick_source: Any,
) -> tuple[dict[str, ChannelReach], StateSnapshot]:
    """Everything advise reads: the warehouse's state is attached read-only just long enough
    to copy the rows it needs into memory (``reach.copy_history``); the figures are computed
    from the copies once the warehouse is free again."""
    from cadence.activation.audience import segments_of
    from cadence.build.lock import current_holder
    from cadence.record.state import read_snapshot, to_db

    if not project.warehouse_exists():
        return {}, StateSnapshot()
    holder = current_holder(project.root)
    if holder is not None:
        raise CadenceError(
            f"a cadence run is in progress ({holder}); advise reads the recorded history "
            "from the warehouse",
            hint="try again when it finishes (nothing was read or changed)",
        )
    segments = {c.name: [m.name for m in segments_of(project.parsed, c.name)] for c in configs}
    everything = sorted({s for names in segments.values() for s in names})
    engine = attach_state(project.parsed.config.warehouse, project.root)  # busy: WarehouseBusy
    try:
        try:
            state = read_snapshot(engine, (), project.tz)
            copy_history(engine, [c.name for c in configs], everything, to_db(since), to_db(now))
        finally:
            engine.detach()
        out = {
            c.name: read_reach(
                engine,
                c.name,
                segments[c.name],
                c.export is not None,
                since,
                now,
                tick_source(c.name),
            )
            for c in configs
        }
        return out, state
    finally:
        engine.close()


def _cost_at(
    project: Any,
    channel: str,
    cadence: str,
    durations: dict[str, float | None],
    now: dt.datetime,
) -> CostReport:
    """The cost model with only ``channel``'s cadence set to ``cadence``."""
    parsed = project.parsed
    channels = tuple(
        dataclasses.replace(c, cadence=cadence) if c.name == channel else c
        for c in parsed.config.channels
    )
    changed = dataclasses.replace(
        parsed, config=dataclasses.replace(parsed.config, channels=channels)
    )
    cadences = resolve_cadences(changed, project.dag, [])
    return cost_report(changed, project.dag, cadences, durations, now, COST_SPAN, "7d")


def _channel_advice(
    config: ChannelConfig,
    schedule: Schedule | None,
    objective: Objective,
    reach: ChannelReach,
    current: CostReport,
    costs: dict[str, CostReport],
    since: dt.datetime,
    price: CostConfig | None,
    tz: Any,
) -> ChannelAdvice:
    share = next((c for c in current.channels if c.name == config.name), None)
    no_history = bool(current.no_history) and len(current.no_history) == sum(
        1 for m in current.models if m.builds
    )
    observed = Observed(
        reach.entered,
        reach.missed,
        reach.pending,
        reach.delays,
        share.builds_per_day if share else 0.0,
        None if no_history else (share.compute_s_per_day if share else 0.0),
    )
    ticks_now = _weekly_ticks(schedule, current.at, tz)
    candidates = []
    for found in reach.candidates or tuple(_unmeasured(t) for t in costs):
        report = costs[found.cadence]
        compute = None if no_history else report.total_compute_s_per_day
        faster = _weekly_ticks(parse_cadence(found.cadence), current.at, tz) > ticks_now
        p90 = found.delays.p90
        candidates.append(
            Candidate(
                found.cadence,
                report.total_builds_per_day,
                compute,
                per_month(compute, price),
                found.delays,
                found.missed_at_least,
                p90 is not None
                and objective.warn_after_s is not None
                and p90 <= objective.warn_after_s,
                faster,
            )
        )
    recommended = _cheapest(candidates)
    current_compute = None if no_history else current.total_compute_s_per_day
    return ChannelAdvice(
        channel=config.name,
        cadence=config.cadence,
        objective=objective,
        observed=observed,
        candidates=tuple(candidates),
        recommended=recommended,
        note=_note(reach, recommended, objective, since),
        exported=config.export is not None,
        event_time=reach.with_event_time > 0,
        current_builds_per_day=current.total_builds_per_day,
        current_compute_s_per_day=current_compute,
        current_cost_per_month=per_month(current_compute, price),
        steps=_steps(candidates, price is not None),
    )


def _weekly_ticks(schedule: Schedule | None, now: dt.datetime, tz: Any) -> int:
    """How often a schedule ticks in the week after ``now`` (0: none, or on demand)."""
    if schedule is None:
        return 0
    return len(instants_between(schedule, now, now + COST_SPAN, tz))


def _unmeasured(cadence: str) -> Any:
    from cadence.review.reach import CandidateReach

    return CandidateReach(cadence, Delays(), 0)


def _price_of(c: Candidate) -> float:
    """What a candidate costs, in the best unit known: money, compute, else builds."""
    if c.cost_per_month is not None:
        return c.cost_per_month
    if c.compute_s_per_day is not None:
        return c.compute_s_per_day
    return c.builds_per_day


def _cheapest(candidates: Sequence[Candidate]) -> str | None:
    """The cheapest candidate that meets the objective; ties go to the shorter p90 delay."""
    meeting = [c for c in candidates if c.meets_objective]
    if not meeting:
        return None
    best = min(meeting, key=lambda c: (_price_of(c), c.delays.p90 or 0.0))
    return best.cadence


def _steps(candidates: Sequence[Candidate], priced: bool) -> tuple[Step, ...]:
    """Slowest to fastest by p90 delay: what each step to a faster candidate costs per minute
    of p90 delay it saves (money per month with a price, else compute seconds per day)."""
    measured = [c for c in candidates if c.delays.p90 is not None]
    measured.sort(key=lambda c: (-(c.delays.p90 or 0.0), _price_of(c)))
    out = []
    for slower, faster in zip(measured, measured[1:], strict=False):
        saved = ((slower.delays.p90 or 0.0) - (faster.delays.p90 or 0.0)) / 60
        if saved <= 0:
            continue
        if priced and slower.cost_per_month is not None and faster.cost_per_month is not None:
            extra = faster.cost_per_month - slower.cost_per_month
        elif slower.compute_s_per_day is not None and faster.compute_s_per_day is not None:
            extra = faster.compute_s_per_day - slower.compute_s_per_day
        else:
            continue
        out.append(Step(slower.cadence, faster.cadence, extra, saved))
    return tuple(out)


def _note(
    reach: ChannelReach, recommended: str | None, objective: Objective, since: dt.datetime
) -> str | None:
    parts = []
    if reach.entered < MIN_ENTRIES:
        parts.append(
            f"too little history: {reach.entered} "
            f"entr{'y' if reach.entered == 1 else 'ies'} since {since.isoformat()} "
            f"(fewer than {MIN_ENTRIES}); these figures are no basis for a decision yet"
        )
    if recommended is None:
        if objective.warn_after_s is None:
            parts.append("no recommendation: the channel has no ticks, so no objective")
        elif not reach.delays.count and not any(c.delays.count for c in reach.candidates):
            parts.append("no recommendation: no member was reached in the window")
        else:
            parts.append(
                "no candidate meets the objective: none reaches 90% of members within "
                f"warn_after ({_duration(objective.warn_after_s)})"
            )
    return "; ".join(parts) or None


def _duration(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{seconds / 86400:g} d"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


__all__ = ["Advice", "ChannelAdvice", "advise", "parse_candidates"]
