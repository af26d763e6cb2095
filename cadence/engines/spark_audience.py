"""A channel x segment audience computed in Spark and kept beside the local state, where
activation diffs it against what was delivered; only what changed crosses over.

Input: a segment's audience SQL (DuckDB SQL; one row per key) and its name -> output: a local
DuckDB table with the audience's rows. Invariants:
- each freeze writes the audience into a Spark snapshot ``_cadence_audience_<name hash>_g<n>``;
  the rows that differ from the previous snapshot (``EXCEPT`` both ways, in Spark) are the only
  ones copied, and are applied to the local copy in the caller's local transaction together
  with the record of which snapshot that copy matches: a kill -9 before that commit leaves the
  old copy, the old record and an unrecorded snapshot, which the next run drops;
- the snapshot a record replaces is dropped after the commit (or, killed, by the next run);
- without a matching previous snapshot (the first delivery, or the audience's SQL or columns
  changed) the whole audience is copied, as it would be anyway;
- read-only (``export --dry-run``): the changes are applied to a temporary copy; nothing is
  written in Spark or in the state file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from cadence.engines.spark_versions import SCHEMA, q

SparkEngine = Any  # cadence.engines.spark.SparkEngine, which imports this module

TABLE = f"{SCHEMA}.spark_audiences"
DDL = f"""create table if not exists {TABLE} (
    name varchar, physical varchar, signature varchar, generation bigint)"""
SNAPSHOT_RE = re.compile(r"^_cadence_audience_[0-9a-f]{10}_g\d+$")
GONE = "_cadence_gone"


@dataclass(frozen=True)
class Snapshot:
    """The Spark snapshot the local copy of one audience matches."""

    name: str
    physical: str
    signature: str
    generation: int


def slug(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:10]


def local_table(name: str) -> str:
    return f'{SCHEMA}."spark_audience_{slug(name)}"'


def ensure(store: Any) -> None:
    store.execute(DDL)


def recorded(engine: SparkEngine) -> dict[str, Snapshot]:
    if (SCHEMA, "spark_audiences") not in engine.state.relations():
        return {}  # a state file from before audiences were kept (read-only: not created)
    rows = engine.state.query(f"select name, physical, signature, generation from {TABLE}")
    return {r[0]: Snapshot(r[0], r[1], r[2], int(r[3])) for r in rows}


def orphans(tables: list[tuple[str, str]], keep: set[str]) -> list[tuple[str, str]]:
    """Audience snapshots in ``tables`` (schema, name) that no record names."""
    return [(s, t) for s, t in tables if SNAPSHOT_RE.match(t.lower()) and t.lower() not in keep]


def localize(engine: SparkEngine, sql: str, name: str) -> str:
    """The audience ``sql`` as a local relation (see the module docstring)."""
    spark_sql = engine._spark_sql(sql)
    signature = hashlib.sha256(
        (spark_sql + "\n" + _columns(engine, spark_sql)).encode()
    ).hexdigest()
    local = local_table(name)
    last = recorded(engine).get(name)
    exists = (SCHEMA, f"spark_audience_{slug(name)}") in engine.state.relations()
    # not comparable (the audience's SQL or columns changed): copy the whole audience
    previous = last if last is not None and last.signature == signature and exists else None
    schema = engine.shared.warehouse.schema
    if engine.state_read_only:
        return _preview(engine, spark_sql, name, local, previous, schema)
    generation = (last.generation if last else 0) + 1
    physical = f"_cadence_audience_{slug(name)}_g{generation}"
    target = q(schema, physical)
    engine._sql(f"drop table if exists {target}")  # left by an attempt killed before its commit
    engine._sql(f"create table {target} using parquet as {spark_sql}")
    engine._built(schema, physical)
    if previous is None:
        rows = fetch(engine, f"select * from {target}")
    else:
        rows = fetch(engine, _changes_sql(target, q(schema, previous.physical)))
    own = engine._unit is None
    if own:
        engine.state.execute("begin transaction")
    else:
        engine._begin()  # the publish unit's local transaction: commits with the freeze
    try:
        _apply(engine, rows, local, full=previous is None)
        engine.state.execute(f"delete from {TABLE} where name = ?", (name,))
        engine.state.execute(
            f"insert into {TABLE} values (?, ?, ?, ?)", (name, physical, signature, generation)
        )
        if own:
            engine.state.execute("commit")
    except BaseException:
        if own:
            engine._rollback()
        raise
    if last is not None:
        if own:
            engine._drop_quietly(q(schema, last.physical), "table")
        else:
            engine._superseded(schema, last.physical)  # dropped once the unit commits
    return local


def _columns(engine: SparkEngine, spark_sql: str) -> str:
    """The audience's column names and types, as Spark analyses the query (nothing runs)."""
    frame = engine._sql(spark_sql)
    try:
        return str(frame.schema.simpleString())
    except Exception as exc:  # pyspark raises many classes; all are the engine's word
        raise engine.engine_error(exc) from None


def _changes_sql(new: str, old: str) -> str:
    """Rows of ``new`` not in ``old`` (entered, or a column changed), and the rows of ``old``
    whose key is not in ``new`` (gone), flagged in ``_cadence_gone``; Spark SQL."""
    return (
        f"select false as {GONE}, n.* from (select * from {new} except select * from {old}) as n "
        f"union all select true as {GONE}, o.* from {old} as o "
        f"left anti join {new} as x on o.`key` = x.`key`"
    )


def fetch(engine: SparkEngine, statement: str) -> Any:
    """The rows of a Spark SQL query as an Arrow table."""
    frame = engine._sql(statement)
    try:
        return frame.toArrow()
    except Exception as exc:
        raise engine.engine_error(exc) from None


def _apply(engine: SparkEngine, rows: Any, local: str, *, full: bool) -> None:
    view = f"_cadence_rows_{id(rows)}"
    con = engine.state.con
    con.register(view, rows)
    try:
        if full:
            engine.state.execute(f'create or replace table {local} as select * from "{view}"')
            return
        engine.state.execute(f'delete from {local} where key in (select key from "{view}")')
        engine.state.execute(
            f'insert into {local} by name select * exclude ({GONE}) from "{view}" where not {GONE}'
        )
    finally:
        con.unregister(view)


def _preview(
    engine: SparkEngine,
    spark_sql: str,
    name: str,
    local: str,
    previous: Snapshot | None,
    schema: str,
) -> str:
    """Read-only: the current audience in a temporary table (the recorded copy with the
    changes since its snapshot applied, or the whole audience)."""
    temp = f'"_cadence_preview_{slug(name)}"'
    view = f"_cadence_rows_{slug(name)}"
    con = engine.state.con
    if previous is None:
        rows = fetch(engine, spark_sql)
        body = f'select * from "{view}"'
    else:
        rows = fetch(engine, _changes_sql(f"({spark_sql})", q(schema, previous.physical)))
        body = (
            f'select * from {local} where key not in (select key from "{view}") '
            f'union all by name select * exclude ({GONE}) from "{view}" where not {GONE}'
        )
    con.register(view, rows)
    try:
        engine.state.execute(f"create or replace temp table {temp} as {body}")
    finally:
        con.unregister(view)
    return temp


__all__ = ["Snapshot", "ensure", "fetch", "local_table", "localize", "orphans", "recorded"]
