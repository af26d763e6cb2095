"""Relation names as SQL: what ``ref()``, ``source()`` and ``this`` render to.

Input: schema and identifier -> output: quoted SQL names and the placeholder tokens that stand
for refs between load and compile time. Kept free of Jinja so cached loads stay light.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

REF_TOKEN = re.compile(r"«ref:([^»]+)»")


def ref_token(name: str) -> str:
    return f"«ref:{name}»"


@dataclass(frozen=True)
class Relation(Mapping[str, Any]):
    """What ``ref()``, ``source()`` and ``this`` return (dbt's Relation, the parts used in SQL).
    Like dbt's, it is also a mapping (``metadata.type`` ends with ``Relation``, ``path`` holds
    its parts): packages such as dbt_utils check that is what they were given."""

    schema: str | None
    identifier: str
    rendered: str
    database: str | None = None
    type: str | None = None  # "table" or "view" when known (dbt's relation type)

    @property
    def name(self) -> str:
        return self.identifier

    @property
    def table(self) -> str:
        return self.identifier

    @property
    def is_table(self) -> bool:
        return self.type == "table"

    @property
    def is_view(self) -> bool:
        return self.type == "view"

    def render(self) -> str:
        return self.rendered

    def include(self, database: bool = True, schema: bool = True, identifier: bool = True) -> str:
        """The name with only the parts asked for (dbt's ``include``); the database is left
        out: cadence names relations in the warehouse it is connected to."""
        parts = [p for p, keep in ((self.schema, schema), (self.identifier, identifier)) if keep]
        return ".".join(quote(p) for p in parts if p)

    def incorporate(self, **changes: object) -> Relation:
        """A copy with ``type=`` (or ``path={...}``) changed, as dbt's relations offer."""
        path = changes.get("path")
        schema, identifier = self.schema, self.identifier
        if isinstance(path, dict):
            schema = str(path.get("schema", schema))
            identifier = str(path.get("identifier", identifier))
        kind = changes.get("type", self.type)
        return Relation(
            schema,
            identifier,
            relation_sql(schema, identifier) if self.rendered[:1] == '"' else self.rendered,
            self.database,
            str(kind) if kind is not None else None,
        )

    def without_identifier(self) -> str:
        return quote(self.schema) if self.schema else ""

    @property
    def is_cte(self) -> bool:
        return False

    def _as_dict(self) -> dict[str, Any]:
        return {
            "path": {
                "database": self.database,
                "schema": self.schema,
                "identifier": self.identifier,
            },
            "type": self.type,
            "metadata": {"type": "DuckDBRelation"},
            "quote_policy": {"database": True, "schema": True, "identifier": True},
            "include_policy": {"database": False, "schema": True, "identifier": True},
        }

    def __getitem__(self, key: str) -> Any:
        return self._as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._as_dict())

    def __len__(self) -> int:
        return len(self._as_dict())

    def __str__(self) -> str:
        return self.rendered

    def __html__(self) -> str:  # jinja markup protocol
        return self.rendered


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def relation_sql(schema: str | None, identifier: str) -> str:
    return f"{quote(schema)}.{quote(identifier)}" if schema else quote(identifier)


def qualified(database: str | None, schema: str | None, identifier: str) -> str:
    """A relation as dbt renders it in a dbt project, ``"db"."schema"."name"`` (DuckDB names
    the database after the file); without a database, ``relation_sql``."""
    name = relation_sql(schema, identifier)
    return f"{quote(database)}.{name}" if database and schema else name
