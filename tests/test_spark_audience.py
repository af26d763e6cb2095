"""Audiences on Spark (``cadence.engines.spark_audience``): computed in Spark, diffed there
against the snapshot of the last freeze, and only the changed rows copied beside the local state;
deliveries and `export --dry-run` the same as on DuckDB."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import duckdb
from activation_project import CADENCE_YML, make_activation, sent, set_people, set_unsubscribed
from conftest import invoke

import cadence.engines.spark_audience as spark_audience
from cadence.engines.spark_audience import orphans

DUCK_LINE = "warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}"
HOLDOUT = {
    "models/regular.sql": "{{ config(channels=['email'], key='id', "
    "holdout={'percent': 50, 'salt': 'h'}) }}\n"
    "select id, email from {{ ref('people') }} where spend < 500\n"
}


def twins(
    make_project: Any,
    remote: str,
    people: list[tuple[int, int]],
    more: dict[str, str] | None = None,
) -> tuple[Path, Path]:
    """The activation project on DuckDB and on Spark (its own schema)."""
    extra = {**HOLDOUT, **(more or {})}
    line = (
        f'warehouse: {{engine: spark, remote: "{remote}", path: state.duckdb, threads: 1, '
        f"schema: a_{uuid.uuid4().hex[:10]}}}"
    )
    duck = make_activation(make_project, people, extra=extra)
    sparked = make_activation(
        make_project, people, cadence_yml=CADENCE_YML.replace(DUCK_LINE, line), extra=extra
    )
    return duck, sparked


def test_snapshot_orphans_are_unrecorded_snapshots_only():
    tables = [
        ("s", "_cadence_audience_0123456789_g2"),
        ("s", "_cadence_audience_0123456789_g3"),  # a freeze killed before its commit
        ("s", "_cadence_audience_users"),  # not cadence's
        ("s", "vip__v20260302t050000_aaaaaaaa"),
    ]
    assert orphans(tables, {"_cadence_audience_0123456789_g2"}) == [
        ("s", "_cadence_audience_0123456789_g3")
    ]


def test_only_the_changed_rows_of_an_audience_are_copied(make_project, spark_remote, monkeypatch):
    copied: list[int] = []
    fetch = spark_audience.fetch

    def counting(engine: Any, statement: str) -> Any:
        rows = fetch(engine, statement)
        copied.append(rows.num_rows)
        return rows

    monkeypatch.setattr(spark_audience, "fetch", counting)
    people = [(i, 900 if i % 3 == 0 else 100) for i in range(1, 121)]
    duck, sparked = twins(make_project, spark_remote, people)
    changed = [(i, s) for i, s in people if i not in (3, 4)] + [(4, 900), (500, 100)]
    for day, rows in (("2026-03-02T05:00", None), ("2026-03-03T05:00", changed)):
        for root in (duck, sparked):
            if rows:
                set_people(root, rows)
            result = invoke(root, "run", "--at", day)
            assert result.exit_code == 0, result.output
        if rows is None:
            assert sum(copied) >= len(people)  # the first freeze copies the whole audience
            copied.clear()
    # day 2: vip lost 3, gained 4; regular lost 4, gained 500: a row per change, not per member
    assert 0 < sum(copied) <= 4
    for segment in ("vip", "regular"):
        assert sent(sparked, segment) == sent(duck, segment)
    assert ("3", "exited") in sent(sparked, "vip") and ("4", "entered") in sent(sparked, "vip")
    con = duckdb.connect(str(sparked / "state.duckdb"), read_only=True)
    try:
        snapshots = con.execute("select count(*) from _cadence.spark_audiences").fetchone()
    finally:
        con.close()
    assert snapshots == (2,)


def test_export_dry_run_on_spark_shows_what_duckdb_shows(make_project, spark_remote):
    vip_view = {  # a view: its audience follows people without a delivery
        "models/vip.sql": "{{ config(channels=['email'], key='id', materialized='view') }}\n"
        "select id, email from {{ ref('people') }} where spend >= 500\n"
    }
    duck, sparked = twins(
        make_project, spark_remote, [(1, 900), (2, 900), (3, 10), (7, 20)], vip_view
    )
    for root in (duck, sparked):
        set_unsubscribed(root, [2])
        assert invoke(root, "run", "--at", "2026-03-02T05:00").exit_code == 0
        set_people(root, [(1, 100), (2, 900), (3, 10), (7, 20), (8, 900)])
        result = invoke(root, "run", "-s", "people", "--at", "2026-03-02T06:00")
        assert result.exit_code == 0 and "delivered" not in result.output
    before = sent(sparked, "vip"), sent(sparked, "regular")
    previews = {}
    for name, root in (("duckdb", duck), ("spark", sparked)):
        result = invoke(root, "export", "--dry-run", "--json")
        assert result.exit_code == 0, result.output
        previews[name] = json.loads(result.output)["preview"]
        previews[name + " text"] = invoke(root, "export", "--dry-run").output
    assert previews["spark"] == previews["duckdb"]
    assert previews["spark text"] == previews["duckdb text"]
    vip = next(p for p in previews["spark"] if p["segment"] == "vip")
    assert (vip["entered"], vip["exited"], vip["suppressed"]) == (1, 1, 1)
    assert vip["samples"]["entered"] == ["8"] and vip["samples"]["exited"] == ["1"]
    regular = next(p for p in previews["spark"] if p["segment"] == "regular")
    assert regular["held_out"] == 1  # 7 is held out (salt "h"), computed in Spark
    assert (sent(sparked, "vip"), sent(sparked, "regular")) == before  # nothing moved
    assert "email/vip: 1 entered, 1 exited, 1 suppressed, 0 held out" in previews["spark text"]
