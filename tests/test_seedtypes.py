"""Seed columns typed as dbt-duckdb types them, and malformed CSV files named with their row
(SPEC §12; the expected types are what dbt 1.11 with dbt-duckdb 1.11 gave for the same values)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from cadence.build.seedtypes import read_columns
from cadence.errors import CadenceError
from cadence.project import Project

CASES = [
    # values of one column, the type dbt-duckdb creates the seed's column with
    (["1", "2", "3"], "integer"),
    (["1", "", "null"], "integer"),  # empty and 'null' leave the type alone
    (["4.5", "3.0", "5"], "double"),
    (["1e3", "2"], "integer"),
    (["-7", "+3"], "integer"),
    (["2024-01-05", "2024-12-31"], "date"),
    (["2024-01-05 10:00:00"], "timestamp"),
    (["2024-01-05T10:00:00", "2024-01-05T10:00:00Z"], "timestamp"),
    (["2024-01-05T10:00:00+02:00"], "timestamp"),
    (["true", "FALSE", "True"], "boolean"),
    (["yes", "no"], "varchar"),
    (["1", "0"], "integer"),
    (["01/02/2024"], "varchar"),
    (["10:30:00"], "varchar"),
    (["a", "1"], "varchar"),
    (["2024-01-05", "2024-01-05 10:00:00"], "varchar"),  # no one format fits both
    ([], "integer"),  # an empty seed: dbt's agate calls it a number
    (["3.0", "5.0"], "integer"),  # no decimal places once normalized
    (["1e-2"], "double"),
    (["5%"], "integer"),  # agate reads a number; DuckDB's COPY then fails, as dbt seed does
    (["12345678901"], "integer"),  # too large for INTEGER: the COPY fails, as in dbt
    (["true", "1"], "varchar"),
    (["2024-02-30"], "varchar"),
]


@pytest.mark.parametrize(("values", "expected"), CASES)
def test_column_types_as_dbt_duckdb_gives_them(values: list[str], expected: str) -> None:
    data = ("v\n" + "".join(f"{v}\n" for v in values)).encode()
    assert read_columns(data, "seeds/s.csv") == [("v", expected)]


def test_column_types_win_and_a_bom_is_not_part_of_the_header() -> None:
    data = "\ufeffid,zip\n1,01234\n".encode()
    assert read_columns(data, "seeds/s.csv", None, {"zip": "varchar"}) == [
        ("id", "integer"),
        ("zip", "varchar"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a,b\n1,2\n3,4,5\n", 3, "row 2 has 3 values, but the header has 2 columns"),
        ("a,b\n1,2\n\n3\n", 4, "row 2 has 1 values, but the header has 2 columns"),
        ('a,b\n"x,y",2\n1,2,3\n', 3, "row 2 has 3 values"),
    ],
)
def test_a_row_of_another_width_is_an_error_naming_file_and_row(
    text: str, line: int, message: str
) -> None:
    with pytest.raises(CadenceError) as info:
        read_columns(text.encode(), "seeds/s.csv", infer=False)
    assert info.value.file == "seeds/s.csv"
    assert info.value.line == line
    assert message in info.value.message


def test_a_malformed_seed_fails_its_build_in_a_cadence_project_too(make_project, cli) -> None:
    """Before: DuckDB's sniffer loaded it "OK" into one column."""
    root = make_project(
        {
            "seeds/good.csv": "id,name\n1,a\n",
            "seeds/bad.csv": "id,name,city\n1,a,x\n2,b,y,extra,more\n",
            "models/m.sql": "select * from {{ ref('good') }}\n",
        }
    )
    result = cli(root, "run", "--at", "2026-01-10T10:00")
    assert result.exit_code == 1
    assert "seeds/bad.csv:3" in result.output
    assert "row 2 has 5 values, but the header has 3 columns" in result.output
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    finally:
        con.close()
    assert "good" in tables and "bad" not in tables


def test_a_dbt_projects_seeds_load_with_dbt_duckdbs_types(tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: s\nprofile: s\n")
    (tmp_path / "profiles.yml").write_text(
        "s:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: s.duckdb}\n"
    )
    (tmp_path / "seeds" / "people.csv").write_text(
        "id,score,born,seen,ok,note\n1,4.5,2024-01-05,2024-01-05 10:00:00,true,null\n"
        "2,3,2024-02-01,2024-02-01 11:00:00,false,x\n3,,,,,\n"
    )
    import datetime as dt

    result = Project.load(tmp_path).seed(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    assert result.ok
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    try:
        types = con.execute(
            "select column_name, data_type from duckdb_columns() where table_name = 'people' "
            "order by column_index"
        ).fetchall()
        notes = con.execute("select note from people order by id").fetchall()
    finally:
        con.close()
    assert types == [
        ("id", "INTEGER"),
        ("score", "DOUBLE"),
        ("born", "DATE"),
        ("seen", "TIMESTAMP"),
        ("ok", "BOOLEAN"),
        ("note", "VARCHAR"),
    ]
    assert notes == [("null",), ("x",), (None,)]  # COPY keeps the text 'null', as in dbt
