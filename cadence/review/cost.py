"""The cost model: every build a model really gets over a horizon (SPEC §10).

Input: ``ParsedProject``, ``Dag``, ``Cadences``, a start instant and a horizon (and, for compute,
each model's average recorded build duration) -> output: ``CostReport`` (frozen), per model, per
channel and in total.

How builds are counted - it replays ``due.decide``'s rules on a steady state, assuming
``run --due`` runs every minute and every build succeeds:

- At each tick instant of the horizon, a table or incremental model is built when the instant
  is one of its own ticks (views and ephemerals are never built by ticks).
- Every model built at an instant pulls in each table upstream of it (through views and
  ephemerals) that was not built at that instant, except an upstream with an explicit cadence of
  its own (its current data is used, and the walk stops there): the upstream-refresh rule of
  ``due._pull_upstream``. A daily upstream read by a 5-minute segment is built 288 times a day.

Deliveries: a channel receives at its own ticks only (SPEC §7 "When"), so its deliveries per day
are its ticks, however often a segment it shares with a faster channel is rebuilt.

Channel shares: each build is split equally among the channels that caused it at that instant:
the channel whose tick it is (directly or inherited through consumers; an explicit cadence counts
for the channels the model serves), plus the channels of every consumer that pulled it in. A build
no channel causes is counted under ``no channel``. Channel figures therefore add up to the total.

Money: with ``cost: {per_compute_hour, currency}`` in cadence.yml, compute seconds per day become
money per month of ``MONTH_DAYS`` days (``per_month``); without it every money figure is None.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from cadence.load.costconfig import CostConfig
from cadence.load.parser import ParsedProject
from cadence.plan.cadences import Cadences
from cadence.plan.dag import Dag
from cadence.plan.history import StateSnapshot
from cadence.plan.schedule import Schedule

NO_CHANNEL = "no channel"
TICKED = ("table", "incremental", "snapshot")  # built at ticks (views show current data)
MONTH_DAYS = 30


def per_month(compute_s_per_day: float | None, price: CostConfig | None) -> float | None:
    """Money per month (``MONTH_DAYS`` days) for compute seconds per day; None without a
    price (``cost:`` in cadence.yml) or without compute figures (no history)."""
    if price is None or compute_s_per_day is None:
        return None
    return compute_s_per_day * MONTH_DAYS / 3600 * price.per_compute_hour


@dataclass(frozen=True)
class ModelCost:
    name: str
    materialized: str
    cadence: str
    builds: int  # over the horizon
    own_builds: int
    pulled_builds: int  # built because a consumer's run pulled it in
    builds_per_day: float
    pulled_by: tuple[str, ...]  # consumers that pulled it in at least once
    avg_duration_s: float | None  # None: no recorded builds ("no history")
    compute_s_per_day: float | None
    channel_builds: tuple[tuple[str, float], ...]  # (channel, share of builds over the horizon)


@dataclass(frozen=True)
class ChannelCost:
    name: str
    cadence: str
    models: tuple[str, ...]  # models with a share of builds for this channel
    builds_per_day: float
    compute_s_per_day: float
    # how often the channel receives: its own ticks (SPEC §7 "When"), not every rebuild of a
    # segment it shares with a faster channel
    deliveries_per_day: float = 0.0


@dataclass(frozen=True)
class CostReport:
    at: dt.datetime
    horizon: str
    days: float
    models: tuple[ModelCost, ...]
    channels: tuple[ChannelCost, ...]
    total_builds_per_day: float
    total_compute_s_per_day: float
    no_history: tuple[str, ...]  # built models without recorded durations
    price: CostConfig | None = None  # ``cost:`` of cadence.yml: money per month when set

    def per_month(self, compute_s_per_day: float | None) -> float | None:
        return per_month(compute_s_per_day, self.price)

    def model(self, name: str) -> ModelCost | None:
        for m in self.models:
            if m.name == name:
                return m
        return None


@dataclass(frozen=True)
class BuildCounts:
    """Builds over a window: per model the total, the pulled-in part, who pulled it, and the
    share of builds per channel."""

    builds: dict[str, int]
    pulled: dict[str, int]
    pulled_by: dict[str, tuple[str, ...]]
    shares: dict[str, dict[str, float]]


@lru_cache(maxsize=512)
def _ticks(
    schedule: Schedule, start: dt.datetime, end: dt.datetime, tz: ZoneInfo
) -> tuple[dt.datetime, ...]:
    """A schedule's ticks in (start, end] as UTC instants, kept for the next report over the
    same window (``advise`` prices every candidate over one week: most schedules repeat)."""
    return tuple(t.astimezone(dt.timezone.utc) for t in schedule.ticks_between(start, end, tz))


def count_builds(
    project: ParsedProject,
    dag: Dag,
    cadences: Cadences,
    start: dt.datetime,
    end: dt.datetime,
    tz: ZoneInfo,
) -> BuildCounts:
    """Every build ``run --due`` each minute would make in (start, end], all builds succeeding."""
    models = project.by_name
    ticking = [
        n
        for n in dag.order
        if n in models and models[n].materialized in TICKED and cadences.of(n).has_ticks
    ]
    schedules = {s for n in ticking for s in cadences.of(n).ticks.schedules if not s.on_demand}
    # which schedules fire at each instant; instants with the same pattern build the same
    firing: dict[dt.datetime, set[Schedule]] = defaultdict(set)
    for schedule in schedules:
        for t in _ticks(schedule, start, end, tz):
            firing[t].add(schedule)
    patterns = Counter(frozenset(s) for s in firing.values())

    builds: Counter[str] = Counter()
    pulled: Counter[str] = Counter()
    pulled_by: dict[str, set[str]] = defaultdict(set)
    shares: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for pattern, times in patterns.items():
        built, pulls, causes = _one_instant(project, dag, cadences, ticking, pattern)
        for name in built:
            builds[name] += times
            split = sorted(causes[name]) or [NO_CHANNEL]
            for ch in split:
                shares[name][ch] += times / len(split)
        for name, consumer in pulls:
            pulled[name] += times
            pulled_by[name].add(consumer)
    return BuildCounts(
        builds=dict(builds),
        pulled=dict(pulled),
        pulled_by={n: tuple(sorted(c)) for n, c in pulled_by.items()},
        shares={n: dict(c) for n, c in shares.items()},
    )


def build_times(
    project: ParsedProject,
    dag: Dag,
    cadences: Cadences,
    start: dt.datetime,
    end: dt.datetime,
    tz: ZoneInfo,
) -> dict[str, list[dt.datetime]]:
    """When each model is built in (start, end] under ``count_builds``'s rules, sorted."""
    models = project.by_name
    ticking = [
        n
        for n in dag.order
        if n in models and models[n].materialized in TICKED and cadences.of(n).has_ticks
    ]
    firing: dict[dt.datetime, set[Schedule]] = defaultdict(set)
    for schedule in {s for n in ticking for s in cadences.of(n).ticks.schedules}:
        for t in _ticks(schedule, start, end, tz):
            firing[t].add(schedule)
    memo: dict[frozenset[Schedule], set[str]] = {}
    out: dict[str, list[dt.datetime]] = defaultdict(list)
    for t in sorted(firing):
        pattern = frozenset(firing[t])
        if pattern not in memo:
            memo[pattern] = _one_instant(project, dag, cadences, ticking, pattern)[0]
        for name in memo[pattern]:
            out[name].append(t.astimezone(tz))
    return dict(out)


def _one_instant(
    project: ParsedProject,
    dag: Dag,
    cadences: Cadences,
    ticking: list[str],
    pattern: frozenset[Schedule],
) -> tuple[set[str], list[tuple[str, str]], dict[str, set[str]]]:
    """What one run at an instant where ``pattern`` fires builds (see the module docstring)."""
    models = project.by_name
    built: set[str] = set()
    causes: dict[str, set[str]] = defaultdict(set)
    for name in ticking:
        cad = cadences.of(name)
        for origin in cad.origins:
            if origin.schedule in pattern:
                built.add(name)
                if origin.channel is not None:
                    causes[name].add(origin.channel)
                else:
                    causes[name].update(cad.channels)
    pulls: list[tuple[str, str]] = []
    for name in reversed(dag.order):  # consumers before what they read
        if name not in built:
            continue
        stack = list(dag.parents.get(name, ()))
        seen: set[str] = set()
        while stack:
            parent = stack.pop()
            if parent in seen or parent not in models:
                continue
            seen.add(parent)
            if models[parent].materialized not in TICKED:
                stack.extend(dag.parents.get(parent, ()))  # ticks pass through
                continue
            if cadences.of(parent).explicit:
                continue  # its own cadence decides; its current data is used
            causes[parent].update(causes[name])
            if parent in built:
                continue
            built.add(parent)
            pulls.append((parent, name))
            stack.extend(dag.parents.get(parent, ()))
    return built, pulls, causes


def channel_ticks(
    cadences: Cadences, channel: str, start: dt.datetime, end: dt.datetime, tz: ZoneInfo
) -> list[dt.datetime]:
    """When the channel receives in (start, end]: its own ticks (none when on demand)."""
    schedule = cadences.channels.get(channel)
    return schedule.ticks_between(start, end, tz) if schedule is not None else []


def cost_report(
    project: ParsedProject,
    dag: Dag,
    cadences: Cadences,
    durations: dict[str, float | None],
    now: dt.datetime,
    span: dt.timedelta,
    horizon: str,
) -> CostReport:
    """Builds and compute per day over ``span`` from ``now``; ``durations`` are average recorded
    build seconds per model (missing or None: no history, compute counted as 0)."""
    tz = project.config.tz
    days = span.total_seconds() / 86400
    counts = count_builds(project, dag, cadences, now, now + span, tz)
    per_day = 1 / days if days else 0.0
    models: list[ModelCost] = []
    channel_builds: dict[str, float] = defaultdict(float)
    channel_compute: dict[str, float] = defaultdict(float)
    channel_models: dict[str, list[str]] = defaultdict(list)
    no_history: list[str] = []
    for name in dag.order:
        model = project.model(name)
        if model is None:
            continue
        cad = cadences.of(name)
        n = counts.builds.get(name, 0)
        avg = durations.get(name)
        if n and avg is None:
            no_history.append(name)
        compute = n * per_day * avg if avg is not None else None
        shares = counts.shares.get(name, {})
        for ch, share in shares.items():
            channel_builds[ch] += share * per_day
            channel_compute[ch] += share * per_day * (avg or 0.0)
            channel_models[ch].append(name)
        models.append(
            ModelCost(
                name=name,
                materialized=model.materialized,
                cadence=cad.describe(),
                builds=n,
                own_builds=n - counts.pulled.get(name, 0),
                pulled_builds=counts.pulled.get(name, 0),
                builds_per_day=n * per_day,
                pulled_by=counts.pulled_by.get(name, ()),
                avg_duration_s=avg,
                compute_s_per_day=compute,
                channel_builds=tuple(sorted(shares.items())),
            )
        )
    channels = [
        ChannelCost(
            name=ch.name,
            cadence=ch.cadence,
            models=tuple(channel_models.get(ch.name, ())),
            builds_per_day=channel_builds.get(ch.name, 0.0),
            compute_s_per_day=channel_compute.get(ch.name, 0.0),
            deliveries_per_day=len(channel_ticks(cadences, ch.name, now, now + span, tz)) * per_day,
        )
        for ch in project.config.channels
    ]
    if NO_CHANNEL in channel_builds:
        channels.append(
            ChannelCost(
                NO_CHANNEL,
                "explicit cadences",
                tuple(channel_models[NO_CHANNEL]),
                channel_builds[NO_CHANNEL],
                channel_compute[NO_CHANNEL],
            )
        )
    return CostReport(
        at=now,
        horizon=horizon,
        days=days,
        models=tuple(models),
        channels=tuple(channels),
        total_builds_per_day=sum(m.builds_per_day for m in models),
        total_compute_s_per_day=sum(m.compute_s_per_day or 0.0 for m in models),
        no_history=tuple(no_history),
        price=project.config.cost,
    )


def project_cost(
    project: Any, state: StateSnapshot, now: dt.datetime, span: dt.timedelta, horizon: str
) -> CostReport:
    """``cost_report`` for a loaded ``Project``, durations from its recorded builds."""
    durations = {n: state.of(n).avg_duration_s for n in project.model_names()}
    return cost_report(project.parsed, project.dag, project.cadences, durations, now, span, horizon)
