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


def test_watermark_processes_only_new_rows(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir(parents=True)
    (tmp_path / "seeds").mkdir()
    (tmp_path / "cadence.yml").write_text("name: wm\nwarehouse: {path: w.duckdb}\ntimezone: UTC\n")
    (tmp_path / "models" / "events_copy.sql").write_text(
        "{{ config(materialized='incremental', watermark='ts') }}\nselect id, ts from {{ ref('ev') }}\n")
    (tmp_path / "seeds" / "ev.csv").write_text("id,ts\n1,2026-01-01 00:00:00\n2,2026-01-01 01:00:00\n")
    Project.load(tmp_path).run(AT)
    (tmp_path / "seeds" / "ev.csv").write_text(
        "id,ts\n1,2026-01-01 00:00:00\n2,2026-01-01 01:00:00\n3,2026-01-01 02:00:00\n")
    result = Project.load(tmp_path).run(AT + dt.timedelta(hours=1))
    built = next(r for r in result.results if r.name == "events_copy")
    assert built.rows == 1  # only the row past the watermark was processed
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        assert con.execute("select id from events_copy order by id").fetchall() == [(1,), (2,), (3,)]
    finally:
        con.close()


def test_on_new_data_skips_ticks_without_new_source_rows(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "cadence.yml").write_text(
        "name: nd\nwarehouse: {path: w.duckdb}\ntimezone: UTC\n"
        "channels:\n  web: {cadence: every 15 minutes}\n")
    (tmp_path / "models" / "src.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    tables:\n      - name: ev\n"
        "        loaded_at: at\n        external_location: data/ev.csv\n")
    (tmp_path / "models" / "seg.sql").write_text(
        "{{ config(channels=['web'], refresh='on_new_data') }}\nselect * from {{ source('raw', 'ev') }}\n")
    csv = tmp_path / "data" / "ev.csv"
    csv.write_text("id,at\n1,2026-01-01 05:50:00\n")

    def status(at: dt.datetime) -> str:
        result = Project.load(tmp_path).run(at, due_only=True)
        return next(r for r in result.results if r.name == "seg").status

    assert status(AT) == "success"  # never built
    assert status(AT + dt.timedelta(minutes=15)) == "skipped"  # no rows since 06:00
    csv.write_text("id,at\n1,2026-01-01 05:50:00\n2,2026-01-01 06:20:00\n")
    assert status(AT + dt.timedelta(minutes=30)) == "success"
