"""What a commit group settles at its commit (build/grouped.py, issue 21): the first publishes'
membership rows, inserted at once, and the data tests that read only their model's table,
judged in one statement. Every case is run twice on the same files, with commit groups and with
one transaction per publish (``groups_commits`` off), and must leave the same: statuses, errors,
warnings in their order, build rows, live tables and membership rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from cadence.build import gate, grouped
from cadence.engines.duckdb import DuckDBEngine
from cadence.project import Project

T0 = dt.datetime(2026, 1, 1, 6, 0, tzinfo=dt.timezone.utc)
SEGMENT = "{{ config(channels=['email'], key='id') }}\n"


def cadence_yml(threads: int = 1) -> str:
    return (
        f"name: chk\nwarehouse: {{path: w.duckdb, threads: {threads}}}\ntimezone: UTC\n"
        "channels:\n  email: {cadence: daily at 05:00}\nmodels:\n  materialized: table\n"
    )


# segments and tables in one order: dup fails its unique test, child reads it, warned warns
# (the others pass, their key checks judged at the commit)
MIXED = {
    **{f"models/s{i}.sql": SEGMENT + f"select {i}0 + range as id from range(5)" for i in range(6)},
    "models/dup.sql": "select range % 3 as id from range(6)",
    "models/child.sql": "select id from {{ ref('dup') }}",
    "models/warned.sql": SEGMENT + "select range as id from range(5)",
    "models/after.sql": SEGMENT + "select id + 100 as id from {{ ref('s0') }}",
    "models/schema.yml": """\
version: 2
models:
  - name: dup
    columns:
      - name: id
        tests: [unique]
  - name: warned
    columns:
      - name: id
        tests:
          - accepted_values: {values: [0, 1, 2], config: {severity: warn}}
""",
}


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def outcome(root: Path, monkeypatch: pytest.MonkeyPatch, groups: bool) -> dict[str, object]:
    monkeypatch.setattr(DuckDBEngine, "groups_commits", groups)
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
                "select segment, key, change from _cadence.membership_changes order by 1, 2"
            ).fetchall(),
            "ids": con.execute(
                "select count(distinct change_id) = count(*) from _cadence.membership_changes"
            ).fetchall(),
        }
    finally:
        con.close()


def both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]
) -> tuple[dict[str, object], list[list[str]]]:
    """The outcome with commit groups, checked equal to one transaction per publish, and the
    publishes each settle judged."""
    settled: list[list[str]] = []
    judge = gate.settle

    def counted(engine, pending):  # type: ignore[no-untyped-def]
        settled.append([p.model.name for p in pending])
        return judge(engine, pending)

    monkeypatch.setattr(grouped, "settle", counted)
    one_each = outcome(write(tmp_path / "one", files), monkeypatch, groups=False)
    together = outcome(write(tmp_path / "all", files), monkeypatch, groups=True)
    assert together == one_each
    return together, [names for names in settled if names]


@pytest.mark.parametrize("threads", [1, 3])
def test_settled_at_the_commit_is_what_one_transaction_each_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    found, settled = both(tmp_path, monkeypatch, {"cadence.yml": cadence_yml(threads), **MIXED})
    assert any(len(names) > 1 for names in settled)  # tests of several publishes at once
    results = {n: (status, error, warns) for n, status, error, warns in found["results"]}
    assert results["dup"][0] == "error" and "unique" in results["dup"][1]
    assert results["child"][0] == "upstream_failed"  # never built on the failing table
    assert results["warned"][0] == "success" and "accepted_values" in results["warned"][2][0]
    assert {r[0] for r in found["tables"]} == {f"s{i}" for i in range(6)} | {"warned", "after"}
    assert len(found["members"]) == 6 * 5 + 5 + 5 and found["ids"] == [(True,)]


CASES = {
    # a project whose model runs hooks: s5 repeats a key its post-hook then deletes; judged
    # before the hook (as it publishes), it fails
    "a post-hook": {
        "models/s5.sql": "{{ config(channels=['email'], key='id', post_hook=\"delete from "
        '{{ this }} where id = 50") }}\nselect 50 as id from range(2) union all select 51',
    },
    # a dbt project: a later model deletes a's failing row through run_query as it renders
    "run_query": {
        "dbt_project.yml": "name: rq\nversion: '1.0.0'\nconfig-version: 2\nprofile: rq\n"
        "models:\n  rq:\n    +materialized: table\n",
        "profiles.yml": "rq:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: w.duckdb\n      threads: 1\n",
        "models/a.sql": "select * from (values (1), (cast(null as int))) as t(id)",
        "models/b.sql": "{% if execute %}{% do run_query('delete from ' ~ ref('a') ~ "
        "' where id is null') %}{% endif %}\nselect count(*) as n from {{ ref('a') }}",
        "models/schema.yml": "version: 2\nmodels:\n  - name: a\n    columns:\n"
        "      - name: id\n        tests: [not_null]\n",
    },
    # a later model reads the segments' membership history
    "reading _cadence": {
        "models/seg.sql": SEGMENT + "select range as id from range(5)",
        "models/seg_audit.sql": "select (select count(*) from {{ ref('seg') }}) as members, "
        "(select count(*) from _cadence.membership_changes where segment = 'seg') as changes",
    },
    # a singular test of a later model reads it: it fails when it sees seg's 5 entered rows
    # (one that fails when it sees none would fail in the group and be judged again alone)
    "a test reading _cadence": {
        "models/seg.sql": SEGMENT + "select range as id from range(5)",
        "models/z_late.sql": "select 1 as x",
        "tests/z_late_sees_members.sql": "select x from {{ ref('z_late') }} where (select "
        "count(*) from _cadence.membership_changes where segment = 'seg') = 5",
    },
    # the same through a var, in capitals: only the rendered SQL names the schema
    "reading _CADENCE through a var": {
        "cadence.yml": cadence_yml() + "vars:\n  state: _CADENCE\n",
        "models/seg.sql": SEGMENT + "select range as id from range(5)",
        "models/seg_audit.sql": "select (select count(*) from {{ ref('seg') }}) as members, "
        "(select count(*) from {{ var('state') }}.membership_changes where segment = 'seg') "
        "as changes",
    },
    # the first publish of its group fails after its key checks were left for the commit (a
    # duplicate key, then an event_time column it lacks): the key check's error, as without
    # groups
    "first in its group": {
        "models/seg.sql": "{{ config(channels=['email'], key='id', event_time='joined') }}\n"
        "select range % 2 as id from range(4)",
    },
    # a fail_calc that reads another table (FROM-first: no `select` in it), and a model with
    # a relationships test and a warning not_null: judged as they publish, in their order
    "other tables": {
        "models/t_limit.sql": "select 10 as n",
        "models/a.sql": "select * from (values (1), (null), (null)) as t(id)",
        "models/a_parent.sql": "select 1 as v",  # built before b
        "models/b.sql": "select * from (values (1, 1), (null, 2)) as t(id, v)",
        "models/schema.yml": """\
version: 2
models:
  - name: a
    columns:
      - name: id
        tests:
          - not_null: {config: {fail_calc: 'count(*) - (from t_limit)', error_if: '>0'}}
  - name: b
    columns:
      - name: id
        tests: [{not_null: {config: {severity: warn}}}]
      - name: v
        tests:
          - relationships: {to: ref('a_parent'), field: v, config: {severity: warn}}
""",
    },
}


@pytest.mark.parametrize("case", CASES)
def test_what_a_commit_could_not_judge_alike_is_judged_as_it_publishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    # passing segments around it: nothing else fails and has its group built again
    base = {
        f"models/k{i}.sql": SEGMENT + f"select range as id from range({i + 2})" for i in range(3)
    }
    alone = case in ("first in its group", "run_query")
    files = {} if case == "run_query" else {"cadence.yml": cadence_yml()}
    files.update({**({} if alone else base), **CASES[case]})
    found, _settled = both(tmp_path, monkeypatch, files)
    results = {n: (status, error, warns) for n, status, error, warns in found["results"]}
    if case == "a post-hook":
        assert results["s5"][0] == "error" and "key unique id" in results["s5"][1]
    elif case == "run_query":
        assert results["a"][0] == "error" and results["b"][0] == "upstream_failed"
    elif case == "a test reading _cadence":
        assert results["z_late"][0] == "error" and "z_late_sees_members" in results["z_late"][1]
    elif case.startswith("reading"):
        con = duckdb.connect(str(tmp_path / "all" / "w.duckdb"), read_only=True)
        assert con.execute("select * from seg_audit").fetchall() == [(5, 5)]
        con.close()
    elif case == "first in its group":
        assert results["seg"][0] == "error" and "key unique id" in results["seg"][1]
    else:
        assert results["a"][0] == "error"
        assert [w.split()[0] for w in results["b"][2]] == ["not_null", "relationships"]
