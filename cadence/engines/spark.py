"""Spark SQL through pyspark (Spark Connect, or a local session): the engine for projects that
outgrow one machine.

Input: DuckDB SQL (transpiled by ``spark_dialect``) -> output: rows, and models published as views
over versioned parquet tables. Invariants:
- a table is built into ``<identifier>__v<run id>``, tested there, and the live name is switched
  onto it with ``ALTER VIEW`` (``CREATE VIEW`` only the first time; never ``CREATE OR REPLACE``,
  which drops then creates); the version before the previous one is dropped after the switch, so a
  reader that resolved the previous version a moment ago still finds it;
- state lives in a local DuckDB file (``warehouse.path``): opening the engine never starts a JVM or
  connects; Spark is reached on the first statement that needs it (``spark_session``, shared by
  every cursor);
- on open for a run, swaps announced but never recorded (kill -9) are reconciled with what the
  live views point at (a segment's membership changes, rolled back with the kill, are recorded
  from the adopted version and the one it replaced), and versions nothing uses are dropped
  (``spark_recovery``);
- audiences for deliveries are computed in Spark and only their changes copied beside the
  state (``spark_audience``);
- after a run the ``_cadence`` tables are mirrored into Spark (schema ``_cadence``) for SQL access.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cadence.engines.spark_audience as spark_audience
import cadence.engines.spark_recovery as recovery
import cadence.engines.spark_session as spark_session
import cadence.engines.spark_versions as versions
from cadence.engines.base import Engine, EngineError, SegmentNote
from cadence.engines.duckdb import DuckDBEngine, read_file
from cadence.engines.spark_versions import q, split
from cadence.errors import CadenceError
from cadence.load.projectconfig import WarehouseConfig

BATCH = "_cadence_batch"
MIRRORED = ("runs", "model_builds", "model_state")
_DUCK_TO_SPARK = {
    "BIGINT": "bigint",
    "INTEGER": "int",
    "SMALLINT": "smallint",
    "TINYINT": "tinyint",
    "HUGEINT": "decimal(38,0)",
    "UBIGINT": "decimal(20,0)",
    "UINTEGER": "bigint",
    "DOUBLE": "double",
    "FLOAT": "float",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
    "VARCHAR": "string",
}


def spark_type(duck: str) -> str:
    upper = duck.upper()
    if upper.startswith("DECIMAL"):
        return duck.lower()
    return _DUCK_TO_SPARK.get(upper, "string")


@dataclass
class _Unit:
    """One publish unit (the runner's ``transaction()``): versions built, the swap done."""

    built: list[tuple[str, str]] = field(default_factory=list)
    began: bool = False
    swapped: list[tuple[str, str, str]] = field(default_factory=list)  # schema, name, physical
    superseded: list[tuple[str, str]] = field(default_factory=list)
    segments: dict[tuple[str, str], SegmentNote] = field(default_factory=dict)  # by staging


class SparkEngine(Engine):
    name = "spark"

    def __init__(
        self,
        shared: spark_session.Session,
        state: DuckDBEngine,
        root_handle: bool = True,
        journal: DuckDBEngine | None = None,
    ) -> None:
        self.shared = shared
        self.state = state
        # the autocommit handle intents are written on: each thread's cursor has its own (a
        # DuckDB handle used by two threads at once refuses: "connection is busy")
        self.journal = journal if journal is not None else shared.journal
        self._root_handle = root_handle
        self._unit: _Unit | None = None
        self._reconciling = False

    @classmethod
    def open(cls, warehouse: WarehouseConfig, root: Path, *, read_only: bool = False) -> Engine:
        local = replace(warehouse, engine="duckdb", settings={}, extensions=(), threads=1)
        state = DuckDBEngine.open(local, root, read_only=read_only)
        journal = state if read_only else state.cursor()
        engine = cls(spark_session.Session(warehouse, root, journal), state)
        if not read_only:
            versions.ensure(state)
            spark_audience.ensure(state)
            recovery.reconcile(engine)
        return engine

    # -- the session ---------------------------------------------------------------------
    @property
    def spark(self) -> Any:
        shared = self.shared
        with shared.lock:
            if shared.spark is None:
                shared.spark = spark_session.connect(shared.warehouse, shared.root)
                fresh = True
            else:
                fresh = False
        if fresh and not self.state_read_only and not self._reconciling:
            recovery.drop_orphans(self)
        return shared.spark

    @property
    def state_read_only(self) -> bool:
        return self.journal is self.state

    def _sql(self, statement: str, params: Sequence[Any] = ()) -> Any:
        try:
            return self.spark.sql(statement, args=list(params) if params else None)
        except CadenceError:
            raise
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # pyspark raises many classes; all are the engine's word
            raise spark_session.engine_error(exc, self.shared.warehouse) from None

    def engine_error(self, exc: BaseException) -> Exception:
        """What pyspark raised, as cadence reports it."""
        return spark_session.engine_error(exc, self.shared.warehouse)

    def _collect(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        frame = self._sql(statement, params)
        try:
            return [tuple(r) for r in frame.collect()]
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            raise spark_session.engine_error(exc, self.shared.warehouse) from None

    def _spark_sql(self, sql: str) -> str:
        from cadence.engines.spark_dialect import DialectError, transpile  # sqlglot: lazily

        try:
            return transpile(self._external(sql))
        except DialectError as exc:
            raise EngineError(f"cannot transpile to Spark SQL: {exc}") from None

    def _external(self, sql: str) -> str:
        """``from 'file.csv'`` (a source's external_location) -> a parquet copy of that file in
        the warehouse schema, named by the file's content stamp (a changed file, a new copy)."""

        def load(match: re.Match[str]) -> str:
            path = match.group(2).replace("''", "'")
            if not path.lower().endswith((".csv", ".parquet")) or not Path(path).is_file():
                return match.group(0)
            info = Path(path).stat()
            stamp = hashlib.sha256(f"{path}|{info.st_size}|{info.st_mtime_ns}".encode()).hexdigest()
            table = "_ext_" + re.sub(r"\W", "_", Path(path).stem).lower() + "_" + stamp[:10]
            schema = self.shared.warehouse.schema
            with self.shared.lock:
                known = table in self.shared.external
            if not known:
                self.create_schema(schema)
                if not self.spark.catalog.tableExists(f"{schema}.{table}"):
                    frame = self._frame_of_file(path, {})
                    try:
                        frame.write.format("parquet").mode("ignore").saveAsTable(q(schema, table))
                    except Exception as exc:
                        raise spark_session.engine_error(exc, self.shared.warehouse) from None
                with self.shared.lock:
                    self.shared.external.add(table)
            return f'{match.group(1)}"{schema}"."{table}"'

        return re.sub(r"(\b(?:from|join)\s+)'((?:[^']|'')*)'", load, sql, flags=re.I)

    def _frame_of_file(
        self, path: str, column_types: dict[str, str], delimiter: str | None = None
    ) -> Any:
        """A local CSV/parquet file as a Spark DataFrame with an explicit schema (DuckDB reads
        it here, with the seed's column types, so both engines see the same types)."""
        columns, types, table = read_file(path, column_types, delimiter)
        schema = ", ".join(f"`{n}` {spark_type(t)}" for n, t in zip(columns, types))
        try:
            return self.spark.createDataFrame(table, schema=schema)
        except Exception as exc:
            raise spark_session.engine_error(exc, self.shared.warehouse) from None

    # -- Engine --------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._sql(self._spark_sql(sql), params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._collect(self._spark_sql(sql), params)

    def state_store(self) -> Engine:
        # inside a publish unit, state writes join the one local transaction that commits
        # after the swap (membership changes, the relation record, the build record)
        if self._unit is not None:
            self._begin()
        return self.state

    def relations(self) -> dict[tuple[str, str], str]:
        """What cadence published (local record) and the local state tables: no connection."""
        out = {k: v for k, v in self.state.relations().items() if k[0] == versions.SCHEMA}
        if (versions.SCHEMA, "spark_relations") in out:
            for key, record in versions.read_all(self.state).items():
                out[key] = record.kind
        return out

    @contextmanager
    def transaction(self) -> Iterator[None]:
        unit = self._unit = _Unit()
        try:
            yield
        except BaseException:
            if unit.began:
                self._rollback()
            for schema, physical in unit.built:
                if (schema, physical) not in {(s, p) for s, _n, p in unit.swapped}:
                    self._drop_quietly(q(schema, physical), "table")
            raise
        else:
            if unit.began:
                try:
                    self.state.execute("commit")
                except EngineError:
                    self._rollback()
                    raise
            for schema, name, physical in unit.swapped:
                versions.clear_intent(self.journal, schema, name, physical)
            for schema, physical in unit.superseded:
                self._drop_quietly(q(schema, physical), "table")
        finally:
            self._unit = None

    def _rollback(self) -> None:
        try:
            self.state.execute("rollback")
        except EngineError:
            pass

    def _begin(self) -> None:
        if self._unit is not None and not self._unit.began:
            self.state.execute("begin transaction")
            self._unit.began = True

    def close(self) -> None:
        try:
            # a run that reached Spark wrote state: mirror it (an idle run never connects)
            if self._root_handle and self.shared.spark is not None and not self.state_read_only:
                self._mirror()
        finally:
            if self.journal is not self.state and (
                self._root_handle or self.journal is not self.shared.journal
            ):
                self.journal.close()
            self.state.close()

    def cursor(self) -> SparkEngine:
        """A handle for another thread: its own state cursor and its own journal cursor, the
        Spark session shared (``Session``)."""
        if self.shared.spark is None:
            _ = self.spark  # one session for all threads: open it before they race
        state = self.state.cursor()
        journal = state if self.state_read_only else self.state.cursor()
        return SparkEngine(self.shared, state, root_handle=False, journal=journal)

    def interrupt(self) -> None:
        if self.shared.spark is not None:
            try:
                self.shared.spark.interruptAll()
            except Exception:  # noqa: BLE001 - best effort while stopping
                pass

    # DDL
    def create_schema(self, schema: str) -> None:
        self._sql(f"create schema if not exists {q(None, schema)}")

    def staging_relation(self, schema: str, identifier: str, run_id: str) -> str:
        physical = versions.version_name(identifier, run_id)
        return f'"{schema}"."{physical}"'

    def create_table_as(self, relation: str, sql: str) -> int | None:
        schema, name = split(relation)
        self._sql(f"create table {q(schema, name)} using parquet as\n{self._spark_sql(sql)}")
        self._built(schema, name)
        return None

    def _built(self, schema: str | None, name: str) -> None:
        if self._unit is not None:
            self._unit.built.append((schema or self.shared.warehouse.schema, name))

    def create_view_as(self, relation: str, sql: str) -> None:
        schema, name = split(relation)
        schema = schema or self.shared.warehouse.schema
        record = versions.read_one(self.state, schema, name)
        self._switch_view(schema, name, self._spark_sql(sql), exists=record is not None)
        self._begin()
        versions.write(self.state, versions.Published(schema, name, "view"))
        if record is not None and record.kind == "table":
            self._superseded(schema, record.physical, record.previous)

    def _switch_view(self, schema: str, name: str, body: str, *, exists: bool) -> None:
        """ALTER VIEW when the name exists, CREATE VIEW the first time (never create-or-replace:
        it drops, then creates, and a reader in between fails)."""
        target = q(schema, name)
        if exists:
            self._sql(f"alter view {target} as {body}")
            return
        try:
            self._sql(f"create view {target} as {body}")
        except EngineError as exc:
            if "already exists" not in str(exc).lower() and "ALREADY_EXISTS" not in str(exc):
                raise
            self._sql(f"alter view {target} as {body}")

    def _superseded(self, schema: str, *physicals: str | None) -> None:
        for physical in physicals:
            if physical and self._unit is not None:
                self._unit.superseded.append((schema, physical))

    def publish(
        self, staging: str, live: str, schema: str, identifier: str, existing: str | None
    ) -> None:
        _s, physical = split(staging)
        record = versions.read_one(self.state, schema, identifier)
        previous = record.physical if record is not None and record.kind == "table" else None
        note = self.note_of(schema, physical)
        versions.add_intent(self.journal, schema, identifier, physical, previous, note)
        if record is not None and record.kind == "table":
            self._switch_view(
                schema, identifier, f"select * from {q(schema, physical)}", exists=True
            )
        else:
            if record is None and existing == "table":
                self._drop_quietly(q(schema, identifier), "table")
            self._switch_view(
                schema,
                identifier,
                f"select * from {q(schema, physical)}",
                exists=record is not None,
            )
        assert self._unit is not None, "publish runs inside transaction()"
        self._unit.swapped.append((schema, identifier, physical))
        self._begin()
        versions.write(
            self.state, versions.Published(schema, identifier, "table", physical, previous)
        )
        if record is not None:
            self._superseded(schema, record.previous)

    def segment_staged(self, staging: str, note: SegmentNote) -> None:
        """Kept with the swap's intent, so a kill -9 between the swap and the local commit
        (which rolls the membership rows back) is followed by recording them again."""
        if self._unit is not None:
            schema, physical = split(staging)
            self._unit.segments[(schema or self.shared.warehouse.schema, physical)] = note

    def note_of(self, schema: str, staging: str) -> SegmentNote | None:
        return self._unit.segments.get((schema, staging)) if self._unit is not None else None

    def localize(self, sql: str, name: str) -> str:
        """The audience ``sql``, computed in Spark, as a local table beside the state: only
        the rows that changed since the last freeze are copied (``spark_audience``)."""
        return spark_audience.localize(self, sql, name)

    def append(self, live: str, staging: str, unique_key: Sequence[str], run_id: str) -> None:
        from cadence.engines.spark_incremental import append

        append(self, live, staging, tuple(unique_key), run_id)

    def drop(self, relation: str, kind: str) -> None:
        schema, name = split(relation)
        schema = schema or self.shared.warehouse.schema
        record = versions.read_one(self.state, schema, name)
        if record is None:
            self._sql(f"drop {'view' if kind == 'view' else 'table'} if exists {q(schema, name)}")
            return
        self._sql(f"drop view if exists {q(schema, name)}")
        self._begin()
        versions.remove(self.state, schema, name)
        self._superseded(schema, record.physical, record.previous)

    def _drop_quietly(self, relation: str, kind: str) -> None:
        try:
            self._sql(f"drop {kind} if exists {relation}")
        except EngineError:
            pass  # an orphan now; the next run's cleanup drops it

    def rename(self, relation: str, new_identifier: str) -> None:
        schema, _name = split(relation)
        self._sql(f"alter table {q(schema, _name)} rename to {q(schema, new_identifier)}")

    def insert_into(self, relation: str, sql: str) -> None:
        schema, name = split(relation)
        self._sql(f"insert into {q(schema, name)} {self._spark_sql(sql)}")

    def delete_matching(self, relation: str, source: str, keys: Sequence[str]) -> None:
        raise EngineError("DELETE is not supported on parquet tables; cadence appends instead")

    def load_csv(
        self,
        relation: str,
        path: str,
        column_types: dict[str, str],
        delimiter: str | None = None,
        exact: bool = False,
    ) -> None:
        schema, name = split(relation)
        frame = self._frame_of_file(path, column_types, delimiter)
        try:
            frame.write.format("parquet").saveAsTable(f"{q(schema, name)}")
        except Exception as exc:
            raise spark_session.engine_error(exc, self.shared.warehouse) from None
        self._built(schema, name)

    def row_count(self, relation: str) -> int:
        schema, name = split(relation)
        return int(self._collect(f"select count(*) from {q(schema, name)}")[0][0])

    # -- mirror --------------------------------------------------------------------------
    def _mirror(self) -> None:
        """Copy the state tables into Spark's ``_cadence`` schema (a mirror: the local file is
        authoritative), each published like a model: new version, ALTER VIEW, drop the old."""
        from cadence.engines.spark_incremental import mirror

        mirror(self, MIRRORED)


__all__ = ["SparkEngine", "q", "spark_type", "split"]
