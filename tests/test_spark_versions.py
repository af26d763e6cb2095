"""Versions on Spark and their local record: names, orphans, and a run killed (kill -9, for real,
in a subprocess) at each step boundary of a publish, reconciled by the next run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import duckdb
import pytest
from conftest import invoke, read_run_results, spark_yml

from cadence.engines.spark_versions import Published, base_of, orphans, version_name

AT = "2026-03-02T05:00"
SEGMENT = """
{{ config(channels=['email'], key='id') }}
select i as id, {{ env_var('VALUE', '1') }} as value from (values (1), (2)) v(i)
"""


def test_version_names_are_recognised_and_nothing_else_is():
    name = version_name("Seg", "20260302T050000-abcdef12")
    assert name == "seg__v20260302t050000_abcdef12"
    assert base_of(name) == "seg"
    assert base_of("seg__vintage") is None and base_of("customers") is None


def test_orphans_are_versions_neither_live_nor_previous():
    records = {
        ("s", "seg"): Published(
            "s", "seg", "table", "seg__v20260302t050000_aaaaaaaa", "seg__v20260301t050000_bbbbbbbb"
        )
    }
    tables = [
        ("s", "seg"),
        ("s", "seg__v20260302t050000_aaaaaaaa"),
        ("s", "seg__v20260301t050000_bbbbbbbb"),
        ("s", "seg__v20260228t050000_cccccccc"),  # superseded, its drop was killed
        ("s", "new__v20260302t050000_dddddddd"),  # a first build killed before its swap
        ("s", "users_backup"),  # not cadence's
    ]
    assert orphans(tables, records) == [
        ("s", "seg__v20260228t050000_cccccccc"),
        ("s", "new__v20260302t050000_dddddddd"),
    ]


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import cadence.engines.spark as S
    import cadence.engines.spark_versions as V

    step = sys.argv[1]

    def kill():
        os.kill(os.getpid(), signal.SIGKILL)

    create, switch = S.SparkEngine.create_table_as, S.SparkEngine._switch_view
    if step == "built":  # the new version exists; nothing announced yet
        def create_then_die(self, relation, sql):
            create(self, relation, sql)
            kill()
        S.SparkEngine.create_table_as = create_then_die
    elif step == "announced":  # the intent is committed; the view not switched
        S.SparkEngine._switch_view = lambda self, *a, **k: kill()
    elif step.startswith("swapped"):  # the view points at the new version; state not recorded
        only = step.partition(":")[2]  # swapped:NAME - after that view's swap

        def switch_then_die(self, schema, name, *a, **k):
            switch(self, schema, name, *a, **k)
            if not only or name == only:
                kill()
        S.SparkEngine._switch_view = switch_then_die
    elif step == "recorded":  # state committed; the superseded version not dropped
        V.clear_intent = lambda *a, **k: kill()
    from cadence.cli import main
    main(sys.argv[2:])
    """
)


def killed_run(root: Path, step: str, value: str, at: str = AT) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, step, "run", "--at", at, "--project-dir", str(root)],
        env={**os.environ, "VALUE": value},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode


def local(root: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(root / "state.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def versions_in(spark, schema: str) -> set[str]:
    return {r[1] for r in spark.sql(f"show tables in `{schema}`").collect() if base_of(r[1])}


@pytest.mark.parametrize(
    "step, live_after_kill",
    [("built", 1), ("announced", 1), ("swapped", 2), ("recorded", 2)],
)
def test_a_kill_at_each_step_is_reconciled_by_the_next_run(
    step, live_after_kill, make_project, spark_remote, spark_session, monkeypatch
):
    schema = "k_" + uuid.uuid4().hex[:10]
    root = make_project({"models/seg.sql": SEGMENT}, spark_yml(spark_remote, schema))
    monkeypatch.setenv("VALUE", "1")
    assert invoke(root, "run", "--at", AT).exit_code == 0
    first = versions_in(spark_session, schema)

    assert killed_run(root, step, "2") == -9
    values = {r[0] for r in spark_session.sql(f"select value from `{schema}`.seg").collect()}
    assert values == {live_after_kill}  # readers saw the old or the new version, never none

    # the next invocation, even one with nothing to build, reconciles state with the view
    invoke(root, "run", "--due", "--at", "2026-03-02T05:01")
    assert local(root, "select count(*) from _cadence.spark_intents") == [(0,)]
    recorded = local(root, "select physical from _cadence.spark_relations where name = 'seg'")
    target = spark_session.sql(f"describe table extended `{schema}`.seg").collect()
    view_text = next(r[1] for r in target if r[0] == "View Text")
    assert recorded[0][0] in view_text

    # a later build publishes over it and leaves exactly the live and the previous version
    monkeypatch.setenv("VALUE", "3")
    assert invoke(root, "run", "--at", AT).exit_code == 0
    values = {r[0] for r in spark_session.sql(f"select value from `{schema}`.seg").collect()}
    assert values == {3}
    left = versions_in(spark_session, schema)
    live, previous = local(
        root, "select physical, previous from _cadence.spark_relations where name = 'seg'"
    )[0]
    assert left == {live, previous}
    assert previous not in first or live_after_kill == 1


def test_a_salted_name_is_a_second_version_of_the_same_run():
    plain = version_name("seg", "20260302T050000-abcdef12")
    salted = version_name("seg", "20260302T050000-abcdef12", salt="appended")
    assert salted != plain and base_of(salted) == "seg"
    assert salted.startswith("seg__v20260302t050000_")


def test_a_kill_between_a_segments_swap_and_its_commit_loses_no_membership_change(
    make_project, spark_remote, monkeypatch
):
    """The kill rolls back the local transaction holding the segment's membership changes while
    its new version is live; the next run records them (with the killed run's id and tick) by
    diffing the adopted version against the one it replaced, and delivers them exactly once."""
    from activation_project import CADENCE_YML, make_activation, sent, set_people

    schema = "m_" + uuid.uuid4().hex[:10]
    spark_line = (
        f'warehouse: {{engine: spark, remote: "{spark_remote}", path: state.duckdb, threads: 1, '
        f"schema: {schema}}}"
    )
    before, after = [(1, 900), (2, 100), (3, 100)], [(1, 100), (2, 900), (4, 100)]
    duck = make_activation(make_project, before)
    sparked = make_activation(
        make_project,
        before,
        cadence_yml=CADENCE_YML.replace(
            "warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}", spark_line
        ),
    )
    day1, day2 = "2026-03-02T05:00", "2026-03-03T05:00"
    for root in (duck, sparked):
        assert invoke(root, "run", "--at", day1).exit_code == 0
        set_people(root, after)
    first = read_run_results(sparked)["run_id"]
    assert invoke(duck, "run", "--at", day2).exit_code == 0
    assert killed_run(sparked, "swapped:vip", "1", at=day2) == -9
    later = f"select distinct run_id from _cadence.membership_changes where run_id <> '{first}'"
    assert local(sparked, later + " and segment = 'vip'") == []  # rolled back by the kill
    killed = {r[0] for r in local(sparked, "select run_id from _cadence.runs")} - {first}
    assert len(killed) == 1

    result = invoke(sparked, "run", "--at", day2)
    assert result.exit_code == 0, result.output
    last = read_run_results(sparked)["run_id"]

    def changes(root: Path, state_file: str) -> list[tuple]:
        con = duckdb.connect(str(root / state_file), read_only=True)
        try:
            return con.execute(
                "select segment, key, change from _cadence.membership_changes order by 1, 2, 3"
            ).fetchall()
        finally:
            con.close()

    assert changes(sparked, "state.duckdb") == changes(duck, "warehouse.duckdb")  # each once
    # recorded under the run that built the version (the rebuild after it found no change)
    assert {r[0] for r in local(sparked, later + " and segment = 'vip'")} == killed
    assert last not in killed
    for segment in ("vip", "regular"):
        assert sent(sparked, segment) == sent(duck, segment)
    assert ("1", "exited") in sent(sparked, "vip") and ("2", "entered") in sent(sparked, "vip")
    assert local(sparked, "select count(*) from _cadence.spark_intents") == [(0,)]
