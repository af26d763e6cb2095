"""DuckDB SQL -> Spark SQL: models stay in DuckDB's dialect; sqlglot transpiles them.

Input: one DuckDB statement -> output: the Spark statement returning the same rows
(``transpile``) and, for lint, the constructs that cannot run on Spark or would silently
differ (``findings``).
Invariants: QUALIFY is kept native (Spark 4 runs it; sqlglot's rewrite adds a helper column that
leaks into ``select *``), and every rewrite below fixes a difference measured on both engines:

- ``date_diff(unit, a, b)`` counts unit boundaries on DuckDB, whole units on Spark: both sides
  are truncated to the unit first;
- ``dayofweek``/``extract(dow)`` are 0-6 on DuckDB, 1-7 on Spark; ``isodow`` maps to Spark's ISO
  field;
- ``list``/``array_agg`` keep NULLs and honour ``order by`` on DuckDB; ``collect_list`` drops both,
  so the values travel inside structs and are sorted before unwrapping;
- ``date + interval`` is a TIMESTAMP on DuckDB, a DATE on Spark: known dates are cast first;
- ``len()`` of a list is ``size()``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.errors import ParseError
from sqlglot.generators.spark import SparkGenerator
from sqlglot.transforms import (
    any_to_exists,
    eliminate_distinct_on,
    preprocess,
    unnest_to_explode,
)


class _Generator(SparkGenerator):
    TRANSFORMS = {
        **SparkGenerator.TRANSFORMS,
        # Spark's own preprocessing minus eliminate_qualify: Spark 4 runs QUALIFY natively
        exp.Select: preprocess([eliminate_distinct_on, unnest_to_explode, any_to_exists]),
    }


class CadenceSpark(Spark):
    """Spark 4 as cadence targets it (sqlglot dialect)."""

    Generator = _Generator


class DialectError(Exception):
    """SQL that sqlglot cannot read as DuckDB."""


_TRUNC_UNITS = {"YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "HOUR", "MINUTE", "SECOND"}


def _fn(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _is_date(node: exp.Expression) -> bool:
    if isinstance(node, exp.CurrentDate):
        return True
    if isinstance(node, (exp.Cast, exp.TryCast)):
        return node.to.this == exp.DataType.Type.DATE
    return isinstance(node, (exp.TsOrDsToDate, exp.StrToDate, exp.DateFromParts))


def _is_list(node: exp.Expression) -> bool:
    return isinstance(node, (exp.Array, exp.ArrayAgg, exp.Split)) or (
        isinstance(node, exp.Anonymous) and str(node.this).lower() in ("list_value", "list")
    )


def _date_diff(node: exp.DateDiff) -> exp.Expression:
    unit = str(node.args.get("unit") or "DAY").upper().strip("'")
    if unit not in _TRUNC_UNITS or not node.args.get("date_part_boundary"):
        return node
    start, end = node.expression, node.this
    return _fn(
        "TIMESTAMPDIFF",
        exp.var(unit),
        _fn("DATE_TRUNC", exp.Literal.string(unit), start.copy()),
        _fn("DATE_TRUNC", exp.Literal.string(unit), end.copy()),
    )


def _day_of_week(value: exp.Expression) -> exp.Expression:
    return exp.Paren(
        this=exp.Sub(this=_fn("DAYOFWEEK", value.copy()), expression=exp.Literal.number(1))
    )


def _array_agg(node: exp.ArrayAgg) -> exp.Expression:
    inner = node.this
    keys: list[exp.Ordered] = []
    if isinstance(inner, exp.Order):
        keys = list(inner.expressions)
        inner = inner.this
    distinct = isinstance(inner, exp.Distinct)
    if distinct:
        inner = inner.expressions[0]
    desc = bool(keys) and all(k.args.get("desc") for k in keys)
    fields: list[exp.Expression] = []
    for i, k in enumerate(keys):
        # DuckDB puts NULL keys last in both directions; a flag before each key does it here
        flag: exp.Expression = exp.Is(this=k.this.copy(), expression=exp.Null())
        fields.append(
            exp.Alias(this=exp.Not(this=flag) if desc else flag, alias=exp.to_identifier(f"n{i}"))
        )
        fields.append(exp.Alias(this=k.this.copy(), alias=exp.to_identifier(f"k{i}")))
    fields.append(exp.Alias(this=inner.copy(), alias=exp.to_identifier("v")))
    collected: exp.Expression = _fn("COLLECT_LIST", _fn("STRUCT", *fields))
    if distinct:
        collected = _fn("ARRAY_DISTINCT", collected)
    if keys:
        collected = _fn("ARRAY_SORT", collected)
        if desc:
            collected = _fn("REVERSE", collected)
    unwrap = exp.Lambda(
        this=exp.Dot(this=exp.column("s"), expression=exp.to_identifier("v")),
        expressions=[exp.to_identifier("s")],
    )
    return _fn("TRANSFORM", collected, unwrap)


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.DateDiff):
        return _date_diff(node)
    if isinstance(node, exp.DayOfWeek):
        return _day_of_week(node.this)
    if isinstance(node, exp.DayOfWeekIso):
        return exp.Extract(this=exp.var("DAYOFWEEK_ISO"), expression=node.this.copy())
    if isinstance(node, exp.Extract) and str(node.this).upper() in ("DOW", "DAYOFWEEK"):
        return _day_of_week(node.expression)
    if isinstance(node, exp.Extract) and str(node.this).upper() in ("ISODOW",):
        return exp.Extract(this=exp.var("DAYOFWEEK_ISO"), expression=node.expression.copy())
    if isinstance(node, exp.ArrayAgg):
        return _array_agg(node)
    if isinstance(node, exp.Length) and _is_list(node.this):
        return _fn("SIZE", node.this.copy())
    if isinstance(node, (exp.Add, exp.Sub)) and isinstance(node.expression, exp.Interval):
        if _is_date(node.this):
            node.set("this", exp.cast(node.this.copy(), exp.DataType.Type.TIMESTAMP))
    return node


def _parse(sql: str) -> exp.Expression:
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except ParseError as exc:
        raise DialectError(str(exc).splitlines()[0]) from None
    if tree is None:
        raise DialectError("empty statement")
    return tree  # type: ignore[return-value]


def transpile(sql: str) -> str:
    """One DuckDB statement as Spark SQL with the same results (for the supported subset)."""
    tree = _parse(sql)
    return str(tree.transform(_rewrite).sql(dialect=CadenceSpark))


@dataclass(frozen=True)
class Finding:
    """A construct that cannot run on Spark (``error``) or may differ silently (``warn``)."""

    severity: str  # error | warn
    construct: str  # the text to point at in the model source
    message: str


def findings(sql: str) -> list[Finding]:
    """What ``cadence lint --engine spark`` reports for one compiled model."""
    try:
        tree = _parse(sql)
    except DialectError as exc:
        return [Finding("error", "", f"sqlglot cannot read this model as DuckDB SQL: {exc}")]
    out: list[Finding] = []
    for node in tree.walk():
        if isinstance(node, exp.Comprehension):
            out.append(
                Finding(
                    "error",
                    "for",
                    "list comprehensions cannot run on Spark; use transform(list, x -> ...)",
                )
            )
        elif isinstance(node, exp.GenerateSeries) and isinstance(node.parent, exp.Table):
            out.append(
                Finding(
                    "error",
                    "generate_series" if "generate_series" in sql.lower() else "range",
                    "a series used as a table cannot run on Spark; use "
                    "explode(sequence(start, stop)) in the select list",
                )
            )
        elif isinstance(node, exp.Length) and not _is_list(node.this):
            if isinstance(node.this, exp.Column) and re.search(r"\blen\s*\(", sql, re.I):
                out.append(
                    Finding(
                        "warn",
                        "len(",
                        f"len({node.this.sql()}) is length() on Spark: it fails if "
                        f"{node.this.sql()} is a list (use size() there)",
                    )
                )
        elif isinstance(node, (exp.Add, exp.Sub)) and isinstance(node.expression, exp.Interval):
            if not _is_date(node.this) and not isinstance(node.this, exp.Cast):
                out.append(
                    Finding(
                        "warn",
                        "interval",
                        f"{node.this.sql()} {'+' if isinstance(node, exp.Add) else '-'} interval:"
                        " if the left side is a DATE, DuckDB returns a TIMESTAMP and Spark a "
                        f"DATE (cast it: cast({node.this.sql()} as timestamp))",
                    )
                )
        elif isinstance(node, exp.DateDiff):
            unit = str(node.args.get("unit") or "DAY").upper().strip("'")
            if unit not in _TRUNC_UNITS:
                out.append(
                    Finding(
                        "warn",
                        "date_diff",
                        f"date_diff('{unit.lower()}', ...) counts boundaries on DuckDB and whole "
                        "units on Spark; cadence only aligns year..second",
                    )
                )
    return out


def locate(source: str, construct: str) -> int | None:
    """The 1-based line of ``construct`` in a model's source text (None: not found)."""
    if not construct:
        return None
    pattern = re.compile(re.escape(construct), re.I)
    for number, line in enumerate(source.splitlines(), start=1):
        if pattern.search(line.split("--", 1)[0]):
            return number
    return None


__all__ = ["CadenceSpark", "DialectError", "Finding", "findings", "locate", "transpile"]
