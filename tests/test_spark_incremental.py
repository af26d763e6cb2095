"""Incremental models on Spark's parquet tables: each build appended as a batch, the live view
keeping the newest row per unique_key, compaction into a new version; the same rows as DuckDB."""

from __future__ import annotations

import uuid

import duckdb
from conftest import DEFAULT_CADENCE_YML, invoke, spark_yml

from cadence.engines.spark_incremental import live_view_sql

INCREMENTAL = """
{{ config(materialized='incremental', unique_key='id') }}
select i as id, {{ env_var('VALUE', '1') }} as value from (values (1), (2), (3)) v(i)
{% if is_incremental() %} where i >= {{ env_var('FROM', '1') }} {% endif %}
"""
STEPS = [("1", "1"), ("2", "3"), ("3", "2"), ("4", "3")]  # (VALUE, FROM)
EXPECTED = [(1, 1), (2, 3), (3, 4)]


def test_the_live_view_hides_the_batch_column_and_keeps_the_newest_row_per_key():
    sql = live_view_sql("s", "m__v1", ("id",))
    assert sql == (
        "select * except (_cadence_batch) from `s`.`m__v1` qualify row_number() over "
        "(partition by `id` order by _cadence_batch desc) = 1"
    )
    assert "qualify" not in live_view_sql("s", "m__v1", ())


def test_appends_deduplicate_and_compact_like_duckdb(
    make_project, spark_remote, spark_session, monkeypatch
):
    schema = "i_" + uuid.uuid4().hex[:10]
    spark_root = make_project(
        {"models/inc.sql": INCREMENTAL}, spark_yml(spark_remote, schema, extra=", compact_every: 4")
    )
    duck_root = make_project({"models/inc.sql": INCREMENTAL}, DEFAULT_CADENCE_YML)
    physical_per_step = []
    for value, start in STEPS:
        monkeypatch.setenv("VALUE", value)
        monkeypatch.setenv("FROM", start)
        for root in (spark_root, duck_root):
            result = invoke(root, "run", "--at", "2026-03-02T05:00")
            assert result.exit_code == 0, result.output
        target = spark_session.sql(f"describe table extended `{schema}`.inc").collect()
        physical_per_step.append(next(r[1] for r in target if r[0] == "View Text"))
    frame = spark_session.sql(f"select * from `{schema}`.inc order by id")
    assert frame.columns == ["id", "value"]
    assert [tuple(r) for r in frame.collect()] == EXPECTED
    con = duckdb.connect(str(duck_root / "warehouse.duckdb"), read_only=True)
    assert con.execute("select * from main.inc order by id").fetchall() == EXPECTED
    con.close()
    # build 2 moved the table into the append layout (a new version); build 3 appended to it;
    # build 4 reached compact_every and compacted into another new version
    assert physical_per_step[1] != physical_per_step[0]
    assert physical_per_step[2] == physical_per_step[1]
    assert physical_per_step[3] != physical_per_step[2]
    batches = spark_session.sql(f"show partitions `{schema}`.`{_physical(physical_per_step[3])}`")
    assert len(batches.collect()) == 2  # the compacted rows and this build's


def _physical(view_text: str) -> str:
    import re

    match = re.search(r"from `[^`]+`\.`([^`]+)`", view_text)
    assert match, view_text
    return match.group(1)
