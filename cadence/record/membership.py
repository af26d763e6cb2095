"""Membership history of segments: who entered and who exited at each publish.

Input: a segment's staging relation (the candidate) and its live relation -> output: rows in
``_cadence.membership_changes`` (change_id, segment, key, change, run_id, tick, at, event_time).
Called inside the publish transaction, so the history commits with the relation it describes or
not at all. The diff is SQL (``EXCEPT`` both ways, casting only the difference), run through the
``Engine`` interface so every engine can reuse it. A segment with ``event_time: COLUMN`` records,
with each ``entered`` change, when the member qualified (that column of its row, as a UTC
instant; a naive timestamp or a date is read in the project timezone); exits and segments
without it record null. A first publish (everyone entered) is one pass over the candidate, its
``event_time`` read from the same row rather than joined back by key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cadence.engines.base import Engine, EngineError, SegmentNote
from cadence.errors import CadenceError
from cadence.load.relations import quote
from cadence.record.state import SCHEMA, from_db, to_db

TABLE_NAME = "membership_changes"
TABLE = f"{SCHEMA}.{TABLE_NAME}"
SEQUENCE = f"{SCHEMA}.membership_change_id"
DDL = (
    f"create schema if not exists {SCHEMA}",
    f"create sequence if not exists {SEQUENCE}",
    f"""create table if not exists {TABLE} (
        change_id bigint, segment varchar, key varchar, change varchar, run_id varchar,
        tick timestamp, "at" timestamp)""",
    # when an entered member qualified (``event_time``); warehouses from before it get it null
    f"alter table {TABLE} add column if not exists event_time timestamp",
)
COLUMNS = 'change_id, segment, key, change, run_id, tick, "at", event_time'


@dataclass(frozen=True)
class MembershipChange:
    change_id: int
    segment: str
    key: str
    change: str  # entered | exited
    run_id: str
    tick: dt.datetime | None
    at: dt.datetime
    event_time: dt.datetime | None = None  # entered, with ``event_time``: when it qualified


def ensure_tables(engine: Engine) -> None:
    store = engine.state_store()  # state may live apart from the warehouse (Spark)
    for statement in DDL:
        store.execute(statement)


def latest_sql(segment: str) -> str:
    """Each key a segment's history knows, with its latest change (columns ``key``,
    ``change``)."""
    name = segment.replace("'", "''")
    return (
        f"select key, change from {TABLE} where segment = '{name}' "
        "qualify row_number() over (partition by key order by change_id desc) = 1"
    )


def members_sql(segment: str) -> str:
    """The keys a segment's history says are members now: each key whose latest change is
    ``entered`` (one column, ``key``)."""
    return f"select key from ({latest_sql(segment)}) as l where change = 'entered'"


def diff_sql(
    candidate: str,
    live: str | None,
    key: str,
    *,
    exits: bool = True,
    recorded: str | None = None,
    merged_into: str | None = None,
) -> str:
    """Rows (key VARCHAR, change VARCHAR) turning ``live`` into ``candidate``; ``live`` None:
    no relation the history describes (none, or one published without this key), everyone
    entered -- unless ``recorded`` (a query of the members the history holds,
    ``members_sql``) says who was there: then the diff is against them. ``exits`` False: an
    incremental merge, where a key can only be added; ``merged_into``: with ``live`` None, the
    relation the new rows are merged into, whose keys are members too."""
    k = quote(key)
    if live is None:
        keys = f"select cast({k} as varchar) as key from {candidate}"
        if merged_into is not None:
            keys += f" union select cast({k} as varchar) as key from {merged_into}"
        if recorded is None:
            return f"select key, 'entered' as change from ({keys}) as e"
        entered = (
            f"select key, 'entered' as change from (select key from ({keys}) as c "
            f"except select key from ({recorded}) as r) as e"
        )
        if not exits:
            return entered
        return (
            f"{entered}\nunion all\nselect key, 'exited' as change from (select key from "
            f"({recorded}) as r except select key from ({keys}) as c) as x"
        )
    entered = (
        f"select cast({k} as varchar) as key, 'entered' as change from "
        f"(select {k} from {candidate} except select {k} from {live}) as e"
    )
    if not exits:
        # the hash is built on the few new rows and probed by the live keys (EXCEPT would
        # hash the whole live table): an incremental tick costs what arrived
        return (
            f"select distinct cast(c.{k} as varchar) as key, 'entered' as change "
            f"from {candidate} as c where not exists "
            f"(select 1 from {live} as l where l.{k} is not distinct from c.{k})"
        )
    exited = (
        f"select cast({k} as varchar) as key, 'exited' as change from "
        f"(select {k} from {live} except select {k} from {candidate}) as x"
    )
    return f"{entered}\nunion all\n{exited}"


# DuckDB's names of the types an ``event_time`` column may have, and how each becomes a naive
# UTC timestamp (``{tz}`` is the project timezone naive values are read in)
_AWARE = ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")
_NAIVE = ("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATETIME", "DATE")


def event_time_sql(engine: Engine, segment: str, relation: str, column: str, tz: str) -> str:
    """An SQL expression over ``c`` (a row of ``relation``) giving its ``column`` as a naive UTC
    timestamp; a CadenceError when the column is missing or not a timestamp or date."""
    col = quote(column)
    found = {
        str(r[0]).lower(): str(r[1]).upper()
        for r in engine.query(f"describe select * from {relation}")
    }
    kind = found.get(column.lower())
    if kind is None:
        raise CadenceError(
            f"event_time column '{column}' is not a column of segment '{segment}'",
            hint="its columns: " + ", ".join(sorted(found)),
        )
    zone = tz.replace("'", "''")
    if kind in _AWARE:
        return f"cast(c.{col} at time zone 'UTC' as timestamp)"
    if kind in _NAIVE:
        return f"((cast(c.{col} as timestamp) at time zone '{zone}') at time zone 'UTC')"
    raise CadenceError(
        f"event_time column '{column}' of segment '{segment}' is {kind}, not a timestamp or date",
        hint=f"cast it in the model, e.g. cast({column} as timestamptz) as {column}",
    )


def record_changes(
    engine: Engine,
    *,
    segment: str,
    key: str,
    candidate: str,
    live: str | None,
    run_id: str,
    tick: dt.datetime | None,
    at: dt.datetime,
    exits: bool = True,
    event_time: str | None = None,
    tz: dt.tzinfo = dt.timezone.utc,
    vanished: bool = False,
    at_commit: bool = False,
    merged_into: str | None = None,
) -> None:
    """Append the membership changes of one publish (inside the caller's transaction);
    ``event_time``: the segment's column saying when each entered member qualified;
    ``vanished``: no live relation describes the history although the model was published
    before (its table was dropped behind cadence's back, or published without this key:
    ``segmentkeys``), so the diff is against the members its history holds rather than
    everyone entering again; ``merged_into``: with ``live`` None, the relation an incremental
    merge adds the candidate to (its keys are members too); ``at_commit``: a first publish
    inside a commit group leaves its rows (everyone entered, read from its own table) to the
    group's commit, which inserts those of all its publishes at once (``insert_entered``)."""
    # an engine whose swap can outlive the state commit (Spark) keeps what re-records them
    engine.segment_staged(candidate, SegmentNote(segment, key, run_id, tick, at, exits))
    store = engine.state_store()
    recorded = members_sql(segment) if vanished and live is None and store is engine else None
    diff = diff_sql(candidate, live, key, exits=exits, recorded=recorded, merged_into=merged_into)
    first = live is None and recorded is None and merged_into is None  # everyone entered
    stamps = (to_db(tick), to_db(at))
    if store is engine:
        qualified = "cast(null as timestamp)"
        source, keyed, change = f"({diff}) as d", "d.key", "d.change"
        if event_time:
            qualified = event_time_sql(engine, segment, candidate, event_time, str(tz))
            if first:  # one pass over the rows
                k = quote(key)
                source, keyed, change = f"{candidate} as c", f"cast(c.{k} as varchar)", "'entered'"
            else:
                source += (
                    f" left join {candidate} as c on d.change = 'entered' "
                    f"and cast(c.{quote(key)} as varchar) = d.key"
                )
        select = (
            f"select cast(? as varchar) as segment, {keyed} as key, {change} as change, "
            f"cast(? as varchar) as run_id, cast(? as timestamp) as tick, "
            f'cast(? as timestamp) as "at", {qualified} as event_time from {source}'
        )
        group = engine.group
        if at_commit and group is not None and first:
            group.entered.append((select, (segment, run_id, *stamps)))
            return
        insert_entered(engine, [(select, (segment, run_id, *stamps))])
        return
    # state kept apart (Spark): the diff runs where the data is, its rows go to the state store
    rows: list[tuple[Any, ...]]
    if vanished and live is None:  # ... but the history is in the store: diffed here
        rows = _against_history(engine, segment, key, candidate, merged_into, exits)
        if event_time and rows:
            k = quote(key)
            when = dict(
                engine.query(f"select cast({k} as varchar), {quote(event_time)} from {candidate}")
            )
            rows = [(r[0], r[1], _utc(when.get(r[0]), tz, segment, event_time)) for r in rows]
    elif event_time:
        rows = engine.query(
            f"select d.key, d.change, c.{quote(event_time)} from ({diff}) as d "
            f"left join {candidate} as c on d.change = 'entered' "
            f"and cast(c.{quote(key)} as varchar) = d.key order by d.change, d.key"
        )
        rows = [(r[0], r[1], _utc(r[2], tz, segment, event_time)) for r in rows]
    else:
        rows = [
            (r[0], r[1], None)
            for r in engine.query(f"select key, change from ({diff}) as d order by change, key")
        ]
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        values = ", ".join("(?, ?, cast(? as timestamp))" for _ in chunk)
        store.execute(
            f"insert into {TABLE} ({COLUMNS}) select nextval('{SEQUENCE}'), ?, d.key, d.change, "
            f"?, ?, ?, d.event_time from (values {values}) as d(key, change, event_time)",
            (segment, run_id, *stamps, *[v for r in chunk for v in r]),
        )


def _against_history(
    engine: Engine,
    segment: str,
    key: str,
    candidate: str,
    merged_into: str | None,
    exits: bool,
) -> list[tuple[Any, ...]]:
    """(key, change, None) turning the members the history in the state store holds into the
    keys of ``candidate`` (and ``merged_into``), which live in the engine: both read, diffed
    in Python (the publish of a segment whose live table the history does not describe)."""
    k = quote(key)
    held = {str(r[0]) for r in engine.state_store().query(members_sql(segment))}
    sql = f"select cast({k} as varchar) from {candidate}"
    if merged_into is not None:
        sql += f" union select cast({k} as varchar) from {merged_into}"
    keys = {str(r[0]) for r in engine.query(sql) if r[0] is not None}
    entered = [(key_, "entered", None) for key_ in sorted(keys - held)]
    return entered + ([(key_, "exited", None) for key_ in sorted(held - keys)] if exits else [])


def before_reading(engine: Engine, sql: str) -> None:
    """``sql`` is about to run inside a commit group: when it names cadence's state
    (``_cadence``, in any case, however it got there: a var, a source), the membership rows the
    group's first publishes left for its commit are inserted first, so it reads them."""
    group = engine.group
    if group is not None and group.entered and SCHEMA in sql.lower():
        insert_entered(engine, group.entered)
        group.entered.clear()


def insert_entered(engine: Engine, selects: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Insert the changes ``selects`` give (each a query of ``record_changes``'s columns and
    its parameters) in one statement, each with its ``change_id`` from the sequence."""
    if not selects:
        return
    union = "\nunion all\n".join(sql for sql, _params in selects)
    engine.execute(
        f"insert into {TABLE} ({COLUMNS}) select nextval('{SEQUENCE}'), segment, key, change, "
        f'run_id, tick, "at", event_time from (\n{union}\n) as r',
        tuple(p for _sql, params in selects for p in params),
    )


def _utc(value: Any, tz: dt.tzinfo, segment: str, column: str) -> dt.datetime | None:
    """A value of an ``event_time`` column read back into Python, as a naive UTC datetime."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=tz)
        return to_db(aware)
    if isinstance(value, dt.date):
        return to_db(dt.datetime.combine(value, dt.time(), tzinfo=tz))
    raise CadenceError(
        f"event_time column '{column}' of segment '{segment}' holds "
        f"{type(value).__name__} values, not timestamps or dates",
        hint=f"cast it in the model, e.g. cast({column} as timestamp) as {column}",
    )


def read_changes(
    engine: Engine, segment: str, since: dt.datetime | None = None, limit: int | None = None
) -> list[MembershipChange]:
    """The history of one segment, oldest first (``since``: changes at or after it)."""
    sql = f"select {COLUMNS} from {TABLE} where segment = ?"
    params: list[object] = [segment]
    if since is not None:
        sql += ' and "at" >= ?'
        params.append(to_db(since))
    sql += " order by change_id"
    if limit is not None:
        sql += f" limit {int(limit)}"
    if (SCHEMA, "membership_changes") not in engine.relations():
        return []
    engine = engine.state_store()
    try:
        rows = engine.query(sql, params)
    except EngineError:  # a warehouse from before event_time, opened read-only
        rows = [(*r, None) for r in engine.query(sql.replace(", event_time", ""), params)]
    return [
        MembershipChange(
            int(r[0]),
            r[1],
            r[2],
            r[3],
            r[4],
            from_db(r[5]),
            from_db(r[6]) or dt.datetime.min,
            from_db(r[7]),
        )
        for r in rows
    ]


def read_members(engine: Engine, relation: str, key: str) -> list[str]:
    """Current members of a segment: its live relation's keys, sorted."""
    k = quote(key)
    return [
        str(r[0])
        for r in engine.query(
            f"select cast({k} as varchar) as key from {relation} where {k} is not null order by 1"
        )
    ]


def prune(engine: Engine, before: dt.datetime) -> int:
    """Drop membership history older than ``before`` (``history.keep_days``); current members
    live in the segments and what channels have in ``_cadence.delivered``, so nothing current
    depends on it. Returns the rows removed."""
    if (SCHEMA, "membership_changes") not in engine.relations():
        return 0
    cutoff = to_db(before)
    n = int(engine.query(f'select count(*) from {TABLE} where "at" < ?', (cutoff,))[0][0])
    if n:
        engine.execute(f'delete from {TABLE} where "at" < ?', (cutoff,))
    return n
