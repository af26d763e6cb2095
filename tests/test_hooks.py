"""What a model's config asks around its build (pre/post hooks, sql_header, persist_docs,
full_refresh) and a dbt project's on-run-start/on-run-end: run, never ignored (SPEC §12)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cadence.errors import CadenceError
from cadence.project import Project

AT = dt.datetime(2026, 3, 2, 5, 0, tzinfo=dt.timezone.utc)


def sql(root: Path, query: str, db: str = "warehouse.duckdb") -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(root / db), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_pre_and_post_hooks_run_around_the_build(make_project: Any) -> None:
    root = make_project(
        {
            "models/audit.sql": "{{ config(materialized='table') }}\n"
            "select 'seed' as what, 0 as n\n",
            "models/m.sql": "{{ config(materialized='table',"
            " pre_hook=\"insert into {{ ref('audit') }} values ('pre', 1)\","
            " post_hook=[\"insert into {{ ref('audit') }} select 'post', count(*)"
            ' from {{ this }}"]) }}\nselect * from range(3)\n',
        }
    )
    assert Project.load(root).run(AT).ok
    assert sql(root, "select what, n from audit order by what") == [
        ("post", 3),
        ("pre", 1),
        ("seed", 0),
    ]


def test_a_failing_post_hook_keeps_the_last_good_version(make_project: Any) -> None:
    root = make_project({"models/m.sql": "select 1 as id\n"})
    assert Project.load(root).run(AT).ok
    (root / "models" / "m.sql").write_text(
        "{{ config(post_hook='select * from no_such_table') }}\nselect 2 as id\n"
    )
    result = Project.load(root).run(AT + dt.timedelta(hours=1))
    assert not result.ok
    assert "post_hook 1 failed" in (result.results[0].error or "")
    assert sql(root, "select id from m") == [(1,)]


def test_sql_header_runs_before_the_build(make_project: Any) -> None:
    root = make_project(
        {
            "models/m.sql": '{{ config(sql_header="set variable cadence_test_x = 41") }}\n'
            "select getvariable('cadence_test_x') + 1 as answer\n"
        }
    )
    assert Project.load(root).run(AT).ok
    assert sql(root, "select answer from m") == [(42,)]


def test_persist_docs_writes_comments(make_project: Any) -> None:
    root = make_project(
        {
            "models/m.sql": "{{ config(persist_docs={'relation': true, 'columns': true}) }}\n"
            "select 1 as id, 'x' as name\n",
            "models/m.yml": "version: 2\nmodels:\n  - name: m\n    description: The m's table\n"
            "    columns:\n      - name: id\n        description: Its key\n",
        }
    )
    assert Project.load(root).run(AT).ok
    assert sql(root, "select comment from duckdb_tables() where table_name = 'm'") == [
        ("The m's table",)
    ]
    comments = sql(root, "select column_name, comment from duckdb_columns() where table_name = 'm'")
    assert dict(comments) == {"id": "Its key", "name": None}


def test_full_refresh_false_keeps_an_incremental_incremental(make_project: Any) -> None:
    root = make_project(
        {
            "models/inc.sql": "{{ config(materialized='incremental', full_refresh=false) }}\n"
            "select {{ var('n') }} as n\n",
        },
    )
    (root / "cadence.yml").write_text((root / "cadence.yml").read_text() + "vars: {n: 1}\n")
    assert Project.load(root).run(AT).ok
    (root / "cadence.yml").write_text((root / "cadence.yml").read_text().replace("n: 1", "n: 2"))
    assert Project.load(root).run(AT + dt.timedelta(hours=1), full_refresh=True).ok
    assert sql(root, "select n from inc order by n") == [(1,), (2,)]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("contract={'enforced': true}", "enforced model contracts are not checked"),
        ("incremental_strategy='microbatch'", "incremental_strategy 'microbatch' is not supported"),
        ("batch_size='day'", "config key 'batch_size' is not supported by cadence"),
        ("materialized='external'", "materialized 'external' is not supported by cadence"),
        ("materialized='materialized_view'", "materialized 'materialized_view' is not supported"),
        ("on_schema_change='rebuild'", "on_schema_change 'rebuild' is not supported"),
        ("indexes=[{'columns': ['id']}]", "config key 'indexes' is not supported"),
    ],
)
def test_dbt_keys_cadence_does_not_run_are_errors(
    make_project: Any, config: str, message: str
) -> None:
    """Before: accepted and ignored (a warning at most)."""
    root = make_project({"models/m.sql": f"{{{{ config({config}) }}}}\nselect 1 as id\n"})
    with pytest.raises(CadenceError) as info:
        Project.load(root, use_cache=False)
    assert message in info.value.render()
    assert "models/m.sql" in info.value.render()


HOOKED = """\
on-run-start:
  - "create table if not exists {{ target.schema }}.run_log (phase varchar, n integer)"
  - "insert into {{ target.schema }}.run_log values ('start', null)"
on-run-end:
  - "insert into {{ target.schema }}.run_log values ('end', {{ results | length }})"
"""


def test_on_run_start_and_end_run_when_a_run_builds(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: h\nprofile: h\n" + HOOKED)
    (tmp_path / "profiles.yml").write_text(
        "h:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: h.duckdb}\n"
    )
    (tmp_path / "cadence.yml").write_text(
        "channels:\n  daily: {cadence: daily at 05:00}\nmodels:\n  h:\n    +channels: [daily]\n"
    )
    (tmp_path / "models" / "a.sql").write_text("select 1 as id\n")
    (tmp_path / "models" / "b.sql").write_text("select * from {{ ref('a') }}\n")
    assert Project.load(tmp_path).run(AT, due_only=True).ok
    assert Project.load(tmp_path).run(AT + dt.timedelta(minutes=1), due_only=True).ok  # idle
    log = sql(tmp_path, "select phase, n from main.run_log order by phase desc", "h.duckdb")
    assert log == [("start", None), ("end", 2)]


@pytest.mark.parametrize(
    ("config", "keyword"),
    [
        (
            "pre_hook=[\"set enable_profiling='json'\", \"set profiling_output='/tmp/x.json'\"]",
            "SET",
        ),
        ("post_hook='/* note */ PRAGMA enable_profiling'", "PRAGMA"),
        ('pre_hook="select 1; reset threads"', "RESET"),
        ("sql_header=\"set memory_limit='1GB'\"", "SET"),
    ],
)
def test_a_hook_may_not_change_session_settings(
    make_project: Any, cli: Any, config: str, keyword: str
) -> None:
    """A setting a hook sets would outlive the model (the rest of the run, cadence's state
    writes too): refused before anything runs, naming the model file; the run is recorded."""
    root = make_project(
        {
            "models/m.sql": "{{ config(" + config + ") }}\nselect 1 as id\n",
            "models/ok.sql": "select 1 as id\n",
        }
    )
    result = cli(root, "run", "--at", "2026-03-02T05:00")
    assert result.exit_code == 1, result.output
    assert f"models/m.sql runs {keyword}: hooks may not change session settings" in result.output
    assert result.output.count("ERROR m ") == 1
    assert "could not be written" not in result.output
    assert sql(root, "select status from _cadence.runs") == [("error",)]
    assert sql(root, "select count(*) from ok") == [(1,)]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("set variable x = 1", None),
        ("update t set a = 1", None),
        ("select 'set x = 1' as s -- ; pragma y", None),
        ("SET search_path = 'a'", "SET"),
        ("insert into t values (1); Pragma threads=2", "PRAGMA"),
    ],
)
def test_session_statements_are_found_by_their_first_word(text: str, found: str | None) -> None:
    from cadence.build.hooks import session_statement

    assert session_statement(text) == found
