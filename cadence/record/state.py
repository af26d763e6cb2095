"""Record state in the warehouse (schema ``_cadence``), queryable with SQL.

Input: build outcomes -> output: rows in ``_cadence.runs``, ``_cadence.model_builds`` and
``_cadence.model_state``; and back: a ``StateSnapshot`` (``plan.history``) the due stage decides
from. Times are
stored as naive UTC timestamps. A build's state rows are written inside the same transaction as
its publish, so state never disagrees with the live relations.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, fields

from cadence.engines.base import Engine, EngineError
from cadence.plan.history import BuildRecord, ModelState, StateSnapshot, next_state

SCHEMA = "_cadence"
VERSION = 1

# ``model_state``, in the field order of ``ModelState`` (its ``name`` is the column ``model``)
STATE_COLUMNS = (
    ("model", "varchar"),
    ("kind", "varchar"),
    ("last_success_at", "timestamp"),
    ("last_success_tick", "timestamp"),
    ("last_sql_hash", "varchar"),
    ("last_status", "varchar"),
    ("last_error", "varchar"),
    ("last_attempt_at", "timestamp"),
    ("failure_streak", "integer"),
    ("last_rows", "bigint"),
    ("last_duration_s", "double"),
    ("avg_duration_s", "double"),
    ("builds", "bigint"),
)

# ``model_builds``, one row per build (``_build_row`` follows this order)
BUILD_COLUMNS = (
    ("run_id", "varchar"),
    ("model", "varchar"),
    ("kind", "varchar"),
    ("tick", "timestamp"),
    ("started_at", "timestamp"),
    ("finished_at", "timestamp"),
    ("status", "varchar"),
    ("reason", "varchar"),
    ("rows", "bigint"),
    ("duration_s", "double"),
    ("sql_hash", "varchar"),
    ("error", "varchar"),
)


def _typed(columns: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{column} {kind}" for column, kind in columns)


def _insert_columns(table: str, columns: tuple[tuple[str, str], ...]) -> str:
    """One statement inserting any number of rows, the values of each column one list
    parameter (a VALUES text of 1,000 rows costs more to parse than to insert)."""
    return f"insert into {SCHEMA}.{table} select " + ", ".join(
        f"unnest(?::{kind}[])" for _column, kind in columns
    )


DDL = (
    f"create schema if not exists {SCHEMA}",
    f"""create table if not exists {SCHEMA}.runs (
        run_id varchar primary key, started_at timestamp, finished_at timestamp,
        status varchar, command varchar, pid integer, replay boolean, folded boolean)""",
    f"create table if not exists {SCHEMA}.model_builds ({_typed(BUILD_COLUMNS)})",
    f"create table if not exists {SCHEMA}.model_state ({_typed(STATE_COLUMNS)})",
)


def to_db(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def from_db(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


STATE_TABLES = ("runs", "model_builds", "model_state")


def ensure_schema(engine: Engine) -> None:
    engine = engine.state_store()
    for statement in DDL:
        engine.execute(statement)
    # warehouses made before runs were folded: their state was written per build
    engine.execute(
        f"alter table {SCHEMA}.runs add column if not exists folded boolean default true"
    )


def read_snapshot(
    engine: Engine,
    freshness: tuple[tuple[tuple[str, str], str, str], ...] = (),
    tz: dt.tzinfo = dt.timezone.utc,
    *,
    folded: bool = False,
) -> StateSnapshot:
    """State, relations, and for each (source key, relation, loaded_at column) in
    ``freshness`` the newest loaded_at (naive values are taken in ``tz``). ``folded``: the
    caller has just folded every run (it holds the project lock), so none is pending and the
    build records are not read again."""
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
    engine = engine.state_store()  # an engine may keep state apart from the warehouse (Spark)
    rows = engine.query(
        f"""select model, kind, last_success_at, last_success_tick, last_sql_hash, last_status,
        last_error, last_attempt_at, failure_streak, last_rows, last_duration_s, avg_duration_s,
        builds from {SCHEMA}.model_state"""
    )
    models = {}
    aware: dict[dt.datetime | None, dt.datetime | None] = {None: None}  # models share run times
    for r in rows:
        for t in (r[2], r[3], r[7]):
            if t not in aware:
                aware[t] = from_db(t)
        models[r[0]] = ModelState(  # positional, in field order: 10,000 rows on every run
            r[0],
            r[1],
            aware[r[2]],
            aware[r[3]],
            r[4],
            r[5],
            r[6],
            aware[r[7]],
            r[8] or 0,
            r[9],
            r[10],
            r[11],
            r[12] or 0,
        )
    # builds of runs that ended before folding their state (killed): replay them in order
    pending_runs: list[str] = []
    pending_models: set[str] = set()
    if (SCHEMA, "runs") in relations and not folded:
        try:
            pending_runs = [
                r[0] for r in engine.query(f"select run_id from {SCHEMA}.runs where folded = false")
            ]
        except EngineError:  # a warehouse from before runs were folded: nothing is pending
            pending_runs = []
        unfolded = (
            engine.query(
                f"""select b.run_id, b.model, b.kind, b.tick, b.started_at, b.status, b.reason,
                b.rows, b.duration_s, b.sql_hash, b.error from {SCHEMA}.model_builds b
                join {SCHEMA}.runs r on r.run_id = b.run_id where r.folded = false
                order by b.started_at, b.finished_at"""
            )
            if pending_runs  # the common case: the last run folded, no build rows to read
            else []
        )
        for r in unfolded:
            record = BuildRecord(
                r[0],
                r[1],
                r[2],
                from_db(r[3]),
                from_db(r[4]) or _EPOCH,
                r[5],
                r[6],
                r[7],
                r[8] or 0.0,
                r[9],
                r[10],
            )
            models[r[1]] = next_state(models.get(r[1]) or ModelState(r[1]), record)
            pending_models.add(r[1])
    return StateSnapshot(models, relations, loaded, tuple(pending_runs), frozenset(pending_models))


def record_build(engine: Engine, record: BuildRecord, previous: ModelState) -> ModelState:
    """Write the build row; call inside the publish transaction, so the published relation and
    its build record commit together (in a commit group, the group writes it just before it
    commits: ``insert_builds``). Returns the model's new state, which ``fold`` writes to
    ``model_state`` for the whole run at once (one statement instead of one per model)."""
    store = engine.state_store()
    if store.group is not None:
        store.group.records.append(record)
    else:
        store.execute(_INSERT_BUILD, _build_row(record))
    return next_state(previous, record)


def insert_builds(engine: Engine, records: list[BuildRecord]) -> None:
    """The build rows of ``records`` in one statement (a commit group's, before it commits)."""
    if not records:
        return
    columns = [list(column) for column in zip(*(_build_row(r) for r in records))]
    engine.state_store().execute(_INSERT_BUILDS, tuple(columns))


def build_committed(engine: Engine, record: BuildRecord) -> bool:
    """Whether ``record``'s build row is in the warehouse: the transaction that wrote it
    committed (asked when a signal came as its commit returned)."""
    rows = engine.state_store().query(
        f"select count(*) from {SCHEMA}.model_builds "
        "where run_id = ? and model = ? and started_at = ?",
        (record.run_id, record.model, to_db(record.started_at)),
    )
    return bool(rows and rows[0][0])


def _build_row(record: BuildRecord) -> tuple[object, ...]:
    finished = record.started_at + dt.timedelta(seconds=record.duration_s)
    return (
        record.run_id,
        record.model,
        record.kind,
        to_db(record.tick),
        to_db(record.started_at),
        to_db(finished),
        record.status,
        record.reason,
        record.rows,
        record.duration_s,
        record.sql_hash,
        record.error,
    )


_INSERT_BUILD = (
    f"insert into {SCHEMA}.model_builds values ({', '.join('?' for _ in BUILD_COLUMNS)})"
)
_INSERT_BUILDS = _insert_columns("model_builds", BUILD_COLUMNS)


def fold(
    engine: Engine,
    states: dict[str, ModelState],
    run_ids: list[str],
    finished: tuple[str, dt.datetime, str] | None = None,
    also: Callable[[Engine], None] | None = None,
) -> None:
    """Write the latest state of every model built by ``run_ids`` and mark those runs folded,
    in one transaction; ``finished`` (run id, finished at, status) records the end of the
    run folding them in the same commit, and ``also`` writes what else commits with it. Until
    then ``read_snapshot`` replays their build rows itself, so a run killed before folding
    loses nothing."""
    engine = engine.state_store()
    rows = [_state_row(s) for s in states.values()]
    columns = [
        [to_db(v) if isinstance(v, dt.datetime) else v for v in column] for column in zip(*rows)
    ]
    with engine.transaction():
        if finished is not None:
            run_id, finished_at, status = finished
            engine.execute(
                f"update {SCHEMA}.runs set finished_at = ?, status = ? where run_id = ?",
                (to_db(finished_at), status, run_id),
            )
        if rows:
            # one statement each, whatever the number of models (``_insert_columns``)
            engine.execute(_DELETE_STATES, (columns[0],))
            engine.execute(_INSERT_STATES, tuple(columns))
        if run_ids:
            # a run still 'running' here died without finishing (we hold the project lock)
            engine.execute(
                f"""update {SCHEMA}.runs set folded = true,
                status = case when status = 'running' then 'abandoned' else status end
                where run_id in (select unnest(?::varchar[]))""",
                (list(run_ids),),
            )
        if also is not None:
            also(engine)


_DELETE_STATES = f"delete from {SCHEMA}.model_state where model in (select unnest(?::varchar[]))"
_INSERT_STATES = _insert_columns("model_state", STATE_COLUMNS)


def _state_row(s: ModelState) -> tuple[object, ...]:
    """A model's state in the column order of ``model_state``."""
    return tuple(getattr(s, field.name) for field in fields(ModelState))


def record_run_start(
    engine: Engine, run_id: str, started_at: dt.datetime, command: str, pid: int, replay: bool
) -> None:
    engine.state_store().execute(
        f"insert or replace into {SCHEMA}.runs values (?, ?, null, 'running', ?, ?, ?, false)",
        (run_id, to_db(started_at), command, pid, replay),
    )


@dataclass(frozen=True)
class BuildRow:
    """One recorded build, for reports (``cadence docs``)."""

    started_at: dt.datetime | None
    status: str | None
    duration_s: float | None
    rows: int | None
    tick: dt.datetime | None


def read_recent_builds(engine: Engine, per_model: int = 10) -> dict[str, tuple[BuildRow, ...]]:
    """The latest ``per_model`` recorded builds of each model, newest first (read-only)."""
    if (SCHEMA, "model_builds") not in engine.relations():
        return {}
    rows = engine.query(
        f"""select model, started_at, status, duration_s, rows, tick from (
            select *, row_number() over (partition by model order by started_at desc) as n
            from {SCHEMA}.model_builds where kind = 'model') where n <= {int(per_model)}
        order by model, started_at desc"""
    )
    out: dict[str, list[BuildRow]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(BuildRow(from_db(r[1]), r[2], r[3], r[4], from_db(r[5])))
    return {k: tuple(v) for k, v in out.items()}


def read_member_counts(engine: Engine) -> dict[str, int]:
    """Current members per segment from ``_cadence.membership_changes`` (empty without it)."""
    if (SCHEMA, "membership_changes") not in engine.relations():
        return {}
    try:
        rows = engine.query(
            f"""select segment, sum(case when change = 'entered' then 1 else -1 end)
            from {SCHEMA}.membership_changes group by segment"""
        )
    except EngineError:
        return {}
    return {r[0]: int(r[1]) for r in rows}


def read_delivered_groups(
    engine: Engine, segments: tuple[str, ...], per_segment: int = 2000
) -> dict[str, tuple[tuple[str, bool], ...]]:
    """For each segment, up to ``per_segment`` delivered keys with the holdout group recorded
    when they were delivered (``_cadence.delivered``), read-only; empty without deliveries."""
    if not segments or (SCHEMA, "delivered") not in engine.relations():
        return {}
    marks = ", ".join("?" for _ in segments)
    try:
        rows = engine.query(
            f"""select segment, key, held_out from (
                select segment, key, held_out,
                row_number() over (partition by segment order by key) as n
                from {SCHEMA}.delivered where segment in ({marks}))
            where n <= {int(per_segment)}""",
            segments,
        )
    except EngineError:
        return {}
    out: dict[str, list[tuple[str, bool]]] = {}
    for segment, key, held in rows:
        out.setdefault(segment, []).append((str(key), bool(held)))
    return {k: tuple(v) for k, v in out.items()}


# History that ``history: {keep_days: N}`` prunes: (table, time column[, columns whose latest
# row is always kept]). The activation stage adds its own tables (membership changes,
# deliveries) by passing a longer list.
HISTORY_TABLES: tuple[tuple[str, ...], ...] = (
    (f"{SCHEMA}.model_builds", "started_at", "model"),
    (f"{SCHEMA}.runs", "started_at"),
)
PRUNE_SLACK = dt.timedelta(hours=1)  # prune when the oldest row is this much past the cutoff


def _columns(engine: Engine, table: str) -> set[str]:
    schema, _, name = table.partition(".")
    rows = engine.query(
        "select column_name from information_schema.columns "
        "where table_schema = ? and table_name = ?",
        (schema, name),
    )
    return {str(r[0]) for r in rows}


def prune_history(
    engine: Engine,
    cutoff: dt.datetime,
    tables: tuple[tuple[str, ...], ...] = HISTORY_TABLES,
    *,
    slack: dt.timedelta = PRUNE_SLACK,
) -> dict[str, int]:
    """Delete history rows older than ``cutoff``; returns rows deleted per table (empty when
    nothing was old enough). Never deleted: the latest row per key columns (the latest build
    of each model), rows of a run that is still running or not folded into ``model_state`` yet
    (its builds are replayed into state), and a run that kept rows still point at. To keep
    the cron path cheap, nothing happens until the oldest row is ``slack`` past the cutoff.
    Checkpoints afterwards so the freed space is reused."""
    relations = engine.relations()
    present = [
        (".".join(f'"{p}"' for p in t[0].split(".", 1)), *(f'"{c}"' for c in t[1:]))
        for t in tables
        if tuple(t[0].split(".", 1)) in relations
    ]
    limit = to_db(cutoff)
    oldest = [engine.query(f"select min({t[1]}) from {t[0]}")[0][0] for t in present]
    if not any(o is not None and limit is not None and o < limit - slack for o in oldest):
        return {}
    runs_table = f'"{SCHEMA}"."runs"'
    busy_runs = f"select run_id from {runs_table} where folded = false or status = 'running'"
    deleted: dict[str, int] = {}
    with engine.transaction():
        with_run_id = []
        for table, column, *keep in present:
            if table == runs_table:
                continue
            conditions = [f"o.{column} < ?"]
            params: list[object] = [limit]
            if "run_id" in _columns(engine, table.replace('"', "")):
                with_run_id.append(table)
                conditions.append(f"o.run_id not in ({busy_runs})")
            if keep:
                same = " and ".join(f"n.{k} = o.{k}" for k in keep)
                latest = (
                    f"select max_by(rowid, {column}) from {table} o where o.{column} < ? "
                    f"and not exists (select 1 from {table} n where {same} "
                    f"and n.{column} >= ?) group by {', '.join(keep)}"
                )
                conditions.append(f"o.rowid not in ({latest})")
                params += [limit, limit]
            rows = engine.query(
                f"delete from {table} o where {' and '.join(conditions)}", tuple(params)
            )
            deleted[table.replace('"', "")] = int(rows[0][0]) if rows else 0
        if any(t[0] == runs_table for t in present):
            kept = "".join(f" and run_id not in (select run_id from {t})" for t in with_run_id)
            rows = engine.query(
                f"delete from {runs_table} where started_at < ? and folded = true "
                f"and status <> 'running'{kept}",
                (limit,),
            )
            deleted[f"{SCHEMA}.runs"] = int(rows[0][0]) if rows else 0
    try:
        engine.execute("checkpoint")  # return the freed blocks to the file for reuse
    except EngineError:
        pass  # another transaction is open: DuckDB checkpoints on its own later
    return deleted
