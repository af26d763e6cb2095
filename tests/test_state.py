"""State in the warehouse (SPEC §6): build records commit with each publish; model_state is
folded at the end of each run, and a run killed before folding loses nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import duckdb

from cadence.project import Project

AT = dt.datetime(2026, 1, 1, 6, 0, tzinfo=dt.timezone.utc)


def make(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "cadence.yml").write_text(
        "name: st\nwarehouse: {path: w.duckdb}\ntimezone: UTC\n"
        "channels:\n  web: {cadence: every 15 minutes}\n")
    (root / "models" / "a.sql").write_text("{{ config(channels=['web']) }}\nselect 1 as x\n")
    (root / "models" / "b.sql").write_text("{{ config(channels=['web']) }}\nselect * from {{ ref('a') }}\n")
    return root


def sql(root: Path, query: str) -> list[tuple]:
    con = duckdb.connect(str(root / "w.duckdb"))
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_model_state_is_current_after_each_run(tmp_path: Path) -> None:
    root = make(tmp_path)
    Project.load(root).run(AT)
    rows = sql(root, "select model, last_status, last_rows, builds from _cadence.model_state order by model")
    assert rows == [("a", "success", 1, 1), ("b", "success", 1, 1)]
    assert sql(root, "select status, folded from _cadence.runs") == [("success", True)]
    Project.load(root).run(AT + dt.timedelta(minutes=15), due_only=True)
    assert sql(root, "select model, builds from _cadence.model_state order by model") == [("a", 2), ("b", 2)]


def test_a_run_killed_before_folding_loses_nothing(tmp_path: Path) -> None:
    root = make(tmp_path)
    Project.load(root).run(AT)
    # what a kill -9 after the builds committed but before the fold leaves behind
    sql(root, "delete from _cadence.model_state")
    sql(root, "update _cadence.runs set folded = false, status = 'running'")
    project = Project.load(root)
    plan = project.plan(AT + dt.timedelta(minutes=1))
    assert {d.name: d.builds for d in plan.decisions} == {"a": False, "b": False}  # built at 06:00
    project.run(AT + dt.timedelta(minutes=15), due_only=True)
    assert sql(root, "select model, builds from _cadence.model_state order by model") == [("a", 2), ("b", 2)]
    statuses = sorted(sql(root, "select status, folded from _cadence.runs"))
    assert statuses == [("abandoned", True), ("success", True)]


def test_the_snapshot_after_a_run_is_the_state_the_warehouse_holds(tmp_path: Path) -> None:
    """The snapshot written after a run (read-only commands answer from it during the next
    run) is built without re-reading build records, since the run folded them: it must equal
    the state read afresh, also when the run folded a killed run before it."""
    from cadence.record import snapshot
    from cadence.record.state import read_snapshot

    root = make(tmp_path)
    Project.load(root).run(AT)
    sql(root, "delete from _cadence.model_state")  # a run killed before its fold
    sql(root, "update _cadence.runs set folded = false, status = 'running'")
    (root / "models" / "c.sql").write_text("{{ config(channels=['web']) }}\nselect 2 as z\n")
    project = Project.load(root)
    project.run(AT + dt.timedelta(minutes=15), due_only=True)
    kept = snapshot.read(root, "test")
    engine = project.open_engine(read_only=True)
    try:
        fresh = read_snapshot(engine)
    finally:
        engine.close()
    assert kept.models == fresh.models and set(kept.models) == {"a", "b", "c"}
    assert kept.pending_runs == fresh.pending_runs == ()
    assert kept.relations == fresh.relations


# --- history: {keep_days: N} ---------------------------------------------------------------

HISTORY_YML = (
    "name: st\nwarehouse: {path: w.duckdb}\ntimezone: UTC\nhistory: {keep_days: 2}\n"
    "channels:\n  web: {cadence: every 15 minutes}\n"
)


def make_history(root: Path) -> Path:
    make(root)
    (root / "cadence.yml").write_text(HISTORY_YML)
    (root / "models" / "adhoc.sql").write_text(
        "{{ config(cadence='on demand') }}\nselect 1 as y\n"
    )
    return root


def counts(root: Path) -> dict[str, int]:
    return dict(
        sql(root, "select model, count(*) from _cadence.model_builds group by model order by 1")
    )


def test_history_older_than_keep_days_is_pruned_but_never_the_latest_build(
    tmp_path: Path,
) -> None:
    root = make_history(tmp_path)
    project = Project.load(root)
    project.run(AT)  # a, b and adhoc
    for minutes in range(15, 121, 15):
        project.run(AT + dt.timedelta(minutes=minutes), due_only=True)
    assert counts(root) == {"a": 9, "b": 9, "adhoc": 1}
    before = project.read_state()
    # three days later: everything above is older than 2 days
    later = AT + dt.timedelta(days=3)
    project.run(later, due_only=True)
    assert counts(root) == {"a": 1, "b": 1, "adhoc": 1}  # adhoc: its only (old) build stays
    kept = sql(root, "select model, started_at from _cadence.model_builds order by model")
    assert kept == [
        ("a", later.replace(tzinfo=None)),
        ("adhoc", AT.replace(tzinfo=None)),
        ("b", later.replace(tzinfo=None)),
    ]
    runs = sql(root, "select started_at from _cadence.runs order by started_at")
    assert runs == [(AT.replace(tzinfo=None),), (later.replace(tzinfo=None),)]  # adhoc's run
    after = Project.load(root).read_state()
    assert after.of("adhoc") == before.of("adhoc")  # current state is untouched
    assert after.of("a").builds == before.of("a").builds + 1


def test_nothing_is_pruned_within_keep_days_or_without_the_setting(tmp_path: Path) -> None:
    root = make_history(tmp_path)
    project = Project.load(root)
    project.run(AT)
    project.run(AT + dt.timedelta(days=1, hours=23), due_only=True)
    assert counts(root) == {"a": 2, "b": 2, "adhoc": 1}
    (root / "cadence.yml").write_text(HISTORY_YML.replace("history: {keep_days: 2}\n", ""))
    Project.load(root).run(AT + dt.timedelta(days=30), due_only=True)
    assert counts(root) == {"a": 3, "b": 3, "adhoc": 1}


def test_pruning_keeps_runs_the_state_still_needs(tmp_path: Path) -> None:
    """A run killed before folding: its builds are replayed into state, so they stay."""
    root = make_history(tmp_path)
    project = Project.load(root)
    project.run(AT)
    con = duckdb.connect(str(root / "w.duckdb"))
    old = AT.replace(tzinfo=None) + dt.timedelta(minutes=15)
    con.execute(
        "insert into _cadence.runs values ('killed', ?, null, 'running', 'run --due', 1, false,"
        " false)",
        [old],
    )
    con.execute(
        "insert into _cadence.model_builds values ('killed', 'a', 'model', ?, ?, ?, 'success',"
        " 'due', 1, 0.1, 'h', null)",
        [old, old, old],
    )
    con.close()
    state = project.read_state()
    from cadence.record.state import prune_history

    engine = project.open_engine()
    try:
        deleted = prune_history(engine, AT + dt.timedelta(days=3))
    finally:
        engine.close()
    assert deleted["_cadence.runs"] == 0  # the first run has kept builds, the killed one is needed
    assert sql(root, "select count(*) from _cadence.model_builds where run_id = 'killed'") == [(1,)]
    assert project.read_state().of("a") == state.of("a")


def test_pruning_takes_any_history_table_and_frees_space(tmp_path: Path) -> None:
    """The activation stage passes its own tables: (table, time column[, keep-latest keys])."""
    from cadence.record.state import HISTORY_TABLES, prune_history

    root = make_history(tmp_path)
    project = Project.load(root)
    project.run(AT)
    con = duckdb.connect(str(root / "w.duckdb"))
    con.execute('create table _cadence.events (segment varchar, k varchar, "at" timestamp, v varchar)')
    con.execute(
        "insert into _cadence.events select 's' || (i % 2), 'k' || (i % 3), ?::timestamp "
        "+ i * interval 1 minute, md5(i::varchar) from range(300000) t(i)",
        [AT.replace(tzinfo=None) - dt.timedelta(days=400)],
    )
    con.close()
    size_before = sql(root, "select free_blocks from pragma_database_size()")[0][0]
    engine = project.open_engine()
    try:
        tables = (*HISTORY_TABLES, ("_cadence.events", "at", "segment", "k"))
        deleted = prune_history(engine, AT - dt.timedelta(days=1), tables)
    finally:
        engine.close()
    assert deleted["_cadence.events"] == 300000 - 6  # the latest row per (segment, k) stays
    assert sql(root, "select count(*) from _cadence.events") == [(6,)]
    assert sql(root, "select free_blocks from pragma_database_size()")[0][0] > size_before


def _folded_engine(tmp_path: Path):
    from cadence.engines.duckdb import DuckDBEngine
    from cadence.record import state

    path = str(tmp_path / "fold.duckdb")
    engine = DuckDBEngine(duckdb.connect(path), path)
    state.ensure_schema(engine)
    return engine


def _states(n: int) -> dict:
    from cadence.plan.history import ModelState

    odd = ModelState(
        name="it's ü",
        kind="snapshot",
        last_success_at=AT.replace(microsecond=123456),
        last_success_tick=dt.datetime(2026, 1, 1, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        last_sql_hash="h'1",
        last_status="error",
        last_error="line 1\nquote ' and \\ backslash",
        last_attempt_at=AT,
        failure_streak=3,
        last_rows=2**40,
        last_duration_s=0.000001,
        avg_duration_s=1e9,
        builds=7,
    )
    plain = {f"m{i:05d}": ModelState(name=f"m{i:05d}") for i in range(n)}
    return {odd.name: odd, **plain}


def test_fold_writes_every_value_as_it_was_and_replaces_the_old_rows(tmp_path: Path) -> None:
    from cadence.record import state

    engine = _folded_engine(tmp_path)
    start = dt.datetime(2026, 1, 1, 5, 0, tzinfo=dt.timezone.utc)
    state.record_run_start(engine, "r1", start, "run", 1, False)
    state.record_run_start(engine, "r0", start, "run", 1, False)  # died before it finished
    state.fold(engine, _states(2), [], None)
    states = _states(2)
    states["m00000"] = dataclasses.replace(states["m00000"], builds=5)
    state.fold(engine, states, ["r1", "r0"], ("r1", AT, "success"))
    rows = engine.con.execute(
        "select * from _cadence.model_state order by model"
    ).fetchall()
    assert len(rows) == 3  # the first fold's rows replaced, not added to
    back = {r[0]: r for r in rows}
    assert back["it's ü"] == (
        "it's ü", "snapshot", dt.datetime(2026, 1, 1, 6, 0, 0, 123456),
        dt.datetime(2026, 1, 1, 6, 0), "h'1", "error", "line 1\nquote ' and \\ backslash",
        dt.datetime(2026, 1, 1, 6, 0), 3, 2**40, 0.000001, 1e9, 7,
    )  # fmt: skip
    assert back["m00000"][12] == 5 and back["m00001"][2] is None
    runs = engine.con.execute(
        "select run_id, status, folded, finished_at from _cadence.runs order by run_id"
    ).fetchall()
    finished = AT.replace(tzinfo=None)
    assert runs == [("r0", "abandoned", True, None), ("r1", "success", True, finished)]


def test_fold_statements_do_not_grow_with_the_models_it_writes(tmp_path: Path) -> None:
    """The state of 3,000 models is folded in a fixed handful of statements whose text holds no
    values (they travel as parameters): no SQL text of thousands of rows to parse."""
    from cadence.record import state

    engine = _folded_engine(tmp_path)
    seen: list[str] = []
    execute = engine.execute

    def recording(sql_text: str, params=()):
        seen.append(sql_text)
        return execute(sql_text, params)

    engine.execute = recording  # type: ignore[method-assign]
    state.fold(engine, _states(3000), ["r1"], ("r1", AT, "success"))
    assert len(seen) <= 4
    assert max(len(s) for s in seen) < 1000
    assert engine.con.execute("select count(*) from _cadence.model_state").fetchone() == (3001,)
