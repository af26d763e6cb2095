"""Incremental models and the state mirror on Spark, where parquet tables take no DELETE/MERGE.

Input: a tested batch of new rows (a staging version) -> output: the rows appended to the live
version's physical table as one partition (``_cadence_batch``), read through a view that keeps the
newest row per ``unique_key``. Invariants: the first incremental build after a full one copies the
table into an append layout as a new version (switched with ALTER VIEW); every ``compact_every``
batches the deduplicated rows are compacted into a new version the same way; a batch becomes
visible when its partition is registered, never half. ``incremental_strategy: merge`` runs MERGE
INTO instead, for table formats that support it (Delta, Iceberg; not available here, untested).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import cadence.engines.spark_versions as versions
from cadence.engines.base import EngineError
from cadence.engines.spark_versions import q, split

SparkEngine = Any  # cadence.engines.spark.SparkEngine, which imports this module

BATCH = "_cadence_batch"


def live_view_sql(schema: str, physical: str, unique_key: Sequence[str]) -> str:
    body = f"select * except ({BATCH}) from {q(schema, physical)}"
    if unique_key:
        keys = ", ".join(f"`{k}`" for k in unique_key)
        body += f" qualify row_number() over (partition by {keys} order by {BATCH} desc) = 1"
    return body


def append(
    engine: SparkEngine, live: str, staging: str, unique_key: tuple[str, ...], run_id: str
) -> None:
    schema, name = split(live)
    schema = schema or engine.shared.warehouse.schema
    _s, batch_table = split(staging)
    record = versions.read_one(engine.state, schema, name)
    if record is None or record.physical is None:
        raise _error(f"{live} has no recorded version; run with --full-refresh")
    batch = run_id.lower()
    if engine.shared.warehouse.incremental_strategy == "merge":
        on = " and ".join(f"t.`{k}` = s.`{k}`" for k in unique_key) or "false"
        engine._sql(
            f"merge into {q(schema, record.physical)} t using {q(schema, batch_table)} s on {on} "
            "when matched then update set * when not matched then insert *"
        )
        engine._drop_quietly(q(schema, batch_table), "table")
        return
    compact_every = engine.shared.warehouse.compact_every
    if record.layout == "append" and record.batches + 1 < compact_every:
        engine._sql(
            f"insert into {q(schema, record.physical)} "
            f"select *, '{batch}' as {BATCH} from {q(schema, batch_table)}"
        )
        engine._drop_quietly(q(schema, batch_table), "table")
        engine._begin()
        versions.write(engine.state, _with(record, batches=record.batches + 1))
        return
    # a new version: the current rows (deduplicated) as one batch, this run's rows as the next
    physical = versions.version_name(name, run_id, salt="appended")
    current = (
        f"select * from {q(schema, name)}"  # the live view: deduplicated, batch column hidden
        if record.layout == "append"
        else f"select * from {q(schema, record.physical)}"
    )
    engine._sql(
        f"create table {q(schema, physical)} using parquet partitioned by ({BATCH}) as "
        f"select *, '0' as {BATCH} from ({current}) "
        f"union all select *, '{batch}' as {BATCH} from {q(schema, batch_table)}"
    )
    engine._built(schema, physical)
    note = engine.note_of(schema, batch_table)
    versions.add_intent(
        engine.journal, schema, name, physical, record.physical, note, layout="append"
    )
    engine._switch_view(schema, name, live_view_sql(schema, physical, unique_key), exists=True)
    assert engine._unit is not None
    engine._unit.swapped.append((schema, name, physical))
    engine._drop_quietly(q(schema, batch_table), "table")
    engine._begin()
    versions.write(
        engine.state,
        versions.Published(schema, name, "table", physical, record.physical, "append", 2),
    )
    engine._superseded(schema, record.previous)


def _with(record: versions.Published, **changes: object) -> versions.Published:
    from dataclasses import replace

    return replace(record, **changes)  # type: ignore[arg-type]


def _error(message: str) -> Exception:
    return EngineError(message)


def mirror(engine: SparkEngine, tables: Sequence[str]) -> None:
    """Publish a copy of each local ``_cadence`` table into Spark's ``_cadence`` schema, the way
    models are published (new version, ALTER VIEW, the version before the previous dropped).
    Copies are numbered ``<table>__g<n>`` past the highest there, so every run's mirror is newer
    than the last one (run ids need not sort in run order: two ``--at`` runs at one time)."""
    schema = versions.SCHEMA
    engine.create_schema(schema)
    existing = {str(r[1]) for r in engine._collect(f"show tables in {q(None, schema)}")}
    for table in tables:
        local = engine.state.con.sql(f"select * from {schema}.{table}")
        columns = list(local.columns)
        arrow: Any = local.to_arrow_table()
        if hasattr(arrow, "read_all"):
            arrow = arrow.read_all()
        copies = sorted((_generation(t, table), t) for t in existing if _generation(t, table))
        physical = f"{table}__g{(copies[-1][0] if copies else 0) + 1:08d}"
        if arrow.num_rows:
            frame = engine.spark.createDataFrame(arrow)
            frame.write.format("parquet").saveAsTable(q(schema, physical))
        else:
            cols = ", ".join(f"cast(null as string) as `{c}`" for c in columns)
            engine._sql(
                f"create table {q(schema, physical)} using parquet as select {cols} where false"
            )
        engine._switch_view(
            schema, table, f"select * from {q(schema, physical)}", exists=table in existing
        )
        # oldest first (copies named by run id, as earlier versions did, before numbered ones)
        older = sorted(t for t in existing if t.startswith(f"{table}__v")) + [t for _, t in copies]
        for old in older[:-1]:  # keep the previous copy for readers that just resolved it
            engine._drop_quietly(q(schema, old), "table")


def _generation(name: str, table: str) -> int:
    match = re.fullmatch(rf"{re.escape(table)}__g(\d+)", name)
    return int(match.group(1)) if match else 0
