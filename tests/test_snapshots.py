"""Snapshots (issue 19 item 5): ``{% snapshot %}`` blocks and YAML snapshots are nodes of the
DAG, built by ``cadence run`` (given cadences like models), and keep dbt's history: the rows and
meta columns asserted here are those dbt 1.11 (dbt-duckdb) writes for the same data and configs
(tests/test_dbt_parity.py compares a whole project with a real dbt). Their publish is atomic and
kill-safe like any other."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cadence.errors import ProjectErrors
from cadence.project import Project

YML = """\
name: snaps
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: UTC
channels:
  email: {cadence: "daily at 05:00"}
"""
ROUND1 = (
    "id,name,updated_at\n1,Ann,2024-01-01 00:00:00\n2,Bob,2024-01-01 00:00:00\n"
    "3,Cid,2024-01-02 00:00:00\n"
)
ROUND2 = (
    "id,name,updated_at\n1,Ann,2024-01-01 00:00:00\n2,Robert,2024-07-01 00:00:00\n"
    "4,Dee,2024-07-02 00:00:00\n"
)
T1, T2 = dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)


def snapshot_file(config: str, select: str = "select * from {{ ref('people') }}") -> str:
    return f"{{% snapshot hist %}}\n{{{{ config({config}) }}}}\n{select}\n{{% endsnapshot %}}\n"


def two_rounds(make_project, cli, files: dict[str, str]) -> Path:
    root = make_project({"seeds/people.csv": ROUND1, **files}, YML)
    first = cli(root, "run", "--at", "2026-01-01T00:00")
    assert first.exit_code == 0, first.output
    (root / "seeds" / "people.csv").write_text(ROUND2)
    second = cli(root, "run", "--at", "2026-01-02T00:00")
    assert second.exit_code == 0, second.output
    return root


def rows(root: Path, relation: str) -> list[tuple]:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(f"select * from {relation} order by all").fetchall()
    finally:
        con.close()


def columns(root: Path, relation: str) -> list[tuple[str, str]]:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return [(r[0], r[1]) for r in con.execute(f"describe {relation}").fetchall()]
    finally:
        con.close()


def scd(*parts: object) -> str:
    return hashlib.md5("|".join(str(p) for p in parts).encode()).hexdigest()


D = dt.datetime


def test_timestamp_strategy_with_invalidated_hard_deletes_keeps_dbts_history(make_project, cli):
    root = two_rounds(
        make_project,
        cli,
        {
            "snapshots/hist.sql": snapshot_file(
                "target_schema='history', unique_key='id', strategy='timestamp', "
                "updated_at='updated_at', invalidate_hard_deletes=True"
            )
        },
    )
    assert [c for c, _t in columns(root, "history.hist")] == [
        *("id", "name", "updated_at", "dbt_scd_id", "dbt_updated_at", "dbt_valid_from"),
        "dbt_valid_to",
    ]
    a, b, c = D(2024, 1, 1), D(2024, 1, 2), D(2024, 7, 1)
    assert rows(root, "history.hist") == [
        (1, "Ann", a, scd(1, "2024-01-01 00:00:00"), a, a, None),
        (2, "Bob", a, scd(2, "2024-01-01 00:00:00"), a, a, c),  # closed at the new updated_at
        (2, "Robert", c, scd(2, "2024-07-01 00:00:00"), c, c, None),
        (3, "Cid", b, scd(3, "2024-01-02 00:00:00"), b, b, T2),  # deleted: closed at run time
        (
            4,
            "Dee",
            D(2024, 7, 2),
            scd(4, "2024-07-02 00:00:00"),
            D(2024, 7, 2),
            D(2024, 7, 2),
            None,
        ),
    ]
    before = rows(root, "history.hist")
    assert cli(root, "run", "--full-refresh", "--at", "2026-01-03T00:00").exit_code == 0
    assert rows(root, "history.hist") == before  # a full refresh never drops the history
    compiled = cli(root, "compile", "--at", "2026-01-03T00:00").output
    assert "hist: target/compiled/snapshots/hist.sql" in compiled


def test_check_strategy_versions_rows_at_run_time(make_project, cli):
    root = two_rounds(
        make_project,
        cli,
        {
            "snapshots/hist.sql": snapshot_file(
                "unique_key='id', strategy='check', check_cols=['name']",
                "select id, name from {{ ref('people') }}",
            )
        },
    )
    t1, t2 = "2026-01-01 00:00:00", "2026-01-02 00:00:00"
    assert rows(root, "main.hist") == [
        (1, "Ann", scd(1, t1), T1, T1, None),
        (2, "Bob", scd(2, t1), T1, T1, T2),
        (2, "Robert", scd(2, t2), T2, T2, None),
        (3, "Cid", scd(3, t1), T1, T1, None),  # hard deletes ignored (the default)
        (4, "Dee", scd(4, t2), T2, T2, None),
    ]


def test_check_all_sees_an_added_column_as_a_change_of_every_row(make_project, cli):
    root = make_project(
        {
            "seeds/people.csv": ROUND1,
            "snapshots/hist.sql": snapshot_file(
                "unique_key='id', strategy='check', check_cols='all'",
                "select id, name from {{ ref('people') }}",
            ),
        },
        YML,
    )
    assert cli(root, "run", "--at", "2026-01-01T00:00").exit_code == 0
    assert cli(root, "run", "--at", "2026-01-01T01:00").exit_code == 0  # nothing changed
    assert len(rows(root, "main.hist")) == 3
    (root / "snapshots" / "hist.sql").write_text(
        snapshot_file(
            "unique_key='id', strategy='check', check_cols='all'",
            "select id, name, 'x' as tier from {{ ref('people') }}",
        )
    )
    assert cli(root, "run", "--at", "2026-01-02T00:00").exit_code == 0
    found = rows(root, "main.hist")
    assert [c for c, _t in columns(root, "main.hist")][-1] == "tier"  # added, old rows null
    picked = sorted(((r[0], r[-1], r[5]) for r in found), key=lambda x: (x[0], x[1] is not None))
    assert picked == [  # id, tier, dbt_valid_to
        (1, None, T2),
        (1, "x", None),
        (2, None, T2),
        (2, "x", None),
        (3, None, T2),
        (3, "x", None),
    ]


def test_yaml_snapshot_with_new_record_deletes_renamed_meta_columns_and_current_marker(
    make_project, cli
):
    root = two_rounds(
        make_project,
        cli,
        {
            "snapshots/snapshots.yml": """\
                snapshots:
                  - name: hist
                    relation: ref('people')
                    config:
                      unique_key: id
                      strategy: timestamp
                      updated_at: updated_at
                      hard_deletes: new_record
                      dbt_valid_to_current: "cast('9999-12-31' as timestamp)"
                      snapshot_meta_column_names:
                        dbt_valid_from: valid_from
                        dbt_valid_to: valid_to
                """,
        },
    )
    names = [c for c, _t in columns(root, "main.hist")]
    assert names[3:] == ["dbt_scd_id", "dbt_updated_at", "valid_from", "valid_to", "dbt_is_deleted"]
    end = D(9999, 12, 31)
    a, c = D(2024, 1, 1), D(2024, 7, 1)
    found = sorted(rows(root, "main.hist"), key=lambda r: (r[0], r[1], r[5]))
    assert [(r[0], r[1], r[5], r[6], r[7]) for r in found] == [
        (1, "Ann", a, end, "False"),
        (2, "Bob", a, c, "False"),
        (2, "Robert", c, end, "False"),
        (3, "Cid", D(2024, 1, 2), T2, "False"),  # closed at run time...
        (3, "Cid", T2, end, "True"),  # ...and a deleted record, current
        (4, "Dee", D(2024, 7, 2), end, "False"),
    ]
    deleted = next(r for r in found if r[-1] == "True")
    closed = next(r for r in found if r[0] == 3 and r[-1] == "False")
    assert deleted[3] == scd(closed[3], "2026-01-02 00:00:00")  # md5(old scd id | run time)
    # the key comes back: the deleted record is closed and a new version inserted
    (root / "seeds" / "people.csv").write_text(ROUND2 + "3,Cid,2024-08-01 00:00:00\n")
    assert cli(root, "run", "--at", "2026-01-03T00:00").exit_code == 0
    cid = sorted((r[5], r[6], r[7]) for r in rows(root, "main.hist") if r[0] == 3)
    assert cid == [
        (D(2024, 1, 2), T2, "False"),
        (D(2024, 8, 1), end, "False"),
        (T2, D(2024, 8, 1), "True"),  # closed at the new row's updated_at, as dbt closes it
    ]


def test_a_snapshot_is_a_node_refd_by_models_with_a_cadence_and_built_by_plain_run(
    make_project, cli
):
    root = make_project(
        {
            "seeds/people.csv": ROUND1,
            "snapshots/hist.sql": snapshot_file(
                "unique_key='id', strategy='timestamp', updated_at='updated_at', cadence='hourly'"
            ),
            "snapshots/lonely.sql": snapshot_file(
                "unique_key='id', strategy='timestamp', updated_at='updated_at'"
            ).replace("hist", "lonely"),
            "models/current_people.sql": "{{ config(channels=['email']) }}\n"
            "select * from {{ ref('hist') }} where dbt_valid_to is null\n",
        },
        YML,
    )
    listing = cli(root, "ls").output
    assert "hist" in listing and "snapshot" in listing and "snapshots/hist.sql" in listing
    due = cli(root, "run", "--due", "--at", "2026-01-01T05:00")
    assert due.exit_code == 0, due.output
    assert "hist" in due.output and "current_people" in due.output
    assert "lonely" not in due.output  # no cadence, no consumer: not due...
    plain = cli(root, "run", "-s", "lonely", "--at", "2026-01-01T05:01")
    assert "OK    lonely" in plain.output  # ...built by a plain run, like dbt snapshot
    later = cli(root, "run", "--due", "--at", "2026-01-01T06:00")
    assert "hist" in later.output and "current_people" not in later.output  # its own hourly ticks
    assert len(rows(root, "main.current_people")) == 3
    lint = cli(root, "lint").output
    assert "nothing refreshes 'lonely'" in lint and "nothing refreshes 'hist'" not in lint


def test_a_model_reading_a_snapshot_through_a_source_is_built_after_it(make_project):
    root = make_project(
        {
            "seeds/people.csv": ROUND1,
            "snapshots/hist.sql": snapshot_file(
                "target_schema='history', unique_key='id', strategy='check', check_cols='all'"
            ),
            "models/sources.yml": "sources:\n  - name: history\n    tables:\n      - name: hist\n",
            "models/changed.sql": "select count(*) as n from {{ source('history', 'hist') }}\n",
        },
        YML,
    )
    project = Project.load(root)
    assert project.dag.parents["changed"] == ("hist",)
    result = project.run(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    assert [r.status for r in result.results] == ["success"] * 3


def test_a_failing_test_on_a_snapshot_keeps_its_previous_history(make_project, cli):
    root = make_project(
        {
            "seeds/people.csv": ROUND1,
            "snapshots/hist.sql": snapshot_file(
                "unique_key='id', strategy='timestamp', updated_at='updated_at'"
            ),
            "snapshots/props.yml": "snapshots:\n  - name: hist\n    columns:\n"
            "      - name: name\n"
            "        data_tests: [{accepted_values: {values: [Ann, Bob, Cid]}}]\n",
        },
        YML,
    )
    assert cli(root, "run", "--at", "2026-01-01T00:00").exit_code == 0
    (root / "seeds" / "people.csv").write_text(ROUND2)
    failed = cli(root, "run", "--at", "2026-01-02T00:00")
    assert failed.exit_code == 1
    assert "tests failed, kept the previous version live: accepted_values name" in failed.output
    assert len(rows(root, "main.hist")) == 3


def test_a_kill_mid_snapshot_leaves_the_old_history_and_the_next_run_finishes(make_project, cli):
    root = make_project(
        {
            "seeds/people.csv": ROUND1,
            "snapshots/hist.sql": snapshot_file(
                "unique_key='id', strategy='timestamp', updated_at='updated_at'"
            ),
        },
        YML,
    )
    assert cli(root, "run", "--at", "2026-01-01T00:00").exit_code == 0
    (root / "seeds" / "people.csv").write_text(ROUND2)
    for step in ("snapshot_staged", "snapshot_swapped"):
        env = {**os.environ, "CADENCE_TEST_FAULT": step}
        killed = subprocess.run(
            [
                sys.executable,
                "-m",
                "cadence",
                "run",
                "--at",
                "2026-01-02T00:00",
                "--project-dir",
                str(root),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert killed.returncode == -9, killed.stdout + killed.stderr
        assert len(rows(root, "main.hist")) == 3  # the old history, whole
        con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
        leftovers = con.execute(
            "select count(*) from duckdb_tables() where table_name like '%cadence_staging%'"
        ).fetchone()[0]
        con.close()
        assert leftovers == 0
    again = cli(root, "run", "--at", "2026-01-02T00:00")
    assert again.exit_code == 0, again.output
    assert len(rows(root, "main.hist")) == 5


def test_an_existing_table_without_snapshot_columns_is_an_error(make_project, cli):
    root = make_project(
        {
            "seeds/people.csv": ROUND1,
            "snapshots/hist.sql": snapshot_file(
                "unique_key='id', strategy='timestamp', updated_at='updated_at'"
            ),
        },
        YML,
    )
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("create table main.hist as select 1 as id")
    con.close()
    result = cli(root, "run", "--at", "2026-01-01T00:00")
    assert result.exit_code == 1
    assert (
        '"main"."hist" is not a snapshot of this kind: it has no column dbt_scd_id' in result.output
    )


@pytest.mark.parametrize(
    ("files", "message", "line"),
    [
        (
            {"snapshots/s.sql": snapshot_file("unique_key='id'")},
            "snapshot 'hist': strategy is missing",
            2,
        ),
        (
            {"snapshots/s.sql": snapshot_file("unique_key='id', strategy='timestamp'")},
            "snapshot 'hist': the timestamp strategy needs updated_at",
            2,
        ),
        (
            {"snapshots/s.sql": snapshot_file("unique_key='id', strategy='check'")},
            "snapshot 'hist': the check strategy needs check_cols",
            2,
        ),
        (
            {
                "snapshots/s.sql": snapshot_file(
                    "unique_key='id', strategy='check', check_cols='all', "
                    "hard_deletes='invalidate', invalidate_hard_deletes=True"
                )
            },
            "hard_deletes and invalidate_hard_deletes are both set",
            2,
        ),
        (
            {
                "snapshots/s.sql": snapshot_file(
                    "unique_key='id', strategy='check', check_cols='all', hard_deletes='purge'"
                )
            },
            "invalid hard_deletes 'purge'",
            2,
        ),
        (
            {
                "snapshots/s.sql": snapshot_file(
                    "unique_key='id', strategy='check', check_cols='all', "
                    "snapshot_meta_column_names={'dbt_valid_form': 'x'}"
                )
            },
            "unknown meta column 'dbt_valid_form'",
            2,
        ),
        ({"snapshots/s.sql": "select 1\n"}, "a snapshot file holds no {% snapshot name %}", 1),
        (
            {
                "snapshots/s.sql": snapshot_file(
                    "unique_key='id', strategy='check', check_cols='all'"
                ),
                "models/hist.sql": "select 1 as id\n",
            },
            "duplicate name 'hist'",
            1,
        ),
        (
            {"snapshots/s.sql": snapshot_file("strategy='check', check_cols='all', key='id'")},
            "unique_key is missing",
            2,
        ),
        (
            {
                "snapshots/s.yml": "snapshots:\n  - name: hist\n    relation: people\n"
                "    config: {unique_key: id}\n"
            },
            "relation must be ref('model') or source('src', 'table')",
            3,
        ),
        (
            {
                "snapshots/s.sql": snapshot_file(
                    "unique_key='id', strategy='check', check_cols='all', target_database='other'"
                )
            },
            "target_database 'other' is not the warehouse ('warehouse')",
            2,
        ),
    ],
)
def test_bad_snapshots_are_errors_naming_file_and_line(make_project, files, message, line):
    root = make_project({"seeds/people.csv": ROUND1, **files}, YML)
    with pytest.raises(ProjectErrors) as caught:
        Project.load(root)
    found = [e for e in caught.value.errors if message in e.message]
    assert found, [e.message for e in caught.value.errors]
    assert found[0].file is not None and found[0].line == line


def test_editing_a_snapshot_file_is_seen_by_the_load_cache(make_project):
    root = make_project(
        {
            "seeds/people.csv": ROUND1,
            "snapshots/hist.sql": snapshot_file(
                "unique_key='id', strategy='check', check_cols='all'"
            ),
        },
        YML,
    )
    assert Project.load(root).parsed.snapshots[0].strategy == "check"
    (root / "snapshots" / "hist.sql").write_text(
        snapshot_file("unique_key='id', strategy='timestamp', updated_at='updated_at'")
    )
    again = Project.load(root)
    assert again.parsed.snapshots[0].strategy == "timestamp"
    assert Project.load(root).parsed.snapshots[0].updated_at == "updated_at"  # from the cache


@pytest.mark.parametrize("value", ["1", "[]", "{}", "x", "[1, 2]", "{a: 1}", "null", "[{}]"])
def test_wrong_shapes_in_snapshot_yaml_are_errors_not_crashes(make_project, cli, value):
    root = make_project(
        {
            "seeds/people.csv": ROUND1,
            "snapshots/s.yml": "snapshots:\n  - name: sn\n    relation: ref('people')\n"
            f"    config: {{unique_key: {value}, strategy: check, check_cols: {value}, "
            f"hard_deletes: {value}, snapshot_meta_column_names: {value}}}\n"
            f"    columns: {value}\n",
        },
        YML,
    )
    for args in (("lint",), ("run", "--at", "2026-01-01T00:00")):
        result = cli(root, *args)
        assert result.exit_code in (0, 1, 2), result.output
        assert "internal error" not in result.output
