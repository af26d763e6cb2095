"""The engine boundary: what the runner, state and tests need from a SQL engine, nothing more.

Input: SQL text -> output: rows, relations, published models. Dialect-specific DDL lives here so
that materialization logic (runner) and state records stay engine-neutral.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cadence.load.relations import relation_sql

STAGING_SUFFIX = "__cadence_staging"


class EngineError(Exception):
    """An error the engine reported while running user SQL."""


@dataclass(frozen=True)
class SegmentNote:
    """A segment build whose membership changes are being recorded in the current publish: what
    an engine needs to record them again if its swap outlives the state commit (kill -9)."""

    segment: str
    key: str
    run_id: str
    tick: dt.datetime | None
    at: dt.datetime
    exits: bool = True


@dataclass
class CommitGroup:
    """Publishes that commit together: one transaction that each publish's own ``transaction()``
    joins instead of committing, on an engine whose DDL is transactional (``groups_commits``).
    Each publish and its build record are in it as before; the build rows are written at once
    when the group commits. ``broken``: a statement failed inside it (the engine aborted the
    transaction), so it can only be rolled back."""

    records: list[Any] = field(default_factory=list)  # BuildRecords, written at the commit
    broken: bool = False
    # settled once, just before the commit (in the same transaction): the first publishes'
    # membership rows, (select, parameters) each, and data tests that read only their model's
    # table (``gate.Pending``)
    entered: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    checks: list[Any] = field(default_factory=list)


class Engine(ABC):
    name: str = "engine"
    groups_commits: bool = False  # ``open_group`` / ``close_group`` work (transactional DDL)
    group: CommitGroup | None = None  # the open group, on this handle

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def query_named(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Rows of a query with its column names (what dbt's ``run_query`` returns)."""
        rows = self.query(sql)
        width = len(rows[0]) if rows else 0
        return [f"column_{i}" for i in range(width)], rows

    @abstractmethod
    def relations(self) -> dict[tuple[str, str], str]:
        """Existing relations: (schema, name) -> 'table' | 'view'."""

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]: ...

    @abstractmethod
    def close(self) -> None: ...

    # DDL the runner composes into materializations
    @abstractmethod
    def create_schema(self, schema: str) -> None: ...

    @abstractmethod
    def create_table_as(self, relation: str, sql: str) -> int | None:
        """Create (or replace) a table from a query; returns its row count when known."""

    @abstractmethod
    def create_view_as(self, relation: str, sql: str) -> None: ...

    @abstractmethod
    def drop(self, relation: str, kind: str) -> None: ...

    @abstractmethod
    def rename(self, relation: str, new_identifier: str) -> None: ...

    @abstractmethod
    def insert_into(self, relation: str, sql: str) -> None: ...

    @abstractmethod
    def delete_matching(self, relation: str, source: str, keys: Sequence[str]) -> None: ...

    @abstractmethod
    def load_csv(
        self,
        relation: str,
        path: str,
        column_types: dict[str, str],
        delimiter: str | None = None,
        exact: bool = False,
    ) -> None:
        """Load a CSV file with a header into a new table; ``column_types`` override what the
        engine detects, or with ``exact`` name every column's type in the header's order (the
        table is created with them and the file copied in, as dbt-duckdb loads a seed)."""

    @abstractmethod
    def row_count(self, relation: str) -> int: ...

    def interrupt(self) -> None:  # noqa: B027 - optional for engines that cannot interrupt
        """Stop the statement running on this handle (from another thread); default: no-op."""

    def cursor(self) -> Engine:
        """An engine handle for another thread (same database)."""
        return self

    def share_threads(self, builds: int) -> None:  # noqa: B027 - optional: one pool per engine
        """``builds`` statements now run at once on cursors of this engine (0: none, the build
        is over): an engine whose cursors share one thread pool sizes it so that they and its
        workers together stay within the warehouse's threads; default: no-op."""

    def open_group(self) -> CommitGroup:
        """Begin a transaction that the publishes after it join (``groups_commits`` engines)."""
        raise NotImplementedError(f"{self.name} does not group commits")

    def close_group(self, commit: bool) -> None:
        """Commit the open group (``EngineError`` if refused: none of it is kept) or roll it
        back."""
        raise NotImplementedError(f"{self.name} does not group commits")

    # Publishing, where an engine without transactional DDL must do it its own way (Spark: a
    # versioned physical table behind a view switched with ALTER VIEW). The defaults are what a
    # transactional engine does inside the caller's transaction.
    def state_store(self) -> Engine:
        """Where ``_cadence`` state is written and read (default: this engine)."""
        return self

    # A table with nothing to compare against its previous version (no membership to diff,
    # no size change to judge, not an incremental merge) is built straight into its live name
    # inside the publish transaction when the engine's DDL is transactional: a failure rolls
    # the previous version back, and readers see old or new all the same (two statements
    # fewer a model than staging, drop and rename).
    builds_in_place: bool = False

    def staging_relation(self, schema: str, identifier: str, run_id: str) -> str:
        """The relation a new version of ``schema.identifier`` is built into."""
        return relation_sql(schema, identifier + STAGING_SUFFIX)

    def publish(
        self, staging: str, live: str, schema: str, identifier: str, existing: str | None
    ) -> None:
        """Make the built ``staging`` relation the live ``schema.identifier``."""
        if existing is not None:
            self.drop(live, existing)
        self.rename(staging, identifier)

    def segment_staged(self, staging: str, note: SegmentNote) -> None:  # noqa: B027 - optional
        """``staging`` is a new version of a segment whose membership changes are recorded in
        this publish. Default: nothing (they commit with the publish in one transaction)."""

    def detach(self) -> None:  # noqa: B027 - optional
        """Release the warehouse an ``engines.attach_state`` engine copied from (default:
        nothing is attached)."""

    def localize(self, sql: str, name: str) -> str:
        """The rows of ``sql`` as a relation the state store can read (default: the query
        itself, state and warehouse being one database)."""
        return f"({sql})"

    def watermark_bound(self, column: str, relation: str) -> str | None:
        """Incremental with ``watermark``: read the newest ``column`` of ``relation`` now (in
        the caller's transaction) and return an SQL expression holding it as a constant, which
        the engine can push into the scan of the sources (skipping what it holds already);
        ``None`` (the default): the compiled ``(select max(column) ...)`` subquery is run."""
        return None

    def append(self, live: str, staging: str, unique_key: Sequence[str], run_id: str) -> None:
        """Incremental: add the tested new rows in ``staging`` to ``live`` (replacing rows with
        the same ``unique_key``), then drop ``staging``."""
        if unique_key:
            self.delete_matching(live, staging, unique_key)
        self.insert_into(live, f"select * from {staging}")
        self.drop(staging, "table")
