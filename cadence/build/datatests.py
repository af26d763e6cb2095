"""Data tests as SQL: each test becomes a query counting failing rows.

Input: a ``DataTest`` and the relation to check (the staging relation during publish, the live
one for ``cadence test``) -> output: SQL returning one integer, 0 meaning pass. Generic tests are
dbt-compatible (not_null, unique, accepted_values, relationships) plus row_count and max_change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cadence.load.relations import quote
from cadence.load.testspecs import DataTest
from cadence.plan.dag import ref_target


@dataclass(frozen=True)
class TestOutcome:
    test: DataTest
    failures: int
    message: str

    @property
    def passed(self) -> bool:
        return self.failures == 0

    @property
    def blocking(self) -> bool:
        return not self.passed and self.test.severity == "error"


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _scoped(relation: str, where: str | None) -> str:
    return f"(select * from {relation} where {where})" if where else relation


def test_sql(test: DataTest, relation: str, relation_of: Any) -> str | None:
    """Failing-row count query, or None for tests that compare versions (max_change)."""
    rel = _scoped(relation, test.where)
    col = quote(test.column or str(test.args.get("column_name")))
    if test.kind == "not_null":
        return f"select count(*) from {rel} where {col} is null"
    if test.kind == "unique":
        return (
            f"select count(*) from (select {col} from {rel} where {col} is not null "
            f"group by {col} having count(*) > 1)"
        )
    if test.kind == "accepted_values":
        quote_values = test.args.get("quote", True)
        values = ", ".join(literal(v) if quote_values else str(v) for v in test.args["values"])
        return f"select count(*) from {rel} where {col} is not null and {col} not in ({values})"
    if test.kind == "relationships":
        parent = relation_of(ref_target(str(test.args["to"])))
        field = quote(str(test.args["field"]))
        return (
            f"select count(*) from {rel} as child where child.{col} is not null and not exists "
            f"(select 1 from {parent} as parent where parent.{field} = child.{col})"
        )
    if test.kind == "row_count":
        lo, hi = test.args.get("min"), test.args.get("max")
        conds = []
        if lo is not None:
            conds.append(f"n < {int(lo)}")
        if hi is not None:
            conds.append(f"n > {int(hi)}")
        failing = " or ".join(conds)
        return (
            f"select case when {failing} then 1 else 0 end from (select count(*) as n from {rel})"
        )
    if test.kind == "singular":
        return f"select count(*) from (\n{test.sql}\n)"
    return None


def describe_failure(test: DataTest, failures: int, extra: str = "") -> str:
    where = f" {test.column}" if test.column else ""
    if test.kind == "row_count":
        bounds = f"{{min: {test.args.get('min')}, max: {test.args.get('max')}}}"
        return f"row_count{where}: row count outside {bounds}{extra}"
    if test.kind == "max_change":
        return f"max_change: {extra}"
    return f"{test.kind}{where}: {failures} failing row(s){extra}"
