"""Incremental builds of an existing table: read what arrived, check it, merge it in.

Input: a ``CompiledModel`` compiled with ``is_incremental()`` true, the live relation and an
``Engine`` inside the publish transaction -> output: the staging relation of new rows, and the
test SQL that judges the table as it will be after the merge. Everything here reads in
proportion to the new rows: the watermark is a constant the engine pushes into the source scan
(zone maps skip what was loaded before), and a ``unique`` test looks up only the values that
arrived (a hash built on the new rows, probed by the live column). The merge itself (delete
rows matching on ``unique_key``, insert the new rows) is ``Engine.append``, in the same
transaction as the state record, so readers see the old or the new table, never half. Before
it, ``on_schema_change`` settles columns that differ between the new rows and the table, as
dbt does: ``ignore`` (default) drops new columns, ``fail`` stops the build naming them,
``append_new_columns`` adds them, ``sync_all_columns`` also drops the table's columns the model
no longer has; ``incremental_strategy: append`` inserts without deleting on ``unique_key``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cadence.build.compiler import CompiledModel
from cadence.build.datatests import failing_rows_sql
from cadence.engines.base import Engine, EngineError
from cadence.load.parser import Model
from cadence.load.relations import quote
from cadence.load.testspecs import DataTest


def stage(engine: Engine, compiled: CompiledModel, staging: str) -> int | None:
    """Build the model's rows (an incremental run: the new rows) into ``staging``; returns
    their count when the engine knows it."""
    bound = None
    if compiled.watermark is not None:
        bound = engine.watermark_bound(compiled.watermark, compiled.this)
    return engine.create_table_as(staging, compiled.bound_sql(bound))


def merged_unique_sql(
    test: DataTest, staging: str, live: str, unique_key: Sequence[str]
) -> str | None:
    """Failing values of a ``unique`` test over the table as the merge will leave it:
    values of new rows held more than once by the new rows plus the live rows the merge keeps
    (those not replaced on ``unique_key``). Values that did not arrive were checked when they
    did. ``None``: the test is not a ``unique`` test."""
    if test.kind != "unique":
        return None
    column = test.column or str(test.args.get("column_name"))
    col = quote(column)
    new = f"(select * from {staging} where {test.where})" if test.where else staging
    old = f"(select * from {live} where {test.where})" if test.where else live
    kept = f"t.{col} in (select {col} from {new})"
    if unique_key:
        if list(unique_key) == [column]:
            kept = "false"  # every live row holding a new value is replaced by it
        else:
            match = " and ".join(f"s.{quote(k)} = t.{quote(k)}" for k in unique_key)
            kept += f" and not exists (select 1 from {staging} as s where {match})"
    return (
        "select v as unique_field, count(*) as n_records from (\n"
        f"  select {col} as v from {new} where {col} is not null\n"
        f"  union all select t.{col} from {old} as t where {kept}\n"
        ") as merged group by v having count(*) > 1"
    )


def checked_sql(
    test: DataTest,
    staging: str,
    merge_into: str | None,
    model: Model,
    relation_of: Callable[[str], str],
) -> str | None:
    """The failing-rows query of ``test`` on a build staged in ``staging``; with
    ``merge_into`` (an incremental run) a ``unique`` test judges the merged table."""
    if merge_into is not None and test.kind == "unique":
        return merged_unique_sql(test, staging, merge_into, model.config.unique_key)
    return failing_rows_sql(test, staging, relation_of)


def merge_keys(model: Model) -> tuple[str, ...]:
    """The columns an incremental run replaces rows on: none for ``append``, as in dbt."""
    if model.config.extra.get("incremental_strategy") == "append":
        return ()
    return model.config.unique_key


def _columns(engine: Engine, relation: str) -> list[tuple[str, str]]:
    return [(str(r[0]), str(r[1])) for r in engine.query(f"describe {relation}")]


def settle_columns(engine: Engine, model: Model, staging: str) -> None:
    """Apply the model's ``on_schema_change`` before its new rows are merged into the table."""
    policy = model.config.extra.get("on_schema_change") or "ignore"
    live = dict(_columns(engine, model.relation))
    new = dict(_columns(engine, staging))
    added = [c for c in new if c not in live]
    removed = [c for c in live if c not in new]
    if not added and not removed:
        return
    if policy == "fail":
        raise EngineError(
            "on_schema_change: fail -- the model's columns changed "
            f"(new: {', '.join(added) or 'none'}; gone: {', '.join(removed) or 'none'}); "
            "run with --full-refresh to rebuild it, or set on_schema_change"
        )
    if policy in ("append_new_columns", "sync_all_columns"):
        for column in added:
            engine.execute(f"alter table {model.relation} add column {quote(column)} {new[column]}")
        added = []
    if policy == "sync_all_columns":
        for column in removed:
            engine.execute(f"alter table {model.relation} drop column {quote(column)}")
    for column in added:  # ignore: the table keeps its columns
        engine.execute(f"alter table {staging} drop column {quote(column)}")
