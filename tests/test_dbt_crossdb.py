"""The ``dbt`` namespace's cross-database macros render the SQL dbt-duckdb compiles for them.

tests/golden/dbt_crossdb.json holds, per macro call, what ``dbt compile`` (dbt 1.11, dbt-duckdb
1.11) wrote for it; each call renders through cadence in a dbt project and must give the same
SQL, up to whitespace and comments (SPEC §12).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from cadence.load.dbt import crossdb
from cadence.project import Project

GOLDEN = json.loads((Path(__file__).parent / "golden" / "dbt_crossdb.json").read_text())["calls"]


def _tokens(sql: str) -> str:
    without_comments = re.sub(r"--[^\n]*", "", sql)
    return "".join(without_comments.split())


def _probe(tmp_path: Path, calls: list[str], extra: dict[str, str] | None = None) -> Project:
    (tmp_path / "models").mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: probe\nprofile: probe\n")
    (tmp_path / "profiles.yml").write_text(
        "probe:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: p.duckdb}\n"
    )
    for i, call in enumerate(calls):
        (tmp_path / "models" / f"m{i:03d}.sql").write_text("select {{ " + call + " }}")
    for rel, text in (extra or {}).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return Project.load(tmp_path, use_cache=False)


def test_every_macro_renders_what_dbt_duckdb_compiles(tmp_path: Path) -> None:
    calls = list(GOLDEN)
    project = _probe(tmp_path, calls)
    wrong = []
    for i, call in enumerate(calls):
        model = project.parsed.model(f"m{i:03d}")
        assert model is not None
        got = model.rendered[len("select ") :]
        if _tokens(got) != _tokens(GOLDEN[call]):
            wrong.append(f"{call}: dbt {GOLDEN[call]!r}, cadence {got!r}")
    assert not wrong, "\n".join(wrong)


def test_the_golden_file_covers_every_builtin() -> None:
    covered = {m.group(1) for call in GOLDEN if (m := re.match(r"dbt\.(\w+)\(", call))}
    helpers = {"current_timestamp_backcompat", "current_timestamp_in_utc_backcompat"}
    helpers |= {"default_last_day", "get_powers_of_two"}
    assert set(crossdb.BUILTINS) - covered - helpers == set()


def test_unprefixed_calls_and_a_projects_own_dispatch_override(tmp_path: Path) -> None:
    """``dateadd(...)`` is dbt's too; a project's ``duckdb__dateadd`` wins for both forms (dbt
    dispatches the ``dbt`` namespace to the root project first); a project macro of the bare
    name wins only for the bare call."""
    project = _probe(
        tmp_path,
        ["dateadd('day', 1, 'd')", "dbt.dateadd('day', 1, 'd')", "date_trunc('day', 'd')"]
        + ["dbt.date_trunc('day', 'd')"],
        {
            "macros/own.sql": "{% macro duckdb__dateadd(p, i, d) %}OWN({{ d }}){% endmacro %}\n"
            "{% macro date_trunc(p, d) %}BARE({{ d }}){% endmacro %}\n"
        },
    )
    rendered = [project.parsed.model(f"m{i:03d}").rendered for i in range(4)]  # type: ignore[union-attr]
    assert rendered[0] == rendered[1] == "select OWN(d)"
    assert rendered[2] == "select BARE(d)"
    assert rendered[3] == "select date_trunc('day', d)"
