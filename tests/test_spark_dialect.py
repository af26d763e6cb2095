"""DuckDB -> Spark transpilation: native QUALIFY, the silent differences fixed, and lint findings
for what cannot run. The parity table runs each case on DuckDB and on Spark when a server is up."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pytest

from cadence.engines.spark_dialect import findings, locate, transpile


def test_qualify_stays_native_so_no_helper_column_leaks():
    sql = transpile("select * from t qualify row_number() over (partition by a order by b) = 1")
    assert "QUALIFY" in sql
    assert "_w" not in sql and "_t" not in sql


def test_date_diff_counts_boundaries_like_duckdb():
    sql = transpile("select date_diff('day', a, b) from t")
    assert sql == ("SELECT TIMESTAMPDIFF(DAY, DATE_TRUNC('DAY', a), DATE_TRUNC('DAY', b)) FROM t")


@pytest.mark.parametrize(
    "duck, spark",
    [
        ("select extract(dow from a) from t", "SELECT (DAYOFWEEK(a) - 1) FROM t"),
        ("select dayofweek(a) from t", "SELECT (DAYOFWEEK(a) - 1) FROM t"),
        ("select isodow(a) from t", "SELECT EXTRACT(DAYOFWEEK_ISO FROM a) FROM t"),
        (
            "select list(x order by y) from t",
            "SELECT TRANSFORM(ARRAY_SORT(COLLECT_LIST(STRUCT(y IS NULL AS n0, y AS k0, x AS v))), "
            "s -> s.v) FROM t",
        ),
        (
            "select list(x) from t",
            "SELECT TRANSFORM(COLLECT_LIST(STRUCT(x AS v)), s -> s.v) FROM t",
        ),
        (
            "select date '2026-01-31' + interval 1 month",
            "SELECT CAST(CAST('2026-01-31' AS DATE) AS TIMESTAMP) + INTERVAL '1' MONTH",
        ),
        ("select len([1, 2])", "SELECT SIZE(ARRAY(1, 2))"),
        ('select "a" from "main"."t"', "SELECT `a` FROM `main`.`t`"),
    ],
)
def test_rewrites(duck, spark):
    assert transpile(duck) == spark


def test_findings_name_what_cannot_run_or_may_differ():
    got = {(f.severity, f.construct) for f in findings("select [x * 2 for x in l] from t")}
    assert ("error", "for") in got
    got = {(f.severity, f.construct) for f in findings("select * from generate_series(1, 3) t(i)")}
    assert ("error", "generate_series") in got
    got = {(f.severity, f.construct) for f in findings("select d + interval 1 day from t")}
    assert ("warn", "interval") in got
    assert findings("select a, count(*) from t group by a") == []


def test_locate_points_at_the_source_line_outside_comments():
    source = "-- a for loop in a comment\nselect\n  [x for x in l]\nfrom t\n"
    assert locate(source, " for ") == 3
    assert locate(source, "nothing") is None


# (DuckDB SQL over no table, compared on both engines)
PARITY = [
    "select date_diff('day', timestamp '2026-01-01 23:00', timestamp '2026-01-02 01:00') as d",
    "select date_diff('month', date '2026-01-31', date '2026-02-01') as d",
    "select date_diff('minute', timestamp '2026-01-01 10:00:59', "
    "timestamp '2026-01-01 10:01:00') as d",
    "select extract(dow from date '2026-03-01') as a, dayofweek(date '2026-03-07') as b",
    "select isodow(date '2026-03-01') as a",
    "select date '2026-01-31' + interval 1 month as d",
    "select list(x order by x desc) as l from (values (3), (1), (2)) v(x)",
    "select list(x order by x) as l from (values (3), (null), (2)) v(x)",
    "select x from (values (1, 'a'), (2, 'a'), (3, 'b')) v(x, g) "
    "qualify row_number() over (partition by g order by x desc) = 1 order by x",
]


def _normal(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    return value


@pytest.mark.parametrize("sql", PARITY)
def test_same_results_on_both_engines(sql, spark_session):
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    expected = [tuple(_normal(v) for v in row) for row in con.execute(sql).fetchall()]
    got = [tuple(_normal(v) for v in row) for row in spark_session.sql(transpile(sql)).collect()]
    assert got == expected
