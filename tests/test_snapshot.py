"""The state snapshot beside the warehouse (SPEC §6): written atomically and owner-only by every
run that changes state, data-only and versioned; read-only commands answer from it while a run
holds the warehouse; a missing, corrupt or newer snapshot gives a clear message (exit 2)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadence.build.lock import RunLock
from cadence.cli import main
from cadence.disk import artifacts
from cadence.plan.history import ModelState, StateSnapshot
from cadence.project import Project
from cadence.record import snapshot

UTC = dt.timezone.utc
YML = (
    "name: s\nwarehouse: {path: w.duckdb}\ntimezone: Europe/Berlin\n"
    "channels:\n  web: {cadence: every 15 minutes}\n"
)


def make(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "cadence.yml").write_text(YML)
    (root / "models" / "seg.sql").write_text(
        "{{ config(channels=['web'], key='id') }}\nselect 1 as id\n"
    )
    (root / "models" / "broken.sql").write_text(
        "{{ config(channels=['web']) }}\nselect * from nowhere\n"
    )
    return root


def invoke(root: Path, *args: str):
    return CliRunner().invoke(main, [*args, "--project-dir", str(root)])


def test_a_run_writes_an_owner_only_data_only_versioned_snapshot(tmp_path: Path) -> None:
    root = make(tmp_path)
    os.umask(0o022)
    invoke(root, "run", "--at", "2026-06-01T09:01")
    path = root / snapshot.SNAPSHOT_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    data = json.loads(path.read_text())
    assert data["format"] == "cadence.state_snapshot" and data["version"] == 1
    models = {m["name"]: m for m in data["models"]}
    assert models["seg"]["last_status"] == "success" and models["broken"]["last_status"] == "error"
    assert models["seg"]["last_success_at"] == "2026-06-01T07:01:00+00:00"
    assert ["main", "seg", "table"] in data["relations"]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_the_snapshot_round_trips_the_state_exactly(tmp_path: Path) -> None:
    root = make(tmp_path)
    invoke(root, "run", "--at", "2026-06-01T09:01")
    invoke(root, "run", "--at", "2026-06-01T09:16")
    project = Project.load(root)
    live = project.read_state()
    saved = snapshot.read(root, "test")
    assert saved.models == live.models
    assert saved.relations == live.relations
    assert saved.source_loaded == live.source_loaded
    assert saved.as_of is not None and saved.note == "test"


def test_each_run_that_changes_state_refreshes_the_snapshot(tmp_path: Path) -> None:
    root = make(tmp_path)
    invoke(root, "run", "--at", "2026-06-01T09:01")
    first = snapshot.read(root, "x").of("seg").last_success_at
    invoke(root, "run", "--due", "--at", "2026-06-01T09:16")
    assert snapshot.read(root, "x").of("seg").last_success_at == dt.datetime(
        2026, 6, 1, 7, 16, tzinfo=UTC
    )
    assert first == dt.datetime(2026, 6, 1, 7, 1, tzinfo=UTC)


def test_an_idle_run_does_not_rewrite_the_snapshot(tmp_path: Path) -> None:
    root = make(tmp_path)
    (root / "models" / "broken.sql").unlink()
    invoke(root, "run", "--at", "2026-06-01T09:01")
    path = root / snapshot.SNAPSHOT_FILE
    os.utime(path, (1_000_000_000, 1_000_000_000))
    invoke(root, "run", "--due", "--at", "2026-06-01T09:02")  # nothing due
    assert path.stat().st_mtime == 1_000_000_000
    path.unlink()
    invoke(root, "run", "--due", "--at", "2026-06-01T09:03")  # missing: written even when idle
    assert path.exists()


def test_status_during_a_run_says_as_of_when(tmp_path: Path) -> None:
    root = make(tmp_path)
    invoke(root, "run", "--at", "2026-06-01T09:01")
    path = root / snapshot.SNAPSHOT_FILE
    written = dt.datetime(2026, 6, 1, 7, 2, tzinfo=UTC).timestamp()
    os.utime(path, (written, written))
    with RunLock(root, "2026-06-01T09:16:00+02:00").acquire():
        result = invoke(root, "status", "--json", "--at", "2026-06-01T09:17")
    assert result.exit_code == 0, result.output
    assert "showing state as of 2026-06-01 09:02 CEST" in result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)["models"]}
    assert rows["seg"]["last_status"] == "success" and rows["broken"]["last_status"] == "error"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no state snapshot has been written yet"),
        ("{not json", "the state snapshot is corrupt"),
        ('{"format": "cadence.state_snapshot", "version": 99, "models": []}', "is newer"),
        ('{"format": "something else"}', "not a cadence state snapshot"),
        ('{"format": "cadence.state_snapshot", "version": 1, "models": [{}]}', "corrupt"),
        ("[1, 2]", "corrupt"),
        (
            '{"format": "cadence.state_snapshot", "version": 1, "relations": [],'
            ' "source_loaded": [], "pending_runs": [], "pending_models": [],'
            ' "models": [{"name": "seg", "failure_streak": "many"}]}',
            "failure_streak is 'many'",
        ),
    ],
    ids=["missing", "not-json", "newer", "foreign", "bad-model", "not-an-object", "bad-type"],
)
def test_a_missing_or_corrupt_snapshot_gives_a_clear_message(
    tmp_path: Path, content: str | None, message: str
) -> None:
    root = make(tmp_path)
    invoke(root, "run", "--at", "2026-06-01T09:01")
    path = root / snapshot.SNAPSHOT_FILE
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    with RunLock(root, "2026-06-01T09:16:00+02:00").acquire():
        for command in (["status"], ["plan"], ["explain", "seg"]):
            result = invoke(root, *command, "--at", "2026-06-01T09:17")
            assert result.exit_code == 2, result.output
            assert message in result.output and "run is in progress" in result.output
            assert "target/state_snapshot.json" in result.output
            assert "Traceback" not in result.output


def test_an_interrupted_write_keeps_the_previous_snapshot(tmp_path: Path, monkeypatch) -> None:
    root = make(tmp_path)
    invoke(root, "run", "--at", "2026-06-01T09:01")
    before = (root / snapshot.SNAPSHOT_FILE).read_text()

    def killed(fd: int) -> None:
        raise KeyboardInterrupt()

    monkeypatch.setattr(artifacts.os, "fsync", killed)  # snapshot writes through artifacts
    state = StateSnapshot({"seg": ModelState("seg", last_status="error")})
    with pytest.raises(KeyboardInterrupt):
        snapshot.write(root, state, "r", dt.datetime(2026, 6, 1, tzinfo=UTC))
    assert (root / snapshot.SNAPSHOT_FILE).read_text() == before
    assert not [p for p in (root / "target").iterdir() if p.name.endswith(".tmp")]


def test_a_run_killed_mid_way_leaves_the_last_snapshot_readable(tmp_path: Path) -> None:
    """kill -9 during a run: the snapshot on disk is the previous complete one."""
    import signal
    import subprocess
    import sys
    import time

    root = make(tmp_path)
    invoke(root, "run", "--at", "2026-06-01T09:01")
    (root / "models" / "slow.sql").write_text(
        "{{ config(channels=['web']) }}\nselect count(*) as n from range(400000000)\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cadence",
            "run",
            "-s",
            "slow",
            "--at",
            "2026-06-01T09:16",
            "--project-dir",
            str(root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        end = time.monotonic() + 20
        while not list((root / "target" / "compiled" / "models").glob("slow.sql")):
            assert time.monotonic() < end and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    saved = snapshot.read(root, "x")
    assert saved.of("seg").last_status == "success" and "slow" not in saved.models
