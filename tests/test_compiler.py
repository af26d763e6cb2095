"""Compiling models (SPEC §3, §5): refs become relations, ephemerals become CTEs merged into one
leading WITH, and compiled SQL is written under target/compiled/ for review."""

from __future__ import annotations

import duckdb
from conftest import at

from cadence.project import Project

EPHEMERALS = {
    "models/base.sql": "select 1 as id\n",
    "models/eph1.sql": "{{ config(materialized='ephemeral') }}\nselect * from {{ ref('base') }}\n",
    "models/eph2.sql": "{{ config(materialized='ephemeral') }}\nselect id + 1 as id from {{ ref('eph1') }};\n",
    "models/plain.sql": "select * from {{ ref('eph2') }}\n",
    "models/own_with.sql": (
        "-- which customers\n"
        "/* a block comment */\n"
        "WITH x as (select * from {{ ref('eph2') }})\n"
        "select * from x join {{ ref('eph1') }} using (id)\n"
    ),
    "models/twice.sql": "select a.id from {{ ref('eph1') }} a join {{ ref('eph1') }} b using (id)\n",
}


def compiled(project: Project, name: str) -> str:
    return project.compiler.compile(name, at("2026-01-10T10:03"), at("2026-01-10T10:00")).sql


def test_refs_become_quoted_relations(copy_project):
    project = Project.load(copy_project("shop"))
    sql = compiled(project, "stg_orders")
    assert 'from "main"."orders"' in sql
    assert "ref(" not in sql and "«" not in sql
    assert "(amount_cents / 100.0) as amount_eur" in sql  # the macro expanded


def test_sources_with_external_location_become_file_reads(copy_project):
    root = copy_project("shop")
    sql = compiled(Project.load(root), "stg_page_views")
    assert f"from '{root.resolve() / 'data' / 'page_views.csv'}'" in sql


def test_an_ephemeral_becomes_a_cte_under_a_leading_with(make_project):
    project = Project.load(make_project(EPHEMERALS))
    assert compiled(project, "plain") == (
        "with __cadence_ephemeral__eph1 as (\n"
        'select * from "main"."base"\n'
        "),\n"
        "__cadence_ephemeral__eph2 as (\n"
        "select id + 1 as id from __cadence_ephemeral__eph1\n"  # its trailing ';' dropped
        ")\n"
        "select * from __cadence_ephemeral__eph2\n"
    )


def test_ephemeral_ctes_merge_into_the_models_own_with(make_project):
    project = Project.load(make_project(EPHEMERALS))
    sql = compiled(project, "own_with")
    assert sql == (
        "-- which customers\n"
        "/* a block comment */\n"
        "with __cadence_ephemeral__eph1 as (\n"
        'select * from "main"."base"\n'
        "),\n"
        "__cadence_ephemeral__eph2 as (\n"
        "select id + 1 as id from __cadence_ephemeral__eph1\n"
        "),\n"
        "x as (select * from __cadence_ephemeral__eph2)\n"
        "select * from x join __cadence_ephemeral__eph1 using (id)\n"
    )
    assert sql.lower().count("with ") == 1


def test_an_ephemeral_used_twice_is_one_cte(make_project):
    project = Project.load(make_project(EPHEMERALS))
    sql = compiled(project, "twice")
    assert sql.count("__cadence_ephemeral__eph1 as (") == 1
    assert sql.count("__cadence_ephemeral__eph1") == 3


def test_compiled_ephemeral_sql_runs(make_project):
    root = make_project(EPHEMERALS)
    result = Project.load(root).run(at("2026-01-10T10:00"))
    assert {r.name: r.status for r in result.results} == {
        "base": "success",
        "eph1": "skipped",
        "eph2": "skipped",
        "own_with": "success",
        "plain": "success",
        "twice": "success",
    }
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select * from plain").fetchall() == [(2,)]
        assert con.sql("select count(*) from own_with").fetchall() == [(0,)]  # 2 joins 1: none


def test_per_run_values_are_rendered_at_compile_time(make_project):
    project = Project.load(
        make_project(
            {
                "models/stamped.sql": "select '{{ tick }}' as tick, '{{ run_started_at }}' as started, '{{ this }}' as me\n",
            }
        )
    )
    assert compiled(project, "stamped") == (
        "select '2026-01-10 10:00:00+01:00' as tick, '2026-01-10 10:03:00+01:00' as started, "
        '\'"main"."stamped"\' as me\n'
    )
    later = project.compiler.compile("stamped", at("2026-01-10T11:03"), at("2026-01-10T11:00")).sql
    assert "2026-01-10 11:00:00+01:00" in later


def test_compile_is_deterministic(copy_project):
    project = Project.load(copy_project("shop"))
    first = [compiled(project, n) for n in project.model_names()]
    again = Project.load(project.root)
    assert first == [compiled(again, n) for n in again.model_names()]


def test_compile_command_writes_rendered_sql_under_target_compiled(copy_project, cli):
    root = copy_project("shop")
    result = cli(root, "compile", "--at", "2026-01-10T10:00")
    assert result.exit_code == 0, result.output
    assert (
        "high_value: target/compiled/models/segments/high_value.sql" in result.output.splitlines()
    )
    project = Project.load(root)
    for name in project.model_names():
        model = project.parsed.model(name)
        path = root / "target" / "compiled" / model.path
        assert path.read_text() == compiled(project, name).rstrip("\n") + "\n"
    assert not (root / "warehouse.duckdb").exists(), "compile never touches the warehouse"


def test_compile_respects_selection(copy_project, cli):
    root = copy_project("shop")
    result = cli(root, "compile", "-s", "tag:vip", "--at", "2026-01-10T10:00")
    assert result.exit_code == 0, result.output
    written = sorted(
        p.relative_to(root / "target" / "compiled").as_posix()
        for p in (root / "target" / "compiled").rglob("*.sql")
    )
    assert written == ["models/segments/high_value.sql"]


def test_run_writes_the_compiled_sql_it_executed(copy_project, cli):
    root = copy_project("shop")
    assert cli(root, "run", "-s", "+high_value", "--at", "2026-01-10T10:00").exit_code == 0
    text = (root / "target/compiled/models/segments/high_value.sql").read_text()
    assert text.lstrip().startswith("with __cadence_ephemeral__customer_totals as (")
    assert 'from "main"."stg_customers" c' in text
    assert "where t.lifetime_eur >= 500" in text


def test_a_trailing_semicolon_does_not_break_the_build(tmp_path):
    import datetime as dt

    from cadence.project import Project

    (tmp_path / "models").mkdir()
    (tmp_path / "cadence.yml").write_text("name: semi\nwarehouse: {path: w.duckdb}\ntimezone: UTC\n")
    (tmp_path / "models" / "m.sql").write_text("select 1 as id;\n\n")
    result = Project.load(tmp_path).run(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    assert [r.status for r in result.results] == ["success"]


def test_invocation_id_is_the_run_id(make_project, cli, run_results):
    root = make_project({"models/stamped.sql": "select '{{ invocation_id }}' as run\n"})
    assert cli(root, "run", "--at", "2026-01-10T10:00").exit_code == 0
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select run from stamped").fetchall() == [(run_results(root)["run_id"],)]
