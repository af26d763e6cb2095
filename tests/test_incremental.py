"""Incremental models: is_incremental() and {{ this }} as in dbt; unique_key replaces rows;
--full-refresh rebuilds; the append happens in the same transaction as the state record."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

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


@pytest.mark.parametrize("key", ["", ", key='id'"])
def test_a_view_that_becomes_incremental_is_built_whole_then_merged_into(
    tmp_path: Path, key: str
) -> None:
    """The view of the same name is no table to merge into (DuckDB: 'Can only delete from base
    table'): the first run as an incremental builds it whole, as dbt does, and the next
    merges."""
    setup(tmp_path, [(1, "a"), (2, "b")])
    (tmp_path / "models" / "inc.sql").write_text(
        "{{ config(materialized='view') }}\n" + MODEL.split("\n", 1)[1]
    )
    Project.load(tmp_path).run(AT)
    (tmp_path / "models" / "inc.sql").write_text(
        MODEL.replace("unique_key='id'", f"unique_key='id'{key}")
    )
    result = Project.load(tmp_path).run(AT + dt.timedelta(hours=1))
    assert {r.name: r.status for r in result.results}["inc"] == "success", result.results
    assert table(tmp_path) == [(1, "a"), (2, "b")]
    setup(tmp_path, [(2, "B"), (3, "c")])
    (tmp_path / "models" / "inc.sql").write_text(
        MODEL.replace("unique_key='id'", f"unique_key='id'{key}")
    )
    Project.load(tmp_path).run(AT + dt.timedelta(hours=2))
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
        "{{ config(materialized='incremental', watermark='ts') }}\nselect id, ts from {{ ref('ev') }}\n"
    )
    (tmp_path / "seeds" / "ev.csv").write_text(
        "id,ts\n1,2026-01-01 00:00:00\n2,2026-01-01 01:00:00\n"
    )
    Project.load(tmp_path).run(AT)
    (tmp_path / "seeds" / "ev.csv").write_text(
        "id,ts\n1,2026-01-01 00:00:00\n2,2026-01-01 01:00:00\n3,2026-01-01 02:00:00\n"
    )
    result = Project.load(tmp_path).run(AT + dt.timedelta(hours=1))
    built = next(r for r in result.results if r.name == "events_copy")
    assert built.rows == 1  # only the row past the watermark was processed
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        assert con.execute("select id from events_copy order by id").fetchall() == [
            (1,),
            (2,),
            (3,),
        ]
    finally:
        con.close()


def test_on_new_data_skips_ticks_without_new_source_rows(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "cadence.yml").write_text(
        "name: nd\nwarehouse: {path: w.duckdb}\ntimezone: UTC\n"
        "channels:\n  web: {cadence: every 15 minutes}\n"
    )
    (tmp_path / "models" / "src.yml").write_text(
        "version: 2\nsources:\n  - name: raw\n    tables:\n      - name: ev\n"
        "        loaded_at: at\n        external_location: data/ev.csv\n"
    )
    (tmp_path / "models" / "seg.sql").write_text(
        "{{ config(channels=['web'], refresh='on_new_data') }}\nselect * from {{ source('raw', 'ev') }}\n"
    )
    csv = tmp_path / "data" / "ev.csv"
    csv.write_text("id,at\n1,2026-01-01 05:50:00\n")

    def status(at: dt.datetime) -> str:
        result = Project.load(tmp_path).run(at, due_only=True)
        return next(r for r in result.results if r.name == "seg").status

    assert status(AT) == "success"  # never built
    assert status(AT + dt.timedelta(minutes=15)) == "skipped"  # no rows since 06:00
    csv.write_text("id,at\n1,2026-01-01 05:50:00\n2,2026-01-01 06:20:00\n")
    assert status(AT + dt.timedelta(minutes=30)) == "success"


# --- ticks that cost what arrived (issue 8): watermark as a constant, merged unique tests,
# late rows, blocking tests and kill -9 at every step of the merge -------------------------

EVENTS_YML = "sources:\n  - name: app\n    schema: raw\n    tables: [{name: events}]\n"
SEGMENT = (
    "{{ config(materialized='incremental', unique_key='event_id', watermark='loaded_at', "
    "key='event_id') }}\nselect event_id, customer_id, loaded_at from {{ source('app', 'events') }}\n"
)


def event_project(root: Path, model: str = SEGMENT, tests_yml: str = "") -> Path:
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "cadence.yml").write_text(
        "name: ev\nwarehouse: {path: w.duckdb, threads: 1}\ntimezone: UTC\n"
    )
    (root / "models" / "_sources.yml").write_text(EVENTS_YML + tests_yml)
    (root / "models" / "events_inc.sql").write_text(model)
    return root


def land(root: Path, rows: list[tuple[int, int, str]]) -> None:
    """Append (event_id, customer_id, loaded_at) rows to the source, as a loader would."""
    con = duckdb.connect(str(root / "w.duckdb"))
    try:
        con.execute("create schema if not exists raw")
        con.execute(
            "create table if not exists raw.events "
            "(event_id bigint, customer_id bigint, loaded_at timestamp)"
        )
        con.executemany("insert into raw.events values (?, ?, ?::timestamp)", rows)
    finally:
        con.close()


def query(root: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def events(root: Path) -> list[tuple]:
    return query(root, "select event_id, customer_id from events_inc order by all")


def build(root: Path, hour: int, **kw: object) -> object:
    result = Project.load(root).run(AT + dt.timedelta(hours=hour), **kw)
    return next(r for r in result.results if r.name == "events_inc")


def test_watermark_is_read_once_and_pushed_into_the_source_scan(tmp_path: Path) -> None:
    root = event_project(tmp_path)
    land(root, [(1, 10, "2026-01-01 01:00"), (2, 20, "2026-01-01 02:00")])
    assert build(root, 0).status == "success"
    land(root, [(3, 30, "2026-01-01 03:00")])
    project = Project.load(root)
    compiled = project.compiler.compile("events_inc", AT, AT, incremental=True)
    # what a reviewer reads (target/compiled) keeps the dbt-style subquery on {{ this }}
    assert (
        '(select coalesce(max("loaded_at"), \'-infinity\') from "main"."events_inc")'
        in compiled.sql
    )
    engine = project.open_engine()
    try:
        with engine.transaction():
            bound = engine.watermark_bound("loaded_at", '"main"."events_inc"')
            assert bound is not None
            plan = engine.query("explain " + compiled.bound_sql(bound))[0][1]
            rows = engine.query(compiled.bound_sql(bound))
    finally:
        engine.close()
    # the bound is a constant in the scan's table filter (zone maps skip old row groups), not a
    # nested-loop join of every source row against a subquery
    assert (
        "Filters:" in plan
        and "2026-01-01 02:00:00" in plan
        and "NESTED_LOOP" not in plan.upper().replace(" ", "_")
    )
    assert rows == [(3, 30, dt.datetime(2026, 1, 1, 3, 0))]
    assert build(root, 1).rows == 1
    assert events(root) == [(1, 10), (2, 20), (3, 30)]


def test_late_rows_behind_the_watermark_are_skipped_and_newer_versions_replace(
    tmp_path: Path,
) -> None:
    root = event_project(tmp_path, SEGMENT.replace(", key='event_id'", ""))
    land(root, [(1, 10, "2026-01-01 01:00"), (2, 20, "2026-01-01 02:00")])
    build(root, 0)
    # a late row (older than the newest loaded) is not read again: the watermark semantics of
    # dbt's `where loaded_at > (select max(loaded_at) from this)`; a newer version of event 1
    # replaces it on unique_key (delete+insert)
    land(root, [(9, 90, "2026-01-01 01:30"), (1, 11, "2026-01-01 03:00")])
    tick = build(root, 1)
    assert tick.status == "success" and tick.rows == 1
    assert events(root) == [(1, 11), (2, 20)]
    # --full-refresh rebuilds from the source: the late row appears, both versions of event 1
    # are in the source, so the rebuild holds both
    assert build(root, 2, full_refresh=True).status == "success"
    assert events(root) == [(1, 10), (1, 11), (2, 20), (9, 90)]


UNIQUE_CUSTOMER = (
    "models:\n  - name: events_inc\n    columns:\n"
    "      - name: customer_id\n        tests: [unique]\n"
)


def test_a_unique_test_judges_the_merged_table_and_blocks_the_tick(tmp_path: Path) -> None:
    root = event_project(tmp_path, tests_yml=UNIQUE_CUSTOMER)
    land(root, [(1, 10, "2026-01-01 01:00"), (2, 20, "2026-01-01 02:00")])
    assert build(root, 0).status == "success"
    # event 3 reuses customer 10, held by a live row the merge keeps: unique on the new rows
    # alone would pass, on the merged table it fails
    land(root, [(3, 10, "2026-01-01 03:00")])
    failed = build(root, 1)
    assert failed.status == "error" and "tests failed, kept the previous version live" in (
        failed.error or ""
    )
    assert "unique customer_id: 1 failing row(s)" in (failed.error or "")
    assert events(root) == [(1, 10), (2, 20)]
    assert query(root, "select last_status, last_rows from _cadence.model_state") == [("error", 2)]
    assert query(root, "select count(*) from _cadence.membership_changes where key = '3'") == [(0,)]
    assert query(
        root, "select count(*) from duckdb_tables() where table_name like '%staging%'"
    ) == [(0,)]


def test_a_replaced_row_does_not_count_against_unique(tmp_path: Path) -> None:
    root = event_project(tmp_path, tests_yml=UNIQUE_CUSTOMER)
    land(root, [(1, 10, "2026-01-01 01:00"), (2, 20, "2026-01-01 02:00")])
    build(root, 0)
    # event 1 arrives again with the same customer: the merge replaces the live row, so the
    # customer is held once afterwards
    land(root, [(1, 10, "2026-01-01 03:00"), (4, 40, "2026-01-01 03:00")])
    tick = build(root, 1)
    assert tick.status == "success", tick.error
    assert events(root) == [(1, 10), (2, 20), (4, 40)]


def test_duplicate_keys_in_a_watermark_only_model_block_the_tick(tmp_path: Path) -> None:
    model = (
        "{{ config(materialized='incremental', watermark='loaded_at', key='event_id') }}\n"
        "select event_id, customer_id, loaded_at from {{ source('app', 'events') }}\n"
    )
    root = event_project(tmp_path, model)
    land(root, [(1, 10, "2026-01-01 01:00")])
    build(root, 0)
    land(root, [(1, 11, "2026-01-01 02:00"), (5, 50, "2026-01-01 02:00")])  # redelivered key 1
    failed = build(root, 1)
    assert failed.status == "error" and "key unique event_id: 1 failing row(s)" in (
        failed.error or ""
    )
    assert events(root) == [(1, 10)]
    land(root, [(6, None, "2026-01-01 03:00")])
    query_nulls = build(root, 2)  # the blocked rows are still past the watermark: still blocked
    assert query_nulls.status == "error" and events(root) == [(1, 10)]


KILLER = """
import os, signal, sys
import cadence.record.membership as membership
import cadence.build.publish as publish
from cadence.engines.duckdb import DuckDBEngine

step = sys.argv[1]

def then_die(owner, name):
    original = getattr(owner, name)
    def wrapped(*args, **kwargs):
        out = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return out
    setattr(owner, name, wrapped)

owner = {"record_changes": membership, "record_build": publish}.get(step, DuckDBEngine)
then_die(owner, step)
from cadence.cli import main
main(sys.argv[2:])
"""

STEPS = [
    "watermark_bound",
    "create_table_as",
    "record_changes",
    "delete_matching",
    "insert_into",
    "record_build",
]


@pytest.mark.parametrize("step", STEPS)
def test_kill_9_at_every_step_of_a_tick_leaves_the_old_version_and_the_next_tick_catches_up(
    tmp_path: Path, step: str
) -> None:
    root = event_project(tmp_path)
    land(root, [(1, 10, "2026-01-01 01:00"), (2, 20, "2026-01-01 02:00")])
    assert build(root, 0).status == "success"
    land(root, [(2, 21, "2026-01-01 03:00"), (3, 30, "2026-01-01 03:00")])
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLER,
            step,
            "run",
            "--project-dir",
            str(root),
            "--at",
            "2026-01-01T07:00Z",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    # old version live, state and membership history agree with it, nothing staged left over
    assert events(root) == [(1, 10), (2, 20)]
    assert query(root, "select last_rows, builds from _cadence.model_state") == [(2, 1)]
    assert query(root, "select key from _cadence.membership_changes order by key") == [
        ("1",),
        ("2",),
    ]
    assert query(
        root, "select count(*) from duckdb_tables() where table_name like '%staging%'"
    ) == [(0,)]
    # the next tick reads everything past the old watermark: nothing lost, nothing twice
    land(root, [(4, 40, "2026-01-01 04:00")])
    tick = build(root, 2)
    assert tick.status == "success" and tick.rows == 3
    assert events(root) == [(1, 10), (2, 21), (3, 30), (4, 40)]
    assert query(
        root, "select key, change from _cadence.membership_changes order by change_id"
    ) == [("1", "entered"), ("2", "entered"), ("3", "entered"), ("4", "entered")]


@pytest.mark.parametrize(
    ("new_rows", "unique_key", "where", "failures"),
    [
        ([(10, 1, "x")], ("k1", "k2"), None, 0),  # replaces the live row holding 10
        ([(10, 1, "z")], ("k1", "k2"), None, 1),  # other key: the live 10 stays beside it
        ([(10, 1, "z")], ("k1",), None, 0),  # replaced on k1 alone
        ([(10, 9, "z")], (), None, 1),  # no unique_key: nothing is replaced
        ([(30, 3, "q"), (30, 4, "r")], ("k1", "k2"), None, 1),  # twice among the new rows
        ([(30, 3, "q"), (30, 4, "r")], ("k1", "k2"), "id < 25", 0),  # outside the test's where
        ([(20, 7, "q")], ("k1", "k2"), "k1 < 5", 0),  # the new row is outside the where
        ([(None, 5, "n"), (None, 6, "m")], (), None, 0),  # nulls are not duplicates
    ],
)
def test_merged_unique_counts_values_the_merge_would_hold_twice(
    new_rows: list[tuple], unique_key: tuple[str, ...], where: str | None, failures: int
) -> None:
    from cadence.build.incremental import merged_unique_sql
    from cadence.load.testspecs import DataTest

    con = duckdb.connect()
    con.execute("create table live (id int, k1 int, k2 varchar)")
    con.execute("insert into live values (10, 1, 'x'), (20, 2, 'y')")
    con.execute("create table new (id int, k1 int, k2 varchar)")
    con.executemany("insert into new values (?, ?, ?)", new_rows)
    test = DataTest(
        name="u",
        kind="unique",
        model="m",
        column="id",
        args={},
        severity="error",
        where=where,
        file="m.yml",
        line=None,
    )
    sql = merged_unique_sql(test, "new", "live", unique_key)
    assert sql is not None
    assert con.execute(f"select count(*) from ({sql})").fetchone()[0] == failures


@pytest.mark.parametrize(
    ("policy", "columns", "error"),
    [
        (None, ["id", "a"], None),  # ignore (dbt's default): the new column is dropped
        ("ignore", ["id", "a"], None),
        ("append_new_columns", ["id", "a", "b"], None),
        ("sync_all_columns", ["id", "b"], None),
        ("fail", ["id", "a"], "on_schema_change: fail"),
    ],
)
def test_on_schema_change(
    tmp_path: Path, policy: str | None, columns: list[str], error: str | None
) -> None:
    """The model drops column a and adds b between two incremental runs (before: the insert
    failed on the new column, whatever the config said)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "cadence.yml").write_text("name: sc\nwarehouse: {path: w.duckdb}\ntimezone: UTC\n")
    setting = f", on_schema_change='{policy}'" if policy else ""
    head = f"{{{{ config(materialized='incremental', unique_key='id'{setting}) }}}}\n"
    model = tmp_path / "models" / "inc.sql"
    model.write_text(head + "select 1 as id, 'x' as a\n")
    assert Project.load(tmp_path).run(AT).ok
    model.write_text(head + "select 2 as id, 'y' as b\n")
    result = Project.load(tmp_path).run(AT + dt.timedelta(hours=1))
    if error:
        assert not result.ok and error in (result.results[0].error or "")
    else:
        assert result.ok, result.results[0].error
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        got = [
            r[0]
            for r in con.execute(
                "select column_name from duckdb_columns() "
                "where table_name = 'inc' order by column_index"
            ).fetchall()
        ]
    finally:
        con.close()
    assert got == columns


def test_append_strategy_keeps_rows_with_the_same_unique_key(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "cadence.yml").write_text("name: ap\nwarehouse: {path: w.duckdb}\ntimezone: UTC\n")
    (tmp_path / "models" / "inc.sql").write_text(
        "{{ config(materialized='incremental', unique_key='id', incremental_strategy='append') }}\n"
        "select 1 as id\n"
    )
    assert Project.load(tmp_path).run(AT).ok
    assert Project.load(tmp_path).run(AT + dt.timedelta(hours=1)).ok
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from inc").fetchone() == (2,)  # as dbt's append
    finally:
        con.close()
