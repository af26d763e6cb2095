"""Recovery on Spark after a kill -9: swaps announced but never recorded are settled against
what the live views point at, and versions nothing uses are dropped.

Input: an engine opened for a run, the open intents of ``spark_versions`` and the tables in
Spark -> output: the local record matching the live views, the membership changes a killed
publish rolled back recorded again, and orphaned versions dropped. Invariants:
- a swap whose view points at the announced version is adopted: its relation record, and for a
  segment the membership changes it made (diffed in Spark against the version it replaced,
  which is dropped only a version later, when ``_cadence.segment_keys`` says that version is
  what the segment's history describes; else left to the segment's next publish, which diffs
  against the history), are written in one local transaction with the intent cleared and the
  rows of ``segment_keys`` the adopted version makes untrue removed; a swap that did not happen
  has its version dropped and its intent cleared;
- orphans (versions no record names, audience snapshots no record keeps) are dropped only once
  every intent is settled, and never a version an open intent names (its swap may have
  happened: the next run settles it first);
- a drop that fails leaves an orphan for the next run, never an error.
Used by ``engines.spark``: on open for a run (``reconcile``), and when a session is first
opened (``drop_orphans``).
"""

from __future__ import annotations

import re
from typing import Any

import cadence.engines.spark_audience as spark_audience
import cadence.engines.spark_versions as versions
from cadence.engines.base import EngineError, SegmentNote
from cadence.engines.spark_versions import q
from cadence.load.relations import quote, relation_sql

SparkEngine = Any  # cadence.engines.spark.SparkEngine, which imports this module


def reconcile(engine: SparkEngine) -> None:
    """Swaps announced but not recorded (killed between ALTER VIEW and the state record):
    keep what the live view points at, and record it; drop the version it does not."""
    pending = versions.open_intents(engine.state)
    if not pending:
        return
    engine._reconciling = True  # no orphan cleanup before every intent is settled
    try:
        _settle(engine, pending)
    finally:
        engine._reconciling = False
    drop_orphans(engine)


def _settle(engine: SparkEngine, pending: list[versions.Intent]) -> None:
    for intent in pending:
        target = view_target(engine, intent.schema, intent.name)
        if target is None or target.lower() != intent.physical.lower():
            engine._drop_quietly(q(intent.schema, intent.physical), "table")
            versions.clear_intent(engine.state, intent.schema, intent.name, intent.physical)
            continue
        # the swap happened and its local commit did not: adopt the live version and record
        # the membership changes that commit would have (diffed against the version it
        # replaced, which is dropped only a version later), all in one local transaction
        trusted, untrue = _claims(engine, intent)
        changes = _adopted_changes(engine, intent) if trusted else []
        engine.state.execute("begin transaction")
        try:
            versions.write(
                engine.state,
                versions.Published(
                    intent.schema,
                    intent.name,
                    "table",
                    intent.physical,
                    intent.previous,
                    intent.layout,
                    2 if intent.layout == "append" else 0,
                ),
            )
            if intent.note is not None and changes:
                _record_changes(engine, intent.note, changes)
            if untrue:  # the adopted version is not what these rows say the table holds
                engine.state.execute(
                    f"delete from {versions.SEGMENT_KEYS} "
                    "where segment in (select unnest(?::varchar[]))",
                    (untrue,),
                )
            versions.clear_intent(engine.state, intent.schema, intent.name, intent.physical)
            engine.state.execute("commit")
        except BaseException:
            engine._rollback()
            raise


def _claims(engine: SparkEngine, intent: versions.Intent) -> tuple[bool, list[str]]:
    """Whether the table's previous version is what the history of the adopted segment
    describes (a row of ``_cadence.segment_keys`` for that segment, key and table), and the
    rows the adopted version makes untrue (of another segment or key, or any, when it is a
    plain table). Not described: its changes are left to its next publish, which diffs
    against the history (a warehouse without the table: as before it, against the version
    it replaced)."""
    if (versions.SCHEMA, "segment_keys") not in engine.state.relations():
        return True, []
    table = f"{intent.schema}.{intent.name}".lower()
    note = intent.note
    rows = engine.state.query(  # each segment's newest row, one without a key saying none
        f"select segment, key, relation from (select segment, key, relation from "
        f"{versions.SEGMENT_KEYS} qualify row_number() over (partition by segment "
        "order by seq desc) = 1) where key is not null and (relation = ? or segment = ?)",
        (table, note.segment if note is not None else None),
    )
    mine = note is not None and (note.segment, note.key, table) in {tuple(r) for r in rows}
    untrue = [
        str(r[0])
        for r in rows
        if note is None or (r[0], r[1], r[2]) != (note.segment, note.key, table)
    ]
    return mine, untrue


def _adopted_changes(engine: SparkEngine, intent: versions.Intent) -> list[tuple[Any, ...]]:
    """(key, change) turning the replaced version into the adopted one: the diff the
    interrupted publish recorded (``record.membership.diff_sql``), run in Spark."""
    note = intent.note
    if note is None or (versions.SCHEMA, "membership_changes") not in engine.state.relations():
        return []
    k = quote(note.key)
    new = relation_sql(intent.schema, intent.physical)
    if intent.previous is None:
        diff = f"select cast({k} as varchar) as key, 'entered' as change from {new}"
    else:
        old = relation_sql(intent.schema, intent.previous)
        diff = (
            f"select cast({k} as varchar) as key, 'entered' as change from "
            f"(select {k} from {new} except select {k} from {old}) as e"
        )
        if note.exits:
            diff += (
                f" union all select cast({k} as varchar) as key, 'exited' as change from "
                f"(select {k} from {old} except select {k} from {new}) as x"
            )
    try:
        return engine.query(f"select key, change from ({diff}) as d order by change, key")
    except EngineError:
        return []  # the replaced version is gone (dropped by hand): nothing to diff against


def _record_changes(engine: SparkEngine, note: SegmentNote, rows: list[tuple[Any, ...]]) -> None:
    """Append ``rows`` to the membership history with the interrupted run's id and tick."""
    stamps = [versions.to_utc(note.tick), versions.to_utc(note.at)]
    nextval = f"nextval('{versions.MEMBERSHIP_SEQUENCE}')"
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        values = ", ".join("(?, ?)" for _ in chunk)
        engine.state.execute(
            f"insert into {versions.MEMBERSHIP} (change_id, segment, key, change, run_id, "
            f'tick, "at") select {nextval}, ?, d.key, d.change, ?, ?, ? '
            f"from (values {values}) as d(key, change)",
            (note.segment, note.run_id, *stamps, *[v for r in chunk for v in r]),
        )


def view_target(engine: SparkEngine, schema: str, name: str) -> str | None:
    """The physical table a live view selects from (None: no such view)."""
    try:
        rows = engine._collect(f"describe table extended {q(schema, name)}")
    except EngineError:
        return None
    text = next((str(r[1]) for r in rows if r[0] == "View Text"), "")
    match = re.search(r"from\s+`?[^`\s.]+`?\.`?([^`\s]+?)`?(?:\s|$)", text, re.I)
    return match.group(1) if match else None


def drop_orphans(engine: SparkEngine) -> None:
    records = versions.read_all(engine.state)
    announced = {(i.schema, i.physical) for i in versions.open_intents(engine.state)}
    schemas = sorted({r.schema for r in records.values()} | {engine.shared.warehouse.schema})
    tables: list[tuple[str, str]] = []
    for schema in schemas:
        try:
            rows = engine._collect(f"show tables in {q(None, schema)}")
        except EngineError:
            continue
        tables += [(schema, str(r[1])) for r in rows if not r[2]]
    for schema, table in versions.orphans(tables, records):
        if (schema, table) in announced:
            continue  # its swap may have happened: the next run settles it first
        engine._drop_quietly(q(schema, table), "table")
    keep = {s.physical.lower() for s in spark_audience.recorded(engine).values()}
    for schema, table in spark_audience.orphans(tables, keep):
        engine._drop_quietly(q(schema, table), "table")


__all__ = ["drop_orphans", "reconcile", "view_target"]
