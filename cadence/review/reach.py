"""Reach, from recorded history: how long each member of a channel waited, and how long it would
have waited at another cadence (the figures behind ``cadence advise``, SPEC §11).

Input: an engine with the warehouse's state attached read-only (``engines.attach_state``):
``copy_history`` copies the rows the channels need into temporary tables of that in-memory
engine, the caller detaches (the warehouse is held only for the copy), and ``read_reach``
computes per channel, from the copies, one channel's segments, whether it has a destination,
the window (``since``..``now``) and, per candidate cadence, its ticks -> output: ``ChannelReach``
(frozen): the observed entries, missed, pending and reach delays, and per candidate the delays
and missed it would have had. Nothing is written to the warehouse.

Definitions (one entry = one ``entered`` change of one of the channel's segments in the window):

- its **start** is its ``event_time`` (when it qualified), else the publish that first contained
  it (the change's ``at``); its **exit** is the next ``exited`` change of the key (the start of
  the build that recorded it);
- with a destination, it is **reached** by the first ``_cadence.reached`` row of its key frozen
  at or after its publish and before its exit (a delivery that failed and was retried later
  still reaches it, late); without one, by its publish;
- not reached: **pending** while its change waits in the outbox, or while no freeze of the
  segment has run since it entered and it has not exited; **excluded** (not the channel's
  member: suppressed, held out, claimed by an earlier priority segment) when a freeze ran while
  it was in and did not send it; else **missed** (it entered and left before any delivery);
- its **reach delay** is reach time minus start (never below 0).

A candidate delivers an entry at the first of its ticks at or after the member's data was
available (``event_time``, else the publish) plus the segment's recorded build time and the
channel's recorded delivery time; it reaches the entry when that tick is before the exit (also
when the tick is still to come after ``now``: a slower cadence's last entries count with the
delay they will have, not left out), and misses it when the exit comes first. Percentiles are
nearest-rank (``nearest_rank``; the SQL's ``quantile_disc`` picks the same value).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cadence.engines.base import Engine
from cadence.record.state import SCHEMA, to_db

PERCENTILES = (50, 90)
_PREFIX = "cadence_advise"
LOOKBACK = dt.timedelta(days=366)  # data available earlier than this before ``since`` counts then

TickSource = Callable[[dt.datetime], Sequence[tuple[str, Sequence[dt.datetime]]]]


@dataclass(frozen=True)
class Delays:
    """Reach delays in seconds: median, 90th percentile (nearest rank) and maximum; all None
    without a reached entry."""

    p50: float | None = None
    p90: float | None = None
    max: float | None = None
    count: int = 0

    def to_json(self) -> dict[str, float | None]:
        return {"p50": _round(self.p50), "p90": _round(self.p90), "max": _round(self.max)}


@dataclass(frozen=True)
class CandidateReach:
    cadence: str
    delays: Delays
    missed_at_least: int


@dataclass(frozen=True)
class ChannelReach:
    entered: int = 0  # entries of the channel's members (excluded ones are not counted)
    missed: int = 0
    pending: int = 0
    excluded: int = 0
    delays: Delays = Delays()
    with_event_time: int = 0  # entries with an event_time
    candidates: tuple[CandidateReach, ...] = ()


def nearest_rank(ordered: Sequence[float], pct: int) -> float | None:
    """The ``pct``-th percentile of ascending ``ordered`` by nearest rank: the value at rank
    ceil(pct/100 x n) (1-based), so it is always one of the values; None when empty."""
    if not ordered:
        return None
    if not 0 < pct <= 100:
        raise ValueError(f"percentile {pct} is not in (0, 100]")
    return ordered[_rank(pct, len(ordered)) - 1]


def _rank(pct: int, n: int) -> int:
    return (pct * n + 99) // 100  # ceil(pct * n / 100) in integers: no float rounding


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _stats(column: str) -> str:
    """count, [p50, p90] and max of ``column``: DuckDB's ``quantile_disc`` picks the value at
    rank ceil(q x n), the nearest rank (a test holds it equal to ``nearest_rank``)."""
    qs = ", ".join(str(p / 100) for p in PERCENTILES)
    return f"count({column}), quantile_disc({column}, [{qs}]), max({column})"


def delays_sql(table: str, column: str) -> str:
    """One row: the ``_stats`` of ``column`` in ``table``."""
    return f"select {_stats(column)} from {table}"


def _delays(row: Sequence[Any]) -> Delays:
    n = int(row[0] or 0)
    if not n:
        return Delays()
    p50, p90 = (float(v) for v in row[1])
    return Delays(p50, p90, float(row[2]), n)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def copy_history(
    engine: Engine, channels: Sequence[str], segments: Sequence[str], low: object, high: object
) -> None:
    """Copy what ``read_reach`` reads of ``channels`` and their ``segments`` in the window
    (naive UTC ``low``..``high``) from the attached warehouse into temporary tables: one pass
    per table, so the caller can detach at once. A table the warehouse lacks copies as empty."""
    relations = engine.relations()
    has = {name for schema, name in relations if schema == SCHEMA}
    names = ", ".join(_lit(n) for n in channels) or "null"
    segs = ", ".join(_lit(n) for n in segments) or "null"
    event_time = "cast(null as timestamp)"
    if "membership_changes" in has:
        columns = {
            str(r[0])
            for r in engine.query(
                "select column_name from information_schema.columns "
                "where table_schema = ? and table_name = 'membership_changes'",
                (SCHEMA,),
            )
        }
        if "event_time" in columns:
            event_time = "event_time"
    copies = {
        "changes": (
            "membership_changes",
            f"""select segment, key, change_id, change, "at", {event_time} as event_time
            from {SCHEMA}.membership_changes
            where segment in ({segs}) and "at" >= ? and "at" <= ?""",
            "segment varchar, key varchar, change_id bigint, change varchar, "
            '"at" timestamp, event_time timestamp',
        ),
        "reached": (
            "reached",
            f"""select channel, segment, key, frozen_at, reached_at from {SCHEMA}.reached
            where channel in ({names}) and frozen_at >= ? and reached_at <= ?""",
            "channel varchar, segment varchar, key varchar, frozen_at timestamp, "
            "reached_at timestamp",
        ),
        "freezes": (
            "freezes",
            f"""select channel, segment, "at" from {SCHEMA}.freezes
            where channel in ({names}) and "at" >= ? and "at" <= ?""",
            'channel varchar, segment varchar, "at" timestamp',
        ),
        "waiting": (
            "outbox",
            f"""select channel, segment, key, "at" from {SCHEMA}.outbox
            where channel in ({names}) and change = 'entered' and "at" >= ? and "at" <= ?""",
            'channel varchar, segment varchar, key varchar, "at" timestamp',
        ),
        "builds": (
            "model_builds",
            f"""select model, avg(duration_s) as s from {SCHEMA}.model_builds
            where status = 'success' and model in ({segs}) and started_at >= ?
            and started_at <= ? group by model""",
            "model varchar, s double",
        ),
        "sends": (
            "deliveries",
            f"""select channel, segment, avg(duration_s) as s from {SCHEMA}.deliveries
            where channel in ({names}) and status = 'delivered' and started_at >= ?
            and started_at <= ? group by channel, segment""",
            "channel varchar, segment varchar, s double",
        ),
    }
    for name, (source, sql, layout) in copies.items():
        table = f"{_PREFIX}_{name}"
        if source in has:
            engine.execute(f"create or replace temp table {table} as {sql}", (low, high))
        else:
            engine.execute(f"create or replace temp table {table} ({layout})")


def read_reach(
    engine: Engine,
    channel: str,
    segments: Sequence[str],
    exported: bool,
    since: dt.datetime,
    now: dt.datetime,
    candidates: TickSource | None = None,
) -> ChannelReach:
    """Observed and candidate reach of ``channel`` from the copies ``copy_history`` made (see
    the module docstring). ``candidates`` is called with the earliest time a counted member's
    data was available (never more than ``LOOKBACK`` before ``since``; data from before it
    counts as available then) and returns, per candidate cadence, its ticks as aware instants
    from then to its first tick after ``now`` at least."""
    if not segments:
        return ChannelReach()
    _classify(engine, channel, segments, exported)
    row = engine.query(
        f"""select count(*) filter (where status <> 'excluded'),
        count(*) filter (where status = 'missed'), count(*) filter (where status = 'pending'),
        count(*) filter (where status = 'excluded'),
        count(event_time) filter (where status <> 'excluded'),
        min(coalesce(event_time, p)) filter (where status <> 'excluded'), {_stats("delay")}
        from {_PREFIX}_reach"""
    )[0]
    found = []
    if candidates is not None:
        earliest = row[5].replace(tzinfo=dt.timezone.utc) if row[5] is not None else since
        floor = max(min(earliest, since), since - LOOKBACK)
        _overhead(engine, channel, segments, exported)
        for cadence, ticks in candidates(floor):
            found.append(_candidate(engine, cadence, ticks, floor))
    return ChannelReach(
        int(row[0]),
        int(row[1]),
        int(row[2]),
        int(row[3]),
        _delays(row[6:]),
        int(row[4]),
        tuple(found),
    )


def _classify(engine: Engine, channel: str, segments: Sequence[str], exported: bool) -> None:
    """``cadence_advise_reach``: each entry of the channel's segments with its start, exit,
    status and reach delay (the module docstring's definitions)."""
    ch = _lit(channel)
    segs = ", ".join(_lit(n) for n in segments)
    changes = f"(select * from {_PREFIX}_changes where segment in ({segs}) and change = "
    # the exit of an entry: the next exit of its key (changes of a key alternate)
    engine.execute(
        f"""create or replace temp table {_PREFIX}_entries as
        select n.segment, n.key, n."at" as p, n.event_time, x."at" as e
        from {changes}'entered') as n asof left join {changes}'exited') as x
        on n.segment = x.segment and n.key = x.key and n.change_id < x.change_id"""
    )
    if not exported:  # no destination: a member is there once its segment is published
        status, reach, joins = "'reached'", "e.p", ""
    else:
        # the first freeze at or after each publish, looked up once per publish (a build's
        # entries share it), and the first reach of each entry's key at or after it
        joins = f"""
            asof left join (select segment, key, frozen_at, reached_at
                            from {_PREFIX}_reached where channel = {ch}) as r
              on e.segment = r.segment and e.key = r.key and e.p <= r.frozen_at
            left join (select d.segment, d.p, f."at" as f_at
                       from (select distinct segment, p from {_PREFIX}_entries) as d
                       asof left join (select segment, "at" from {_PREFIX}_freezes
                                       where channel = {ch}) as f
                         on d.segment = f.segment and d.p <= f."at") as f
              on e.segment = f.segment and e.p = f.p"""
        waiting = f"""exists (select 1 from {_PREFIX}_waiting as o where o.channel = {ch}
            and o.segment = e.segment and o.key = e.key and o."at" >= e.p
            and (e.e is null or o."at" < e.e))"""
        status = f"""case
            when r.frozen_at is not null and (e.e is null or r.frozen_at < e.e) then 'reached'
            when {waiting} then 'pending'
            when f.f_at is not null and (e.e is null or f.f_at < e.e) then 'excluded'
            when e.e is not null then 'missed'
            else 'pending' end"""
        reach = "r.reached_at"
    engine.execute(
        f"""create or replace temp table {_PREFIX}_reach as
        with y as (select e.*, coalesce(e.event_time, e.p) as start, {status} as status,
                          {reach} as reach_at from {_PREFIX}_entries as e{joins})
        select segment, key, p, event_time, e, start, status,
               case when status = 'reached' then greatest(epoch(reach_at) - epoch(start), 0)
               end as delay
        from y"""
    )


def _overhead(engine: Engine, channel: str, segments: Sequence[str], exported: bool) -> None:
    """``cadence_advise_overhead``: per segment the seconds from a tick to the destination
    having a change: its average recorded build, plus the channel's average delivery."""
    sends = (
        f"(select segment, s from {_PREFIX}_sends where channel = {_lit(channel)})"
        if exported
        else "(select cast(null as varchar) as segment, 0.0 as s where false)"
    )
    engine.execute(
        f"""create or replace temp table {_PREFIX}_overhead as
        select s.segment, coalesce(b.s, 0) + coalesce(d.s, 0) as s
        from (select unnest([{", ".join(_lit(n) for n in segments)}]) as segment) as s
        left join {_PREFIX}_builds as b on b.model = s.segment
        left join {sends} as d on d.segment = s.segment"""
    )


def _candidate(
    engine: Engine, cadence: str, ticks: Sequence[dt.datetime], floor: dt.datetime
) -> CandidateReach:
    """The delays and missed entries ``cadence`` would have had (module docstring)."""
    utc = dt.timezone.utc
    engine.execute(
        f"create or replace temp table {_PREFIX}_ticks as "
        "select unnest(cast(? as timestamp[])) as t",
        ([t.replace(tzinfo=None) if t.tzinfo is utc else to_db(t) for t in ticks],),
    )
    row = engine.query(
        f"""with a as (
            select r.start, r.e, greatest(coalesce(r.event_time, r.p), ?) as available,
                   coalesce(o.s, 0) as overhead
            from {_PREFIX}_reach as r left join {_PREFIX}_overhead as o using (segment)
            where r.status <> 'excluded'),
        x as (select a.*, k.t from a asof left join {_PREFIX}_ticks as k on a.available <= k.t),
        y as (select case when t is not null and (e is null or t < e)
                          then greatest(epoch(t) - epoch(start) + overhead, 0) end as delay,
                     e is not null and (t is null or t >= e) as missed
              from x)
        select {_stats("delay")}, count(*) filter (where missed) from y""",
        (to_db(floor),),
    )[0]
    return CandidateReach(cadence, _delays(row[:3]), int(row[3]))


__all__ = [
    "CandidateReach",
    "ChannelReach",
    "Delays",
    "copy_history",
    "delays_sql",
    "nearest_rank",
    "read_reach",
]
