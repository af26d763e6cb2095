"""Crash safety (SPEC §6): kill -9 or SIGTERM in the middle of a build never leaves a half-built
relation or inconsistent state, and the next run recovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

SLOW_SQL = """{{ config(channels=['email'], key='id') }}
select i as id from range({{ env_var('SEGMENT_ROWS', '10') }}) t(i)
where {{ env_var('SLOW', 'true') }}
"""


def write_project(root: Path) -> None:
    (root / "models").mkdir(parents=True)
    (root / "cadence.yml").write_text(
        "name: crash\nwarehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}\n"
        "timezone: UTC\nchannels:\n  email: {cadence: 'daily at 05:00'}\n"
    )
    (root / "models" / "segment.sql").write_text(SLOW_SQL)
    (root / "models" / "other.sql").write_text(
        "{{ config(channels=['email']) }}\nselect 1 as x\n"
    )


# A condition that keeps DuckDB busy for many seconds: a cross join counted row by row.
SLOW_CONDITION = "(select count(*) from range(200000) a, range(100000) b where a.range + b.range > -1) > 0"


def cadence(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cadence", *args, "--project-dir", str(root)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)


def start_slow_run(root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "SEGMENT_ROWS": "25", "SLOW": SLOW_CONDITION}
    proc = subprocess.Popen([sys.executable, "-m", "cadence", "run", "-s", "segment", "--project-dir",
                             str(root), "--at", "2026-01-02T06:00"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait until the build is under way: its compiled SQL is written just before it starts
    compiled = root / "target" / "compiled" / "models" / "segment.sql"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if compiled.exists() and "range(25)" in compiled.read_text():
            break
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "the slow build finished before it could be interrupted"
    return proc


def live_rows(root: Path) -> tuple[int, int, str]:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute("select count(*) from main.segment").fetchone()[0]
        state = con.execute(
            "select last_rows, last_status from _cadence.model_state where model = 'segment'"
        ).fetchone()
        leftovers = con.execute(
            "select count(*) from duckdb_tables() where table_name like '%cadence_staging%'"
        ).fetchone()[0]
    finally:
        con.close()
    return rows, state[0], f"{state[1]}/{leftovers}"


@pytest.fixture
def built(tmp_path: Path) -> Path:
    write_project(tmp_path)
    result = cadence(tmp_path, "run", "--at", "2026-01-01T06:00", env={"SLOW": "true"})
    assert result.returncode == 0, result.stderr + result.stdout
    assert live_rows(tmp_path)[:2] == (10, 10)
    return tmp_path


def test_kill_9_mid_build_keeps_old_version_and_next_run_recovers(built: Path) -> None:
    proc = start_slow_run(built)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    rows, state_rows, status = live_rows(built)
    assert (rows, state_rows) == (10, 10)  # old version live, state agrees with it
    assert status == "success/0"  # no half-built staging relation visible
    # the lock died with the process: the next run --due builds what is still due
    again = cadence(built, "run", "--due", "--at", "2026-01-02T06:00", env={"SEGMENT_ROWS": "30", "SLOW": "true"})
    assert again.returncode == 0, again.stderr + again.stdout
    assert live_rows(built)[:2] == (30, 30)


def test_sigterm_stops_cleanly_and_records_interruption(built: Path) -> None:
    proc = start_slow_run(built)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode != 0
    assert "interrupted" in (out + err)
    rows, state_rows, _ = live_rows(built)
    assert (rows, state_rows) == (10, 10)
    con = duckdb.connect(str(built / "warehouse.duckdb"), read_only=True)
    try:
        last = con.execute("select status from _cadence.model_builds where model = 'segment' "
                           "order by started_at desc, finished_at desc limit 1").fetchone()[0]
        run = con.execute("select status from _cadence.runs order by started_at desc limit 1").fetchone()[0]
    finally:
        con.close()
    assert last == "interrupted"
    assert run == "interrupted"


def write_parallel_project(root: Path) -> None:
    (root / "models").mkdir(parents=True)
    (root / "cadence.yml").write_text(
        "name: crashp\nwarehouse: {engine: duckdb, path: warehouse.duckdb, threads: 3}\n"
        "timezone: UTC\nchannels:\n  email: {cadence: 'daily at 05:00'}\n"
    )
    for i in range(3):
        (root / "models" / f"slow{i}.sql").write_text(SLOW_SQL)
    for i in range(6):
        (root / "models" / f"fast{i}.sql").write_text(
            "{{ config(channels=['email']) }}\nselect " + str(i) + " as x\n"
        )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("delay", [0.0, 0.4, 1.5])
def test_interrupting_a_parallel_run_exits_130_with_state_matching_commits(
    tmp_path: Path, sig: int, delay: float
) -> None:
    write_parallel_project(tmp_path)
    env = {**os.environ, "SEGMENT_ROWS": "25", "SLOW": SLOW_CONDITION}
    proc = subprocess.Popen([sys.executable, "-m", "cadence", "run", "--threads", "3",
                             "--project-dir", str(tmp_path), "--at", "2026-01-02T06:00"],
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    compiled = tmp_path / "target" / "compiled" / "models"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (compiled / "slow0.sql").exists():
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, out + err
    assert "internal error" not in out + err
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        committed = {r[0] for r in con.execute(
            "select model from _cadence.model_builds where status = 'success'").fetchall()}
        tables = {r[0] for r in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'main'").fetchall()}
    finally:
        con.close()
    assert committed == tables  # a relation exists exactly when its build record committed
    plan = cadence(tmp_path, "plan", "--json", "--at", "2026-01-02T06:01", env={"SLOW": "true"})
    assert plan.returncode == 0, plan.stderr
    import json
    due = {m["name"] for m in json.loads(plan.stdout)["models"] if m["due"]}
    assert not due & committed  # what committed is not due again
    assert due | committed == {f"slow{i}" for i in range(3)} | {f"fast{i}" for i in range(6)}
