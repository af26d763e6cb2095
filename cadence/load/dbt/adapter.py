"""What dbt templates see of the warehouse: ``adapter``, ``api``, ``run_query`` results.

Input: the render in progress (``load.context.current_render``: its ``query`` reaches the
warehouse during a run, and is None while the project loads, as dbt's parse runs with
``execute`` false) -> output: dbt's objects, the parts models and packages use:
``adapter.get_relation``/``get_columns_in_relation``/``quote``/``type``, ``api.Relation.create``,
``api.Column``, and ``Table`` (what ``run_query`` returns: rows, columns, column names). Reading
the warehouse marks the render as one to render again per run. Dispatch is ``context``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cadence.load.context import current_render
from cadence.load.dbt import crossdb
from cadence.load.relations import Relation, qualified, quote

STRING_TYPES = ("varchar", "text", "string", "char", "character varying")
NUMBER_TYPES = (
    *("int", "bigint", "smallint", "tinyint", "hugeint", "double", "float", "real"),
    *("decimal", "numeric", "integer", "ubigint", "uinteger"),
)


def warehouse_query() -> Callable[[str], tuple[list[str], list[tuple[Any, ...]]]] | None:
    """The warehouse of the render in progress (None while loading); reading it means the
    text must be rendered again per run."""
    state = current_render.get(None)
    if state is None:
        return None
    state.per_run = True
    return state.query


@dataclass(frozen=True)
class Column:
    """dbt's Column: a name and a DuckDB type."""

    name: str
    dtype: str
    char_size: int | None = None
    numeric_precision: Any = None
    numeric_scale: Any = None

    @property
    def column(self) -> str:
        return self.name

    @property
    def data_type(self) -> str:
        return self.dtype

    @property
    def quoted(self) -> str:
        return quote(self.name)

    def is_string(self) -> bool:
        return self.dtype.lower().startswith(STRING_TYPES)

    def is_number(self) -> bool:
        return self.dtype.lower().startswith(NUMBER_TYPES)

    def is_integer(self) -> bool:
        return self.dtype.lower() in ("integer", "int", "bigint", "smallint", "tinyint", "hugeint")

    def is_float(self) -> bool:
        return self.dtype.lower() in ("double", "float", "real")

    def is_numeric(self) -> bool:
        return self.dtype.lower().startswith(("decimal", "numeric"))

    def string_size(self) -> int:
        return self.char_size or 256

    def __str__(self) -> str:
        return self.name


class ColumnApi:
    """``api.Column``: type names as dbt-duckdb translates them."""

    translate_type = staticmethod(crossdb.translate_type)
    numeric_type = staticmethod(crossdb.numeric_type)
    string_type = staticmethod(crossdb.string_type)

    @staticmethod
    def create(name: str, label_or_dtype: str) -> Column:
        return Column(str(name), crossdb.translate_type(label_or_dtype))


class RelationApi:
    """``api.Relation``: ``create`` a relation from its parts."""

    def __init__(self, database: str) -> None:
        self.database = database

    def create(
        self,
        database: str | None = None,
        schema: str | None = None,
        identifier: str | None = None,
        type: str | None = None,  # noqa: A002 - dbt's argument name
        **_: Any,
    ) -> Relation:
        return make_relation(schema, identifier or "", database or self.database, type)

    @staticmethod
    def add_ephemeral_prefix(name: str) -> str:
        return f"__dbt__cte__{name}"


class Api:
    def __init__(self, database: str) -> None:
        self.Relation = RelationApi(database)
        self.Column = ColumnApi()


def make_relation(
    schema: str | None, identifier: str, database: str | None, kind: str | None = None
) -> Relation:
    return Relation(schema, identifier, qualified(database, schema, identifier), database, kind)


class Row(tuple):  # type: ignore[type-arg]
    """A row of a ``Table``: by position, by column name, or as an attribute."""

    names: tuple[str, ...] = ()

    def __new__(cls, values: Sequence[Any], names: tuple[str, ...]) -> Row:
        row = super().__new__(cls, values)
        row.names = names
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names.index(key))
        return tuple.__getitem__(self, key)

    def __getattr__(self, name: str) -> Any:
        if name in self.names:
            return self[name]
        raise AttributeError(name)

    def values(self) -> list[Any]:
        return list(self)

    def keys(self) -> list[str]:
        return list(self.names)

    def items(self) -> list[tuple[str, Any]]:
        return list(zip(self.names, self, strict=True))


class TableColumn:
    def __init__(self, name: str, values: list[Any]) -> None:
        self.name = name
        self._values = values

    def values(self) -> list[Any]:
        return list(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class Columns(list):  # type: ignore[type-arg]
    """``table.columns``: by position or by name."""

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for column in self:
                if column.name == key:
                    return column
            raise KeyError(key)
        return super().__getitem__(key)


class Table:
    """What ``run_query`` returns (dbt's agate table, the parts templates use)."""

    def __init__(self, names: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.column_names = tuple(names)
        self.rows = [Row(r, self.column_names) for r in rows]
        self.columns = Columns(
            TableColumn(n, [r[i] for r in rows]) for i, n in enumerate(self.column_names)
        )

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def print_table(self, *args: Any, **kwargs: Any) -> str:
        return ""  # dbt prints to the console; cadence's library never prints

    def to_dict(self) -> list[dict[str, Any]]:
        return [dict(r.items()) for r in self.rows]


def run_query(sql: Any) -> Table | None:
    """``run_query(sql)``: a ``Table`` during a run; None while the project loads."""
    query = warehouse_query()
    if query is None:
        return None
    names, rows = query(str(sql))
    return Table(names, rows)


class Adapter:
    """``adapter``: introspection of the warehouse and dispatch (``dispatch`` is given)."""

    def __init__(self, database: str, dispatch: Callable[..., Any]) -> None:
        self.database = database
        self.dispatch = dispatch
        self.Relation = RelationApi(database)
        self.Column = ColumnApi()

    def type(self) -> str:
        return "duckdb"

    def quote(self, identifier: Any) -> str:
        return quote(str(identifier))

    def quote_as_configured(self, identifier: Any, quote_key: str = "identifier") -> str:
        return quote(str(identifier))

    def quote_seed_column(self, column: Any, quote_config: Any = None) -> str:
        return quote(str(column)) if quote_config is not False else str(column)

    def get_relation(
        self, database: Any = None, schema: Any = None, identifier: Any = None
    ) -> Relation | None:
        query = warehouse_query()
        if query is None:
            return None
        _, rows = query(
            "select table_type from information_schema.tables where lower(table_schema) = "
            f"lower({_literal(schema)}) and lower(table_name) = lower({_literal(identifier)})"
        )
        if not rows:
            return None
        kind = "view" if "VIEW" in str(rows[0][0]).upper() else "table"
        return make_relation(str(schema), str(identifier), self.database, kind)

    def load_relation(self, relation: Any) -> Relation | None:
        return self.get_relation(
            getattr(relation, "database", None),
            getattr(relation, "schema", None),
            getattr(relation, "identifier", None),
        )

    def get_columns_in_relation(self, relation: Any) -> list[Column]:
        query = warehouse_query()
        if query is None:
            return []
        schema = getattr(relation, "schema", None)
        identifier = getattr(relation, "identifier", None) or getattr(relation, "name", None)
        _, rows = query(
            "select column_name, data_type, character_maximum_length, numeric_precision, "
            "numeric_scale from information_schema.columns where lower(table_schema) = "
            f"lower({_literal(schema)}) and lower(table_name) = lower({_literal(identifier)}) "
            "order by ordinal_position"
        )
        return [Column(str(r[0]), str(r[1]), r[2], r[3], r[4]) for r in rows]

    def list_relations_without_caching(self, schema_relation: Any) -> list[Relation]:
        query = warehouse_query()
        if query is None:
            return []
        schema = getattr(schema_relation, "schema", schema_relation)
        _, rows = query(
            "select table_name, table_type from information_schema.tables where "
            f"lower(table_schema) = lower({_literal(schema)}) order by table_name"
        )
        return [make_relation(str(schema), str(r[0]), self.database, _kind(r[1])) for r in rows]

    def check_schema_exists(self, database: Any, schema: Any) -> bool:
        query = warehouse_query()
        if query is None:
            return False
        _, rows = query(
            "select 1 from information_schema.schemata where "
            f"lower(schema_name) = lower({_literal(schema)})"
        )
        return bool(rows)

    def get_missing_columns(self, from_relation: Any, to_relation: Any) -> list[Column]:
        have = {c.name.lower() for c in self.get_columns_in_relation(to_relation)}
        return [
            c for c in self.get_columns_in_relation(from_relation) if c.name.lower() not in have
        ]

    def expand_target_column_types(self, *args: Any, **kwargs: Any) -> str:
        return ""

    def already_exists(self, schema: Any, name: Any) -> bool:
        return self.get_relation(self.database, schema, name) is not None

    def external_root(self) -> str:
        state = current_render.get(None)
        return getattr(state, "external_root", None) or "."


def _kind(table_type: Any) -> str:
    return "view" if "VIEW" in str(table_type).upper() else "table"


def _literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"
