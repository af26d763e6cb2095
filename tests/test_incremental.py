"""Incremental models: is_incremental() and {{ this }} as in dbt; unique_key replaces rows;
--full-refresh rebuilds; the append happens in the same transaction as the state record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from cadence.project import Project

AT = dt.datetime(2026, 1, 1, 6, 0, tzinfo=dt.timezone.utc)

MODEL = """{{ config(materialized='incremental', unique_key='id') }}
select id, v from {{ ref('src') }}
{% if is_incremental() %}
where id > (select max(id) - 1 from {{ this }})
{% endif %}
"""


def setup(root: Path, rows: list[tuple[int, str]]) -> None:
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "seeds").mkdir(exist_ok=True)
    (root / "cadence.yml").write_text("name: inc\nwarehouse: {path: w.duckdb}\ntimezone: UTC\n")
    (root / "models" / "inc.sql").write_text(MODEL)
    (root / "seeds" / "src.csv").write_text("id,v\n" + "".join(f"{i},{v}\n" for i, v in rows))


def table(root: Path) -> list[tuple[int, str]]:
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    try:
        return con.execute("select id, v from inc order by id").fetchall()
    finally:
        con.close()


def test_incremental_appends_and_replaces_by_unique_key(tmp_path: Path) -> None:
    setup(tmp_path, [(1, "a"), (2, "b")])
    Project.load(tmp_path).run(AT)
    assert table(tmp_path) == [(1, "a"), (2, "b")]
    # row 2 changed, row 3 new, row 1 deleted upstream: incremental keeps 1, replaces 2, adds 3
    setup(tmp_path, [(2, "B"), (3, "c")])
    result = Project.load(tmp_path).run(AT + dt.timedelta(hours=1))
    inc = next(r for r in result.results if r.name == "inc")
    assert inc.status == "success" and inc.rows == 2
    compiled = (tmp_path / "target/compiled/models/inc.sql").read_text()
    assert 'from "main"."inc"' in compiled  # {{ this }} in the incremental branch
    assert table(tmp_path) == [(1, "a"), (2, "B"), (3, "c")]


def test_full_refresh_rebuilds_from_scratch(tmp_path: Path) -> None:
    setup(tmp_path, [(1, "a"), (2, "b")])
    Project.load(tmp_path).run(AT)
    setup(tmp_path, [(2, "B"), (3, "c")])
    Project.load(tmp_path).run(AT + dt.timedelta(hours=1), full_refresh=True)
    assert table(tmp_path) == [(2, "B"), (3, "c")]
