"""The benchmark harness runs end to end on a tiny project (numbers are not checked here:
timings belong in benchmarks/, printed as ratios against a baseline measured in the same run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--sizes", "20", "--repeat", "1",
         "--events", "1000", "--workdir", str(tmp_path / "work"), "--output", str(out),
         "--cadence", str(Path(sys.executable).parent / "cadence")],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(out.read_text())
    size = data["sizes"][0]
    assert size["models"] == 20
    metrics = size["metrics"]
    for key in ("floor_s", "noop_s", "noop_ratio", "cold_s", "warm_s", "build_s", "raw_s", "build_ratio"):
        assert metrics[key] > 0, key
    assert size["noop_statuses"] == {"skipped": 20}
    assert "no-op" in run.stdout


def test_benchmark_against_another_cadence(tmp_path: Path) -> None:
    """--against measures a second cadence's no-op and loads beside this one, in turn."""
    out = tmp_path / "result.json"
    cadence = str(Path(sys.executable).parent / "cadence")
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--sizes", "20", "--repeat", "2",
         "--events", "1000", "--workdir", str(tmp_path / "work"), "--output", str(out),
         "--cadence", cadence, "--against", cadence],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    size = json.loads(out.read_text())["sizes"][0]
    metrics, series = size["metrics"], size["series"]
    for key in ("against_noop_s", "against_cold_s", "against_warm_s", "vs_against_noop",
                "vs_against_cold", "vs_against_warm"):
        assert metrics[key] > 0, key
    for key in ("against_noop", "against_cold_ls", "against_warm_ls"):
        assert series[key]["runs"] == 2 and series[key]["rcs"] == [0], key
    assert size["notes"] == [] and "this / --against" in run.stdout


def test_activation_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "activation.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "activation.py"), "--members", "2000",
         "--changes", "200", "--snapshot-members", "20000", "--repeat", "1", "--output", str(out)],
        capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stdout + run.stderr  # 1: a target missed at this size
    data = json.loads(out.read_text())
    assert data["membership_diff"]["changes"] == 20
    for key in ("membership_diff", "changes_export"):
        assert data[key]["subject_s"] > 0 and data[key]["baseline_s"] > 0
    snap = data["members_snapshot"]
    assert snap["members"] == 20000 and snap["changes_per_publish"] == 200
    assert snap["publish_s"] > 0 and snap["snapshot_s"] > 0
    assert "membership diff" in run.stdout and "changes export" in run.stdout


def test_webhook_benchmark_smoke(tmp_path: Path) -> None:
    """benchmarks/webhook.py runs end to end and checks exactly once (timings not checked)."""
    out = tmp_path / "webhook.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "webhook.py"), "--changes", "300",
         "--batch-size", "20", "--repeat", "1", "--output", str(out)],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(out.read_text())
    assert data["exactly_once"] is True and data["fault"]["exactly_once"] is True
    assert data["fault"]["batches_failed_once"] == 2
    assert data["fault"]["requests"] == 15 + 2  # every batch once, the failed ones once more
    assert data["baseline_s"] > 0 and data["cadence_s"] > 0
    assert "changes/s" in run.stdout


def test_serve_benchmark_smoke(tmp_path: Path) -> None:
    """benchmarks/serve.py end to end on a small snapshot: every answer checked, swaps served."""
    out = tmp_path / "serve.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "serve.py"), "--keys", "2000", "--seconds", "2",
         "--swaps", "2", "--connections", "4", "--procs", "2", "--output", str(out)],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    figures = json.loads(out.read_text())["figures"]
    assert figures["requests"] > 0 and figures["swaps"] == 2
    assert (figures["failed"], figures["wrong"]) == (0, 0)
    assert figures["swap_max_ms"] < 5000  # each new version was seen (inf when never)
    assert "p99_ms" in run.stdout


def test_sequential_builds_are_paired_with_raw_duckdb_and_its_pattern(tmp_path: Path) -> None:
    """--serial-build: cadence --threads 1, raw DuckDB and DuckDB's publish pattern (without and
    with membership rows) in turn, ratios pair by pair (issue 21); the idle run's ratio to the
    floor too."""
    out = tmp_path / "result.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--sizes", "20", "--repeat", "2",
         "--events", "1000", "--serial-build", "--workdir", str(tmp_path / "work"),
         "--output", str(out), "--cadence", str(Path(sys.executable).parent / "cadence")],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    size = json.loads(out.read_text())["sizes"][0]
    metrics, series = size["metrics"], size["series"]
    for key in ("serial_build_ratio", "serial_build_cpu_ratio", "pattern_ratio",
                "pattern_members_ratio", "serial_vs_pattern_members", "noop_ratio_paired",
                "build_vs_raw_paired"):
        assert metrics[key] > 0, key
    for key in ("full_build_threads_1", "raw_duckdb_beside_threads_1", "publish_pattern",
                "publish_pattern_with_membership"):
        assert series[key]["runs"] == 2 and series[key]["rcs"] == [0], key
    assert size["notes"] == [] and size["noop_statuses"] == {"skipped": 20}
    assert "publish pattern in DuckDB / raw" in run.stdout
    assert "pattern with membership rows / raw" in run.stdout


def test_the_membership_floor_records_every_member_of_each_segment(tmp_path: Path) -> None:
    """raw_duckdb.py --membership publishes each table as --pattern does and, for a model with
    a key, records every member as entered, with increasing change ids; other models none."""
    import duckdb

    sql = {
        "base": "select range as id from range(5)",
        "seg": "select id from main.base where id < 3",
    }
    for name, text in sql.items():
        (tmp_path / f"{name}.sql").write_text(text)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"threads": 1, "seeds": [], "models": [
        ["table", '"main"."base"', str(tmp_path / "base.sql"), None],
        ["table", '"main"."seg"', str(tmp_path / "seg.sql"), "id"],
    ]}))
    entered = [("seg", "0"), ("seg", "1"), ("seg", "2")]
    for mode, expect in (("--pattern", None), ("--membership", entered)):
        warehouse = tmp_path / f"w{mode}.duckdb"
        run = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "raw_duckdb.py"), str(warehouse), str(plan),
             mode], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            assert con.execute("select count(*) from main.seg").fetchone() == (3,)
            assert con.execute("select count(*) from builds").fetchone() == (2,)
            has = con.execute("select count(*) from duckdb_tables() "
                              "where table_name = 'membership_changes'").fetchone()[0]
            if expect is None:
                assert has == 0
                continue
            rows = con.execute("select change_id, segment, key, change from "
                               "_cadence.membership_changes order by change_id").fetchall()
        finally:
            con.close()
        assert [(r[1], r[2]) for r in rows] == expect
        assert {r[3] for r in rows} == {"entered"}
        assert sorted({r[0] for r in rows}) == [r[0] for r in rows]  # distinct, increasing


def test_dbt_load_benchmark_smoke(tmp_path: Path) -> None:
    """The paired dbt benchmark runs without dbt and says it skipped dbt's side."""
    import os

    out = tmp_path / "dbt.json"
    env = {k: v for k, v in os.environ.items() if k != "DBT_EXECUTABLE"}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + "/usr/bin:/bin"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "dbt_load.py"), "--models", "30",
         "--repeat", "1", "--output", str(out), "--workdir", str(tmp_path / "work"),
         "--cadence", str(Path(sys.executable).parent / "cadence")],
        capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(out.read_text())
    assert data["verdict"] == "skipped (dbt is not installed)"
    assert data["median_s"]["cadence_cold"] > 0 and "skipped" in run.stdout


def test_statements_benchmark_smoke(tmp_path: Path) -> None:
    """benchmarks/statements.py measures each case on raw DuckDB and relates it to the
    baseline measured in the same run (timings not checked)."""
    out = tmp_path / "statements.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "statements.py"), "--n", "5", "--rounds", "1",
         "--output", str(out)],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    cases = json.loads(out.read_text())["cases"]
    assert set(cases) >= {"create table as", "publish pattern", "first version"}
    assert cases["create table as"]["ratio"] == 1.0
    assert all(c["ms"] > 0 and len(c["samples"]) == 1 for c in cases.values())
    assert "publish pattern" in run.stdout
