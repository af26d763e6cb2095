"""Data tests as SQL, judged as dbt judges them.

Input: a ``DataTest`` and the relation to check (the staging relation during publish, the live
one for ``cadence test``) -> output: the query of its failing rows -- the built-ins written as
dbt's own macros write them (``accepted_values`` returns one row per distinct bad value,
``unique`` one per duplicated value), a singular or custom generic test its rendered SQL -- and
one query that asks, for many tests at once, dbt's three numbers per test: ``failures``
(``fail_calc`` over at most ``limit`` failing rows), ``failures <warn_if>`` and
``failures <error_if>``. ``TestOutcome`` holds them: a test fails when its severity is
``error`` and ``error_if`` holds, else warns when ``warn_if`` holds, else passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cadence.build.compiler import ensure_query
from cadence.build.onequery import OneQuery
from cadence.engines.base import Engine
from cadence.load.parser import ParsedProject
from cadence.load.relations import quote
from cadence.load.testspecs import DataTest
from cadence.plan.dag import ref_target


@dataclass(frozen=True)
class TestOutcome:
    test: DataTest
    failures: int
    message: str
    should_warn: bool | None = None  # None: failures != 0 (the default condition)
    should_error: bool | None = None

    @property
    def status(self) -> str:
        """``fail``, ``warn`` or ``pass``, by dbt's rule."""
        error = self.failures != 0 if self.should_error is None else self.should_error
        warn = self.failures != 0 if self.should_warn is None else self.should_warn
        if error and self.test.severity == "error":
            return "fail"
        return "warn" if warn else "pass"

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def blocking(self) -> bool:
        return self.status == "fail"


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _scoped(relation: str, where: str | None) -> str:
    return f"(select * from {relation} where {where}) dbt_subquery" if where else relation


def failing_rows_sql(
    test: DataTest, relation: str, relation_of: Callable[[str], str]
) -> str | None:
    """The query of ``test``'s failing rows on ``relation``; None for ``max_change`` (it
    compares versions). ``relation_of`` names the relation of a model or seed (or ``source()``)
    a ``relationships`` test looks up."""
    if test.kind == "singular" or test.custom:
        return test.sql
    rel = _scoped(relation, test.where)
    col = quote(test.column or str(test.args.get("column_name")))
    if test.kind == "not_null":
        return f"select {col}\nfrom {rel}\nwhere {col} is null"
    if test.kind == "unique":
        return (
            f"select {col} as unique_field, count(*) as n_records\nfrom {rel}\n"
            f"where {col} is not null\ngroup by {col}\nhaving count(*) > 1"
        )
    if test.kind == "accepted_values":
        quote_values = test.args.get("quote", True)
        values = ", ".join(literal(v) if quote_values else str(v) for v in test.args["values"])
        return (
            f"with all_values as (\n  select {col} as value_field, count(*) as n_records\n"
            f"  from {rel}\n  group by {col}\n)\n"
            f"select * from all_values where value_field not in ({values})"
        )
    if test.kind == "relationships":
        parent = relation_of(str(test.args["to"]))
        field = quote(str(test.args["field"]))
        return (
            f"with child as (\n  select {col} as from_field from {rel} where {col} is not null\n"
            f"),\nparent as (\n  select {field} as to_field from {parent}\n)\n"
            "select from_field from child\n"
            "left join parent on child.from_field = parent.to_field\n"
            "where parent.to_field is null"
        )
    if test.kind == "row_count":
        lo, hi = test.args.get("min"), test.args.get("max")
        conds = []
        if lo is not None:
            conds.append(f"n < {int(lo)}")
        if hi is not None:
            conds.append(f"n > {int(hi)}")
        return f"select n from (select count(*) as n from {rel}) where {' or '.join(conds)}"
    return None


_SOURCE = re.compile(r"^\s*source\(\s*['\"]([^'\"]+)['\"]\s*,\s*['\"]([^'\"]+)['\"]\s*\)\s*$")


def target_resolver(
    project: ParsedProject, relation_of: Callable[[str], str]
) -> Callable[[str], str]:
    """The relation a ``relationships`` test's ``to`` names: ``ref('x')``, ``x`` or
    ``source('a', 'b')``."""
    sources = {(s.source_name, s.table): s.relation for s in project.sources}

    def resolve(to: str) -> str:
        found = _SOURCE.match(to)
        if found:
            return sources[(found.group(1), found.group(2))]
        return relation_of(ref_target(to))

    return resolve


# what a test of these kinds reads is its model's table (no other relation), and the only
# expressions a project adds to it, each of one of these shapes
_OWN_TABLE = frozenset({"not_null", "unique", "accepted_values", "row_count"})
_CALC = re.compile(r"\s*(count|sum|min|max)\s*\(\s*(\*|[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*")
_CONDITION = re.compile(r"\s*(!=|<>|>=|<=|=|>|<)\s*-?[0-9]+(\.[0-9]+)?\s*")
_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_ ]*|"[^"]+"')


def own_table_only(test: DataTest) -> bool:
    """Whether ``test`` reads nothing but its model's table, so that it says at its group's
    commit what it says as its model publishes: a built-in on the table, on a plain column,
    without a ``where``, whose ``fail_calc``, ``warn_if``, ``error_if`` and values are of the
    plain shapes above or literals (allowed, not searched: nothing in them can be a query).
    Its SQL is then all cadence's (``failing_rows_sql``: the column quoted, values literals,
    bounds integers), so it is one query by construction and needs no parser's word."""
    if test.custom or test.kind not in _OWN_TABLE or test.where:
        return False  # a project's own test macro (even one named not_null) is its SQL
    if not _CALC.fullmatch(test.fail_calc):
        return False
    if not (_CONDITION.fullmatch(test.warn_if) and _CONDITION.fullmatch(test.error_if)):
        return False
    if test.kind == "accepted_values" and not test.args.get("quote", True):
        return False  # unquoted values (quote false, null, 0, ...) are SQL of the project's
    column = test.column or str(test.args.get("column_name", ""))
    return test.kind == "row_count" or bool(_NAME.fullmatch(column))


def failures_sql(test: DataTest, rows_sql: str) -> str:
    """dbt's ``failures``: ``fail_calc`` over the failing rows, at most ``limit`` of them."""
    limit = f"\nlimit {test.limit}" if test.limit is not None else ""
    return f"select {test.fail_calc} from (\n{rows_sql}{limit}\n) dbt_internal_test"


def judge(
    engine: Engine, counted: Sequence[tuple[DataTest, str]], accepted: OneQuery | None = None
) -> list[TestOutcome]:
    """Run the failing-rows queries of many tests in one query; one outcome each, in order
    (``accepted``: texts the parser accepted in earlier runs)."""
    if not counted:
        return []
    return outcomes(counted, engine.query(one_query(counted, accepted))[0])


def one_query(counted: Sequence[tuple[DataTest, str]], accepted: OneQuery | None = None) -> str:
    """The one query asking the three numbers of every test in ``counted`` (checked to be one
    query); its row is read by ``outcomes``."""
    values = ",\n".join(
        f"({failures_sql(test, sql)}) as f{i}" for i, (test, sql) in enumerate(counted)
    )
    checks = ", ".join(
        f"f{i}, f{i} {test.warn_if}, f{i} {test.error_if}" for i, (test, _sql) in enumerate(counted)
    )
    query = f"with counted as (select\n{values}\n)\nselect {checks} from counted"
    _ensure_one_query(query, counted, accepted)
    return query


def outcomes(counted: Sequence[tuple[DataTest, str]], row: Sequence[Any]) -> list[TestOutcome]:
    """The outcome of each test of ``counted`` from the row of its ``one_query``."""
    found = []
    for i, (test, _sql) in enumerate(counted):
        raw, warn, error = row[3 * i : 3 * i + 3]
        failures = int(raw) if raw is not None else 0
        outcome = TestOutcome(test, failures, "", bool(warn), bool(error))
        found.append(
            TestOutcome(
                test, failures, describe(outcome), outcome.should_warn, outcome.should_error
            )
        )
    return found


def _ensure_one_query(
    query: str, counted: Sequence[tuple[DataTest, str]], accepted: OneQuery | None
) -> None:
    """What runs is one query (SPEC §6), checked with DuckDB's parser once for all the tests;
    when it is not, each test's own query (``fail_calc`` and ``limit`` included) is checked so
    the error names the file of the test that is to blame."""
    if all(own_table_only(test) for test, _sql in counted):
        return  # cadence's text alone, from checked pieces: one query by construction
    from cadence.engines.duckdb import query_problem  # duckdb only when something is tested

    if accepted is not None and accepted.known(query):
        return
    if query_problem(query) is None:
        if accepted is not None:
            accepted.add(query)
        return
    for test, sql in counted:
        ensure_query(sql, test.file)
        ensure_query(failures_sql(test, sql), test.file)
    ensure_query(query, counted[0][0].file)


def describe(outcome: TestOutcome) -> str:
    """What a failing or warning test says (empty when it passed)."""
    if outcome.passed:
        return ""
    test = outcome.test
    message = describe_failure(test, outcome.failures)
    if not test.default_thresholds:
        condition = test.error_if if outcome.status == "fail" else test.warn_if
        verb = "fail" if outcome.status == "fail" else "warn"
        message += f" (configured to {verb} if {condition})"
    return message


def describe_failure(test: DataTest, failures: int, extra: str = "") -> str:
    where = f" {test.column}" if test.column else ""
    if test.kind == "row_count":
        bounds = f"{{min: {test.args.get('min')}, max: {test.args.get('max')}}}"
        return f"row_count{where}: row count outside {bounds}{extra}"
    if test.kind == "max_change":
        return f"max_change: {extra}"
    if test.kind == "singular":
        return f"singular test {test.name} ({test.file}): {failures} failing row(s){extra}"
    return f"{test.kind}{where}: {failures} failing row(s){extra}"
