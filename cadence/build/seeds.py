"""Load a seed: a CSV file from the project, published as a table like a model.

Input: the ``RunContext``, a ``Seed`` and its BUILD ``Decision`` -> output: its ``ModelResult``
(``kind="seed"``). The CSV is checked first (a row whose width differs from the header's is an
error naming the file and row, ``seedtypes``), then loaded into a staging relation with the
seed's declared column types and delimiter -- in a dbt project with every column typed as
dbt-duckdb types it -- and replaces the live table in one transaction with the seed's build
record (its digest stands for the SQL hash); a load error rolls back, keeps the previous table
live and is recorded on its own. Used by ``runner`` for every seed decision of a plan.
"""

from __future__ import annotations

import time
from pathlib import Path

from cadence.build.context import ModelResult, RunContext, record_failure, swap
from cadence.build.seedtypes import read_columns
from cadence.disk import files
from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError
from cadence.load.parser import Seed
from cadence.plan.due import Decision
from cadence.plan.history import BuildRecord
from cadence.record import segmentkeys
from cadence.record.state import record_build


def load_csv_into(engine: Engine, root: str, seed: Seed, relation: str, dbt: bool = False) -> None:
    """The seed's CSV as the table ``relation``, typed as a seed is -- in a dbt project as
    dbt-duckdb types it -- once its rows are checked (also what a unit test's given rows of a
    seed are cast to, ``unittests``); a malformed row is a ``CadenceError`` naming file and row."""
    path = Path(root) / seed.path
    try:
        data = files.read_bytes(Path(root), path, limit=None)
    except CadenceError as exc:
        exc.file = seed.path
        raise
    columns = read_columns(data, seed.path, seed.delimiter, seed.column_types, infer=dbt)
    types = dict(columns) if dbt else seed.column_types
    engine.load_csv(relation, str(path), types, seed.delimiter, exact=dbt)


def load_seed(ctx: RunContext, seed: Seed, decision: Decision) -> ModelResult:
    started = time.perf_counter()
    schema = seed.schema
    staging = ctx.engine.staging_relation(schema, seed.table, ctx.run_id)
    try:
        with ctx.engine.transaction():
            load_csv_into(ctx.engine, ctx.project.root, seed, staging, ctx.project.config.is_dbt)
            rows = ctx.engine.row_count(staging)
            swap(ctx, staging, seed.relation, schema, seed.table)
            # a seed records no members: rows saying its table is a segment's are untrue now
            table = segmentkeys.table_of(schema, seed.table)
            segmentkeys.forget(
                ctx.engine, ctx.segment_keys.untrue(seed.name, table, None), ctx.segment_keys
            )
            duration = time.perf_counter() - started
            ctx.new_states[seed.name] = record_build(
                ctx.engine,
                BuildRecord(
                    ctx.run_id,
                    seed.name,
                    "seed",
                    None,
                    ctx.now,
                    "success",
                    decision.reason,
                    rows,
                    duration,
                    seed.digest,
                    None,
                ),
                ctx.state.of(seed.name),
            )
        ctx.relations[(schema, seed.table)] = "table"
        return ModelResult(seed.name, "success", decision.reason, rows, duration, kind="seed")
    except (EngineError, CadenceError) as exc:
        message = exc.render() if isinstance(exc, CadenceError) else f"{exc}"
        result = ModelResult(
            seed.name,
            "error",
            decision.reason,
            None,
            time.perf_counter() - started,
            error=f"seed {seed.path} failed to load: {message}",
            kind="seed",
        )
        record_failure(ctx, decision, result, None)
        return result
