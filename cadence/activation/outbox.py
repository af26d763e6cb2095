"""Delivery state: what each channel has, what is pending, and the attempts made.

Input: a channel's audience (SQL over the live relations) -> output: rows in ``_cadence``:
``delivered`` (per channel x segment x key: what the destination has; held-out keys recorded
with ``held_out`` and never sent), ``outbox`` (pending changes, each with an increasing ``seq``
per channel x segment, frozen before anything is sent), ``delivery_cursor`` (highest seq frozen,
highest delivered, and the range of the attempt in flight), ``deliveries`` (one row per
attempt), and the history ``advise`` reads: ``reached`` (per channel x segment x key, when each
entry was first acknowledged by the destination, written in the transaction that advances
``delivered``) and ``freezes`` (when each freeze ran and the seqs it appended).

Invariants: changes are computed against what was delivered plus what is pending, so a member
who becomes suppressed or moves to an earlier priority segment is sent as ``exited``;
``delivered`` advances only to the seq a destination reports durably delivered, contiguously;
an attempt's range is fixed when it starts, so a retry after any failure or kill -9 sends the
same changes with the same numbers (the same export id, the same webhook ids).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cadence.engines.base import Engine
from cadence.load.relations import quote
from cadence.record.state import SCHEMA, from_db, to_db

OUTBOX = f"{SCHEMA}.outbox"
DELIVERED = f"{SCHEMA}.delivered"
CURSOR = f"{SCHEMA}.delivery_cursor"
DELIVERIES = f"{SCHEMA}.deliveries"
REACHED = f"{SCHEMA}.reached"
FREEZES = f"{SCHEMA}.freezes"
DDL = (
    f"create schema if not exists {SCHEMA}",
    f"""create table if not exists {OUTBOX} (
        channel varchar, segment varchar, seq bigint, key varchar, change varchar,
        "at" timestamp, columns varchar, replace_from bigint)""",
    f"""create table if not exists {DELIVERED} (
        channel varchar, segment varchar, key varchar, held_out boolean, columns varchar,
        seq bigint, "at" timestamp)""",
    f"""create table if not exists {CURSOR} (
        channel varchar, segment varchar, frozen_seq bigint, delivered_seq bigint,
        planned_first bigint, planned_last bigint, planned_at timestamp, column_types varchar,
        primary key (channel, segment))""",
    f"""create table if not exists {DELIVERIES} (
        attempt_id varchar, channel varchar, segment varchar, export_id varchar,
        first_seq bigint, last_seq bigint,
        entered bigint, exited bigint, rows bigint, status varchar, error varchar,
        started_at timestamp, duration_s double, destination varchar, replace boolean,
        delivered_through bigint)""",
    f"""create table if not exists {REACHED} (
        channel varchar, segment varchar, key varchar, seq bigint, frozen_at timestamp,
        reached_at timestamp, replace boolean)""",
    f"""create table if not exists {FREEZES} (
        channel varchar, segment varchar, "at" timestamp, first_seq bigint, last_seq bigint)""",
)


@dataclass(frozen=True)
class Change:
    """One pending change of a channel x segment, as a destination receives it."""

    seq: int
    key: str
    change: str  # entered | exited
    at: dt.datetime
    columns: dict[str, Any] = field(default_factory=dict)
    starts_replace: bool = False  # the first change of a rebaseline: replace what you hold


@dataclass(frozen=True)
class DeliveryOutcome:
    """What a destination reports: the highest seq it has durably, contiguously from the first
    change it was handed (None: nothing), how many changes it sent, and why it stopped."""

    delivered_through: int | None
    sent: int
    error: str | None = None


@dataclass(frozen=True)
class Cursor:
    frozen_seq: int = 0
    delivered_seq: int = 0
    planned_first: int | None = None
    planned_last: int | None = None
    planned_at: dt.datetime | None = None
    column_types: tuple[tuple[str, str], ...] = ()

    @property
    def in_flight(self) -> bool:
        return self.planned_last is not None and self.planned_last > self.delivered_seq


@dataclass(frozen=True)
class Counts:
    entered: int = 0
    exited: int = 0

    @property
    def total(self) -> int:
        return self.entered + self.exited


def ensure_tables(engine: Engine) -> None:
    for statement in DDL:
        engine.execute(statement)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _where(channel: str, segment: str, alias: str = "") -> str:
    a = f"{alias}." if alias else ""
    return f"{a}channel = {_lit(channel)} and {a}segment = {_lit(segment)}"


def read_cursor(engine: Engine, channel: str, segment: str) -> Cursor:
    rows = engine.query(
        f"""select frozen_seq, delivered_seq, planned_first, planned_last, planned_at,
        column_types from {CURSOR} where {_where(channel, segment)}"""
    )
    if not rows:
        return Cursor()
    r = rows[0]
    types = tuple(tuple(p) for p in json.loads(r[5])) if r[5] else ()
    return Cursor(int(r[0] or 0), int(r[1] or 0), r[2], r[3], from_db(r[4]), types)


def _write_cursor(engine: Engine, channel: str, segment: str, c: Cursor) -> None:
    engine.execute(f"delete from {CURSOR} where {_where(channel, segment)}")
    engine.execute(
        f"""insert into {CURSOR} (channel, segment, frozen_seq, delivered_seq, planned_first,
        planned_last, planned_at, column_types) values (?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            channel,
            segment,
            c.frozen_seq,
            c.delivered_seq,
            c.planned_first,
            c.planned_last,
            to_db(c.planned_at),
            json.dumps([list(p) for p in c.column_types]),
        ),
    )


def _columns_json(columns: Sequence[str], alias: str) -> str:
    if not columns:
        return "cast(null as varchar)"
    inner = ", ".join(f"{quote(c)} := {alias}.{quote(c)}" for c in columns)
    return f"cast(to_json(struct_pack({inner})) as varchar)"


def projected_sql(channel: str, segment: str, through: int | None = None) -> str:
    """(key, columns) the destination has once pending changes up to ``through`` (all when
    None) are delivered: ``delivered`` with the last pending change per key applied."""
    bound = "" if through is None else f" and seq <= {int(through)}"
    return f"""select key, columns from (
    select d.key, d.columns from {DELIVERED} as d
    where {_where(channel, segment, "d")} and not d.held_out
      and not exists (select 1 from {OUTBOX} as o
                      where {_where(channel, segment, "o")} and o.key = d.key{bound})
    union all
    select key, columns from (
        select key, change, columns,
               row_number() over (partition by key order by seq desc) as rn
        from {OUTBOX} where {_where(channel, segment)}{bound}
    ) as p where rn = 1 and change = 'entered'
) as projected"""


def changes_sql(
    channel: str, segment: str, audience: str, columns: Sequence[str], *, rebaseline: bool = False
) -> str:
    """(key, change, columns) that turn what the destination will have into the audience
    (``audience``: one segment's rows of ``audience.segment_audience_sql``). Rebaseline: every
    deliverable key, entered."""
    cols = _columns_json(columns, "a")
    target = f"select a.key, {cols} as columns from ({audience}) as a where not a.held_out"
    if rebaseline:
        return f"select t.key, 'entered' as change, t.columns from ({target}) as t"
    projected = projected_sql(channel, segment)
    return f"""with target as ({target}), projected as ({projected})
select t.key, 'entered' as change, t.columns from target as t
where not exists (select 1 from projected as p where p.key = t.key)
union all
select p.key, 'exited' as change, p.columns from projected as p
where not exists (select 1 from target as t where t.key = p.key)"""


def freeze(
    engine: Engine,
    channel: str,
    segment: str,
    audience: str,
    columns: Sequence[str],
    column_types: Sequence[tuple[str, str]],
    at: dt.datetime,
    *,
    rebaseline: bool = False,
) -> Counts:
    """Append the segment's new changes to the outbox with the next seqs and record its
    held-out keys; call inside a transaction. Rebaseline drops the pending changes (a replace
    supersedes them) and freezes the whole audience flagged ``replace``."""
    cursor = read_cursor(engine, channel, segment)
    if rebaseline:
        engine.execute(f"delete from {OUTBOX} where {_where(channel, segment)}")
        cursor = Cursor(
            cursor.frozen_seq,
            cursor.frozen_seq,
            None,
            None,
            None,
            cursor.column_types,
        )
    base = cursor.frozen_seq
    replace_from = str(base + 1) if rebaseline else "null"
    engine.execute(
        f"""insert into {OUTBOX}
        select {_lit(channel)}, {_lit(segment)},
               {base} + row_number() over (order by c.change desc, c.key), c.key, c.change,
               ?, c.columns, {replace_from}
        from ({changes_sql(channel, segment, audience, columns, rebaseline=rebaseline)}) as c""",
        (to_db(at),),
    )
    top = engine.query(
        f"select count(*), max(seq), count(*) filter (where change = 'entered') from {OUTBOX} "
        f"where {_where(channel, segment)} and seq > {base}"
    )[0]
    added, frozen = int(top[0]), int(top[1] or base)
    entered = int(top[2] or 0)
    # when the channel last looked at the segment (advise: a member a freeze left out was not
    # in the channel's audience), with the seqs it appended (none: an empty range)
    engine.execute(
        f"insert into {FREEZES} values (?, ?, ?, ?, ?)",
        (channel, segment, to_db(at), base + 1, frozen),
    )
    # held-out keys: recorded with their group, never delivered
    engine.execute(f"delete from {DELIVERED} where {_where(channel, segment)} and held_out")
    engine.execute(
        f"""insert into {DELIVERED} select {_lit(channel)}, {_lit(segment)}, a.key, true, null,
        null, ? from ({audience}) as a where a.held_out""",
        (to_db(at),),
    )
    _write_cursor(
        engine,
        channel,
        segment,
        Cursor(
            frozen,
            cursor.delivered_seq,
            cursor.planned_first,
            cursor.planned_last,
            cursor.planned_at,
            tuple(column_types) or cursor.column_types,
        ),
    )
    return Counts(entered, added - entered)


def segments_with_state(engine: Engine, channel: str) -> list[str]:
    """Segments of ``channel`` it has members of, or changes pending for (by name)."""
    return [
        str(r[0])
        for r in engine.query(
            f"""select c.segment from {CURSOR} as c where c.channel = ?
            and (c.frozen_seq > c.delivered_seq or exists (
                select 1 from {DELIVERED} as d where d.channel = c.channel
                and d.segment = c.segment and not d.held_out))
            order by c.segment""",
            (channel,),
        )
    ]


def pending_counts(engine: Engine, channel: str, segment: str, cursor: Cursor) -> Counts:
    last = cursor.planned_last if cursor.in_flight else cursor.frozen_seq
    r = engine.query(
        f"""select count(*) filter (where change = 'entered'),
        count(*) filter (where change = 'exited') from {OUTBOX}
        where {_where(channel, segment)} and seq > {cursor.delivered_seq} and seq <= {last}"""
    )[0]
    return Counts(int(r[0] or 0), int(r[1] or 0))


def delivered_size(engine: Engine, channel: str, segment: str) -> int:
    return int(
        engine.query(
            f"select count(*) from {DELIVERED} where {_where(channel, segment)} and not held_out"
        )[0][0]
    )


def plan_attempt(engine: Engine, channel: str, segment: str, at: dt.datetime) -> Cursor:
    """Fix the range of the next attempt (call in a transaction that commits before sending):
    an attempt in flight keeps its range and time; otherwise everything frozen and pending."""
    cursor = read_cursor(engine, channel, segment)
    if cursor.in_flight or cursor.frozen_seq <= cursor.delivered_seq:
        return cursor
    planned = Cursor(
        cursor.frozen_seq,
        cursor.delivered_seq,
        cursor.delivered_seq + 1,
        cursor.frozen_seq,
        at,
        cursor.column_types,
    )
    _write_cursor(engine, channel, segment, planned)
    return planned


def pending(engine: Engine, channel: str, segment: str, first: int, last: int) -> list[Change]:
    """The outbox rows ``first..last`` in seq order."""
    rows = engine.query(
        f"""select seq, key, change, "at", columns, coalesce(seq = replace_from, false)
        from {OUTBOX}
        where {_where(channel, segment)} and seq >= {int(first)} and seq <= {int(last)}
        order by seq"""
    )
    return [
        Change(
            int(r[0]),
            r[1],
            r[2],
            from_db(r[3]) or dt.datetime.min,
            json.loads(r[4]) if r[4] else {},
            bool(r[5]),
        )
        for r in rows
    ]


def is_replace(engine: Engine, channel: str, segment: str, first: int, last: int) -> bool:
    return bool(
        engine.query(
            f"select count(*) from {OUTBOX} where {_where(channel, segment)} "
            f"and seq >= {int(first)} and seq <= {int(last)} and replace_from is not null"
        )[0][0]
    )


def apply(engine: Engine, channel: str, segment: str, through: int, at: dt.datetime) -> None:
    """The destination has every change up to ``through``: fold them into ``delivered`` and
    advance the cursor (call inside the transaction that records the attempt)."""
    cursor = read_cursor(engine, channel, segment)
    if through <= cursor.delivered_seq:
        return
    scope = f"{_where(channel, segment)} and seq > {cursor.delivered_seq} and seq <= {through}"
    starts_replace = engine.query(
        f"select count(*) from {OUTBOX} where {scope} and seq = replace_from"
    )[0][0]
    # entries the destination acknowledges for the first time (a rebaseline resends members it
    # has already: those were reached before)
    engine.execute(
        f"""insert into {REACHED} select {_lit(channel)}, {_lit(segment)}, o.key, o.seq, o."at",
        ?, o.replace_from is not null from {OUTBOX} as o
        where {_where(channel, segment, "o")} and o.seq > {cursor.delivered_seq}
        and o.seq <= {through} and o.change = 'entered' and not (
            o.replace_from is not null and exists (
                select 1 from {DELIVERED} as d where {_where(channel, segment, "d")}
                and d.key = o.key and not d.held_out))""",
        (to_db(at),),
    )
    if starts_replace:
        engine.execute(f"delete from {DELIVERED} where {_where(channel, segment)} and not held_out")
    last = f"""select key, change, columns, seq, "at" from (
        select key, change, columns, seq, "at",
               row_number() over (partition by key order by seq desc) as rn
        from {OUTBOX} where {scope}) as l where rn = 1"""
    engine.execute(
        f"""delete from {DELIVERED} as d where {_where(channel, segment, "d")} and not d.held_out
        and exists (select 1 from {OUTBOX} as o where {_where(channel, segment, "o")}
                    and o.seq > {cursor.delivered_seq} and o.seq <= {through} and o.key = d.key)"""
    )
    engine.execute(
        f"""insert into {DELIVERED} select {_lit(channel)}, {_lit(segment)}, key, false, columns,
        seq, "at" from ({last}) as x where change = 'entered'"""
    )
    engine.execute(f"delete from {OUTBOX} where {_where(channel, segment)} and seq <= {through}")
    done = through >= (cursor.planned_last or 0)
    _write_cursor(
        engine,
        channel,
        segment,
        Cursor(
            cursor.frozen_seq,
            through,
            None if done else cursor.planned_first,
            None if done else cursor.planned_last,
            None if done else cursor.planned_at,
            cursor.column_types,
        ),
    )


@dataclass(frozen=True)
class Attempt:
    channel: str
    segment: str
    export_id: str | None
    first_seq: int | None
    last_seq: int | None
    entered: int
    exited: int
    rows: int | None
    status: str  # started | delivered | failed | held_back | interrupted
    error: str | None
    started_at: dt.datetime
    duration_s: float
    destination: str
    replace: bool = False
    delivered_through: int | None = None
    attempt_id: str = ""


def record_attempt(engine: Engine, a: Attempt) -> None:
    engine.execute(
        f"insert into {DELIVERIES} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            a.attempt_id,
            a.channel,
            a.segment,
            a.export_id,
            a.first_seq,
            a.last_seq,
            a.entered,
            a.exited,
            a.rows,
            a.status,
            a.error,
            to_db(a.started_at),
            a.duration_s,
            a.destination,
            a.replace,
            a.delivered_through,
        ),
    )


def finish_attempt(engine: Engine, a: Attempt) -> None:
    """Turn the attempt's ``started`` row into its outcome (and any row left ``started`` by a
    killed attempt of the same channel x segment into ``interrupted``)."""
    engine.execute(
        f"""update {DELIVERIES} set status = 'interrupted'
        where {_where(a.channel, a.segment)} and status = 'started' and attempt_id <> ?""",
        (a.attempt_id,),
    )
    engine.execute(
        f"""update {DELIVERIES} set status = ?, error = ?, duration_s = ?, rows = ?,
        delivered_through = ? where attempt_id = ?""",
        (a.status, a.error, a.duration_s, a.rows, a.delivered_through, a.attempt_id),
    )


def last_attempts(engine: Engine) -> list[Attempt]:
    """The newest attempt per channel x segment."""
    if (SCHEMA, "deliveries") not in engine.relations():
        return []
    rows = engine.query(
        f"""select channel, segment, export_id, first_seq, last_seq, entered, exited, rows,
        status, error, started_at, duration_s, destination, replace, delivered_through,
        attempt_id from (
            select *, row_number() over (partition by channel, segment
                                         order by started_at desc, attempt_id desc) as rn
            from {DELIVERIES}) as d where rn = 1 order by channel, segment"""
    )
    return [
        Attempt(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            int(r[5] or 0),
            int(r[6] or 0),
            r[7],
            r[8],
            r[9],
            from_db(r[10]) or dt.datetime.min,
            float(r[11] or 0.0),
            r[12],
            bool(r[13]),
            r[14],
            r[15],
        )
        for r in rows
    ]


def pending_by_segment(engine: Engine) -> dict[tuple[str, str], int]:
    """Changes frozen and not yet delivered, per channel x segment."""
    if (SCHEMA, "outbox") not in engine.relations():
        return {}
    return {
        (r[0], r[1]): int(r[2])
        for r in engine.query(
            f"""select o.channel, o.segment, count(*) from {OUTBOX} as o
            group by o.channel, o.segment"""
        )
    }


__all__ = [
    "Attempt",
    "Change",
    "Counts",
    "Cursor",
    "DeliveryOutcome",
    "apply",
    "freeze",
    "pending",
    "plan_attempt",
]


def prune(engine: Engine, before: dt.datetime) -> int:
    """Drop delivery attempts older than ``before`` (``history.keep_days``), never the newest
    attempt of a channel x segment (``status`` shows it). Delivered state, the outbox and the
    cursors are current state and are never pruned. Returns the rows removed."""
    if (SCHEMA, "deliveries") not in engine.relations():
        return 0
    old = f"""from {DELIVERIES} as d where d.started_at < ? and exists (
        select 1 from {DELIVERIES} as n where n.channel = d.channel and n.segment = d.segment
        and (n.started_at > d.started_at
             or (n.started_at = d.started_at and n.attempt_id > d.attempt_id)))"""
    cutoff = to_db(before)
    n = int(engine.query(f"select count(*) {old}", (cutoff,))[0][0])
    if n:
        engine.execute(f"delete {old}", (cutoff,))
    return n
