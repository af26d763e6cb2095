"""The local record of what cadence published on Spark, kept in the DuckDB state file.

Input: publishes, intents and drops from the Spark engine -> output: rows in
``_cadence.spark_relations`` (live name -> physical version, the previous version, layout) and
``_cadence.spark_intents`` (a swap about to happen; for a segment, also what its membership diff
needs: segment, key column, run id, tick, time). Invariants: an intent is committed before its
``ALTER VIEW`` runs and resolved once the relation row naming its version commits, so after a
kill -9 between the swap and the state record the next run knows which views to look at, and
can record the segment's membership changes the kill rolled back; only names of the form
``<identifier>__v<run id>`` are ever treated as cadence's versions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from cadence.engines.base import Engine, SegmentNote

SCHEMA = "_cadence"
DDL = (
    f"create schema if not exists {SCHEMA}",
    f"""create table if not exists {SCHEMA}.spark_relations (
        schema_name varchar, name varchar, kind varchar, physical varchar, previous varchar,
        layout varchar, batches integer)""",
    f"""create table if not exists {SCHEMA}.spark_intents (
        schema_name varchar, name varchar, physical varchar, previous varchar)""",
)
# added to spark_intents since its first version (a state file from then gains them on open)
INTENT_COLUMNS = (
    ("segment", "varchar"),
    ("key_column", "varchar"),
    ("run_id", "varchar"),
    ("tick", "timestamp"),
    ("at", "timestamp"),
    ("exits", "boolean"),
    ("layout", "varchar"),
)
# activation's membership history (cadence.record.membership.TABLE and SEQUENCE, which
# this module cannot import: engines come before activation); reconciliation appends to it
MEMBERSHIP = f"{SCHEMA}.membership_changes"
# which live tables their segment's history describes (``record.segmentkeys``)
SEGMENT_KEYS = f"{SCHEMA}.segment_keys"
MEMBERSHIP_SEQUENCE = f"{SCHEMA}.membership_change_id"
VERSION_RE = re.compile(r"^(?P<base>.+)__v(?P<version>\d{8}t\d{6}_[0-9a-f]{8})$")


def q(schema: str | None, name: str) -> str:
    """A Spark (backtick) relation name."""
    part = "`" + name.replace("`", "``") + "`"
    return f"`{schema.replace('`', '``')}`.{part}" if schema else part


def split(relation: str) -> tuple[str | None, str]:
    """A DuckDB-quoted relation (as the runner names it) -> (schema, identifier)."""
    parts = re.findall(r'"((?:[^"]|"")*)"|([^."]+)', relation)
    names = [a.replace('""', '"') if a else b for a, b in parts]
    return (names[-2] if len(names) > 1 else None), names[-1]


def version_name(identifier: str, run_id: str, salt: str = "") -> str:
    """``<identifier>__v<run id>``: unique per build, sortable, lower case (the metastore's).
    A ``salt`` gives a second name for the same run (its 8 hex digits derived from it)."""
    version = run_id.lower().replace("-", "_")
    if salt:
        digest = hashlib.sha256(f"{run_id}|{salt}".encode()).hexdigest()[:8]
        version = version[: -len(digest)] + digest
    return f"{identifier}__v{version}".lower()


def base_of(physical: str) -> str | None:
    match = VERSION_RE.match(physical.lower())
    return match.group("base") if match else None


@dataclass(frozen=True)
class Published:
    """A live name cadence manages: a view (model) or a view over a physical version (table)."""

    schema: str
    name: str
    kind: str  # table | view
    physical: str | None = None
    previous: str | None = None
    layout: str = "plain"  # plain | append (incremental batches, deduplicated by the view)
    batches: int = 0


def ensure(store: Engine) -> None:
    for statement in DDL:
        store.execute(statement)
    have = {
        r[0]
        for r in store.query(
            "select column_name from duckdb_columns() "
            f"where schema_name = '{SCHEMA}' and table_name = 'spark_intents'"
        )
    }
    for column, kind in INTENT_COLUMNS:
        if column not in have:
            store.execute(f'alter table {SCHEMA}.spark_intents add column "{column}" {kind}')


def read_all(store: Engine) -> dict[tuple[str, str], Published]:
    rows = store.query(
        f"select schema_name, name, kind, physical, previous, layout, batches "
        f"from {SCHEMA}.spark_relations"
    )
    return {(r[0], r[1]): Published(r[0], r[1], r[2], r[3], r[4], r[5], r[6] or 0) for r in rows}


def read_one(store: Engine, schema: str, name: str) -> Published | None:
    rows = store.query(
        f"select schema_name, name, kind, physical, previous, layout, batches "
        f"from {SCHEMA}.spark_relations where schema_name = ? and name = ?",
        (schema, name),
    )
    if not rows:
        return None
    r = rows[0]
    return Published(r[0], r[1], r[2], r[3], r[4], r[5], r[6] or 0)


def write(store: Engine, record: Published) -> None:
    """Upsert (the caller holds the transaction the build record commits in)."""
    remove(store, record.schema, record.name)
    store.execute(
        f"insert into {SCHEMA}.spark_relations values (?, ?, ?, ?, ?, ?, ?)",
        (
            record.schema,
            record.name,
            record.kind,
            record.physical,
            record.previous,
            record.layout,
            record.batches,
        ),
    )


def remove(store: Engine, schema: str, name: str) -> None:
    store.execute(
        f"delete from {SCHEMA}.spark_relations where schema_name = ? and name = ?",
        (schema, name),
    )


@dataclass(frozen=True)
class Intent:
    """A swap announced and not yet resolved; ``note``: the segment whose changes it carries."""

    schema: str
    name: str
    physical: str
    previous: str | None
    note: SegmentNote | None = None
    layout: str = "plain"  # of the version the swap publishes (see Published)


def to_utc(value: dt.datetime | None) -> dt.datetime | None:
    """As the state tables store times: naive UTC."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def add_intent(
    journal: Engine,
    schema: str,
    name: str,
    physical: str,
    previous: str | None,
    note: SegmentNote | None = None,
    layout: str = "plain",
) -> None:
    """Committed at once (autocommit handle), before the swap it announces."""
    n = note
    journal.execute(
        f"""insert into {SCHEMA}.spark_intents (schema_name, name, physical, previous,
        segment, key_column, run_id, tick, "at", exits, layout)
        values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            schema,
            name,
            physical,
            previous,
            n.segment if n else None,
            n.key if n else None,
            n.run_id if n else None,
            to_utc(n.tick) if n else None,
            to_utc(n.at) if n else None,
            n.exits if n else None,
            layout,
        ),
    )


def clear_intent(journal: Engine, schema: str, name: str, physical: str) -> None:
    journal.execute(
        f"delete from {SCHEMA}.spark_intents where schema_name = ? and name = ? and physical = ?",
        (schema, name, physical),
    )


def open_intents(store: Engine) -> list[Intent]:
    """Intents whose swap may have happened without its record. Intents already resolved
    (their version is recorded live) are cleared."""
    rows = store.query(
        f"""select i.schema_name, i.name, i.physical, i.previous,
            coalesce(r.physical = i.physical, false) as resolved,
            i.segment, i.key_column, i.run_id, i.tick, i."at", i.exits, i.layout
        from {SCHEMA}.spark_intents i left join {SCHEMA}.spark_relations r
          on r.schema_name = i.schema_name and r.name = i.name"""
    )
    out = []
    for r in rows:
        if r[4]:
            clear_intent(store, r[0], r[1], r[2])
            continue
        note = None
        if r[5] is not None:
            utc = dt.timezone.utc
            tick = r[8].replace(tzinfo=utc) if r[8] is not None else None
            note = SegmentNote(r[5], r[6], r[7], tick, r[9].replace(tzinfo=utc), bool(r[10]))
        out.append(Intent(r[0], r[1], r[2], r[3], note, r[11] or "plain"))
    return out


def orphans(
    tables: list[tuple[str, str]], records: dict[tuple[str, str], Published]
) -> list[tuple[str, str]]:
    """Versions in ``tables`` (schema, name) that no live name or its previous version uses."""
    keep = {
        (r.schema, v.lower())
        for r in records.values()
        for v in (r.physical, r.previous)
        if v is not None
    }
    return [(s, t) for s, t in tables if base_of(t) is not None and (s, t.lower()) not in keep]


__all__ = [
    "Intent",
    "Published",
    "base_of",
    "ensure",
    "open_intents",
    "orphans",
    "read_all",
    "read_one",
    "version_name",
    "write",
]
