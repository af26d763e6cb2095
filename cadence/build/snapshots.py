"""Build a snapshot: the next version of a history table, staged, tested and swapped in.

Input: the ``RunContext``, a snapshot (a ``Model`` materialized ``snapshot`` and its
``SnapshotSpec``) and its compiled query, inside the publish transaction -> output: the rows of
the new version, which has replaced the live table. The rows are dbt's, computed as dbt-duckdb
computes them: the first build is the query with ``dbt_scd_id``, ``dbt_updated_at``,
``dbt_valid_from`` and ``dbt_valid_to`` (and ``dbt_is_deleted`` for ``hard_deletes:
new_record``); later builds find the rows that are new or changed (``timestamp``: a newer
``updated_at``; ``check``: a ``check_cols`` value differs, or a column was added), close the
current version of each changed row (``dbt_valid_to``), insert the new one, and handle rows
gone from the query by ``hard_deletes`` (``invalidate``: closed; ``new_record``: closed and a
deleted row inserted). "Now" is the run's time (``--at``), read as DuckDB reads ``now()`` in
its session time zone. Unlike dbt, which changes the live table in place, the new version is
built as a copy in a staging relation, gated by the snapshot's tests, and swapped in with its
build record in one transaction: a kill at any moment leaves the old or the new history.
DuckDB only. Used by ``publish``.
"""

from __future__ import annotations

import os
import signal
from pathlib import PurePosixPath

from cadence.build.compiler import CompiledModel
from cadence.build.context import RunContext, swap
from cadence.build.gate import run_tests
from cadence.engines.base import EngineError
from cadence.errors import CadenceError
from cadence.load.parser import Model
from cadence.load.relations import quote
from cadence.load.snapshots import SnapshotSpec

FAULT_ENV = "CADENCE_TEST_FAULT"  # test-only: kill -9 this process at a named step


class _TestsFailed(EngineError):
    pass


def spec_of(ctx: RunContext, model: Model) -> SnapshotSpec:
    for spec in ctx.project.snapshots:
        if spec.name == model.name:
            return spec
    raise CadenceError(f"snapshot '{model.name}' has no snapshot config", file=model.path)


def publish_snapshot(
    ctx: RunContext, model: Model, compiled: CompiledModel
) -> tuple[int, list[str]]:
    """Inside the caller's transaction: stage the next version, test it, swap it in.
    Returns (rows, warnings)."""
    engine = ctx.engine
    if engine.name != "duckdb":
        raise CadenceError(
            f"snapshot '{model.name}': snapshots need the DuckDB engine",
            file=model.path,
            hint="build it on DuckDB, or turn it into an incremental model",
        )
    spec = spec_of(ctx, model)
    now = _time_sql(ctx)
    staging = engine.staging_relation(model.schema, model.identifier, ctx.run_id)
    existing = ctx.relations.get((model.schema, model.identifier))
    if existing is None:
        engine.create_table_as(staging, first_version_sql(spec, compiled.sql, now))
    else:
        if existing != "table":
            raise CadenceError(
                f"{model.relation} is a {existing}, not a snapshot table",
                file=model.path,
                hint="drop it, or give the snapshot another name or target_schema",
            )
        _next_version(ctx, spec, model, compiled.sql, staging, now)
    _fault("snapshot_staged")
    rows = engine.row_count(staging)
    outcomes = run_tests(ctx, model, staging, None)
    warnings = [o.message for o in outcomes if not o.passed and not o.blocking]
    blocking = [o for o in outcomes if o.blocking]
    if blocking:
        kept = (
            "kept the previous version live"
            if existing is not None
            else "nothing published (no previous version)"
        )
        raise _TestsFailed(f"tests failed, {kept}: " + "; ".join(o.message for o in blocking))
    swap(ctx, staging, model.relation, model.schema, model.identifier)
    _fault("snapshot_swapped")
    return rows, warnings


def compiled_path(model: Model) -> str:
    """Where a model's compiled SQL is kept, as a project path: its own file, or for a
    snapshot (several may share a file) ``<folder>/<name>.sql``."""
    if model.materialized != "snapshot":
        return model.path
    return str(PurePosixPath(model.path).parent / f"{model.name}.sql")


def _fault(step: str) -> None:
    """Test-only fault injection: ``CADENCE_TEST_FAULT=<step>`` kills this process here."""
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _time_sql(ctx: RunContext) -> str:
    """dbt-duckdb's snapshot time is ``now()::timestamp``: the run's time (``--at``) as a
    timestamp in the session's time zone."""
    return f"cast(timestamptz '{ctx.now.isoformat()}' as timestamp)"


def _updated_at(spec: SnapshotSpec, now: str) -> str:
    if spec.strategy == "timestamp" or spec.updated_at:
        return str(spec.updated_at)
    return now


def _hash(args: list[str]) -> str:
    """dbt's ``snapshot_hash_arguments``: md5 of the values joined with '|'."""
    parts = " || '|' || ".join(f"coalesce(cast({a} as varchar), '')" for a in args)
    return f"md5({parts})"


def _current_sql(spec: SnapshotSpec, column: str) -> str:
    """The rows of the current version: open (``dbt_valid_to`` null, or the configured
    ``dbt_valid_to_current``)."""
    if spec.valid_to_current:
        return f"({column} = {spec.valid_to_current} or {column} is null)"
    return f"{column} is null"


def first_version_sql(spec: SnapshotSpec, sql: str, now: str) -> str:
    """The first build: every row of the query, current from its ``updated_at``."""
    updated = _updated_at(spec, now)
    current = spec.valid_to_current or "null"
    deleted = (
        f",\n  'False' as {quote(spec.is_deleted)}" if spec.hard_deletes == "new_record" else ""
    )
    return (
        f"select *,\n  {_hash([*spec.unique_key, updated])} as {quote(spec.scd_id)},\n"
        f"  {updated} as {quote(spec.updated_at_column)},\n"
        f"  {updated} as {quote(spec.valid_from)},\n"
        f"  coalesce(nullif({updated}, {updated}), {current}) as {quote(spec.valid_to)}{deleted}\n"
        f"from (\n{sql}\n) sbq"
    )


def _columns(ctx: RunContext, sql: str) -> list[tuple[str, str]]:
    """(name, type) of each column of a query or relation."""
    return [(str(r[0]), str(r[1])) for r in ctx.engine.query(f"describe {sql}")]


def _row_changed(ctx: RunContext, spec: SnapshotSpec, sql: str, target_columns: set[str]) -> str:
    q = quote
    if spec.strategy == "timestamp":
        return f"(snapshotted_data.{q(spec.valid_from)} < source_data.{q(spec.updated_at_column)})"
    if spec.check_all:
        query_columns = [name for name, _type in _columns(ctx, f"select * from ({sql}) subq")]
        checked = [q(c) for c in query_columns if c in target_columns]
    else:
        cols = ", ".join(spec.check_cols)
        query_columns = [n for n, _t in _columns(ctx, f"select {cols} from ({sql}) subq")]
        checked = [q(c) for c in query_columns if c in target_columns]
    if any(c not in target_columns for c in query_columns):
        return "(TRUE)"  # a column was added: every row is a new version (as dbt does)
    if not checked:
        return "(FALSE)"
    return (
        "("
        + " or ".join(
            f"snapshotted_data.{c} != source_data.{c} or ("
            f"((snapshotted_data.{c} is null) and not (source_data.{c} is null)) or "
            f"((not snapshotted_data.{c} is null) and (source_data.{c} is null)))"
            for c in checked
        )
        + ")"
    )


def changes_sql(
    ctx: RunContext,
    spec: SnapshotSpec,
    sql: str,
    live: str,
    now: str,
    target_columns: list[str],
) -> str:
    """dbt's staging query: one row per change (``insert``, ``update``, ``delete``), with the
    meta columns of the row to insert or the ``dbt_scd_id`` and new ``dbt_valid_to`` of the
    row to close."""
    q = quote
    keys = ", ".join(f"{k} as dbt_unique_key_{i}" for i, k in enumerate(spec.unique_key, 1))
    join = " and ".join(
        f"snapshotted_data.dbt_unique_key_{i} = source_data.dbt_unique_key_{i}"
        for i in range(1, len(spec.unique_key) + 1)
    )
    updated = _updated_at(spec, now)
    current = spec.valid_to_current or "null"
    new_record = spec.hard_deletes == "new_record"
    changed = _row_changed(ctx, spec, sql, set(target_columns))
    if new_record:
        changed = f"{changed} or snapshotted_data.{q(spec.is_deleted)} = 'True'"
    deleted_now = f"snapshotted_data.{q(spec.is_deleted)} = 'True' and " + _current_sql(
        spec, f"snapshotted_data.{q(spec.valid_to)}"
    )
    parts = [
        f"with snapshot_query as (\n{sql}\n),",
        f"snapshotted_data as (\n  select *, {keys} from {live}\n"
        f"  where {_current_sql(spec, q(spec.valid_to))}\n),",
        f"insertions_source_data as (\n  select *, {keys},\n"
        f"    {updated} as {q(spec.updated_at_column)},\n    {updated} as {q(spec.valid_from)},\n"
        f"    coalesce(nullif({updated}, {updated}), {current}) as {q(spec.valid_to)},\n"
        f"    {_hash([*spec.unique_key, updated])} as {q(spec.scd_id)}\n"
        "  from snapshot_query\n),",
        f"updates_source_data as (\n  select *, {keys},\n"
        f"    {updated} as {q(spec.updated_at_column)},\n    {updated} as {q(spec.valid_from)},\n"
        f"    {updated} as {q(spec.valid_to)}\n  from snapshot_query\n),",
        f"deletes_source_data as (\n  select *, {keys} from snapshot_query\n),",
        "insertions as (\n  select 'insert' as dbt_change_type, source_data.*"
        + (f", 'False' as {q(spec.is_deleted)}" if new_record else "")
        + "\n  from insertions_source_data as source_data\n"
        f"  left outer join snapshotted_data on {join}\n"
        "  where snapshotted_data.dbt_unique_key_1 is null\n"
        f"    or (snapshotted_data.dbt_unique_key_1 is not null and ({changed}))\n),",
        "updates as (\n  select 'update' as dbt_change_type, source_data.*, "
        f"snapshotted_data.{q(spec.scd_id)}"
        + (f", snapshotted_data.{q(spec.is_deleted)}" if new_record else "")
        + f"\n  from updates_source_data as source_data\n  join snapshotted_data on {join}\n"
        f"  where ({changed})\n)",
    ]
    union = ["select * from insertions", "select * from updates"]
    if spec.hard_deletes in ("invalidate", "new_record"):
        parts[-1] += ","
        parts.append(
            "deletes as (\n  select 'delete' as dbt_change_type, source_data.*,\n"
            f"    {now} as {q(spec.valid_from)}, {now} as {q(spec.updated_at_column)},\n"
            f"    {now} as {q(spec.valid_to)}, snapshotted_data.{q(spec.scd_id)}"
            + (f", snapshotted_data.{q(spec.is_deleted)}" if new_record else "")
            + "\n  from snapshotted_data\n"
            f"  left join deletes_source_data as source_data on {join}\n"
            "  where source_data.dbt_unique_key_1 is null"
            + (f"\n    and not ({deleted_now})" if new_record else "")
            + "\n)"
        )
        union.append("select * from deletes")
    if new_record:
        source_columns = [n for n, _t in _columns(ctx, f"select * from ({sql}) subq")]
        picked = ", ".join(
            f"snapshotted_data.{q(c)}" if c in target_columns else f"source_data.{q(c)}"
            for c in source_columns
        )
        unique = ", ".join(
            f"snapshotted_data.dbt_unique_key_{i} as dbt_unique_key_{i}"
            for i in range(1, len(spec.unique_key) + 1)
        )
        parts[-1] += ","
        parts.append(
            f"deletion_records as (\n  select 'insert' as dbt_change_type, {picked}, {unique},\n"
            f"    {now} as {q(spec.valid_from)}, {now} as {q(spec.updated_at_column)},\n"
            f"    snapshotted_data.{q(spec.valid_to)} as {q(spec.valid_to)},\n"
            f"    {_hash([q(spec.scd_id), now])} as {q(spec.scd_id)},\n"
            f"    'True' as {q(spec.is_deleted)}\n"
            "  from snapshotted_data\n"
            f"  left join deletes_source_data as source_data on {join}\n"
            f"  where source_data.dbt_unique_key_1 is null and not ({deleted_now})\n)"
        )
        union.append("select * from deletion_records")
    return "\n".join(parts) + "\n" + "\nunion all by name\n".join(union)


def _next_version(
    ctx: RunContext, spec: SnapshotSpec, model: Model, sql: str, staging: str, now: str
) -> None:
    """Build into ``staging`` the live history with this run's changes applied."""
    engine = ctx.engine
    q = quote
    target = dict(_columns(ctx, model.relation))
    meta = [spec.scd_id, spec.valid_to] + (
        [spec.is_deleted] if spec.hard_deletes == "new_record" else []
    )
    missing = [c for c in meta if c not in target]
    if missing:
        raise CadenceError(
            f"{model.relation} is not a snapshot of this kind: it has no column "
            + ", ".join(missing),
            file=model.path,
            hint="drop the table to start the history again, or restore its meta columns",
        )
    changes = engine.staging_relation(model.schema, model.identifier + "__changes", ctx.run_id)
    engine.create_table_as(changes, changes_sql(ctx, spec, sql, model.relation, now, list(target)))
    engine.create_table_as(staging, f"select * from {model.relation}")
    internal = {"dbt_change_type"} | {
        f"dbt_unique_key_{i}" for i in range(1, len(spec.unique_key) + 1)
    }
    inserted = [(n, t) for n, t in _columns(ctx, changes) if n not in internal]
    for name, type_ in inserted:
        if name not in target:  # a column the query gained: old rows hold null (as dbt)
            engine.execute(f"alter table {staging} add column {q(name)} {type_}")
    engine.execute(
        f"update {staging} as t set {q(spec.valid_to)} = s.{q(spec.valid_to)}\n"
        f"from {changes} as s\n"
        f"where s.{q(spec.scd_id)}::text = t.{q(spec.scd_id)}::text\n"
        "  and s.dbt_change_type::text in ('update', 'delete')\n"
        f"  and {_current_sql(spec, 't.' + q(spec.valid_to))}"
    )
    cols = ", ".join(q(n) for n, _t in inserted)
    engine.execute(
        f"insert into {staging} ({cols})\n"
        f"select {cols} from {changes} where dbt_change_type::text = 'insert'"
    )
    engine.drop(changes, "table")
