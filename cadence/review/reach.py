"""Reach, from recorded history: how long each member of a channel waited, and how long it would
have waited at another cadence (the figures behind ``cadence advise``, SPEC §11).

Input: an engine open read-only on the warehouse (its state store: ``_cadence`` lives there),
one channel's segments, whether it has a destination, the window (``since``..``now``) and, per
candidate cadence, its ticks -> output: ``ChannelReach`` (frozen): per channel the observed
entries, missed, pending and reach delays, and per candidate the delays and missed it would
have had. Nothing is written; everything is computed in SQL over temporary tables of this
connection, which vanish when it closes.

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
nearest-rank (``nearest_rank``; the SQL uses the same rank).
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


def _list(values: Sequence[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values) or "null"


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


LOOKBACK = dt.timedelta(days=366)  # data available earlier than this before ``since`` counts then

TickSource = Callable[[dt.datetime], Sequence[tuple[str, Sequence[dt.datetime]]]]


def read_reach(
    engine: Engine,
    channel: str,
    segments: Sequence[str],
    exported: bool,
    since: dt.datetime,
    now: dt.datetime,
    candidates: TickSource | None = None,
) -> ChannelReach:
    """Observed and candidate reach of ``channel`` (see the module docstring). ``candidates``
    is called with the earliest time a counted member's data was available (never more than
    ``LOOKBACK`` before ``since``; data from before it counts as available then) and returns,
    per candidate cadence, its ticks as aware instants from then to its first tick after
    ``now`` at least."""
    store = engine.state_store()
    relations = store.relations()
    if not segments or (SCHEMA, "membership_changes") not in relations:
        return ChannelReach()
    low, high = to_db(since), to_db(now)
    exported = exported and (SCHEMA, "reached") in relations
    _classify(store, channel, segments, exported, low, high, relations)
    row = store.query(
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
        _overhead(store, channel, segments, exported, low, high, relations)
        for cadence, ticks in candidates(floor):
            found.append(_candidate(store, cadence, ticks, floor))
    return ChannelReach(
        int(row[0]),
        int(row[1]),
        int(row[2]),
        int(row[3]),
        _delays(row[6:]),
        int(row[4]),
        tuple(found),
    )


def _classify(
    store: Engine,
    channel: str,
    segments: Sequence[str],
    exported: bool,
    low: object,
    high: object,
    relations: dict[tuple[str, str], str],
) -> None:
    """``cadence_advise_reach``: each entry of the window with its start, exit, status and
    reach delay (the module docstring's definitions)."""
    columns = {
        str(r[0])
        for r in store.query(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = 'membership_changes'",
            (SCHEMA,),
        )
    }
    event_time = "event_time" if "event_time" in columns else "cast(null as timestamp)"
    changes = f"""select segment, key, change_id, "at", {event_time} as event_time
        from {SCHEMA}.membership_changes where segment in ({_list(segments)})
        and "at" >= ? and "at" <= ? and change = """
    params: list[object] = [low, high, low, high]
    # the exit of an entry: the next exit of its key (changes of a key alternate)
    entries = f"""select n.segment, n.key, n."at" as p, n.event_time, x."at" as e
        from ({changes}'entered') as n
        asof left join ({changes}'exited') as x
        on n.segment = x.segment and n.key = x.key and n.change_id < x.change_id"""
    entries_table = f"{_PREFIX}_entries"
    if not exported:  # no destination: a member is there once its segment is published
        status, reach, joins = "'reached'", "p", ""
    else:
        ch = "'" + channel.replace("'", "''") + "'"
        joins = f"""
            asof left join (select segment, key, frozen_at, reached_at from {SCHEMA}.reached
                            where channel = {ch} and frozen_at >= ? and reached_at <= ?) as r
              on e.segment = r.segment and e.key = r.key and e.p <= r.frozen_at"""
        params += [low, high]
        looked = "false"
        if (SCHEMA, "freezes") in relations:
            # the first freeze at or after each publish: looked up once per publish (a
            # build's entries share it), not once per entry
            joins += f"""
            left join (select d.segment, d.p, f."at" as f_at
                       from (select distinct segment, p from {entries_table}) as d
                       asof left join (select segment, "at" from {SCHEMA}.freezes
                                       where channel = {ch} and "at" >= ? and "at" <= ?) as f
                         on d.segment = f.segment and d.p <= f."at") as f
              on e.segment = f.segment and e.p = f.p"""
            params += [low, high]
            looked = "f.f_at is not null and (e.e is null or f.f_at < e.e)"
        waiting = "false"
        if (SCHEMA, "outbox") in relations:
            waiting = f"""exists (select 1 from {SCHEMA}.outbox as o where o.channel = {ch}
                and o.segment = e.segment and o.key = e.key and o.change = 'entered'
                and o."at" >= e.p and (e.e is null or o."at" < e.e))"""
        status = f"""case
            when r.frozen_at is not null and (e.e is null or r.frozen_at < e.e) then 'reached'
            when {waiting} then 'pending'
            when {looked} then 'excluded'
            when e.e is not null then 'missed'
            else 'pending' end"""
        reach = "r.reached_at"
    store.execute(f"create or replace temp table {entries_table} as {entries}", params[:4])
    store.execute(
        f"""create or replace temp table {_PREFIX}_reach as
        with y as (select e.*, coalesce(e.event_time, e.p) as start, {status} as status,
                          {reach} as reach_at from {entries_table} as e{joins})
        select segment, key, p, event_time, e, start, status,
               case when status = 'reached' then greatest(epoch(reach_at) - epoch(start), 0)
               end as delay
        from y""",
        params[4:],
    )


def _overhead(
    store: Engine,
    channel: str,
    segments: Sequence[str],
    exported: bool,
    low: object,
    high: object,
    relations: dict[tuple[str, str], str],
) -> None:
    """``cadence_advise_overhead``: per segment the seconds from a tick to the destination
    having a change: its average recorded build, plus the channel's average delivery."""
    builds = "select cast(null as varchar) as model, 0.0 as s where false"
    if (SCHEMA, "model_builds") in relations:
        builds = f"""select model, avg(duration_s) as s from {SCHEMA}.model_builds
            where status = 'success' and model in ({_list(segments)})
            and started_at >= ? and started_at <= ? group by model"""
    sends = "select cast(null as varchar) as segment, 0.0 as s where false"
    params: list[object] = [low, high] if (SCHEMA, "model_builds") in relations else []
    if exported and (SCHEMA, "deliveries") in relations:
        ch = "'" + channel.replace("'", "''") + "'"
        sends = f"""select segment, avg(duration_s) as s from {SCHEMA}.deliveries
            where channel = {ch} and status = 'delivered' and started_at >= ?
            and started_at <= ? group by segment"""
        params += [low, high]
    store.execute(
        f"""create or replace temp table {_PREFIX}_overhead as
        select s.segment, coalesce(b.s, 0) + coalesce(d.s, 0) as s
        from (select unnest([{_list(segments)}]) as segment) as s
        left join ({builds}) as b on b.model = s.segment
        left join ({sends}) as d on d.segment = s.segment""",
        params,
    )


def _candidate(
    store: Engine, cadence: str, ticks: Sequence[dt.datetime], floor: dt.datetime
) -> CandidateReach:
    """The delays and missed entries ``cadence`` would have had (module docstring)."""
    utc = dt.timezone.utc
    store.execute(
        f"create or replace temp table {_PREFIX}_ticks as "
        "select unnest(cast(? as timestamp[])) as t",
        ([t.replace(tzinfo=None) if t.tzinfo is utc else to_db(t) for t in ticks],),
    )
    row = store.query(
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


__all__ = ["CandidateReach", "ChannelReach", "Delays", "delays_sql", "nearest_rank", "read_reach"]
