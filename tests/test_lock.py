"""One run per project at a time (SPEC §6): overlapping starts exit 0 at once naming the holder,
--wait waits, a lock left by a dead process is taken over, read-only commands say a run is in
progress instead of failing with a database lock error."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from cadence.build.lock import RunLock, current_holder
from cadence.cli import main


def make(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "cadence.yml").write_text(
        "name: l\nwarehouse: {path: w.duckdb}\ntimezone: UTC\n"
        "channels:\n  web: {cadence: every 15 minutes}\n"
    )
    (root / "models" / "seg.sql").write_text(
        "{{ config(channels=['web'], key='id') }}\nselect 1 as id\n"
    )
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
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; from cadence.build.lock import RunLock;"
                f"RunLock(Path({str(root)!r}), 'held').acquire(); print('locked', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    assert current_holder(root) is not None
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    assert current_holder(root) is None
    code, out = cli(root, "run", "--due", "--at", "2026-01-01T00:01")
    assert code == 0, out
    assert (root / "w.duckdb").exists()


def test_read_only_commands_answer_from_the_snapshot_while_a_run_holds_the_lock(
    tmp_path: Path,
) -> None:
    root = make(tmp_path)
    assert cli(root, "run", "--at", "2026-01-01T00:01")[0] == 0
    live = {}
    for command in ("status", "plan", "explain"):
        args = [command, "seg"] if command == "explain" else [command]
        live[command] = (
            CliRunner()
            .invoke(main, [*args, "--at", "2026-01-01T00:16", "--project-dir", str(root)])
            .stdout
        )
    with RunLock(root, "2026-01-01T00:16:00+00:00").acquire():
        for command in ("status", "plan", "explain"):
            args = [command, "seg"] if command == "explain" else [command]
            result = CliRunner().invoke(
                main, [*args, "--at", "2026-01-01T00:16", "--project-dir", str(root)]
            )
            assert result.exit_code == 0, (command, result.output)
            assert "a cadence run is in progress" in result.stderr
            assert "showing state as of" in result.stderr and "Traceback" not in result.output
            assert result.stdout == live[command]  # the same answer, from the snapshot
        code, out = cli(root, "ls", "-s", "due:true")  # due: needs state too (real clock: due)
        assert code == 0 and "seg" in out


def test_holder_shows_the_wall_clock_start_and_the_at_time_separately(tmp_path: Path) -> None:
    root = make(tmp_path)
    lock = RunLock(root, "2026-12-01T22:00:05+00:00", at="2026-01-01T00:16:00+00:00")
    with lock.acquire():
        code, out = cli(root, "run", "--due", "--at", "2026-01-01T00:17")
    assert code == 0
    assert (
        f"(pid {os.getpid()}, started 2026-12-01T22:00:05+00:00, "
        "replaying --at 2026-01-01T00:16:00+00:00)" in out
    )


def test_a_run_records_its_wall_clock_start_apart_from_at(tmp_path: Path, monkeypatch) -> None:
    import json

    from cadence import output
    from cadence.cli import common as cli_module

    root = make(tmp_path)
    wall = dt.datetime(2026, 12, 1, 22, 0, 5, tzinfo=dt.timezone.utc)
    monkeypatch.setattr(cli_module, "_now", lambda: wall)
    seen = []
    original = output.RunRenderer.event

    def spy(self, event):  # during the build, while the run holds the lock
        seen.append(json.loads((root / "target" / "cadence.lock.json").read_text()))
        seen.append((root / "target" / "cadence.lock.json").stat().st_mode & 0o777)
        original(self, event)

    monkeypatch.setattr(output.RunRenderer, "event", spy)
    assert cli(root, "run", "--at", "2026-01-01T00:01")[0] == 0
    info, mode = seen[0], seen[1]
    assert info["started"] == "2026-12-01T22:00:05+00:00"  # the wall clock
    assert info["at"] == "2026-01-01T00:01:00+00:00"  # the replayed time, apart
    assert info["pid"] == os.getpid() and info["command"] == "run" and mode == 0o600
    assert not (root / "target" / "cadence.lock.json").exists()  # removed before unlocking


def test_the_hint_does_not_suggest_wait_when_it_was_given(tmp_path: Path) -> None:
    root = make(tmp_path)
    with RunLock(root, "x").acquire():
        _, waited = cli(root, "run", "--due", "--wait", "0.2", "--at", "2026-01-01T00:01")
        _, plain = cli(root, "run", "--due", "--at", "2026-01-01T00:01")
    assert "after waiting 0.2s" in waited and "--wait" not in waited
    assert "use --wait SECONDS" in plain


def test_a_loser_arriving_before_the_holder_wrote_its_info_waits_for_it(tmp_path: Path) -> None:
    """The holder has the flock but has not written who it is yet (the moment between the two
    steps): the loser waits for the info instead of printing '(pid ?, started ?)'."""
    import fcntl
    import threading

    root = make(tmp_path)
    (root / "target").mkdir()
    fd = os.open(root / "target" / "cadence.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    late = RunLock(root, "2026-12-01T22:00:00+00:00")
    timer = threading.Timer(0.3, late._write_holder)
    timer.start()
    try:
        code, out = cli(root, "run", "--due", "--at", "2026-01-01T00:01")
    finally:
        timer.join()
        os.close(fd)
    assert code == 0
    assert f"(pid {os.getpid()}, started 2026-12-01T22:00:00+00:00)" in out, out
    assert "?" not in out


HOLD_WAREHOUSE = (
    "import sys, time, duckdb\n"
    "con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro')\n"
    "print('ready', flush=True)\n"
    "time.sleep(float(sys.argv[3]))\n"
    "con.close()\n"
)


def hold_warehouse(root: Path, mode: str, seconds: float) -> subprocess.Popen[str]:
    """A second process (a notebook, a BI tool) with the DuckDB file open for ``seconds``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_WAREHOUSE, str(root / "w.duckdb"), mode, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_wait_also_waits_for_another_process_holding_the_warehouse(tmp_path: Path) -> None:
    root = make(tmp_path)
    assert cli(root, "run", "--at", "2026-01-01T00:01")[0] == 0
    holder = hold_warehouse(root, "ro", 1.5)
    try:
        started = time.monotonic()
        code, out = cli(root, "run", "--due", "--wait", "20", "--at", "2026-01-01T00:16")
        assert code == 0, out
        assert 1.0 <= time.monotonic() - started < 15
        assert "OK    seg" in out
    finally:
        holder.kill()
        holder.communicate()


def test_a_warehouse_held_past_the_wait_names_the_process(tmp_path: Path) -> None:
    root = make(tmp_path)
    assert cli(root, "run", "--at", "2026-01-01T00:01")[0] == 0
    holder = hold_warehouse(root, "rw", 60)
    try:
        code, out = cli(root, "run", "--due", "--wait", "0.5", "--at", "2026-01-01T00:16")
        assert code == 2, out
        assert f"(PID {holder.pid})" in out and "python" in out
        assert "after waiting 0.5s" in out and "--wait" not in out
        assert "Traceback" not in out
        code, out = cli(root, "run", "--due", "--at", "2026-01-01T00:16")
        assert code == 2 and f"(PID {holder.pid})" in out and "use --wait SECONDS" in out
        # read-only commands answer from the snapshot meanwhile, naming the process
        result = CliRunner().invoke(
            main, ["status", "--at", "2026-01-01T00:16", "--project-dir", str(root)]
        )
        assert result.exit_code == 0, result.output
        assert (
            "the warehouse is open in" in result.stderr and f"(PID {holder.pid})" in result.stderr
        )
    finally:
        holder.kill()
        holder.communicate()
