"""Which tables were last published as segments, and with which key.

Input: the segments a run published (name, key, table) -> output: rows in
``_cadence.segment_keys`` (segment, key, relation, seq; a segment's newest row counts). A
segment's publish diffs its candidate
against the live relation only when that relation is the one its history describes: the model
was last published as a segment with the same key into the same table (``trusted``).
Otherwise -- a table model that became a segment, a segment whose key or table changed, one
that was a plain table for a while, a seed that took its table -- the live relation says
nothing of who the history holds, so the publish is diffed against the members the history
holds (``membership.members_sql``; none: everyone entered, as SPEC §7 says of a first
publish).
Invariants: a row only ever says what is true. It is added after the publish it describes has
committed (with the run's fold), so a kill between the two costs only a diff against the
history at the next publish; a publish that makes a row untrue (the model published without a
key or with another one, another model or a seed published into its table) adds, in its own
transaction, a newer row without a key (``forget``: only inserts while builds run, which never
conflict between threads), and the fold compacts. A warehouse made before this table gets it
with the project's segments whose tables agree with their history (``_agrees``, checked once).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cadence.engines.base import Engine, EngineError
from cadence.load.relations import quote
from cadence.record.membership import latest_sql
from cadence.record.state import SCHEMA

TABLE_NAME = "segment_keys"
TABLE = f"{SCHEMA}.{TABLE_NAME}"
SEQUENCE = f"{SCHEMA}.segment_key_seq"
DDL = (
    f"create sequence if not exists {SEQUENCE}",
    f"create table if not exists {TABLE} "
    "(segment varchar, key varchar, relation varchar, seq bigint)",
)


def table_of(schema: str | None, identifier: str) -> str:
    """How a row names a table: ``schema.identifier``, lower case (as the warehouse resolves
    names)."""
    return f"{schema or ''}.{identifier}".lower()


def ensure_table(
    engine: Engine,
    segments: Iterable[tuple[str, str, str, str]] = (),
    *,
    pruned: bool = False,
    again: bool = False,
) -> None:
    """Create the table if the warehouse has none (``again``: replace the one it has, made by
    a development version with other columns), registering each of ``segments`` (name, key,
    table, live relation SQL: the project's segments cadence published before, whose tables
    exist) whose table agrees with its history (``pruned``: ``history.keep_days`` may have
    removed some of it). The checks only read; the table and its rows are made in one
    transaction, so a kill leaves no table (the next run checks again) or all of it."""
    store = engine.state_store()
    if not again and (SCHEMA, TABLE_NAME) in store.relations():
        return
    agreed = [(s, k, t) for s, k, t, live in segments if _agrees(engine, s, k, live, pruned)]
    with store.transaction():
        if again:
            store.execute(f"drop table if exists {TABLE}")
        for statement in DDL:
            store.execute(statement)
        register(engine, agreed)


def _agrees(engine: Engine, segment: str, key: str, live: str, pruned: bool) -> bool:
    """The keys of ``live`` agree with the history of ``segment``: they are the members it
    holds (an empty history and a table with rows: a table that became a segment, whose
    first publish this is). ``pruned``: every key the history knows is in ``live`` as its
    latest change says (entered: in it; exited: not), and a key it does not know is taken for
    a member whose entry ``history.keep_days`` pruned."""
    k = quote(key)
    try:
        latest = engine.state_store().query(latest_sql(segment))
        keys = {
            str(r[0]) for r in engine.query(f"select distinct cast({k} as varchar) from {live}")
        }
    except EngineError:  # no such column (any more): not the table the history describes
        return False
    if pruned:
        return all((change == "entered") == (key_ in keys) for key_, change in latest)
    return keys == {str(key_) for key_, change in latest if change == "entered"}


@dataclass(frozen=True)
class Registry:
    """The rows, by segment and by table (each publish asks in constant time, however many
    segments the project has)."""

    by_segment: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> (key, table)
    by_table: dict[str, list[str]] = field(default_factory=dict)  # -> segments naming it
    forgotten: list[str] = field(default_factory=list)  # segments ``forget`` wrote a row of

    @classmethod
    def of(cls, rows: Iterable[tuple[str, str, str]]) -> Registry:
        registry = cls()
        for segment, key, table in rows:
            registry.by_segment[segment] = (key, table)
            registry.by_table.setdefault(table, []).append(segment)
        return registry

    def trusted(self, segment: str, key: str, table: str) -> bool:
        """The live relation of ``segment`` is what its history describes."""
        return self.by_segment.get(segment) == (key, table)

    def untrue(self, name: str, table: str, key: str | None) -> list[str]:
        """The rows a publish of ``name`` into ``table`` makes untrue: those of ``name`` or
        of ``table``, except ``name``'s own when it records its members with the same ``key``
        into the same table (``key`` None: it records none)."""
        claims = set(self.by_table.get(table, ()))
        if name in self.by_segment:
            claims.add(name)
        if key is not None and self.trusted(name, key, table):
            claims.discard(name)
        return sorted(claims)


def read(engine: Engine) -> Registry:
    """Each segment's newest row, those with a key; the table exists (``ensure_table``).
    Every row is read (a fold that wrote any leaves one per segment) and the newest picked:
    a plain scan costs a tick less than a window query."""
    newest: dict[str, tuple[int, object, object]] = {}
    rows = engine.state_store().query(f"select segment, key, relation, seq from {TABLE}")
    for segment, key, relation, seq in rows:
        if segment not in newest or seq > newest[segment][0]:
            newest[segment] = (seq, key, relation)
    return Registry.of(
        (str(s), str(k), str(t)) for s, (_n, k, t) in newest.items() if k is not None
    )


def changed(
    known: Registry, published: Iterable[tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    """Of ``published`` (segment, key, table), those whose row is missing or says another."""
    return [(s, k, t) for s, k, t in published if not known.trusted(s, k, t)]


def register(engine: Engine, rows: list[tuple[str, str, str]], *, compact: bool = False) -> None:
    """Record ``rows`` (segment, key, table) as last published so, inside the caller's
    transaction (the run's fold, when no publish runs); with rows or ``compact``, rows no
    longer newest and newest ones without a key are removed (nothing else writes then)."""
    store = engine.state_store()
    if rows:
        store.execute(
            f"insert into {TABLE} select segment, key, relation, nextval('{SEQUENCE}') from "
            "(select unnest(?::varchar[]) as segment, unnest(?::varchar[]) as key, "
            "unnest(?::varchar[]) as relation)",
            ([s for s, _k, _t in rows], [k for _s, k, _t in rows], [t for _s, _k, t in rows]),
        )
    if rows or compact:
        store.execute(
            f"delete from {TABLE} as r where key is null or seq < "
            f"(select max(n.seq) from {TABLE} as n where n.segment = r.segment)"
        )


def forget(engine: Engine, segments: list[str], registry: Registry) -> None:
    """``segments``' rows are untrue once the current publish commits: inside its transaction,
    a row without a key is added for each (an insert: publishes committing at once on
    threads never conflict, as deletes of one row would); ``registry`` notes that the fold
    has rows to compact."""
    if segments:
        engine.state_store().execute(
            f"insert into {TABLE} select unnest(?::varchar[]), null, null, nextval('{SEQUENCE}')",
            (segments,),
        )
        registry.forgotten.extend(segments)


__all__ = [
    "DDL",
    "Registry",
    "TABLE",
    "TABLE_NAME",
    "changed",
    "ensure_table",
    "forget",
    "read",
    "register",
    "table_of",
]
