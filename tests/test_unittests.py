"""Unit tests (issue 19 item 6): dbt's ``unit_tests:`` run by ``cadence test`` in DuckDB in
memory -- the warehouse is never opened -- with given rows typed as the real inputs, overrides of
vars, macros and env vars, and a diff like dbt's when the output differs."""

from __future__ import annotations

import json

import pytest

from cadence.build.unittests import diff
from cadence.errors import ProjectErrors
from cadence.project import Project

YML = """\
name: ut
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: UTC
vars: {big: 2000}
"""
FILES = {
    "seeds/orders.csv": "order_id,amount_cents,status\n1,2500,placed\n2,100,shipped\n",
    "models/sources.yml": """\
        sources:
          - name: app
            tables:
              - name: events
              - name: visits
                external_location: data/visits.csv
        """,
    "data/visits.csv": "visit_id,order_id,at\n1,1,2024-01-01 10:00:00\n",
    "macros/money.sql": "{% macro money(c) %}cast({{ c }} / 100.0 as decimal(12, 2))"
    "{% endmacro %}\n"
    "{% macro label() %}'live'{% endmacro %}\n",
    "models/priced.sql": "select order_id, {{ money('amount_cents') }} as amount, status,\n"
    "  amount_cents >= {{ var('big') }} as is_big, {{ label() }} as label,\n"
    "  '{{ env_var('REGION', 'eu') }}' as region\nfrom {{ ref('orders') }}\n",
    "models/with_events.sql": "select e.order_id, count(*) as n, max(v.at) as last_visit\n"
    "from {{ source('app', 'events') }} e\n"
    "left join {{ source('app', 'visits') }} v using (order_id)\ngroup by 1\n",
    "models/eph.sql": "{{ config(materialized='ephemeral') }}\n"
    "select order_id, status from {{ ref('orders') }} where status <> 'cancelled'\n",
    "models/from_eph.sql": "select count(*) as n from {{ ref('eph') }}\n",
}


def project(make_project, unit_tests: str, extra: dict[str, str] | None = None):
    return make_project({**FILES, "models/unit.yml": unit_tests, **(extra or {})}, YML)


def results(cli, root) -> dict[str, tuple[str, str]]:
    out = cli(root, "test", "--json")
    return {r["name"]: (r["status"], r["message"]) for r in json.loads(out.stdout)}


def test_unit_tests_run_in_memory_without_the_warehouse(make_project, cli):
    root = project(
        make_project,
        """\
        unit_tests:
          - name: prices
            model: priced
            given:
              - input: ref('orders')
                rows:
                  - {order_id: 1, amount_cents: 2500}
                  - {order_id: 2, amount_cents: 40, status: shipped}
            expect:
              rows:
                - {order_id: 1, amount: 25.00, status: null, is_big: true}
                - {order_id: 2, amount: 0.4, status: shipped, is_big: false}
          - name: overrides
            model: priced
            overrides:
              vars: {big: 30}
              macros: {label: "'test'"}
              env_vars: {REGION: us}
            given:
              - input: ref('orders')
                format: csv
                rows: |
                  order_id,amount_cents
                  1,40
            expect:
              format: csv
              rows: |
                order_id,is_big,label,region
                1,true,test,us
          - name: own_seed_rows
            model: priced
            given:
              - input: ref('orders')
            expect:
              rows: [{order_id: 1}, {order_id: 2}]
        """,
    )
    out = cli(root, "test")
    assert out.exit_code == 0, out.output
    assert results(cli, root) == {
        "priced::prices": ("pass", ""),
        "priced::overrides": ("pass", ""),
        "priced::own_seed_rows": ("pass", ""),
    }
    assert not (root / "warehouse.duckdb").exists()


def test_a_failing_unit_test_shows_a_diff_like_dbt(make_project, cli):
    root = project(
        make_project,
        """\
        unit_tests:
          - name: wrong
            model: priced
            given:
              - input: ref('orders')
                rows:
                  - {order_id: 1, amount_cents: 2500, status: placed}
                  - {order_id: 2, amount_cents: 100, status: placed}
                  - {order_id: 3, amount_cents: 700, status: placed}
            expect:
              rows:
                - {order_id: 1, amount: 99.99}
                - {order_id: 2, amount: 1.00}
                - {order_id: 4, amount: 7.00}
        """,
    )
    out = cli(root, "test")
    assert out.exit_code == 1
    status, message = results(cli, root)["priced::wrong"]
    assert status == "fail"
    assert message == (
        "actual differs from expected:\n\n"
        "@@ ,order_id,amount\n"
        "→  ,1       ,99.99→25.00\n"
        "---,4       ,7.00\n"
        "+++,3       ,7.00"
    )


def test_diff_is_empty_for_equal_rows_in_any_order():
    assert diff(["a"], [(1,), (2,), (2,)], [(2,), (1,), (2,)]) == ""
    assert "+++,2" in diff(["a"], [(1,), (2,)], [(1,), (2,), (2,)])


def test_sources_ephemerals_and_this_are_given(make_project, cli):
    root = project(
        make_project,
        """\
        unit_tests:
          - name: from_sources
            model: with_events
            given:
              - input: source('app', 'events')
                rows: [{order_id: 1}, {order_id: 1}, {order_id: 2}]
              - input: source('app', 'visits')
                format: sql
                rows: "select 9 as visit_id, 1 as order_id, timestamp '2024-05-01' as at"
            expect:
              rows:
                - {order_id: 1, n: 2, last_visit: "2024-05-01 00:00:00"}
                - {order_id: 2, n: 1, last_visit: null}
          - name: given_ephemeral
            model: from_eph
            given:
              - input: ref('eph')
                rows: [{order_id: 1}, {order_id: 2}, {order_id: 3}]
            expect:
              rows: [{n: 3}]
          - name: through_ephemeral
            model: from_eph
            given:
              - input: ref('orders')
                rows: [{order_id: 1, status: cancelled}, {order_id: 2, status: placed}]
            expect:
              rows: [{n: 1}]
        """,
    )
    assert results(cli, root) == {
        "with_events::from_sources": ("pass", ""),
        "from_eph::given_ephemeral": ("pass", ""),
        "from_eph::through_ephemeral": ("pass", ""),
    }


def test_fixture_files_and_is_incremental_override(make_project, cli):
    root = project(
        make_project,
        """\
        unit_tests:
          - name: only_new
            model: inc
            overrides: {macros: {is_incremental: true}}
            given:
              - input: ref('orders')
                format: csv
                fixture: two_orders
              - input: this
                format: sql
                fixture: seen
            expect:
              format: csv
              fixture: expected_new
        """,
        {
            "models/inc.sql": "{{ config(materialized='incremental', unique_key='order_id') }}\n"
            "select order_id, status from {{ ref('orders') }}\n"
            "{% if is_incremental() %}where order_id > (select max(order_id) from {{ this }})"
            "{% endif %}\n",
            "tests/fixtures/two_orders.csv": "order_id,amount_cents,status\n1,10,a\n2,20,\n",
            "tests/fixtures/seen.sql": "select 1 as order_id, 'a' as status\n",
            "tests/fixtures/expected_new.csv": "order_id,status\n2,\n",
        },
    )
    assert results(cli, root) == {"inc::only_new": ("pass", "")}


def test_only_what_the_model_reads_as_rendered_for_the_test_must_be_given(make_project, cli):
    root = project(
        make_project,
        """\
        unit_tests:
          - name: full_build
            model: inc
            given:
              - input: ref('orders')
                rows: [{order_id: 1}]
            expect:
              rows: [{order_id: 1}]
        """,
        {
            "models/inc.sql": "{{ config(materialized='incremental') }}\n"
            "select order_id from {{ ref('orders') }}\n"
            "{% if is_incremental() %}where order_id not in (select order_id from "
            "{{ ref('priced') }}){% endif %}\n",
        },
    )
    assert results(cli, root) == {"inc::full_build": ("pass", "")}
    assert Project.load(root).parsed.tests == ()  # a fixture .sql is not a singular test


@pytest.mark.parametrize(
    ("given", "expect", "message"),
    [
        ("[]", "[{order_id: 1}]", "model priced reads ref('orders'), which is not given"),
        (
            "[{input: ref('orders'), rows: [{order_id: 1, amont_cents: 5}]}]",
            "[{order_id: 1}]",
            "invalid column name 'amont_cents' in the fixture for 'orders'",
        ),
        (
            "[{input: ref('orders'), rows: [{order_id: 1}]}]",
            "[{order_id: 1, amount_usd: 5}]",
            "invalid column name 'amount_usd' in the expected rows",
        ),
    ],
)
def test_unit_test_problems_are_errors_of_that_test(make_project, cli, given, expect, message):
    root = project(
        make_project,
        f"unit_tests:\n  - name: t\n    model: priced\n    given: {given}\n"
        f"    expect: {{rows: {expect}}}\n",
    )
    out = cli(root, "test")
    assert out.exit_code == 1
    status, text = results(cli, root)["priced::t"]
    assert status == "error" and message in text, text


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("model: pricd\n    given: []\n    expect: {rows: []}", "unknown model 'pricd'"),
        ("model: hist\n    given: []\n    expect: {rows: []}", "'hist' is a snapshot"),
        (
            "model: priced\n    given: [{input: ref('ordrs'), rows: []}]\n    expect: {rows: []}",
            "given input ref('ordrs'): no model or seed of that name",
        ),
        (
            "model: priced\n    given: [{input: ref('orders'), format: csv, fixture: nope}]\n"
            "    expect: {rows: []}",
            "no fixture file nope.csv",
        ),
        (
            "model: priced\n    given: [{input: ref('orders'), format: csv, "
            'rows: "a,b\\n1,2,3\\n"}]\n'
            "    expect: {rows: []}",
            "csv row 2 has more values than its header",
        ),
        (
            "model: priced\n    given: []\n    expect: {rows: []}\n    overrides: {var: {}}",
            "unknown overrides key 'var'",
        ),
    ],
)
def test_bad_unit_tests_are_load_errors_naming_file_and_line(make_project, entry, message):
    snapshot = (
        "{% snapshot hist %}{{ config(unique_key='order_id', strategy='check', "
        "check_cols='all') }}select * from {{ ref('orders') }}{% endsnapshot %}\n"
    )
    root = project(
        make_project,
        f"unit_tests:\n  - name: t\n    {entry}\n",
        {"snapshots/hist.sql": snapshot},
    )
    with pytest.raises(ProjectErrors) as caught:
        Project.load(root)
    found = [e for e in caught.value.errors if message in e.message]
    assert found, [e.message for e in caught.value.errors]
    assert found[0].file == "models/unit.yml" and found[0].line is not None


@pytest.mark.parametrize("value", ["1", "[]", "{}", "x", "[1, 2]", "{a: 1}", "null", "[{}]"])
def test_wrong_shapes_in_unit_tests_are_errors_not_crashes(make_project, cli, value):
    root = project(
        make_project,
        f"unit_tests:\n  - name: u\n    model: priced\n    given: [{{input: ref('orders'), "
        f"rows: {value}, format: {value}}}]\n    expect: {{rows: {value}}}\n"
        f"    overrides: {value}\n",
    )
    for args in (("lint",), ("test",)):
        result = cli(root, *args)
        assert result.exit_code in (0, 1, 2), result.output
        assert "internal error" not in result.output
