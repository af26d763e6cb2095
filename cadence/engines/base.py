"""The engine boundary: what the runner, state and tests need from a SQL engine, nothing more.

Input: SQL text -> output: rows, relations, published models. Dialect-specific DDL lives here so
that materialization logic (runner) and state records stay engine-neutral.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


class EngineError(Exception):
    """An error the engine reported while running user SQL."""


class Engine(ABC):
    name: str = "engine"

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

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
        self, relation: str, path: str, column_types: dict[str, str], delimiter: str | None = None
    ) -> None: ...

    @abstractmethod
    def row_count(self, relation: str) -> int: ...

    def interrupt(self) -> None:  # noqa: B027 - optional for engines that cannot interrupt
        """Stop the statement running on this handle (from another thread); default: no-op."""

    def cursor(self) -> Engine:
        """An engine handle for another thread (same database)."""
        return self
