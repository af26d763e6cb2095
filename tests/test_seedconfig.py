"""Seed config, dbt-compatible (SPEC §3, issue 7 item 23): cadence.yml ``seeds:`` with ``+key``
config, nesting under the project name, folders and seed names; YAML property ``seeds:`` with
``config:``; schema, alias, column_types, enabled, delimiter; unsupported dbt keys warn (lint
and run); a source over a seed's table depends on the seed."""

from __future__ import annotations

import duckdb
import pytest

from cadence.errors import CadenceError
from cadence.project import Project

YML = """\
name: shop
warehouse: {engine: duckdb, path: w.duckdb, threads: 4}
timezone: UTC
channels:
  web: {cadence: "every 15 minutes"}
"""


def rows(root, sql):
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_dbt_style_seed_config_in_cadence_yml(make_project, cli):
    root = make_project(
        {
            "seeds/raw_data/customers.csv": "id,name\n001,a\n002,b\n",
            "seeds/orders.csv": "id,customer_id\n1,001\n",
            "models/m.sql": "{{ config(channels=['web']) }}\n"
            "select c.id from {{ ref('customers') }} c join {{ ref('orders') }} o"
            " on o.customer_id = c.id\n",
        },
        YML
        + """\
seeds:
  shop:
    +schema: raw
    raw_data:
      customers:
        +column_types: {id: varchar}
        +alias: clients
    orders:
      +column_types: {customer_id: varchar}
""",
    )
    result = cli(root, "run", "--at", "2026-06-01T00:01")
    assert result.exit_code == 0, result.output
    assert rows(root, "select id from raw.clients order by id") == [("001",), ("002",)]
    assert rows(root, "select customer_id from raw.orders") == [("001",)]
    assert rows(root, "select id from main.m") == [("001",)]
    # loaded once: an idle run finds the seeds where config put them
    assert cli(root, "run", "--due", "--at", "2026-06-01T00:02").exit_code == 0
    assert "customers" not in cli(root, "run", "--due", "--at", "2026-06-01T00:03").output


def test_seed_yaml_property_config_wins_and_supports_delimiter(make_project, cli):
    root = make_project(
        {
            "seeds/semi.csv": "id;v\n7;x\n",
            "seeds/props.yml": """
                version: 2
                seeds:
                  - name: semi
                    config: {delimiter: ";", schema: other, column_types: {id: varchar}}
            """,
        },
        YML + "seeds: {+schema: raw}\n",
    )
    assert cli(root, "seed", "--at", "2026-06-01T00:01").exit_code == 0
    assert rows(root, "select id, v from other.semi") == [("7", "x")]


def test_a_disabled_seed_is_not_loaded_and_refs_to_it_are_errors(make_project):
    root = make_project(
        {
            "seeds/old.csv": "id\n1\n",
            "models/m.sql": "select * from {{ ref('old') }}\n",
        },
        YML + "seeds:\n  old: {+enabled: false}\n",
    )
    with pytest.raises(CadenceError) as exc:
        Project.load(root, use_cache=False)
    assert "ref to disabled model 'old'" in exc.value.render()
    assert "seeds/old.csv has enabled: false" in exc.value.render()


def test_the_legacy_column_types_form_still_works(make_project, cli):
    root = make_project(
        {"seeds/customers.csv": "id\n001\n"},
        YML + "seeds:\n  column_types:\n    customers: {id: varchar}\n",
    )
    assert cli(root, "seed", "--at", "2026-06-01T00:01").exit_code == 0
    assert rows(root, "select id from main.customers") == [("001",)]


@pytest.mark.parametrize(
    ("seeds_yml", "message"),
    [
        ("seeds: {+schemaa: raw}\n", "unknown seed config key '+schemaa'"),
        ("seeds: {+enabled: maybe}\n", "enabled must be true or false"),
        ("seeds: {+column_types: {id: 5}}\n", "column_types must map columns to type names"),
    ],
)
def test_bad_seed_config_is_an_error_with_a_location(make_project, seeds_yml, message):
    root = make_project({"seeds/s.csv": "id\n1\n"}, YML + seeds_yml)
    with pytest.raises(CadenceError) as exc:
        Project.load(root, use_cache=False)
    assert message in exc.value.render() and "cadence.yml" in exc.value.render()


def test_dbt_seed_keys_cadence_does_not_run_are_errors_naming_them(make_project, cli):
    """Before: accepted with a warning and ignored. Nothing dbt accepts is ignored silently."""
    root = make_project(
        {
            "seeds/s.csv": "id\n1\n",
            "seeds/props.yml": "version: 2\nseeds:\n  - name: s\n    config: {full_refresh: true}\n",
            "models/m.sql": "{{ config(channels=['web'], key='id', grants={'select': ['r']},"
            " meta={'owner': 'x'}) }}\nselect * from {{ ref('s') }}\n",
        },
        YML + "seeds: {+quote_columns: true, +persist_docs: {relation: true}}\n",
    )
    lint = cli(root, "lint").output
    assert "seed config key 'persist_docs'" in lint and "is not supported by cadence" in lint
    assert "key 'full_refresh'" not in lint  # cadence always loads a seed whole
    (root / "cadence.yml").write_text(YML + "seeds: {+quote_columns: true}\n")
    run = cli(root, "run", "--at", "2026-06-01T00:01")
    assert run.exit_code == 0, run.output
    assert "config key 'grants' of model 'm' has no effect: DuckDB has no grants" in run.output
    assert "'meta'" not in run.output
    idle = cli(root, "run", "--due", "--at", "2026-06-01T00:02")
    assert "warning" not in idle.output  # an idle cron run stays quiet


def test_a_source_over_a_seed_is_loaded_before_the_models_reading_it(make_project, cli):
    """Threads 4: without the dependency the view is built in parallel with the seed load."""
    root = make_project(
        {
            "seeds/events.csv": "id,kind\n1,buy\n2,view\n",
            "models/sources.yml": """
                version: 2
                sources:
                  - name: raw
                    tables: [{name: events}]
            """,
            "models/stg_events.sql": "{{ config(materialized='view') }}\n"
            "select * from {{ source('raw', 'events') }}\n",
            "models/buyers.sql": "{{ config(channels=['web']) }}\n"
            "select id from {{ ref('stg_events') }} where kind = 'buy'\n",
        },
        YML + "seeds: {+schema: raw}\n",
    )
    project = Project.load(root, use_cache=False)
    assert "events" in project.dag.parents["stg_events"]
    for attempt in range(3):
        fresh = root.parent / f"copy{attempt}"
        import shutil

        shutil.copytree(root, fresh)
        result = cli(fresh, "run", "--due", "--at", "2026-06-01T00:01", "--threads", "4")
        assert result.exit_code == 0, result.output
        assert rows(fresh, "select id from main.buyers") == [(1,)]
