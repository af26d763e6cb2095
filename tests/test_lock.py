"""One run per project at a time (SPEC §6): overlapping starts exit 0 at once naming the holder,
--wait waits, a lock left by a dead process is taken over, read-only commands say a run is in
progress instead of failing with a database lock error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from cadence.cli import main
from cadence.lock import RunLock, current_holder


def make(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "cadence.yml").write_text(
        "name: l\nwarehouse: {path: w.duckdb}\ntimezone: UTC\n"
        "channels:\n  web: {cadence: every 15 minutes}\n")
    (root / "models" / "seg.sql").write_text("{{ config(channels=['web'], key='id') }}\nselect 1 as id\n")
    return root


def cli(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--project-dir", str(root)])
    return result.exit_code, result.output


def test_second_run_exits_zero_naming_the_holder(tmp_path: Path) -> None:
    root = make(tmp_path)
    with RunLock(root, "2026-01-01T00:00:00+00:00").acquire():
        code, out = cli(root, "run", "--due", "--at", "2026-01-01T00:01")
        assert code == 0
        assert f"pid {os.getpid()}" in out and "2026-01-01T00:00:00+00:00" in out
        assert not (root / "w.duckdb").exists()  # nothing was built
    code, out = cli(root, "run", "--due", "--at", "2026-01-01T00:01")
    assert code == 0 and not out.strip().startswith("target/cadence.lock")
    assert (root / "w.duckdb").exists()


def test_wait_waits_for_the_lock_then_gives_up(tmp_path: Path) -> None:
    root = make(tmp_path)
    with RunLock(root, "x").acquire():
        started = time.monotonic()
        code, out = cli(root, "run", "--due", "--wait", "0.6", "--at", "2026-01-01T00:01")
        assert time.monotonic() - started >= 0.5
        assert code == 0 and "after waiting 0.6s" in out


def test_lock_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    root = make(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from cadence.lock import RunLock;"
        f"RunLock(Path({str(root)!r}), 'held').acquire(); print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    assert current_holder(root) is not None
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    assert current_holder(root) is None
    code, out = cli(root, "run", "--due", "--at", "2026-01-01T00:01")
    assert code == 0, out
    assert (root / "w.duckdb").exists()


def test_read_only_commands_say_a_run_is_in_progress(tmp_path: Path) -> None:
    root = make(tmp_path)
    assert cli(root, "run", "--at", "2026-01-01T00:01")[0] == 0
    with RunLock(root, "2026-01-01T00:16:00+00:00").acquire():
        for command in ("status", "plan", "explain"):
            args = [command, "seg"] if command == "explain" else [command]
            code, out = cli(root, *args, "--at", "2026-01-01T00:16")
            assert code == 2, (command, out)
            assert "run is in progress" in out and "Traceback" not in out
        code, out = cli(root, "ls")  # does not need the warehouse
        assert code == 0 and "seg" in out
