"""What a commit group settles at its commit (build/grouped.py, issue 21): the first publishes'
membership rows, inserted at once, and the data tests that read only their model's table,
judged in one statement. A test that blocks there, a model reading a table whose tests wait,
a warning, threads, or a project with hooks must leave exactly what one transaction per
publish leaves: the same statuses, errors, warnings, build rows, live tables and members."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from cadence.build import gate, grouped
from cadence.project import Project

T0 = dt.datetime(2026, 1, 1, 6, 0, tzinfo=dt.timezone.utc)

DUP = """\
  - name: dup
    columns:
      - name: id
        tests: [unique]
"""
WARNED = """\
  - name: warned
    columns:
      - name: id
        tests:
          - accepted_values: {values: [0, 1, 2], config: {severity: warn}}
"""


def project(root: Path, threads: int = 1, hooks: bool = False) -> Path:
    """Segments and tables in one order: ``dup`` fails its unique test, ``child`` reads it,
    ``warned`` warns; the others pass (their key checks judged at the commit)."""
    models = root / "models"
    models.mkdir(parents=True)
    (root / "cadence.yml").write_text(
        f"name: chk\nwarehouse: {{path: w.duckdb, threads: {threads}}}\ntimezone: UTC\n"
        "channels:\n  email: {cadence: daily at 05:00}\nmodels:\n  materialized: table\n"
    )
    segment = "{{ config(channels=['email'], key='id') }}\n"
    for i in range(6):
        (models / f"s{i}.sql").write_text(segment + f"select {i} * 10 + range as id from range(5)")
    if not hooks:  # else nothing else fails: what s5 shows is its own
        (models / "dup.sql").write_text("select range % 3 as id from range(6)")
        (models / "child.sql").write_text("select id from {{ ref('dup') }}")
    (models / "warned.sql").write_text(segment + "select range as id from range(5)")
    (models / "after.sql").write_text(segment + "select id + 100 as id from {{ ref('s0') }}")
    if hooks:  # s5 repeats a key its post-hook then deletes: judged before the hook, it fails
        (models / "s5.sql").write_text(
            "{{ config(channels=['email'], key='id', post_hook=\"delete from {{ this }} "
            'where id = 50") }}\nselect 50 as id from range(2) union all select 51'
        )
    (models / "schema.yml").write_text(
        "version: 2\nmodels:\n" + (WARNED if hooks else DUP + WARNED)
    )
    return root


def outcome(root: Path, monkeypatch: pytest.MonkeyPatch, limit: int) -> dict[str, object]:
    monkeypatch.setattr(grouped, "GROUP_MODELS", limit)
    monkeypatch.setattr(grouped, "GROUP_SECONDS", 60.0)
    result = Project.load(root).run(T0)
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    try:
        return {
            "results": sorted((r.name, r.status, r.error, r.warnings) for r in result.results),
            "builds": con.execute(
                "select model, status, error from _cadence.model_builds order by 1"
            ).fetchall(),
            "tables": con.execute(
                "select table_name from duckdb_tables() where schema_name = 'main' order by 1"
            ).fetchall(),
            "members": con.execute(
                "select segment, key, change, run_id is not null from "
                "_cadence.membership_changes order by segment, key"
            ).fetchall(),
            "ids": con.execute(
                "select count(distinct change_id) = count(*) from _cadence.membership_changes"
            ).fetchall(),
        }
    finally:
        con.close()


@pytest.mark.parametrize("threads", [1, 3])
def test_settled_at_the_commit_is_what_one_transaction_each_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    settled: list[list[str]] = []
    judge = gate.settle

    def counted(engine, pending):  # type: ignore[no-untyped-def]
        settled.append([p.model.name for p in pending])
        return judge(engine, pending)

    monkeypatch.setattr(grouped, "settle", counted)
    one_each = outcome(project(tmp_path / "one", threads), monkeypatch, 1)
    together = outcome(project(tmp_path / "all", threads), monkeypatch, 64)
    assert together == one_each
    assert any(len(names) > 1 for names in settled)  # tests of several publishes at once
    results = {n: (status, error, warns) for n, status, error, warns in one_each["results"]}
    assert results["dup"][0] == "error" and "unique" in results["dup"][1]
    assert results["child"][0] == "upstream_failed"  # never built on the failing table
    assert results["warned"][0] == "success" and "accepted_values" in results["warned"][2][0]
    assert {r[0] for r in one_each["tables"]} == {f"s{i}" for i in range(6)} | {"warned", "after"}
    assert len(one_each["members"]) == 6 * 5 + 5 + 5 and one_each["ids"] == [(True,)]


def test_a_project_with_hooks_judges_each_publish_before_its_hooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A post-hook may change its table after the tests: nothing waits for the commit then."""
    together = outcome(project(tmp_path, hooks=True), monkeypatch, 64)
    found = {name: (status, error) for name, status, error, _w in together["results"]}
    assert found["s5"][0] == "error" and "key unique id" in found["s5"][1]
    assert ("s5",) not in together["tables"]
