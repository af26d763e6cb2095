"""The gate before publication (build/gate.py): a data test that cannot run names itself and
where it is written (YAML file:line, or for a segment's key the place the key is set), with
the closest column, instead of the tests' one internal query failing for the model."""

from __future__ import annotations

import pytest
from conftest import statuses

SEGMENT = "{{ config(channels=['email'], key=KEY) }}\nselect 1 as customer_id, 'a@x.test' as email\n"
YML = """\
version: 2
models:
  - name: vip
    columns:
      - name: customer_id
        tests: [unique]
      - name: COLUMN
        tests: [not_null]
"""


@pytest.mark.parametrize(
    ("key", "column", "expected"),
    [
        pytest.param(
            "customer_id",
            "emial",
            "test not_null_vip_emial (models/vip.yml:8): column 'emial' is not a column of vip "
            "(did you mean 'email'?)",
            id="misspelled-test-column",
        ),
        pytest.param(
            "customer_idd",
            "email",
            "key 'customer_idd' of vip (models/vip.sql:1): column 'customer_idd' is not a column "
            "of vip (did you mean 'customer_id'?)",
            id="wrong-key",
        ),
    ],
)
def test_a_test_on_a_column_the_model_lacks_names_itself_and_its_line(
    make_project, cli, key, column, expected
):
    root = make_project(
        {
            "models/vip.sql": SEGMENT.replace("KEY", repr(key)),
            "models/vip.yml": YML.replace("COLUMN", column),
            "models/other.sql": "{{ config(channels=['email']) }}\nselect 1 as id\n",
        }
    )
    result = cli(root, "run", "--at", "2026-01-10T06:00")
    assert result.exit_code == 1
    assert expected in result.output
    assert "Binder Error" not in result.output and "LINE " not in result.output
    assert statuses(root) == {"vip": "error", "other": "success"}  # only that model fails


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("1=1)) as f0; create table main.smuggled as select ((1", id="through-parentheses"),
        pytest.param("1=1; create table main.smuggled as select 1", id="after-a-semicolon"),
    ],
)
def test_a_test_that_smuggles_a_statement_names_its_file_and_runs_nothing(
    make_project, cli, where
):
    """The tests of a model are asked in one query, checked once by DuckDB's parser; when that
    query is not one query, the test to blame is named, and nothing of it runs."""
    yml = YML.replace("COLUMN", "email").replace(
        "tests: [not_null]", "tests: [{not_null: {config: {where: " + repr(where) + "}}}]"
    )
    root = make_project(
        {
            "models/vip.sql": SEGMENT.replace("KEY", "'customer_id'"),
            "models/vip.yml": yml,
            "models/other.sql": "{{ config(channels=['email']) }}\nselect 1 as id\n",
        }
    )
    result = cli(root, "run", "--at", "2026-01-10T06:00")
    assert result.exit_code == 1
    assert "models/vip.yml" in result.output and "one query" in result.output
    assert statuses(root)["vip"] == "error"
    import duckdb

    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    finally:
        con.close()
    assert "smuggled" not in tables  # nothing of it ran


@pytest.mark.parametrize("quote", ["false", "null", "0", "''"])
def test_unquoted_accepted_values_are_parsed_whatever_says_unquoted(make_project, cli, quote):
    """``quote`` false, null, 0 or empty all write the values as SQL of the project's: the
    tests' query then goes to DuckDB's parser, and a value that closes it and starts a second
    statement is refused before anything runs."""
    value = (
        "'a')) dbt_internal_test) as f0) select 0, false, false; create table main.smuggled as "
        "select 42 as x; with counted as (select (select 0 from (select (1"
    )
    yml = YML.replace("COLUMN", "email").replace(
        "tests: [not_null]",
        "tests: [{accepted_values: {quote: " + quote + ", values: [" + repr(value) + "]}}]",
    )
    root = make_project(
        {"models/vip.sql": SEGMENT.replace("KEY", "'customer_id'"), "models/vip.yml": yml}
    )
    result = cli(root, "run", "--at", "2026-01-10T06:00")
    assert result.exit_code == 1 and "one query" in result.output
    import duckdb

    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    finally:
        con.close()
    assert "smuggled" not in tables
