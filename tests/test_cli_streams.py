"""Output streams that cannot be written (output.echo): a cron line such as
``cadence run --due >> /var/log/cadence.log 2>&1`` on a disk that filled up, or a reader that
left (``cadence plan | head -1``). The run is never cut short by its own log: it builds,
publishes and records as it would, and its exit code says how it ended (it used to stop at its
first line with exit 3, "internal error ... No space left on device", having built nothing)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]
FULL = "/dev/full"  # every write fails with ENOSPC (Linux)

pytestmark = pytest.mark.skipif(not os.path.exists(FULL), reason="needs /dev/full (Linux)")


def cadence(cwd: Path, *args: str, stdout, stderr) -> int:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "cadence", *args], cwd=cwd, stdout=stdout, stderr=stderr,
        timeout=300,
    ).returncode  # fmt: skip


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    assert cadence(tmp_path, "init", "demo", stdout=subprocess.DEVNULL, stderr=None) == 0
    return tmp_path / "demo"


def built(root: Path) -> dict[str, str]:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return dict(con.execute("select model, last_status from _cadence.model_state").fetchall())
    finally:
        con.close()


def models(root: Path) -> set[str]:
    """What a full run builds: the models and the seeds."""
    found = {p.stem for p in (root / "models").rglob("*.sql")}
    return found | {p.stem for p in (root / "seeds").rglob("*.csv")}


def test_a_run_whose_output_goes_to_a_full_disk_builds_everything_and_says_so_on_stderr(
    demo: Path, tmp_path: Path
) -> None:
    errors = tmp_path / "stderr.txt"
    with open(FULL, "w") as full, open(errors, "w") as err:
        assert cadence(demo, "run", stdout=full, stderr=err) == 0
    assert set(built(demo)) == models(demo)
    assert set(built(demo).values()) == {"success"}
    said = errors.read_text()
    assert "warning: cannot write to standard output (No space left on device)" in said
    assert "internal error" not in said and "Traceback" not in said
    # the invocation's time line, which stdout could not take, opens the log of stderr
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d cadence run", said.splitlines()[0]
    )


def test_an_alert_warning_on_a_full_stderr_never_ends_the_run(demo: Path) -> None:
    """The observe wing warns on stderr when an alert cannot be sent; with stderr on a full
    disk that warning is lost, not the run (it exited 3 at every run while the alert was
    owed)."""
    with open(demo / "cadence.yml", "a") as yml:
        yml.write('alerts: {webhook: {url: "http://127.0.0.1:9/hook", secret_env: T_SECRET}}\n')
    (demo / "models" / "broken.sql").write_text("select nope from nowhere\n")
    env = {**os.environ, "T_SECRET": "whsec_" + base64.b64encode(b"s" * 32).decode()}
    with open(FULL, "w") as full:
        first = subprocess.run(
            [sys.executable, "-m", "cadence", "run"], cwd=demo, stdout=subprocess.PIPE,
            stderr=full, env=env, timeout=300,
        )  # fmt: skip
    assert first.returncode == 1  # the broken model, and its alert not sent (port 9: refused)
    assert b"done in" in first.stdout
    assert set(built(demo)) == models(demo)


def test_with_both_streams_on_a_full_disk_the_exit_code_still_says_how_the_run_ended(
    demo: Path,
) -> None:
    with open(FULL, "w") as full:
        assert cadence(demo, "run", stdout=full, stderr=full) == 0
    assert set(built(demo)) == models(demo)
    bad = demo / "models" / "broken.sql"
    bad.write_text("select nope from nowhere\n")
    with open(FULL, "w") as full:
        assert cadence(demo, "run", stdout=full, stderr=full) == 1  # a model failed
    assert built(demo)["broken"] == "error"


def test_a_reader_that_leaves_ends_nothing_badly(demo: Path) -> None:
    """``cadence ls | head -1``-like: the pipe closes before cadence writes; exit 0 and not a
    word on stderr (no "Exception ignored" at the interpreter's last flush)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "cadence", "ls"], cwd=demo, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the reader leaves at once
    stderr = child.stderr.read()
    assert child.wait(timeout=300) == 0
    assert stderr == b""
