"""Relation names as SQL: what ``ref()``, ``source()`` and ``this`` render to.

Input: schema and identifier -> output: quoted SQL names and the placeholder tokens that stand
for refs between load and compile time. Kept free of Jinja so cached loads stay light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REF_TOKEN = re.compile(r"«ref:([^»]+)»")


def ref_token(name: str) -> str:
    return f"«ref:{name}»"


@dataclass(frozen=True)
class Relation:
    """What ``ref()``, ``source()`` and ``this`` return (dbt's Relation, the parts used in SQL)."""

    schema: str | None
    identifier: str
    rendered: str
    database: str | None = None

    @property
    def name(self) -> str:
        return self.identifier

    @property
    def table(self) -> str:
        return self.identifier

    def __str__(self) -> str:
        return self.rendered

    def __html__(self) -> str:  # jinja markup protocol
        return self.rendered


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def relation_sql(schema: str | None, identifier: str) -> str:
    return f"{quote(schema)}.{quote(identifier)}" if schema else quote(identifier)
