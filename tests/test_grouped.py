"""Publishes committed in groups (build/grouped.py, SPEC §6): a sequential run on DuckDB lets
the publishes that follow each other share one transaction, each still with its own build
record in it. A failure inside a group, a kill, an interrupt or a refused commit must leave
exactly what one transaction per publish would have left."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cadence.build import grouped, runner
from cadence.engines.base import EngineError
from cadence.engines.duckdb import DuckDBEngine
from cadence.project import Project

T0 = dt.datetime(2026, 1, 1, 6, 0, tzinfo=dt.timezone.utc)
TABLES = ("t1", "t2", "t3", "t4", "t5")


def project(root: Path, bad: bool = False) -> Path:
    models = root / "models"
    models.mkdir(parents=True)
    (root / "cadence.yml").write_text(
        "name: grp\nwarehouse: {path: w.duckdb, threads: 1}\ntimezone: UTC\n"
        "channels:\n  email: {cadence: daily at 05:00}\n"
        "models:\n  materialized: table\n"
    )
    for i, name in enumerate(TABLES):
        (models / f"{name}.sql").write_text(f"select {i} as x")
    (models / "seg.sql").write_text(
        "{{ config(channels=['email'], key='id') }}\n"
        "select i as id from range(10) t(i) where "
        + " and ".join(f"exists (select 1 from {{{{ ref('{t}') }}}})" for t in TABLES)
    )  # fed by every table: all due with it
    if bad:  # fails inside its transaction (a binder error), after t1 and t2 in plan order
        (models / "t2b.sql").write_text("select nope from {{ ref('t1') }}")
        (models / "t2c.sql").write_text("select * from {{ ref('t2b') }}")
    return root


def warehouse(root: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def live_tables(root: Path) -> list[str]:
    return [r[0] for r in warehouse(
        root, "select table_name from duckdb_tables() where schema_name = 'main' order by 1")]


def builds(root: Path) -> list[tuple[str, str]]:
    return warehouse(root, "select model, status from _cadence.model_builds order by 1, 2")


def run(root: Path, due_only: bool = False) -> dict[str, str]:
    result = Project.load(root).run(T0, due_only=due_only)
    return {r.name: r.status for r in result.results}


def test_publishes_share_commits_and_each_has_its_record(tmp_path: Path, monkeypatch) -> None:
    root = project(tmp_path)
    commits: list[bool] = []
    close = DuckDBEngine.close_group

    def counted(self: DuckDBEngine, commit: bool) -> None:
        commits.append(commit)
        close(self, commit)

    monkeypatch.setattr(DuckDBEngine, "close_group", counted)
    assert set(run(root).values()) == {"success"}
    assert 0 < commits.count(True) < len(TABLES) + 1 and False not in commits
    assert builds(root) == sorted((m, "success") for m in (*TABLES, "seg"))
    assert live_tables(root) == sorted((*TABLES, "seg"))
    assert warehouse(root, "select change, count(*) from _cadence.membership_changes group by 1") == [
        ("entered", 10)]


def test_a_failure_inside_a_group_leaves_what_one_transaction_each_would(tmp_path: Path) -> None:
    """The failing model aborts the group's transaction: the models before it are published
    once (one build row each), its own error names the column and the compiled file, its child
    is upstream_failed, and the models after it are built."""
    root = project(tmp_path, bad=True)
    result = Project.load(root).run(T0)
    status = {r.name: r.status for r in result.results}
    assert status == {**{m: "success" for m in (*TABLES, "seg")}, "t2b": "error",
                      "t2c": "upstream_failed"}
    error = next(r.error for r in result.results if r.name == "t2b")
    assert "nope" in error and "compiled SQL: target/compiled" in error
    assert builds(root) == sorted(
        [(m, "success") for m in (*TABLES, "seg")] + [("t2b", "error"), ("t2c", "upstream_failed")])
    assert live_tables(root) == sorted((*TABLES, "seg"))
    assert warehouse(root, "select count(*) from _cadence.membership_changes") == [(10,)]


def test_a_refused_commit_builds_each_again_on_its_own(tmp_path: Path, monkeypatch) -> None:
    """A commit the warehouse refuses (a full disk at the commit) keeps none of the group; its
    models are built again one transaction each and recorded once."""
    root = project(tmp_path)
    close = DuckDBEngine.close_group
    refused = []

    def refuse_first(self: DuckDBEngine, commit: bool) -> None:
        if commit and not refused:
            refused.append(True)
            close(self, False)
            raise EngineError("IO Error: No space left on device")
        close(self, commit)

    monkeypatch.setattr(DuckDBEngine, "close_group", refuse_first)
    assert set(run(root).values()) == {"success"}
    assert refused
    assert builds(root) == sorted((m, "success") for m in (*TABLES, "seg"))
    assert live_tables(root) == sorted((*TABLES, "seg"))


def test_an_interrupt_inside_a_group_rolls_it_back_and_reports_each_interrupted(
    tmp_path: Path, monkeypatch
) -> None:
    root = project(tmp_path)
    monkeypatch.setattr(grouped, "GROUP_MODELS", 2)
    monkeypatch.setattr(grouped, "GROUP_SECONDS", 60.0)
    original = runner.build_model
    calls = []

    def interrupt_fourth(*args, **kwargs):
        out = original(*args, **kwargs)
        calls.append(out.name)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(runner, "build_model", interrupt_fourth)
    with pytest.raises(KeyboardInterrupt):
        Project.load(root).run(T0)
    first, second = calls[:2], calls[2:4]  # the committed group, the one interrupted
    assert live_tables(root) == sorted(first)
    assert builds(root) == sorted([(m, "success") for m in first] + [(m, "interrupted") for m in second])
    rerun = run(root, due_only=True)
    assert {m for m, s in rerun.items() if s == "success"} == {*TABLES, "seg"} - set(first)


KILL_IN_GROUP = """
import os, signal, sys
import cadence.build.grouped as grouped
import cadence.build.runner as runner

grouped.GROUP_MODELS, grouped.GROUP_SECONDS = 2, 60.0  # groups of 2, however slow
original = runner.build_model
calls = []

def then_die(*args, **kwargs):
    out = original(*args, **kwargs)
    calls.append(out.name)
    if len(calls) == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    return out

runner.build_model = then_die
from cadence.cli import main
main(sys.argv[2:])
"""


@pytest.mark.parametrize("after", [1, 2, 3, 4])
def test_a_kill_inside_a_group_loses_only_the_open_group(tmp_path: Path, after: int) -> None:
    """kill -9 after the n-th publish (groups of 2): the groups that committed are live with
    their records, nothing of the open one survives, and the next run builds exactly the rest,
    each recorded once, everyone of the segment entered once."""
    root = project(tmp_path)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_IN_GROUP, str(after), "run", "--project-dir", str(root),
         "--at", "2026-01-01T06:00Z"],
        capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    committed = (after - 1) // 2 * 2  # whole groups of 2 before the one killed
    survivors = live_tables(root)
    assert len(survivors) == committed
    assert builds(root) == sorted((m, "success") for m in survivors)
    rerun = run(root, due_only=True)
    assert {m for m, s in rerun.items() if s == "success"} == {*TABLES, "seg"} - set(survivors)
    assert builds(root) == sorted((m, "success") for m in (*TABLES, "seg"))
    assert warehouse(root, "select change, count(*) from _cadence.membership_changes group by 1") == [
        ("entered", 10)]


def fan(root: Path, threads: int, bad: str | None = None) -> Path:
    """20 roots and a child of each, on ``threads`` threads: children become ready while other
    threads' groups are open."""
    models = root / "models"
    models.mkdir(parents=True)
    (root / "cadence.yml").write_text(
        f"name: fan\nwarehouse: {{path: w.duckdb, threads: {threads}}}\ntimezone: UTC\n"
        "models:\n  materialized: table\n"
    )
    for i in range(20):
        (models / f"r{i:02}.sql").write_text(f"select {i} as x, range as y from range(200000 * (1 + {i} % 3))")
        (models / f"c{i:02}.sql").write_text(
            f"select x, sum(y) as y from {{{{ ref('r{i:02}') }}}} group by x")
    if bad is not None:
        (models / f"{bad}.sql").write_text("select nope from range(3)")
    return root


@pytest.mark.parametrize("bad", [None, "r07"])
def test_threads_group_commits_and_never_read_what_another_group_has_not_committed(
    tmp_path: Path, monkeypatch, bad: str | None
) -> None:
    """On 4 threads each cursor keeps its group open while the others commit: a child whose
    parent another thread committed after this group began must not be built in it (it would
    not see the parent). Everything builds, once; a failing root fails alone with its error and
    its child is upstream_failed."""
    monkeypatch.setattr(grouped, "GROUP_SECONDS", 60.0)
    root = fan(tmp_path, 4, bad)
    result = Project.load(root).run(T0, threads=4)
    status = {r.name: r.status for r in result.results}
    failed = {bad: "error", f"c{bad[1:]}": "upstream_failed"} if bad else {}
    assert status == {**{f"{k}{i:02}": "success" for k in "rc" for i in range(20)}, **failed}
    if bad:
        assert "nope" in next(r.error for r in result.results if r.name == bad)
    assert builds(root) == sorted(status.items())
    assert len(live_tables(root)) == 40 - len(failed)


@pytest.mark.parametrize("b_sql, status, message", [
    # DuckDB refuses a CHECKPOINT in a transaction that holds changes (a's publish): alone, b
    # runs it first in its own transaction and succeeds
    ("{{ config(pre_hook='checkpoint') }} select x from {{ ref('a') }}", "success", None),
    # a wrong key is named against b's columns, which needs a: built again alone, after a's
    # group committed, the check still finds them
    ("{{ config(key='id') }} select x from {{ ref('a') }}", "error",
     "column 'id' is not a column of b (its columns: x)"),
])
def test_a_model_failing_after_another_in_its_group_is_judged_alone(
    tmp_path: Path, b_sql: str, status: str, message: str | None
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "cadence.yml").write_text(
        "name: alone\nwarehouse: {path: w.duckdb, threads: 1}\ntimezone: UTC\n"
        "models:\n  materialized: table\n")
    (tmp_path / "models" / "a.sql").write_text("select 1 as x")
    (tmp_path / "models" / "b.sql").write_text(b_sql)
    result = {r.name: r for r in Project.load(tmp_path).run(T0).results}
    assert (result["a"].status, result["b"].status) == ("success", status)
    if message:
        assert message in result["b"].error
    assert builds(tmp_path) == [("a", "success"), ("b", status)]


def test_a_signal_during_the_groups_commit_is_an_interrupt_not_a_refused_commit(
    tmp_path: Path, monkeypatch
) -> None:
    """DuckDB reports a signal that reaches its commit as an error: that is an interrupt (the
    group rolled back, its models reported interrupted), never a refused commit, which would
    build them again and go on as if nothing had been asked."""
    root = project(tmp_path)
    query = DuckDBEngine.query

    def interrupted_commit(self, sql, params=(), fetch=True):  # type: ignore[no-untyped-def]
        if sql == "commit" and self.group is None:
            self.con.execute("rollback")
            raise KeyboardInterrupt  # what query() makes of DuckDB's "Interrupted" error
        return query(self, sql, params, fetch)

    monkeypatch.setattr(DuckDBEngine, "query", interrupted_commit)
    with pytest.raises(KeyboardInterrupt):
        Project.load(root).run(T0)
    monkeypatch.setattr(DuckDBEngine, "query", query)
    assert live_tables(root) == []
    assert {s for _, s in builds(root)} == {"interrupted"}


def test_a_signal_as_the_groups_commit_returns_reports_what_the_commit_published(
    tmp_path: Path, monkeypatch
) -> None:
    """DuckDB ends a commit it has begun, and Python raises a signal that came meanwhile as
    the call returns: the group is in the warehouse, so its models are reported and folded as
    published (one success row each, none interrupted), and the run still ends interrupted;
    the next run finds nothing due."""
    root = project(tmp_path)
    close_group = DuckDBEngine.close_group
    signalled: list[bool] = []

    def commit_then_signal(self, commit):  # type: ignore[no-untyped-def]
        close_group(self, commit)
        if commit and not signalled:
            signalled.append(True)
            raise KeyboardInterrupt

    monkeypatch.setattr(DuckDBEngine, "close_group", commit_then_signal)
    with pytest.raises(KeyboardInterrupt):
        Project.load(root).run(T0)
    monkeypatch.setattr(DuckDBEngine, "close_group", close_group)
    assert live_tables(root) == sorted(["seg", *TABLES])
    assert builds(root) == sorted((m, "success") for m in ["seg", *TABLES])
    assert warehouse(root, "select status, folded from _cadence.runs") == [("interrupted", True)]
    assert set(run(root, due_only=True).values()) == {"skipped"}
    assert len(builds(root)) == len(TABLES) + 1


KILL_AFTER_ROWS = """
import os, signal, sys
import cadence.build.grouped as grouped

grouped.GROUP_MODELS, grouped.GROUP_SECONDS = 2, 60.0
original = grouped.insert_builds
calls = []

def then_die(engine, records):
    original(engine, records)
    calls.append(len(records))
    if len(calls) == 2:  # the second group's build rows are written, its commit not made
        os.kill(os.getpid(), signal.SIGKILL)

grouped.insert_builds = then_die
from cadence.cli import main
main(sys.argv[1:])
"""


def test_a_kill_between_a_groups_build_rows_and_its_commit_keeps_none_of_it(
    tmp_path: Path,
) -> None:
    """The step between writing a group's build rows and committing: the first group (2
    models) is live with its rows, the second has neither its tables nor its rows, and the
    next run builds exactly the rest."""
    root = project(tmp_path)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_ROWS, "run", "--project-dir", str(root),
         "--at", "2026-01-01T06:00Z"],
        capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    survivors = live_tables(root)
    assert len(survivors) == 2
    assert builds(root) == sorted((m, "success") for m in survivors)
    rerun = run(root, due_only=True)
    assert {m for m, s in rerun.items() if s == "success"} == {*TABLES, "seg"} - set(survivors)
    assert builds(root) == sorted((m, "success") for m in (*TABLES, "seg"))
