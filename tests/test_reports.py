"""Read-only reports (status, explain) rendered for people: table-driven with fixed times, DST
nights included: a failing model's next retry, the provenance of on-demand cadences, the real
instant of a naive time in the spring-forward gap, and on_new_data skips that are current."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

NEW_YORK_YML = """\
name: r
warehouse: {engine: duckdb, path: w.duckdb, threads: 1}
timezone: America/New_York
channels:
  web: {cadence: "every 15 minutes"}
  email: {cadence: "daily at 05:00"}
"""

BROKEN = {
    "models/broken.sql": "{{ config(channels=['web']) }}\nselect * from no_such_table\n",
    "models/fine.sql": "{{ config(channels=['web']) }}\nselect 1 as id\n",
}


@pytest.mark.parametrize(
    ("failures", "status_at", "retry"),
    [
        # one failure: retried at the next invocation (now)
        (("2026-06-01T09:01",), "2026-06-01T09:02", "2026-06-01 09:02 EDT"),
        # two failures: wait 2 minutes after the last attempt
        (("2026-06-01T09:01", "2026-06-01T09:02"), "2026-06-01T09:03", "2026-06-01 09:04 EDT"),
        # three: 4 minutes; across the spring-forward night the retry is a real wall time
        (
            ("2026-03-08T01:50", "2026-03-08T01:55", "2026-03-08T01:58"),
            "2026-03-08T03:00",
            "2026-03-08 03:02 EDT",
        ),
    ],
    ids=["streak-1", "streak-2", "dst-spring-forward"],
)
def test_status_text_shows_a_failing_models_next_retry(
    make_project, cli, failures, status_at, retry
):
    root = make_project(BROKEN, NEW_YORK_YML)
    for t in failures:
        assert cli(root, "run", "-s", "broken", "--at", t).exit_code == 1
    text = cli(root, "status", "--at", status_at)
    assert text.exit_code == 0, text.output
    block = text.output.split("\nfine ")[0]
    assert f"next retry: {retry}" in block
    assert f"error x{len(failures)}" in block
    rows = {
        r["name"]: r
        for r in json.loads(cli(root, "status", "--json", "--at", status_at).output)["models"]
    }
    # --json: the same instant, ISO 8601 with its offset (SPEC §7 "Times carry their zone")
    local = dt.datetime.strptime(retry[:16], "%Y-%m-%d %H:%M")
    offset = "-04:00" if retry.endswith("EDT") else "-05:00"
    assert rows["broken"]["next_retry"] == local.isoformat() + offset
    assert all(
        r["next_tick_local"] is None or dt.datetime.fromisoformat(r["next_tick_local"]).tzinfo
        for r in rows.values()
    )
    assert rows["fine"]["next_retry"] is None


def test_status_indents_every_line_of_a_multi_line_error(make_project, cli):
    root = make_project(BROKEN, NEW_YORK_YML)
    cli(root, "run", "-s", "broken", "--at", "2026-06-01T09:01")
    out = cli(root, "status", "--at", "2026-06-01T09:02").output
    block = out.split("\nbroken ")[1].split("\nfine ")[0]
    assert all(line.startswith(" " * 27) for line in block.splitlines()[1:]), block


@pytest.mark.parametrize(
    ("given", "shown", "run_id"),
    [
        ("2026-03-08T02:30", "2026-03-08 03:30 EDT", "20260308T033000"),  # in the gap
        ("2026-03-08T01:30", "2026-03-08 01:30 EST", "20260308T013000"),
        ("2026-11-01T01:30", "2026-11-01 01:30 EDT", "20261101T013000"),  # ambiguous: first
        ("2026-03-08T07:30+00:00", "2026-03-08 03:30 EDT", "20260308T033000"),
    ],
)
def test_a_naive_time_in_the_spring_forward_gap_is_shown_as_the_real_instant(
    make_project, cli, run_results, given, shown, run_id
):
    root = make_project(BROKEN, NEW_YORK_YML)
    explain = cli(root, "explain", "fine", "--at", given).output
    assert f"at {shown}" in explain.splitlines()[0]
    assert cli(root, "run", "-s", "fine", "--at", given).exit_code == 0
    results = run_results(root)
    assert results["run_id"].startswith(run_id + "-")
    plan = cli(root, "plan", "--at", given).output
    assert plan.startswith(f"at {shown}:")


def test_on_demand_is_not_listed_as_a_source_of_ticks(make_project, cli):
    root = make_project(
        {
            "models/base.sql": "select 1 as id\n",
            "models/adhoc.sql": (
                "{{ config(cadence='on demand') }}\nselect * from {{ ref('base') }}\n"
            ),
            "models/both.sql": "{{ config(channels=['web']) }}\nselect * from {{ ref('base') }}\n",
        },
        NEW_YORK_YML,
    )
    rows = {r["name"]: r for r in json.loads(cli(root, "ls", "--json").output)}
    assert rows["adhoc"]["provenance"] == "no ticks: explicit cadence 'on demand'"
    assert "on demand" not in rows["base"]["provenance"]  # its ticks come from web only
    assert rows["base"]["provenance"] == "every 15 minutes, from channel web via both"
    explain = cli(root, "explain", "adhoc", "--at", "2026-06-01T09:00").output
    assert "because: no ticks: explicit cadence 'on demand'" in explain
    assert "from explicit cadence" not in explain


def test_provenance_of_a_model_read_only_by_an_on_demand_model(make_project, cli):
    root = make_project(
        {
            "models/base.sql": "select 1 as id\n",
            "models/adhoc.sql": (
                "{{ config(cadence='on demand') }}\nselect * from {{ ref('base') }}\n"
            ),
        },
        NEW_YORK_YML,
    )
    rows = {r["name"]: r for r in json.loads(cli(root, "ls", "--json").output)}
    assert rows["base"]["provenance"] == "no ticks: explicit cadence 'on demand' of adhoc"


ON_NEW_DATA = {
    "models/_sources.yml": """
        sources:
          - name: app
            schema: raw
            tables: [{name: events, loaded_at: loaded_at}]
    """,
    "models/counts.sql": (
        "{{ config(channels=['web'], refresh='on_new_data') }}\n"
        "select count(*) as n from {{ source('app', 'events') }}\n"
    ),
}


@pytest.mark.parametrize(
    ("loaded", "built_at", "status_at", "fresh"),
    [
        ("2026-06-01 08:00:00", "2026-06-01T09:01", "2026-06-01T10:20", "2026-06-01 10:10:00"),
        # across the spring-forward night: 01:01 EST, then 03:40 EDT
        ("2026-03-08 00:30:00", "2026-03-08T01:01", "2026-03-08T03:40", "2026-03-08 03:10:00"),
    ],
    ids=["summer", "dst-spring-forward"],
)
def test_a_model_skipped_for_no_new_data_is_current_not_overdue(
    make_project, cli, loaded, built_at, status_at, fresh
):
    root = make_project(ON_NEW_DATA, NEW_YORK_YML)
    con = duckdb.connect(str(root / "w.duckdb"))
    con.execute("create schema raw; create table raw.events (id int, loaded_at timestamp)")
    con.execute("insert into raw.events values (1, ?)", [loaded])
    con.close()
    assert cli(root, "run", "--at", built_at).exit_code == 0
    rows = {
        r["name"]: r
        for r in json.loads(cli(root, "status", "--json", "--at", status_at).output)["models"]
    }
    assert rows["counts"]["due"] is False
    assert rows["counts"]["overdue"] is False
    assert "OVERDUE" not in cli(root, "status", "--at", status_at).output
    plan = cli(root, "plan", "--at", status_at).output
    assert "no new rows in app.events" in plan
    # new rows arrive: due again, and overdue once it misses a tick
    con = duckdb.connect(str(root / "w.duckdb"))
    con.execute("insert into raw.events values (2, ?)", [fresh])
    con.close()
    rows = {
        r["name"]: r
        for r in json.loads(cli(root, "status", "--json", "--at", status_at).output)["models"]
    }
    assert rows["counts"]["due"] is True and rows["counts"]["overdue"] is True


def test_lint_engine_spark_names_what_cannot_run_with_file_and_line(make_project, cli):
    pytest.importorskip("sqlglot", reason="sqlglot is not installed (pip install 'cadence[spark]')")
    root = make_project(
        {
            "models/ok.sql": "{{ config(channels=['web'], key='id') }}\nselect 1 as id\n",
            "models/bad.sql": "{{ config(channels=['web'], key='id') }}\nselect 1 as id,\n"
            "  [x * 2 for x in [1, 2]] as doubled\n",
        }
    )
    plain = cli(root, "lint")
    assert plain.exit_code == 0 and "spark" not in plain.output
    result = cli(root, "lint", "--engine", "spark")
    assert result.exit_code == 1
    assert "models/bad.sql:3: error: spark: list comprehensions cannot run" in result.output
    assert "models/ok.sql" not in result.output
    assert "1 error(s)" in result.output
