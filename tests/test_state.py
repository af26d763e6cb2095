"""State in the warehouse (SPEC §6): build records commit with each publish; model_state is
folded at the end of each run, and a run killed before folding loses nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from cadence.project import Project

AT = dt.datetime(2026, 1, 1, 6, 0, tzinfo=dt.timezone.utc)


def make(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "cadence.yml").write_text(
        "name: st\nwarehouse: {path: w.duckdb}\ntimezone: UTC\n"
        "channels:\n  web: {cadence: every 15 minutes}\n")
    (root / "models" / "a.sql").write_text("{{ config(channels=['web']) }}\nselect 1 as x\n")
    (root / "models" / "b.sql").write_text("{{ config(channels=['web']) }}\nselect * from {{ ref('a') }}\n")
    return root


def sql(root: Path, query: str) -> list[tuple]:
    con = duckdb.connect(str(root / "w.duckdb"))
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_model_state_is_current_after_each_run(tmp_path: Path) -> None:
    root = make(tmp_path)
    Project.load(root).run(AT)
    rows = sql(root, "select model, last_status, last_rows, builds from _cadence.model_state order by model")
    assert rows == [("a", "success", 1, 1), ("b", "success", 1, 1)]
    assert sql(root, "select status, folded from _cadence.runs") == [("success", True)]
    Project.load(root).run(AT + dt.timedelta(minutes=15), due_only=True)
    assert sql(root, "select model, builds from _cadence.model_state order by model") == [("a", 2), ("b", 2)]


def test_a_run_killed_before_folding_loses_nothing(tmp_path: Path) -> None:
    root = make(tmp_path)
    Project.load(root).run(AT)
    # what a kill -9 after the builds committed but before the fold leaves behind
    sql(root, "delete from _cadence.model_state")
    sql(root, "update _cadence.runs set folded = false, status = 'running'")
    project = Project.load(root)
    plan = project.plan(AT + dt.timedelta(minutes=1))
    assert {d.name: d.builds for d in plan.decisions} == {"a": False, "b": False}  # built at 06:00
    project.run(AT + dt.timedelta(minutes=15), due_only=True)
    assert sql(root, "select model, builds from _cadence.model_state order by model") == [("a", 2), ("b", 2)]
    statuses = sorted(sql(root, "select status, folded from _cadence.runs"))
    assert statuses == [("abandoned", True), ("success", True)]
