"""Membership history of segments: who entered and who exited at each publish.

Input: a segment's staging relation (the candidate) and its live relation -> output: rows in
``_cadence.membership_changes`` (change_id, segment, key, change, run_id, tick, at). Called
inside the publish transaction, so the history commits with the relation it describes or not at
all. The diff is SQL (``EXCEPT`` both ways, casting only the difference), run through the
``Engine`` interface so every engine can reuse it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cadence.engines.base import Engine, SegmentNote
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
)


@dataclass(frozen=True)
class MembershipChange:
    change_id: int
    segment: str
    key: str
    change: str  # entered | exited
    run_id: str
    tick: dt.datetime | None
    at: dt.datetime


def ensure_tables(engine: Engine) -> None:
    store = engine.state_store()  # state may live apart from the warehouse (Spark)
    for statement in DDL:
        store.execute(statement)


def diff_sql(candidate: str, live: str | None, key: str, *, exits: bool = True) -> str:
    """Rows (key VARCHAR, change VARCHAR) turning ``live`` into ``candidate``; ``live`` None:
    there is no previous version, everyone entered. ``exits`` False: an incremental merge,
    where a key can only be added."""
    k = quote(key)
    if live is None:
        return f"select cast({k} as varchar) as key, 'entered' as change from {candidate}"
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
) -> None:
    """Append the membership changes of one publish (inside the caller's transaction)."""
    # an engine whose swap can outlive the state commit (Spark) keeps what re-records them
    engine.segment_staged(candidate, SegmentNote(segment, key, run_id, tick, at, exits))
    store = engine.state_store()
    diff = diff_sql(candidate, live, key, exits=exits)
    if store is engine:
        engine.execute(
            f"insert into {TABLE} select nextval('{SEQUENCE}'), ?, d.key, d.change, ?, ?, ? "
            f"from ({diff}) as d",
            (segment, run_id, to_db(tick), to_db(at)),
        )
        return
    # state kept apart (Spark): the diff runs where the data is, its rows go to the state store
    rows = engine.query(f"select key, change from ({diff}) as d order by change, key")
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        values = ", ".join("(?, ?)" for _ in chunk)
        store.execute(
            f"insert into {TABLE} select nextval('{SEQUENCE}'), ?, d.key, d.change, ?, ?, ? "
            f"from (values {values}) as d(key, change)",
            (segment, run_id, to_db(tick), to_db(at), *[v for r in chunk for v in r]),
        )


def read_changes(
    engine: Engine, segment: str, since: dt.datetime | None = None, limit: int | None = None
) -> list[MembershipChange]:
    """The history of one segment, oldest first (``since``: changes at or after it)."""
    sql = (
        f'select change_id, segment, key, change, run_id, tick, "at" from {TABLE} where segment = ?'
    )
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
    return [
        MembershipChange(
            int(r[0]), r[1], r[2], r[3], r[4], from_db(r[5]), from_db(r[6]) or dt.datetime.min
        )
        for r in engine.query(sql, params)
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
