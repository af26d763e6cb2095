"""Record state in the warehouse (schema ``_cadence``), queryable with SQL.

Input: build outcomes -> output: rows in ``_cadence.runs``, ``_cadence.model_builds`` and
``_cadence.model_state``; and back: a ``StateSnapshot`` the due stage decides from. Times are
stored as naive UTC timestamps. A build's state rows are written inside the same transaction as
its publish, so state never disagrees with the live relations.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cadence.engines.base import Engine, EngineError

SCHEMA = "_cadence"
VERSION = 1

DDL = (
    f"create schema if not exists {SCHEMA}",
    f"""create table if not exists {SCHEMA}.runs (
        run_id varchar primary key, started_at timestamp, finished_at timestamp,
        status varchar, command varchar, pid integer, replay boolean)""",
    f"""create table if not exists {SCHEMA}.model_builds (
        run_id varchar, model varchar, kind varchar, tick timestamp, started_at timestamp,
        finished_at timestamp, status varchar, reason varchar, rows bigint, duration_s double,
        sql_hash varchar, error varchar)""",
    f"""create table if not exists {SCHEMA}.model_state (
        model varchar, kind varchar, last_success_at timestamp,
        last_success_tick timestamp, last_sql_hash varchar, last_status varchar,
        last_error varchar, last_attempt_at timestamp, failure_streak integer,
        last_rows bigint, last_duration_s double, avg_duration_s double, builds bigint)""",
)


def to_db(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def from_db(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class ModelState:
    name: str
    kind: str = "model"
    last_success_at: dt.datetime | None = None
    last_success_tick: dt.datetime | None = None
    last_sql_hash: str | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_attempt_at: dt.datetime | None = None
    failure_streak: int = 0
    last_rows: int | None = None
    last_duration_s: float | None = None
    avg_duration_s: float | None = None
    builds: int = 0
    recorded: bool = False  # a row exists in _cadence.model_state


@dataclass(frozen=True)
class StateSnapshot:
    """What the warehouse says now: per-model state and the relations that exist."""

    models: dict[str, ModelState] = field(default_factory=dict)
    relations: dict[tuple[str, str], str] = field(default_factory=dict)
    # newest loaded_at per source table, for refresh: on_new_data (None: unknown)
    source_loaded: dict[tuple[str, str], dt.datetime | None] = field(default_factory=dict)

    def of(self, name: str) -> ModelState:
        return self.models.get(name) or ModelState(name)

    def exists(self, schema: str, identifier: str) -> bool:
        return (schema, identifier) in self.relations


def ensure_schema(engine: Engine) -> None:
    for statement in DDL:
        engine.execute(statement)


def read_snapshot(engine: Engine, freshness: tuple[tuple[tuple[str, str], str, str], ...] = (),
                  tz: dt.tzinfo = dt.timezone.utc) -> StateSnapshot:
    """State, relations, and for each (source key, relation, loaded_at column) in
    ``freshness`` the newest loaded_at (naive values are taken in ``tz``)."""
    relations = engine.relations()
    loaded: dict[tuple[str, str], dt.datetime | None] = {}
    for key, relation, column in freshness:
        try:
            value = engine.query(f'select max("{column}") from {relation}')[0][0]
        except EngineError:
            value = None
        if isinstance(value, dt.datetime):
            loaded[key] = value if value.tzinfo else value.replace(tzinfo=tz)
        else:
            loaded[key] = None
    if (SCHEMA, "model_state") not in relations:
        return StateSnapshot({}, relations, loaded)
    rows = engine.query(
        f"""select model, kind, last_success_at, last_success_tick, last_sql_hash, last_status,
        last_error, last_attempt_at, failure_streak, last_rows, last_duration_s, avg_duration_s,
        builds from {SCHEMA}.model_state"""
    )
    models = {}
    for r in rows:
        models[r[0]] = ModelState(
            name=r[0], kind=r[1], last_success_at=from_db(r[2]), last_success_tick=from_db(r[3]),
            last_sql_hash=r[4], last_status=r[5], last_error=r[6], last_attempt_at=from_db(r[7]),
            failure_streak=r[8] or 0, last_rows=r[9], last_duration_s=r[10], avg_duration_s=r[11],
            builds=r[12] or 0, recorded=True,
        )
    return StateSnapshot(models, relations, loaded)


@dataclass(frozen=True)
class BuildRecord:
    run_id: str
    model: str
    kind: str
    tick: dt.datetime | None
    started_at: dt.datetime
    status: str
    reason: str
    rows: int | None
    duration_s: float
    sql_hash: str | None
    error: str | None


def record_build(engine: Engine, record: BuildRecord, previous: ModelState) -> ModelState:
    """Write the build row and the new model state; call inside the publish transaction."""
    finished = record.started_at + dt.timedelta(seconds=record.duration_s)
    engine.execute(
        f"insert into {SCHEMA}.model_builds values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (record.run_id, record.model, record.kind, to_db(record.tick), to_db(record.started_at),
         to_db(finished), record.status, record.reason, record.rows, record.duration_s,
         record.sql_hash, record.error),
    )
    ok = record.status == "success"
    n = min(previous.builds, 19)
    avg = previous.avg_duration_s
    if ok:
        avg = record.duration_s if avg is None else (avg * n + record.duration_s) / (n + 1)
    new = ModelState(
        recorded=True,
        name=record.model,
        kind=record.kind,
        last_success_at=record.started_at if ok else previous.last_success_at,
        last_success_tick=record.tick if ok else previous.last_success_tick,
        last_sql_hash=record.sql_hash if ok else previous.last_sql_hash,
        last_status=record.status,
        last_error=None if ok else record.error,
        last_attempt_at=record.started_at,
        failure_streak=0 if ok else previous.failure_streak + (1 if record.status == "error" else 0),
        last_rows=record.rows if ok else previous.last_rows,
        last_duration_s=record.duration_s,
        avg_duration_s=avg,
        builds=previous.builds + (1 if ok else 0),
    )
    values = (new.kind, to_db(new.last_success_at), to_db(new.last_success_tick),
              new.last_sql_hash, new.last_status, new.last_error, to_db(new.last_attempt_at),
              new.failure_streak, new.last_rows, new.last_duration_s, new.avg_duration_s, new.builds)
    # one row per model; an update is far cheaper than an upsert through an index
    if previous.recorded:
        engine.execute(
            f"""update {SCHEMA}.model_state set kind = ?, last_success_at = ?,
            last_success_tick = ?, last_sql_hash = ?, last_status = ?, last_error = ?,
            last_attempt_at = ?, failure_streak = ?, last_rows = ?, last_duration_s = ?,
            avg_duration_s = ?, builds = ? where model = ?""",
            (*values, new.name),
        )
    else:
        engine.execute(f"insert into {SCHEMA}.model_state values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (new.name, *values))
    return new


def record_run_start(engine: Engine, run_id: str, started_at: dt.datetime, command: str, pid: int,
                     replay: bool) -> None:
    engine.execute(
        f"insert or replace into {SCHEMA}.runs values (?, ?, null, 'running', ?, ?, ?)",
        (run_id, to_db(started_at), command, pid, replay),
    )


def record_run_end(engine: Engine, run_id: str, finished_at: dt.datetime, status: str) -> None:
    try:
        engine.execute(
            f"update {SCHEMA}.runs set finished_at = ?, status = ? where run_id = ?",
            (to_db(finished_at), status, run_id),
        )
    except EngineError:
        pass
