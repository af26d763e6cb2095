"""build/onequery.py: the SQL texts DuckDB's parser accepted as one query are remembered across
runs (keyed digests in target/one_query.txt), so an unchanged model is not parsed again every
minute; an edit, a planted or copied file, or another DuckDB version is judged again."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest
from conftest import statuses

from cadence.engines import duckdb as engine_duckdb

FILES = {
    "models/base.sql": "select 1 as customer_id, 'a@x.test' as email\n",
    "models/vip.sql": (
        "{{ config(channels=['email'], key='customer_id') }}\nselect * from {{ ref('base') }}\n"
    ),
    "models/vip.yml": (
        "version: 2\nmodels:\n  - name: vip\n    columns:\n"
        "      - name: email\n        tests: [not_null]\n"
    ),
}
SMUGGLED = "select 1 as customer_id, 'a@x.test' as email);\ncreate table main.smuggled as (select 1\n"


@pytest.fixture()
def parsed(monkeypatch, tmp_path):
    """Every text DuckDB's parser is asked about, in order; a key of this test's own user."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "me"))
    asked: list[str] = []
    real = engine_duckdb.query_problem

    def spy(sql: str) -> str | None:
        asked.append(sql)
        return real(sql)

    monkeypatch.setattr(engine_duckdb, "query_problem", spy)
    return asked


def _tables(root: Path) -> set[str]:
    import duckdb

    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    finally:
        con.close()


def test_an_unchanged_project_is_not_parsed_again(make_project, cli, parsed):
    files = dict(FILES)  # a test with SQL of the project's (a where) is parsed too
    files["models/vip.yml"] = FILES["models/vip.yml"].replace(
        "tests: [not_null]", "tests: [not_null, {unique: {config: {where: \"email <> ''\"}}}]"
    )
    root = make_project(files)
    assert cli(root, "run", "--at", "2026-01-10T06:00").exit_code == 0
    first = len(parsed)
    assert first == 3  # base, vip and vip's tests
    assert (root / "target" / "one_query.txt").stat().st_mode & 0o077 == 0
    # a segment's first version is built in place, its next ones staged: their tests' query
    # reads another relation, judged once too
    assert cli(root, "run", "--full-refresh", "--at", "2026-01-10T07:00").exit_code == 0
    assert len(parsed) == first + 1 and "__cadence_staging" in parsed[-1]
    parsed.clear()
    assert cli(root, "run", "--full-refresh", "--at", "2026-01-10T08:00").exit_code == 0
    assert parsed == []
    assert statuses(root) == {"base": "success", "vip": "success"}


def test_an_edit_that_smuggles_a_statement_is_judged_again_and_refused(
    make_project, cli, parsed
):
    root = make_project(FILES)
    assert cli(root, "run", "--at", "2026-01-10T06:00").exit_code == 0
    (root / "models" / "base.sql").write_text(SMUGGLED)
    for hour in ("07", "08"):  # refused texts are never remembered: refused every time
        result = cli(root, "run", "--full-refresh", "--at", f"2026-01-10T{hour}:00")
        assert result.exit_code == 1
        assert "models/base.sql" in result.output and "one query" in result.output
        assert statuses(root)["base"] == "error"
    assert "smuggled" not in _tables(root)


@pytest.mark.parametrize("how", ["planted-with-another-key", "another-duckdb-version"])
def test_a_file_this_user_s_cadence_did_not_write_vouches_for_nothing(
    make_project, cli, parsed, how
):
    """An entry for the smuggling text made with another key (another user's, a copied file) or
    written under another DuckDB version: the text is parsed and refused all the same."""
    root = make_project(FILES)
    assert cli(root, "run", "--at", "2026-01-10T06:00").exit_code == 0
    (root / "models" / "base.sql").write_text(SMUGGLED)
    path = root / "target" / "one_query.txt"
    header, *entries = path.read_text().splitlines()
    if how == "planted-with-another-key":
        compiled = SMUGGLED  # what the compiler makes of it, near enough: any key but ours
        entries += [hmac.new(b"k" * 32, compiled.encode(), "sha256").hexdigest()]
    else:
        header = "cadence-one-query 1 duckdb-0.0.1"
    path.write_text("\n".join([header, *entries]) + "\n")
    parsed.clear()
    result = cli(root, "run", "--full-refresh", "--at", "2026-01-10T07:00")
    assert result.exit_code == 1 and "one query" in result.output
    assert any("smuggled" in sql for sql in parsed)
    assert "smuggled" not in _tables(root)


def test_an_unreadable_file_is_ignored(make_project, cli, parsed):
    root = make_project(FILES)
    assert cli(root, "run", "--at", "2026-01-10T06:00").exit_code == 0
    path = root / "target" / "one_query.txt"
    path.unlink()
    path.mkdir()  # a folder where the file was: read fails, the save is skipped
    parsed.clear()
    assert cli(root, "run", "--full-refresh", "--at", "2026-01-10T07:00").exit_code == 0
    assert len(parsed) == 2  # base and vip (their unchanged text, judged again)


@pytest.mark.parametrize(
    ("tests", "asked"),
    [
        ("[not_null, unique, {accepted_values: {values: ['a@x.test']}}]", False),
        ("[{row_count: {min: 1}}, {not_null: {config: {fail_calc: 'count(*)'}}}]", False),
        ("[{not_null: {config: {where: 'email is not null'}}}]", True),
        ("[{not_null: {config: {fail_calc: 'count(*) + 0'}}}]", True),
        ("[{accepted_values: {values: ['a@x.test'], quote: false}}]", True),
        ("[{accepted_values: {values: ['a@x.test'], quote: null}}]", True),
    ],
)
def test_built_in_tests_of_cadence_s_own_text_are_not_parsed_others_are(
    make_project, cli, parsed, tests, asked
):
    """A built-in test whose every piece is checked (a quoted column, literal values, a plain
    fail_calc and thresholds) is SQL cadence wrote: one query by construction. Anything of the
    project's in it (a where, an expression, unquoted values) is parsed before it runs."""
    files = dict(FILES)
    files["models/vip.yml"] = FILES["models/vip.yml"].replace("tests: [not_null]", f"tests: {tests}")
    root = make_project(files)
    result = cli(root, "run", "--at", "2026-01-10T06:00")
    assert any("dbt_internal_test" in sql for sql in parsed) is asked, result.output
    if not asked:
        assert result.exit_code == 0, result.output  # judged, without the parser


def test_a_project_s_own_not_null_is_parsed(make_project, cli, parsed):
    """A test macro of the project's that overrides a built-in writes SQL of its own."""
    files = dict(FILES)
    files["macros/not_null.sql"] = (
        "{% test not_null(model, column_name) %}\n"
        "select * from {{ model }} where {{ column_name }} is null\n{% endtest %}\n"
    )
    root = make_project(files)
    result = cli(root, "run", "--at", "2026-01-10T06:00")
    assert result.exit_code == 0, result.output
    assert any("is null" in sql and "dbt_internal_test" in sql for sql in parsed)
