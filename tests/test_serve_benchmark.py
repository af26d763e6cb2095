"""benchmarks/serve.py --against: two servers take turns under the same load, every answer checked
(here this checkout against itself, on a small snapshot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("stack", ["stdlib", "uvicorn"])
def test_paired_turns_alternate_and_check_every_answer(tmp_path: Path, stack: str) -> None:
    if stack == "uvicorn":
        pytest.importorskip("uvicorn")
    out = tmp_path / "pair.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "serve.py"), "--keys", "2000", "--seconds",
         "2", "--rounds", "2", "--connections", "2", "--http", stack, "--against", str(REPO),
         "--output", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(out.read_text())
    for name in ("subject", "baseline"):
        turns = data["turns"][name]
        assert len(turns) == 2
        assert all(t["req_per_s"] > 0 and (t["failed"], t["wrong"]) == (0, 0) for t in turns)
    assert "subject/baseline" in run.stdout
