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


def test_activation_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "activation.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "activation.py"), "--members", "2000",
         "--changes", "200", "--repeat", "1", "--output", str(out)],
        capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stdout + run.stderr  # 1: a target missed at this size
    data = json.loads(out.read_text())
    assert data["membership_diff"]["changes"] == 20
    for key in ("membership_diff", "changes_export"):
        assert data[key]["subject_s"] > 0 and data[key]["baseline_s"] > 0
    assert "membership diff" in run.stdout and "changes export" in run.stdout
