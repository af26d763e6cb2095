"""Which models were last published as segments, and with which key.

Input: the segments a run published (name, key) -> output: rows in ``_cadence.segment_keys``
(segment, key). A segment's publish diffs its candidate against the live relation only when
that relation is the one its history describes: the model was last published as a segment
with the same key (``trusted``). Otherwise -- a table model that became a segment, a segment
whose key changed, one that was a plain table for a while -- the live relation says nothing of
who the history holds, so the publish is diffed against the members the history holds
(``membership.members_sql``; none: everyone entered, as SPEC §7 says of a first publish).
Invariants: a row is added after the publish it describes has committed (with the run's
fold), so a kill between the two costs only a diff against the history at the next publish,
never a diff against the wrong relation; a row is removed in the same transaction as a
publish of the model without a key (``forget``), so the live relation never outlives its
row. A warehouse made before this table gets it with every segment its history names, and
those the caller names, with the key unknown (null: trusted whatever the key, then set by
the next publish).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cadence.engines.base import Engine
from cadence.record.membership import TABLE as CHANGES
from cadence.record.state import SCHEMA

TABLE_NAME = "segment_keys"
TABLE = f"{SCHEMA}.{TABLE_NAME}"
UNKNOWN = None  # the key of a segment registered before keys were kept: trusted as it is


def ensure_table(engine: Engine, segments: Iterable[str] = ()) -> None:
    """Create the table if the warehouse has none, with every segment ``_cadence.membership_
    changes`` names and ``segments`` (whose live relations the history describes as cadence
    published them before) registered with their key unknown; nothing when it exists."""
    engine.state_store().execute(
        f"create table if not exists {TABLE} as select distinct segment, "
        f"cast(null as varchar) as key from (select segment from {CHANGES} "
        "union all select unnest(?::varchar[]))",
        (sorted(set(segments)),),
    )


def read(engine: Engine) -> dict[str, str | None]:
    """Segment name -> the key it was last published with (``UNKNOWN``: not known); the
    table exists (``ensure_table``)."""
    rows = engine.state_store().query(f"select segment, key from {TABLE}")
    return {str(r[0]): (None if r[1] is None else str(r[1])) for r in rows}


def trusted(known: Mapping[str, str | None], segment: str, key: str) -> bool:
    """The live relation of ``segment`` is what its history describes: the model was last
    published as a segment with ``key`` (or before keys were kept)."""
    return segment in known and known[segment] in (UNKNOWN, key)


def changed(
    known: Mapping[str, str | None], published: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Of ``published`` (segment, key), those whose row is missing or says another key (or
    none: registered before keys were kept)."""
    return [(s, k) for s, k in published if known.get(s) != k]


def register(engine: Engine, pairs: list[tuple[str, str]]) -> None:
    """Record ``pairs`` (segment, key) as last published with that key (one statement each
    way, inside the caller's transaction: the run's fold)."""
    if not pairs:
        return
    store = engine.state_store()
    names = [s for s, _k in pairs]
    store.execute(f"delete from {TABLE} where segment in (select unnest(?::varchar[]))", (names,))
    store.execute(
        f"insert into {TABLE} select unnest(?::varchar[]), unnest(?::varchar[])",
        (names, [k for _s, k in pairs]),
    )


def forget(engine: Engine, model: str) -> None:
    """``model`` is being published without a key (inside its publish transaction): its live
    relation no longer describes a history."""
    engine.state_store().execute(f"delete from {TABLE} where segment = ?", (model,))


__all__ = [
    "TABLE",
    "TABLE_NAME",
    "changed",
    "ensure_table",
    "forget",
    "read",
    "register",
    "trusted",
]
