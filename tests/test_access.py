"""Nothing unsafe runs (SPEC §6): a model is one query, checked with DuckDB's parser before it
runs, and SQL reads and writes files only inside the project folder, ``warehouse.allowed_paths``
and what the project declares (sources' external locations, ``export_root``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import read_run_results, statuses

from cadence.engines import access
from cadence.engines.base import EngineError
from cadence.engines.duckdb import query_problem
from cadence.errors import ProjectErrors
from cadence.project import Project

AT = "2026-03-02T05:00"
YML = "name: p\nwarehouse: {path: warehouse.duckdb, threads: 1}\n"


def _error_of(project: Path, name: str) -> str:
    found = [r for r in read_run_results(project)["results"] if r["name"] == name]
    assert found, f"{name} not in run_results.json"
    return str(found[0]["error"])


@pytest.mark.parametrize(
    ("files", "model"),
    [
        # a closing parenthesis ends the wrapping `create table ... as (`, then statements follow
        (
            {"models/evil.sql": "select 1 as x); copy (select 'owned' as y) to '{out}'; select (1"},
            "evil",
        ),
        ({"models/evil.sql": "select 1 as x;\ncopy (select 'owned' as y) to '{out}'"}, "evil"),
        # the same, produced by a macro
        (
            {
                "macros/sneak.sql": "{% macro sneak() %}1 as x); copy (select 2 as y) to "
                "'{out}'; select (1{% endmacro %}",
                "models/evil.sql": "select {{ sneak() }}",
            },
            "evil",
        ),
        # through an ephemeral inlined into its consumer
        (
            {
                "models/inner.sql": "{{ config(materialized='ephemeral') }}\n"
                "select 1 as x); copy (select 3 as y) to '{out}'; select (1",
                "models/outer.sql": "select * from {{ ref('inner') }}",
            },
            "outer",
        ),
        ({"models/evil.sql": "copy (select 1 as y) to '{out}'"}, "evil"),
        ({"models/evil.sql": "attach '{out}' as smuggled"}, "evil"),
        ({"models/evil.sql": "install httpfs"}, "evil"),
        ({"models/evil.sql": "select 1 as x; set enable_external_access = true"}, "evil"),
    ],
)
def test_a_model_that_is_not_one_query_never_runs(make_project, cli, tmp_path, files, model):
    out = tmp_path / "outside" / "owned.csv"
    out.parent.mkdir()
    project = make_project(
        {path: text.replace("{out}", str(out)) for path, text in files.items()}, YML
    )
    result = cli(project, "run", "--at", AT)
    assert result.exit_code == 1, result.output
    assert not out.exists()
    assert statuses(project)[model] == "error"
    error = _error_of(project, model)
    assert f"models/{model}.sql" in error
    assert "one query" in error or "not a query" in error, error


def test_a_singular_test_that_is_not_one_query_never_runs(make_project, cli, tmp_path):
    out = tmp_path / "owned.csv"
    project = make_project(
        {
            "models/m.sql": "select 1 as x",
            "tests/sneaky.sql": f"select * from {{{{ ref('m') }}}} where x < 0; "
            f"copy (select 1) to '{out}'",
        },
        YML,
    )
    assert cli(project, "run", "--at", AT).exit_code == 1
    assert not out.exists()
    assert "tests/sneaky.sql" in _error_of(project, "m")
    tested = cli(project, "test")
    assert tested.exit_code == 1 and "tests/sneaky.sql" in tested.output
    assert not out.exists()


@pytest.mark.parametrize(
    "sql",
    [
        "select 1 as x",
        "select 1 as x;\n",
        "with a as (select 1 as x) select * from a -- a trailing comment",
        "from range(3)",
        "values (1), (2)",
        "pivot (select 1 as a, 2 as b) on a using sum(b)",
        "(select 1 as x) union all (select 2)",
    ],
)
def test_every_form_of_one_query_is_a_query(sql):
    assert query_problem(sql) is None


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("", "holds no query"),
        ("-- nothing", "holds no query"),
        ("select 1; select 2", "2 statements"),
        ("select 1; copy (select 1) to 'x.csv'", "a COPY statement follows"),
        ("attach 'x.duckdb'", "an ATTACH statement, not a query"),
        ("select 1 as x); drop table t; select (1", "cannot be parsed as one query"),
        ("select 1 /* unterminated", "cannot be parsed as one query"),
    ],
)
def test_what_is_not_one_query_says_why(sql, problem):
    assert problem in (query_problem(sql) or "")


def test_models_read_files_only_where_the_project_allows(make_project, cli, tmp_path):
    outside = tmp_path / "outside"
    (outside / "listed").mkdir(parents=True)
    (outside / "listed" / "a.csv").write_text("id\n1\n")
    (outside / "declared").mkdir()
    (outside / "declared" / "events.csv").write_text("id\n2\n")
    (outside / "secret.csv").write_text("id\n3\n")
    project = make_project(
        {
            "data/inside.csv": "id\n4\n",
            "models/inside.sql": "select * from read_csv('{root}/data/inside.csv')",
            "models/listed.sql": f"select * from read_csv('{outside}/listed/a.csv')",
            "models/declared.sql": "select * from {{ source('raw', 'events') }}",
            "models/secret.sql": f"select * from read_csv('{outside}/secret.csv')",
            "models/passwd.sql": "select * from read_text('/etc/passwd')",
            "models/written.sql": f"select * from read_csv('{outside}/listed/../secret.csv')",
            "models/sources.yml": f"""
                version: 2
                sources:
                  - name: raw
                    tables:
                      - name: events
                        external_location: '{outside}/declared/events.csv'
            """,
        },
        f"name: p\nwarehouse:\n  path: warehouse.duckdb\n  threads: 1\n"
        f"  allowed_paths: ['{outside}/listed']\n",
    )
    model = project / "models" / "inside.sql"
    model.write_text(model.read_text().replace("{root}", str(project)))
    result = cli(project, "run", "--at", AT)
    assert result.exit_code == 1
    got = statuses(project)
    assert got["inside"] == got["listed"] == got["declared"] == "success"
    for name in ("secret", "passwd", "written"):
        assert got[name] == "error"
        error = _error_of(project, name)
        assert "refused: cannot access file" in error
        assert "only inside the project folder, warehouse.allowed_paths" in error
        assert f"models/{name}.sql" in error


def test_sql_cannot_lift_the_limits(make_project, tmp_path):
    project = make_project({"models/m.sql": "select 1 as x"}, YML)
    engine = Project.load(project).open_engine()
    try:
        for sql in (
            "set enable_external_access = true",
            "reset enable_external_access",
            "set allowed_directories = ['/']",
            f"copy (select 1) to '{tmp_path}/x.csv'",
        ):
            with pytest.raises(EngineError):
                engine.execute(sql)
        cursor = engine.cursor()  # a thread's cursor is held to the same limits
        with pytest.raises(EngineError, match="refused"):
            cursor.query("select * from read_text('/etc/passwd')")
        cursor.close()
    finally:
        engine.close()
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    "setting",
    ["enable_external_access: true", "allowed_directories: ['/']", "Lock_Configuration: false"],
)
def test_settings_that_would_lift_the_limits_are_errors(make_project, setting):
    yml = f"name: p\nwarehouse:\n  settings:\n    {setting}\n"
    project = make_project({"models/m.sql": "select 1 as x"}, yml)
    with pytest.raises(ProjectErrors) as caught:
        Project.load(project)
    error = caught.value.errors[0]
    assert (error.file, error.line) == ("cadence.yml", 4)
    assert "is not allowed" in error.message and "allowed_paths" in (error.hint or "")


@pytest.mark.parametrize("value", ["{a: 1}", "[1]", "['']", '["a\\0b"]'])
def test_allowed_paths_must_be_folders(make_project, value):
    yml = f"name: p\nwarehouse:\n  allowed_paths: {value}\n"
    with pytest.raises(ProjectErrors) as caught:
        Project.load(make_project({"models/m.sql": "select 1 as x"}, yml))
    error = caught.value.errors[0]
    assert (error.file, error.line) == ("cadence.yml", 3)
    assert "allowed_paths" in error.message


def test_the_folders_a_connection_may_touch(make_project, tmp_path):
    yml = (
        "name: p\nexport_root: /srv/exports\nwarehouse:\n  path: /var/lib/w/wh.duckdb\n"
        "  allowed_paths: [../shared, 's3://bucket/raw/']\n"
    )
    project = make_project(
        {
            "models/m.sql": "select 1 as x",
            "models/s.yml": """
                version: 2
                sources:
                  - name: raw
                    tables:
                      - name: a
                        external_location: data/a/*.parquet
                      - name: b
                        external_location: 's3://lake/events/2026/*/part.parquet'
            """,
        },
        yml,
    )
    parsed = Project.load(project).parsed
    folders = access.folders(
        project, parsed.config.warehouse, parsed.config.warehouse.path, access.declared(parsed)
    )
    assert folders == (
        f"{project}/",
        "/var/lib/w/",
        f"{tmp_path}/shared/",
        "s3://bucket/raw/",
        f"{project}/data/a/",
        "s3://lake/events/2026/",
        "/srv/exports/",
    )
