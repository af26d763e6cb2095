"""Executing a plan (SPEC §5, §6): materializations, failures and their descendants,
`on_error: continue`, the run_results.json and plan --json contracts."""

from __future__ import annotations

import json

import duckdb
import pytest
from conftest import DEFAULT_CADENCE_YML, at, read_run_results, statuses

from cadence.build.runner import RunResult
from cadence.plan.due import Plan
from cadence.project import Project, Selection

FLAKY_BROKEN = (
    "{{ config(channels=['web'], on_error='continue') }}\n"
    "select cast('not a number' as integer) as id, 'new' as version\n"
)


def relation_kinds(root) -> dict[str, str]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql(
            "select table_name, table_type from information_schema.tables "
            "where table_schema = 'main'"
        ).fetchall()
    return dict(rows)


def query(root, sql: str) -> list[tuple]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(sql).fetchall()


def test_materializations_table_view_and_ephemeral(copy_project, cli):
    root = copy_project("shop")
    result = cli(root, "run", "--at", "2026-01-10T10:00")
    assert result.exit_code == 0, result.output
    assert relation_kinds(root) == {
        "customers": "BASE TABLE",
        "orders": "BASE TABLE",
        "stg_customers": "VIEW",
        "stg_orders": "VIEW",
        "stg_page_views": "VIEW",
        "high_value": "BASE TABLE",
        "lapsed": "BASE TABLE",
        "browsing_now": "BASE TABLE",
        "cart_abandoners": "BASE TABLE",
        "survey_list": "BASE TABLE",
    }  # customer_totals is ephemeral: inlined, never a relation
    assert query(root, "select customer_id, email from high_value order by 1") == [
        (1, "ana@example.com"),
        (3, "cho@example.com"),
    ]
    results = {r["name"]: r for r in read_run_results(root)["results"]}
    assert "customers" not in results  # run_results lists models; seeds load silently
    assert query(root, "select count(*) from customers") == [(4,)]
    assert results["high_value"]["rows"] == 2
    assert results["stg_orders"]["rows"] is None  # a view has no row count


def test_a_view_becomes_a_table_when_its_materialization_changes(make_project, cli):
    root = make_project({"models/m.sql": "{{ config(materialized='view') }}\nselect 1 as id\n"})
    cli(root, "run", "--at", "2026-01-10T10:00")
    assert relation_kinds(root) == {"m": "VIEW"}
    (root / "models/m.sql").write_text("{{ config(materialized='table') }}\nselect 1 as id\n")
    assert cli(root, "run", "--at", "2026-01-10T10:01").exit_code == 0
    assert relation_kinds(root) == {"m": "BASE TABLE"}


@pytest.mark.parametrize("threads", ["1", "4"])
def test_a_sql_error_fails_the_run_names_model_and_compiled_file(copy_project, cli, threads):
    root = copy_project("failing")
    result = cli(root, "run", "--threads", threads, "--at", "2026-01-10T10:00")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "error: broken:" in result.output
    assert "target/compiled/models/broken.sql" in result.output
    assert "no_such_column" in (root / "target/compiled/models/broken.sql").read_text()

    results = {r["name"]: r for r in read_run_results(root)["results"]}
    assert results["broken"]["status"] == "error"
    assert "no_such_column" in results["broken"]["error"]
    assert "target/compiled/models/broken.sql" in results["broken"]["error"]
    # unrelated models still build; descendants are skipped as upstream_failed
    assert {n: results[n]["status"] for n in ("base", "unrelated", "flaky", "after_flaky")} == {
        "base": "success",
        "unrelated": "success",
        "flaky": "success",
        "after_flaky": "success",
    }
    assert results["child"]["status"] == "upstream_failed"
    assert results["grandchild"]["status"] == "upstream_failed"
    assert "broken" in results["child"]["reason"]
    assert set(relation_kinds(root)) == {"base", "unrelated", "flaky", "after_flaky"}


@pytest.mark.parametrize(("threads", "together"), [("4", 1), ("2", 3)])
def test_builds_at_once_share_the_warehouse_threads(make_project, cli, threads, together):
    """DuckDB's pool serves every build of a run: a model built alone gets the warehouse's
    threads, and models built at once a pool sized so that they and its workers fit in them."""
    pool = "select cast(current_setting('threads') as integer) as pool"
    children = ("a", "b", "c", "d")[: int(threads)]
    files = {"models/root.sql": pool + "\n"}
    for name in children:
        files[f"models/{name}.sql"] = f"{pool}, (select count(*) from {{{{ ref('root') }}}}) n\n"
    root = make_project(files, DEFAULT_CADENCE_YML.replace("threads: 1}", "threads: 4}"))
    assert cli(root, "run", "--threads", threads, "--at", "2026-01-10T10:00").exit_code == 0
    assert query(root, "select pool from root") == [(4,)]  # alone: the whole pool
    pools = [query(root, f"select pool from {name}")[0][0] for name in children]
    # the first to start runs beside all the others; one starting late may find the pool
    # already grown back by those that ended
    assert min(pools) == together


def test_the_shared_pool_never_goes_below_duckdb_s_external_threads(make_project, cli):
    """DuckDB refuses a pool smaller than its external_threads (a warehouse setting)."""
    pool = "select cast(current_setting('threads') as integer) as pool"
    files = {f"models/m{i}.sql": pool + "\n" for i in range(4)}
    yml = DEFAULT_CADENCE_YML.replace(
        "threads: 1}", "threads: 4, settings: {external_threads: 2}}"
    )
    root = make_project(files, yml)
    result = cli(root, "run", "--threads", "4", "--at", "2026-01-10T10:00")
    assert result.exit_code == 0, result.output
    pools = [query(root, f"select pool from m{i}")[0][0] for i in range(4)]
    assert min(pools) == 2


def test_a_pool_set_when_an_interrupt_came_is_given_back_whole(tmp_path):
    from cadence.engines.duckdb import DuckDBEngine
    from cadence.load.projectconfig import WarehouseConfig

    engine = DuckDBEngine.open(WarehouseConfig(path=":memory:", threads=4), tmp_path)
    real = engine.execute

    def interrupted(sql, params=()):  # type: ignore[no-untyped-def]
        real(sql, params)
        raise KeyboardInterrupt  # Ctrl-C as the SET returns

    engine.execute = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        engine.share_threads(4)
    engine.execute = real  # type: ignore[method-assign]
    engine.share_threads(0)  # the build's end
    assert engine.query("select current_setting('threads')") == [(4,)]
    engine.close()


def test_a_failing_model_keeps_its_last_good_version_live(copy_project, cli):
    root = copy_project("failing")
    cli(root, "run", "--at", "2026-01-10T10:00")
    (root / "models/flaky.sql").write_text(FLAKY_BROKEN)
    result = cli(root, "run", "-s", "flaky", "--at", "2026-01-10T10:15")
    assert result.exit_code == 1
    assert statuses(root) == {"flaky": "error"}
    assert query(root, "select * from flaky") == [(1,)]  # the old version, untouched
    state = Project.load(root).read_state().of("flaky")
    assert state.last_status == "error"
    assert state.last_success_at == at("2026-01-10T10:00")
    assert "not a number" in (state.last_error or "")


def test_on_error_continue_lets_children_run_on_the_last_good_version(copy_project, cli):
    root = copy_project("failing")
    cli(root, "run", "--at", "2026-01-10T10:00")
    (root / "models/flaky.sql").write_text(FLAKY_BROKEN)
    result = cli(root, "run", "--due", "--at", "2026-01-10T10:15")
    assert result.exit_code == 1
    results = statuses(root)
    assert results["flaky"] == "error"
    assert results["after_flaky"] == "success"  # on_error: continue
    assert results["child"] == "upstream_failed"  # on_error: skip_children (the default)
    assert query(root, "select * from after_flaky") == [(1,)]


def test_blocking_key_test_keeps_a_bad_build_from_publishing(make_project, cli):
    root = make_project(
        {
            "models/seg.sql": "{{ config(channels=['web'], key='id') }}\nselect 1 as id\n",
        }
    )
    assert cli(root, "run", "--at", "2026-01-10T10:00").exit_code == 0
    (root / "models/seg.sql").write_text(
        "{{ config(channels=['web'], key='id') }}\nselect 1 as id union all select 1 union all select 2\n"
    )
    result = cli(root, "run", "--at", "2026-01-10T10:15")
    assert result.exit_code == 1
    [row] = read_run_results(root)["results"]
    assert row["status"] == "error"
    assert "unique" in row["error"]
    assert query(root, "select * from seg") == [(1,)]
    assert set(relation_kinds(root)) == {"seg"}, "no staging relation is left behind"


def test_run_results_json_is_exactly_the_documented_contract(copy_project, cli):
    root = copy_project("failing")
    cli(root, "run", "--due", "--at", "2026-01-10T10:00:00+01:00")
    data = read_run_results(root)
    assert set(data) == {"run_id", "at", "results"}
    assert isinstance(data["run_id"], str) and data["run_id"]
    assert data["at"] == "2026-01-10T10:00:00+01:00"
    assert [r["name"] for r in data["results"]] == [
        "base",
        "broken",
        "child",
        "flaky",
        "after_flaky",
        "grandchild",
        "unrelated",
    ]
    for r in data["results"]:
        assert list(r) == ["name", "status", "reason", "rows", "duration_s", "error"]
        assert r["status"] in {"success", "error", "upstream_failed", "skipped"}
        assert isinstance(r["reason"], str) and r["reason"]
        assert isinstance(r["duration_s"], (int, float)) and r["duration_s"] >= 0
        assert (r["error"] is None) == (r["status"] in ("success", "skipped"))


def test_a_run_that_builds_rewrites_run_results_and_an_idle_run_leaves_them(make_project, cli):
    """SPEC §5: every run that builds, fails or delivers writes run_results.json with a new
    run id; an idle ``run --due`` leaves the last one in place (cron's minute costs nothing)."""
    root = make_project({"models/m.sql": "{{ config(channels=['web']) }}\nselect 1 as id\n"})
    path = root / "target" / "run_results.json"
    cli(root, "run", "--due", "--at", "2026-01-10T10:00")
    first, stamp = read_run_results(root), path.stat().st_mtime_ns
    assert cli(root, "run", "--due", "--at", "2026-01-10T10:01").exit_code == 0  # shortcut
    assert read_run_results(root) == first and path.stat().st_mtime_ns == stamp
    (root / "target" / "wake.json").unlink()  # no wake file: the full path, idle all the same
    assert cli(root, "run", "--due", "--at", "2026-01-10T10:14").exit_code == 0
    assert read_run_results(root) == first and path.stat().st_mtime_ns == stamp
    cli(root, "run", "--due", "--at", "2026-01-10T10:15")
    second = read_run_results(root)
    assert first["run_id"] != second["run_id"]
    assert [(r["name"], r["status"]) for r in second["results"]] == [("m", "success")]


def test_plan_json_is_exactly_the_documented_contract(copy_project, cli):
    root = copy_project("shop")
    cli(root, "run", "--at", "2026-01-10T10:00")
    result = cli(root, "plan", "--json", "--at", "2026-01-10T10:05")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"at", "models", "cost"}  # cost: the cost model (SPEC §10)
    assert data["at"] == "2026-01-10T10:05:00+01:00"
    project = Project.load(root)
    assert [m["name"] for m in data["models"]] == project.model_names()
    for m in data["models"]:
        assert list(m) == [
            "name", "due", "reason", "cadence", "next_tick", "builds_per_day", "compute_s_per_day",
            "cost_per_month",  # SPEC §11: money per month, null without cost: in cadence.yml
        ]
        assert m["cost_per_month"] is None
    by_name = {m["name"]: m for m in data["models"]}
    assert [n for n, m in by_name.items() if m["due"]] == ["cart_abandoners"]
    assert by_name["cart_abandoners"]["cadence"] == "every 5 minutes"
    assert by_name["cart_abandoners"]["next_tick"] == "2026-01-10T10:10:00+01:00"
    assert by_name["high_value"]["next_tick"] == "2026-01-10T12:00:00+01:00"
    assert by_name["survey_list"]["next_tick"] is None


def test_plan_json_due_agrees_with_what_run_due_builds(copy_project, cli):
    root = copy_project("shop")
    cli(root, "run", "--at", "2026-01-10T04:00")
    data = json.loads(cli(root, "plan", "--json", "--at", "2026-01-10T05:00").output)
    due = {m["name"] for m in data["models"] if m["due"]}
    cli(root, "run", "--due", "--at", "2026-01-10T05:00")
    built = {n for n, s in statuses(root).items() if s == "success"}
    assert due == built == {"high_value", "lapsed", "browsing_now", "cart_abandoners"}


def test_library_run_returns_results_and_reports_events(copy_project):
    project = Project.load(copy_project("failing"))
    events = []
    result = project.run(
        at("2026-01-10T10:00"), Selection(select=("+child", "unrelated")), on_event=events.append
    )
    assert isinstance(result, RunResult)
    assert not result.ok
    assert [r.name for r in result.failed] == ["broken"]
    assert {r.name: r.status for r in result.results} == {
        "base": "success",
        "broken": "error",
        "child": "upstream_failed",
        "unrelated": "success",
    }
    finished = [e.name for e in events if e.kind == "result"]
    assert sorted(finished) == ["base", "broken", "child", "unrelated"]
    assert all(e.total == 4 for e in events)


def test_dry_run_returns_the_plan_and_builds_nothing(copy_project):
    root = copy_project("shop")
    plan = Project.load(root).run(at("2026-01-10T10:00"), due_only=True, dry_run=True)
    assert isinstance(plan, Plan)
    assert {d.name for d in plan.to_build()} >= {"high_value", "cart_abandoners"}
    assert not (root / "warehouse.duckdb").exists()
    assert not (root / "target" / "run_results.json").exists()


@pytest.mark.parametrize("flag", ["--due", None])
def test_dry_run_on_the_command_line_writes_nothing(copy_project, cli, flag):
    root = copy_project("shop")
    args = ["run", "--dry-run", "--at", "2026-01-10T10:00"] + ([flag] if flag else [])
    result = cli(root, *args)
    assert result.exit_code == 0, result.output
    assert "high_value" in result.output
    assert not (root / "warehouse.duckdb").exists()
    assert not (root / "target" / "run_results.json").exists()


def _enospc_for(match: str):  # type: ignore[no-untyped-def]
    """os.write that fails with ENOSPC for files whose project-relative path contains match."""
    import errno
    import os

    real = os.write

    def write(fd: int, data: bytes) -> int:
        name = os.readlink(f"/proc/self/fd/{fd}").split("/project/")[-1]
        if match in name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    return write


@pytest.mark.parametrize(
    "match, code, statuses_after",
    [
        ("compiled/", 1, {"a": "error", "b": "error"}),  # nothing built, each failure recorded
        ("run_results", 1, {"a": "success", "b": "success"}),  # built and recorded as built
        ("manifest", 0, {"a": "success", "b": "success"}),  # only the cache is lost
    ],
)
def test_full_disk_exits_1_naming_the_file_and_records_the_truth(
    make_project, cli, monkeypatch, match, code, statuses_after
):
    from cadence.disk import artifacts

    root = make_project(
        {
            "models/a.sql": "{{ config(channels=['email']) }}\nselect 1 as id\n",
            "models/b.sql": "select 2 as x\n",
        }
    )
    monkeypatch.setattr(artifacts.os, "write", _enospc_for(match))
    result = cli(root, "run", "--at", "2026-01-02T06:00")
    monkeypatch.undo()
    assert result.exit_code == code, result.output
    if code:
        assert "disk full" in result.output and match.rstrip("/") in result.output
    assert not list(root.rglob("*.tmp"))  # no leftovers
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        recorded = dict(con.execute("select model, last_status from _cadence.model_state").fetchall())
        runs = [r[0] for r in con.execute("select status from _cadence.runs").fetchall()]
    finally:
        con.close()
    assert recorded == statuses_after
    assert runs == ["error" if "error" in statuses_after.values() else "success"]
    # the next run, with space again, is normal
    again = cli(root, "run", "--at", "2026-01-02T06:01")
    assert again.exit_code == 0, again.output
