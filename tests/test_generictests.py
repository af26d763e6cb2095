"""Custom generic tests (``{% test %}`` blocks) and dbt's test configs (issue 19 item 4): they
load, run from YAML like the built-ins, and give dbt's verdicts -- ``failures`` counted as dbt
counts them, ``warn_if``/``error_if`` thresholds, ``where``, ``limit``, ``fail_calc``,
``severity`` -- at publish (blocking) and in ``cadence test``. The verdicts asserted here are
the ones dbt 1.11 gave on the same data (tests/projects/dbt_parity, checked by
tests/test_dbt_parity.py against a real dbt when one is installed)."""

from __future__ import annotations

import json

import pytest

from cadence.errors import ProjectErrors
from cadence.load.generictests import as_macros, synthesized_name
from cadence.project import Project

YML = """\
name: gt
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: UTC
"""
ORDERS = """\
order_id,customer_id,amount,status
1,1,10,placed
2,1,0,returned
3,2,-5,returned
4,9,7,shipped
5,2,3,lost
"""
IS_POSITIVE = """\
{% test is_positive(model, column_name) %}
select {{ column_name }} as bad_value from {{ model }} where {{ column_name }} <= 0
{% endtest %}
"""
AT_LEAST = """\
{%- test at_least(model, column_name, value, other=none) -%}
select * from {{ model }} where {{ column_name }} < {{ value }}
{% if other %} and {{ column_name }} not in (select customer_id from {{ other }}){% endif %}
{%- endtest -%}
"""


def project_with(make_project, tests_yaml: str, extra: dict[str, str] | None = None):
    files = {
        "seeds/orders.csv": ORDERS,
        "seeds/customers.csv": "customer_id,name\n1,a\n2,b\n",
        "macros/tests/is_positive.sql": IS_POSITIVE,
        "tests/generic/at_least.sql": AT_LEAST,
        "models/stg_orders.sql": "select * from {{ ref('orders') }}\n",
        "models/schema.yml": "models:\n  - name: stg_orders\n" + tests_yaml,
        **(extra or {}),
    }
    return make_project(files, YML)


def test_results(cli, root) -> dict[str, tuple[str, int]]:
    out = cli(root, "test", "--json")
    return {r["name"]: (r["status"], r["failures"]) for r in json.loads(out.stdout)}


test_results.__test__ = False  # a helper, not a test


def test_test_blocks_become_macros_keeping_line_numbers():
    text = "{% macro m() %}x{% endmacro %}\n{%- test t(model) -%}\nselect 1\n{%- endtest %}\n"
    converted = as_macros(text)
    assert "{%- macro test_t(model) -%}" in converted and "{%- endmacro %}" in converted
    assert converted.count("\n") == text.count("\n")


@pytest.mark.parametrize(
    ("kind", "args", "name"),
    [  # dbt 1.11's names for these tests (manifest of tests/projects/dbt_parity)
        ("not_null", {"column_name": "order_id"}, "not_null_stg_orders_order_id"),
        (
            "accepted_values",
            {"column_name": "status", "values": ["placed", "shipped", "completed"]},
            "accepted_values_stg_orders_status__placed__shipped__completed",
        ),
        (
            "relationships",
            {"column_name": "customer_id", "to": "ref('stg_customers')", "field": "customer_id"},
            "relationships_stg_orders_customer_id__customer_id__ref_stg_customers_",
        ),
        (
            "mypkg_not_empty_string",
            {"column_name": "status"},
            "mypkg_not_empty_string_stg_orders_status",
        ),
    ],
)
def test_generic_tests_get_dbt_names(kind, args, name):
    assert synthesized_name(kind, "stg_orders", args) == name


def test_custom_generic_tests_load_and_give_dbt_verdicts(make_project, cli):
    root = project_with(
        make_project,
        """\
    columns:
      - name: amount
        data_tests:
          - is_positive:
              config: {severity: warn}
          - is_positive:
              name: positive_unless_zero
              config: {where: "amount <> 0", warn_if: ">5", error_if: ">10"}
          - at_least:
              arguments: {value: 5}
              config: {severity: warn}
      - name: status
        data_tests:
          - accepted_values:
              arguments: {values: [placed, shipped]}
              config: {warn_if: ">1", error_if: ">2"}
          - accepted_values:
              name: status_known
              values: [placed, shipped, returned]
              severity: warn
      - name: customer_id
        data_tests:
          - relationships: {to: ref('customers'), field: customer_id, config: {severity: warn}}
          - at_least: {value: 100, other: "ref('customers')", limit: 1, severity: warn}
""",
    )
    run = cli(root, "run", "--at", "2026-01-01T00:00")
    assert run.exit_code == 0, run.output
    assert (
        "warning: accepted_values status: 2 failing row(s) (configured to warn if >1)" in run.output
    )
    assert test_results(cli, root) == {
        "is_positive_stg_orders_amount": ("warn", 2),  # 0 and -5
        "positive_unless_zero": ("pass", 0),  # 1 row (-5): not > 5
        "at_least_stg_orders_amount__5": ("warn", 3),
        # dbt counts distinct bad values: returned, lost -> 2: warns (> 1), does not fail (> 2)
        "accepted_values_stg_orders_status__placed__shipped": ("warn", 2),
        "status_known": ("warn", 1),
        "relationships_stg_orders_customer_id__customer_id__ref_customers_": ("warn", 1),
        "at_least_stg_orders_customer_id__ref_customers___100": ("warn", 1),  # limit 1
    }


@pytest.mark.parametrize(
    ("config", "status", "blocks"),
    [
        ("{}", "fail", True),  # default: error if != 0 (2 failing rows)
        ("{severity: warn}", "warn", False),
        ("{error_if: '>2'}", "warn", False),  # fails only above 2; still warns (!= 0)
        ("{error_if: '>=2'}", "fail", True),
        ("{error_if: '>5', warn_if: '>5'}", "pass", False),
        ("{limit: 1, error_if: '>1'}", "warn", False),  # at most 1 failing row is counted
        ("{where: 'amount < 0'}", "fail", True),  # one row left (-5)
        ("{where: 'amount > 0'}", "pass", False),
        ("{fail_calc: 'sum(bad_value)', error_if: '< -4'}", "fail", True),  # 0 + -5
        ("{fail_calc: 'sum(bad_value)', error_if: '< -5'}", "warn", False),
    ],
)
def test_threshold_configs_decide_publication_as_dbt_decides_the_verdict(
    make_project, cli, config, status, blocks
):
    root = project_with(
        make_project,
        f"    columns:\n      - name: amount\n        data_tests:\n"
        f"          - is_positive:\n              config: {config}\n",
    )
    run = cli(root, "run", "--at", "2026-01-01T00:00")
    assert (run.exit_code == 1) == blocks, run.output
    if blocks:  # a first build that fails its tests is still reported, as an error
        assert "tests failed, nothing published (no previous version): is_positive" in run.output
        results = json.loads((root / "target" / "run_results.json").read_text())["results"]
        assert {r["name"]: r["status"] for r in results}["stg_orders"] == "error"
        return
    assert test_results(cli, root)["is_positive_stg_orders_amount"][0] == status


def test_a_failing_custom_test_keeps_the_previous_version_live(make_project, cli):
    root = project_with(
        make_project,
        "    columns:\n      - name: amount\n        data_tests: [is_positive]\n",
        {"seeds/orders.csv": "order_id,customer_id,amount,status\n1,1,10,placed\n"},
    )
    assert cli(root, "run", "--at", "2026-01-01T00:00").exit_code == 0
    (root / "seeds" / "orders.csv").write_text(ORDERS)
    again = cli(root, "run", "--at", "2026-01-01T01:00")
    assert again.exit_code == 1
    assert "tests failed, kept the previous version live: is_positive amount: 2 failing row(s)" in (
        again.output
    )
    import duckdb

    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from main.stg_orders").fetchone()[0] == 1
    con.close()


@pytest.mark.parametrize(
    ("test_yaml", "message", "hint"),
    [
        ("- is_positiv", "unknown test 'is_positiv'", "did you mean 'is_positive'?"),
        (
            "- dbt_utils.expression_is_true: {expression: 'amount > 0'}",
            "unknown test 'dbt_utils.expression_is_true'",
            "is it installed in dbt_packages/",
        ),
        (
            "- is_positive: {config: {serverity: warn}}",
            "unknown test config 'serverity'",
            "did you mean 'severity'?",
        ),
        (
            "- is_positive: {severity: warn, config: {severity: error}}",
            "test config 'severity' is given twice",
            "keep the one under config:",
        ),
        (
            "- is_positive: {config: {store_failures: true}}",
            "store_failures is not supported",
            "remove",
        ),
        ("- is_positive: {config: {error_if: 'lots'}}", "invalid error_if 'lots'", "a comparison"),
        ("- is_positive: {config: {limit: -1}}", "invalid limit '-1'", "a count"),
        ("- unique: {values: [1]}", "unknown argument 'values' for test 'unique'", "unique takes"),
        ("- at_least: {valu: 3}", "test 'at_least' on 'stg_orders' failed to render", "signature"),
        ("- relationships: {to: 1, field: [x]}", "relationships needs 'to' and 'field'", "ref("),
    ],
)
def test_bad_tests_are_errors_naming_file_and_line(make_project, test_yaml, message, hint):
    root = project_with(
        make_project,
        f"    columns:\n      - name: amount\n        data_tests:\n          {test_yaml}\n",
    )
    with pytest.raises(ProjectErrors) as caught:
        Project.load(root)
    [error] = [e for e in caught.value.errors if message in e.message]
    assert error.file == "models/schema.yml" and error.line is not None
    assert hint in (error.hint or "")


def test_a_disabled_test_is_not_run_and_jinja_in_configs_is_rendered(make_project, cli):
    root = project_with(
        make_project,
        """\
    columns:
      - name: amount
        data_tests:
          - is_positive:
              config: {enabled: "{{ var('check_amounts', false) }}"}
          - is_positive:
              name: positive_from_var
              config: {where: "amount < {{ var('cap', 0) }}", severity: warn}
""",
    )
    assert cli(root, "run", "--at", "2026-01-01T00:00").exit_code == 0
    assert test_results(cli, root) == {"positive_from_var": ("warn", 1)}


def test_singular_test_configs_follow_dbt(make_project, cli):
    root = project_with(
        make_project,
        "",
        {
            "tests/few_returns.sql": "{{ config(warn_if='>1', error_if='>5') }}\n"
            "select * from {{ ref('stg_orders') }} where status = 'returned'\n",
            "tests/generic/ignored_here.sql": "{% test never(model) %}select 1{% endtest %}\n",
        },
    )
    assert cli(root, "run", "--at", "2026-01-01T00:00").exit_code == 0
    assert test_results(cli, root) == {"few_returns": ("warn", 2)}


def test_source_tests_run_as_dbt_names_them_when_a_reader_is_selected(make_project, cli):
    root = project_with(
        make_project,
        "",
        {
            "models/sources.yml": """\
                sources:
                  - name: raw
                    schema: main
                    tables:
                      - name: orders
                        columns:
                          - name: amount
                            data_tests: [is_positive, {not_null: {severity: warn}}]
                """,
            "models/from_source.sql": "select * from {{ source('raw', 'orders') }}\n",
        },
    )
    assert cli(root, "run", "--at", "2026-01-01T00:00").exit_code == 0
    expected = {
        "source_is_positive_raw_orders_amount": ("fail", 2),
        "source_not_null_raw_orders_amount": ("pass", 0),
    }
    assert test_results(cli, root) == expected
    out = cli(root, "test", "-s", "from_source", "--json")
    assert {r["name"] for r in json.loads(out.stdout)} == set(expected)
    assert json.loads(cli(root, "test", "-s", "stg_orders", "--json").stdout) == []


def test_a_package_test_named_without_its_package_errors_as_in_dbt():
    """dbt finds a package's generic test only as ``package.test``: without it, that test (and
    only it) is an error when tests run. The package namespace is what load.dbt installs."""
    from types import SimpleNamespace

    from cadence.errors import ErrorCollector
    from cadence.load.generictests import GenericTests
    from cadence.load.testspecs import parse_tests

    class PackageMacros:
        def has_macro(self, name: str) -> bool:
            return name == "test_not_empty_string"

    env = SimpleNamespace(env=SimpleNamespace(globals={"mypkg": PackageMacros()}), macro_names={})
    entry = {"columns": [{"name": "name", "data_tests": ["not_empty_string", "unique"]}]}
    errors = ErrorCollector()
    found = parse_tests(entry, "stg_customers", "models/schema.yml", errors, [], GenericTests(env))
    assert errors.errors == []
    assert [(t.name, t.error) for t in found] == [
        (
            "not_empty_string_stg_customers_name",
            "'test_not_empty_string' is undefined: the test is in package 'mypkg'; "
            "write mypkg.not_empty_string (as dbt requires)",
        ),
        ("unique_stg_customers_name", None),
    ]


def test_project_test_defaults_sit_below_each_tests_own_configs():
    """dbt_project.yml's ``data_tests:`` configs (handed in by the loader) apply to every test
    unless the test sets its own."""
    from cadence.errors import ErrorCollector
    from cadence.load.testspecs import parse_tests

    entry = {
        "columns": [{"name": "id", "data_tests": ["unique", {"not_null": {"severity": "error"}}]}]
    }
    errors = ErrorCollector()
    found = parse_tests(entry, "m", "m.yml", errors, [], defaults={"severity": "warn"})
    assert errors.errors == []
    assert [(t.kind, t.severity) for t in found] == [("unique", "warn"), ("not_null", "error")]
    refused = ErrorCollector()
    parse_tests(entry, "m", "m.yml", refused, [], defaults={"store_failures": True})
    assert "store_failures is not supported" in refused.errors[0].message
