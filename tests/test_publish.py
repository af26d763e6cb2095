"""Atomic publish and gating tests (SPEC §6): a table replaces the live relation only after its
blocking tests pass on the staging relation; otherwise the last good version stays live."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from cadence.project import Project

T0 = dt.datetime(2026, 1, 1, 6, 0, tzinfo=dt.timezone.utc)
T1 = T0 + dt.timedelta(days=1)


def project(root: Path, sql: str, yml: str = "", singular: str | None = None) -> Path:
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / "cadence.yml").write_text(
        "name: pub\nwarehouse: {path: w.duckdb, threads: 1}\ntimezone: UTC\n"
        "channels:\n  email: {cadence: daily at 05:00}\n"
        "vars: {n: 10, dup: 0, nulls: 0}\n")
    (root / "models" / "seg.sql").write_text(sql)
    if yml:
        (root / "models" / "seg.yml").write_text(yml)
    if singular is not None:
        (root / "tests").mkdir(exist_ok=True)
        (root / "tests" / "check.sql").write_text(singular)
    return root


SEG = """{{ config(channels=['email'], key='id') }}
select i as id, case when i < {{ var('nulls') }} then null else 'x' end as email
from range({{ var('n') }}) t(i)
union all select 0 as id, 'dup' as email from range({{ var('dup') }})
"""


def set_vars(root: Path, **values: int) -> None:
    text = (root / "cadence.yml").read_text().splitlines()
    text[-1] = "vars: {" + ", ".join(f"{k}: {v}" for k, v in {"n": 10, "dup": 0, "nulls": 0, **values}.items()) + "}"
    (root / "cadence.yml").write_text("\n".join(text) + "\n")


def live(root: Path) -> tuple[int, str | None, int | None]:
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    try:
        rows = con.execute("select count(*) from main.seg").fetchone()[0]
        status, last_rows = con.execute(
            "select last_status, last_rows from _cadence.model_state where model = 'seg'").fetchone()
        staging = con.execute("select count(*) from duckdb_tables() where table_name like '%staging%'").fetchone()[0]
        assert staging == 0
    finally:
        con.close()
    return rows, status, last_rows


def run(root: Path, at: dt.datetime):  # type: ignore[no-untyped-def]
    result = Project.load(root).run(at)
    return {r.name: r for r in result.results}


@pytest.mark.parametrize("change, message", [
    ({"nulls": 3}, "not_null email"),
    ({"dup": 1}, "key unique id"),
    ({"n": 40}, "max_change"),
    ({"n": 2}, "row_count"),
])
def test_failing_blocking_test_keeps_last_good_version(tmp_path: Path, change: dict, message: str) -> None:
    root = project(tmp_path, SEG, yml="""
version: 2
models:
  - name: seg
    tests: [{max_change: 0.5}, {row_count: {min: 5}}]
    columns:
      - name: email
        tests: [not_null]
""")
    assert run(root, T0)["seg"].status == "success"
    assert live(root) == (10, "success", 10)
    set_vars(root, **change)
    result = run(root, T1)["seg"]
    assert result.status == "error"
    assert message in result.error and "kept the previous version live" in result.error
    assert live(root) == (10, "error", 10)
    set_vars(root)  # fixed: the next run publishes
    assert run(root, T1 + dt.timedelta(days=1))["seg"].status == "success"


def test_warn_severity_publishes_with_a_warning(tmp_path: Path) -> None:
    root = project(tmp_path, SEG, yml="""
version: 2
models:
  - name: seg
    columns:
      - name: email
        tests: [{not_null: {severity: warn}}]
""")
    run(root, T0)
    set_vars(root, nulls=2)
    result = run(root, T1)["seg"]
    assert result.status == "success"
    assert any("not_null" in w for w in result.warnings)
    assert live(root)[0] == 10


def test_singular_test_gates_publication(tmp_path: Path) -> None:
    root = project(tmp_path, SEG, singular="select * from {{ ref('seg') }} where id >= 12\n")
    assert run(root, T0)["seg"].status == "success"
    set_vars(root, n=15)
    result = run(root, T1)["seg"]
    assert result.status == "error" and "singular test check" in result.error
    assert live(root)[0] == 10


def test_a_singular_test_whose_sql_fails_names_the_test_file(tmp_path: Path) -> None:
    """The test's SQL is broken, not the model's: the error says which test file."""
    root = project(tmp_path, SEG, singular="select customer_id from {{ ref('seg') }}\n")
    result = run(root, T0)["seg"]
    assert result.status == "error"
    assert "singular test check (tests/check.sql)" in result.error, result.error
    assert "customer_id" in result.error


def test_sql_error_keeps_old_version_and_names_compiled_file(tmp_path: Path) -> None:
    root = project(tmp_path, SEG)
    run(root, T0)
    (root / "models" / "seg.sql").write_text("{{ config(channels=['email'], key='id') }}\nselect nope from range(3)\n")
    result = run(root, T1)["seg"]
    assert result.status == "error"
    assert "target/compiled/models/seg.sql" in result.error
    assert live(root) == (10, "error", 10)


PLAIN = """select i as id, case when i < {{ var('nulls') }} then null else 'x' end as email
from range({{ var('n') }}) t(i)
"""
PLAIN_YML = "models:\n  - name: seg\n    columns:\n      - name: email\n        tests: [not_null]\n"


def _logged(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    from cadence.engines.duckdb import DuckDBEngine

    seen: list[str] = []
    original = DuckDBEngine.query

    def logged(self, sql, params=(), fetch=True):  # type: ignore[no-untyped-def]
        seen.append(" ".join(sql.split()))
        return original(self, sql, params, fetch)

    monkeypatch.setattr(DuckDBEngine, "query", logged)
    return seen


def test_a_plain_table_is_built_in_its_publish_transaction(tmp_path: Path, monkeypatch) -> None:
    """A table that is not a segment and has no ``max_change`` is built straight into its
    live name inside the publish transaction (issue 21: two statements fewer a model than
    staging, drop and rename); a blocking test that fails still leaves the last good version
    live, because the transaction rolls back."""
    root = project(tmp_path, PLAIN, PLAIN_YML)
    seen = _logged(monkeypatch)
    assert run(root, T0)["seg"].status == "success"
    assert live(root)[:2] == (10, "success")
    assert not any("staging" in sql for sql in seen)
    assert [sql for sql in seen if sql.startswith(("drop", "alter")) and '"seg"' in sql] == []
    set_vars(root, nulls=3, n=20)
    seen.clear()
    failed = run(root, T1)["seg"]
    assert failed.status == "error" and "not_null" in (failed.error or "")
    assert live(root)[0] == 10  # the previous version, rolled back to
    assert not any("staging" in sql for sql in seen)


def test_a_segments_first_version_is_built_in_place(tmp_path: Path, monkeypatch) -> None:
    """With no previous version there is nothing to compare: a segment's first build goes
    straight into its live name (no staging, rename or drop) and records everyone entered;
    the next build stages, to diff against the live version."""
    root = project(tmp_path, SEG)
    seen = _logged(monkeypatch)
    assert run(root, T0)["seg"].status == "success"
    assert not any("staging" in sql for sql in seen)
    set_vars(root, n=8)
    seen.clear()
    assert run(root, T1)["seg"].status == "success"
    assert any("staging" in sql for sql in seen)
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    try:
        changes = con.execute(
            "select change, count(*) from _cadence.membership_changes group by 1 order by 1"
        ).fetchall()
    finally:
        con.close()
    assert changes == [("entered", 10), ("exited", 2)]
    assert live(root)[:2] == (8, "success")


KILL_AFTER = """
import os, signal, sys
import cadence.build.publish as publish
import cadence.record.membership as membership
from cadence.engines.duckdb import DuckDBEngine

owner = {"record_changes": membership, "record_build": publish}.get(sys.argv[1], DuckDBEngine)
original = getattr(owner, sys.argv[1])

def then_die(*args, **kwargs):
    out = original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
    return out

setattr(owner, sys.argv[1], then_die)
from cadence.cli import main
main(sys.argv[2:])
"""


@pytest.mark.parametrize("step", ["create_table_as", "record_changes", "record_build"])
def test_a_kill_inside_a_segments_first_version_leaves_nothing_and_the_next_run_builds_it(
    tmp_path: Path, step: str
) -> None:
    """kill -9 after each step of a first version built straight into its live name (created,
    membership recorded, build recorded; not committed): no table, no membership, no build
    row survive; the next run builds it and records everyone entered once."""
    import subprocess
    import sys

    root = project(tmp_path, SEG)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER, step, "run", "--project-dir", str(root),
         "--at", "2026-01-01T06:00Z"],
        capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    try:
        left = con.execute(
            "select table_name from duckdb_tables() where schema_name = 'main'").fetchall()
        history = con.execute(
            "select count(*) from duckdb_tables() t where t.table_name = 'membership_changes'"
        ).fetchone()[0] and con.execute(
            "select count(*) from _cadence.membership_changes").fetchone()[0]
        builds = con.execute(
            "select count(*) from _cadence.model_builds where model = 'seg'").fetchone()[0]
    finally:
        con.close()
    assert (left, history, builds) == ([], 0, 0)
    assert run(root, T0)["seg"].status == "success"
    assert live(root) == (10, "success", 10)
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    try:
        assert con.execute(
            "select change, count(*) from _cadence.membership_changes group by 1").fetchall() == [
            ("entered", 10)]
    finally:
        con.close()
