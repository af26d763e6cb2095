"""Members files written beside the fold (build/runner.py ``_Beside``, issue 21): once the builds
are done, the run writes its segments' members files on a cursor of its own while it folds its
state and the warehouse checkpoints. Whichever of the two a kill -9 or an interrupt finds done,
the next run leaves the files equal to the warehouse, every change once."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from activation_project import REPO, make_activation, query, set_people
from test_members_snapshot import (
    DAY1,
    DAY2,
    held,
    live_changes,
    live_members,
    passes,
    snapshot_changes,
    visible_files_are_complete,
)

from cadence.activation import roster, rosterkeep
from cadence.build import beside, runner
from cadence.project import Project, Selection

# ``kill MODE run ...``: the run dies with one of the two done and the other not
KILL = """
import os, signal, sys, threading
from cadence.activation import rosterkeep
from cadence.build import runner

mode, fold, settle = sys.argv[1], runner.fold, rosterkeep._settle
written = threading.Event()

if mode == "folded":  # the state commits, the members files are never written
    def write_many(*args, **kwargs):
        threading.Event().wait()
    rosterkeep.roster.write_many = write_many

    def then_die(*args, **kwargs):
        fold(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
else:  # "written": the members files are written and settled, the state never commits
    def settled(root):
        settle(root)
        written.set()
    rosterkeep._settle = settled

    def then_die(*args, **kwargs):
        assert written.wait(60)
        os.kill(os.getpid(), signal.SIGKILL)

runner.fold = then_die
from cadence.cli import main
main(sys.argv[2:])
"""

# ``run ...``: SIGINT once the state is folded, while the members files are being written
LATE = """
import os, signal, sys, threading
from cadence.activation import rosterkeep
from cadence.build import runner

fold, folded = runner.fold, threading.Event()

def write_many(engine, *args, **kwargs):
    engine.query("select count(*) from range(100000000000)")  # until interrupted

def folding(*args, **kwargs):
    fold(*args, **kwargs)
    folded.set()

def interrupt():
    folded.wait(60)
    if os.environ.get("CADENCE_T_TO_THREAD"):  # as the kernel may: to a thread not the main one
        threading.Event().wait(0.3)  # the run waits for the files meanwhile
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    else:
        os.kill(os.getpid(), signal.SIGINT)

rosterkeep.roster.write_many = write_many
runner.fold = folding
threading.Thread(target=interrupt, daemon=True).start()
from cadence.cli import main
main(sys.argv[1:])
"""


def scripted(root: Path, script: str, mode: str, *run: str) -> subprocess.CompletedProcess[str]:
    """``cadence run RUN...`` for the second day through ``script`` (given ``mode``)."""
    return subprocess.run(
        [sys.executable, "-c", script, mode, "run", *run, "--project-dir", str(root),
         "--at", "2026-01-02T06:00"],
        cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip


def killed_run(root: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return scripted(root, KILL, mode, "-s", "vip")


def files_are_the_warehouse(cli, root: Path) -> None:  # type: ignore[no-untyped-def]
    """Each segment's members and history, read from its files as a held run reads them."""
    for segment in ("vip", "regular"):
        assert held(cli, root, "members", segment).stdout.split() == live_members(root, segment)
        assert snapshot_changes(cli, root, segment) == [
            tuple(r) for r in live_changes(root, segment)
        ]


def repaired_by_an_idle_run(cli, root: Path) -> None:  # type: ignore[no-untyped-def]
    """The files are owed (marked behind, no writer left): an idle run writes them all."""
    assert (root / "target" / "members" / rosterkeep.BEHIND).exists()
    assert not [t for t in threading.enumerate() if t.name == "cadence-members"]
    idle = cli(root, "run", "--due", "--at", "2026-01-02T06:01")  # nothing is due
    assert idle.exit_code == 0, idle.output
    assert not (root / "target" / "members" / rosterkeep.BEHIND).exists()
    files_are_the_warehouse(cli, root)


def the_run(root: Path) -> tuple[str, bool]:
    """Status and folded flag of the second day's run (the one killed)."""
    rows = query(root, "select status, folded from _cadence.runs order by started_at")
    return rows[-1]


@pytest.fixture
def root(make_project, cli) -> Path:
    root = make_activation(make_project, DAY1)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    set_people(root, DAY2)
    return root


def test_killed_once_its_state_is_folded_the_next_run_writes_the_files(root: Path, cli) -> None:
    killed = killed_run(root, "folded")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert the_run(root) == ("success", True)
    assert (root / "target" / "members" / rosterkeep.BEHIND).exists()
    assert held(cli, root, "members", "vip").stdout.split() != live_members(root, "vip")
    idle = cli(root, "run", "--due", "--at", "2026-01-02T06:01")  # nothing is due
    assert idle.exit_code == 0, idle.output
    assert held(cli, root, "members", "vip").stdout.split() == live_members(root, "vip")
    assert snapshot_changes(cli, root, "vip") == [tuple(r) for r in live_changes(root, "vip")]
    assert not (root / "target" / "members" / rosterkeep.BEHIND).exists()


def test_killed_once_its_files_are_written_the_state_is_replayed_once(root: Path, cli) -> None:
    killed = killed_run(root, "written")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert the_run(root) == ("running", False)
    assert not (root / "target" / "members" / rosterkeep.BEHIND).exists()
    assert held(cli, root, "members", "vip").stdout.split() == live_members(root, "vip")
    # the killed run's publish stands: not due again, and the next build folds it
    nothing = cli(root, "run", "--due", "--at", "2026-01-02T06:01")
    assert nothing.exit_code == 0, nothing.output
    assert cli(root, "run", "-s", "regular", "--at", "2026-01-02T06:05").exit_code == 0
    assert the_run(root)[1] is True
    assert query(root, "select model, count(*) from _cadence.model_builds where model = 'vip' "
                 "group by 1") == [("vip", 2)]  # fmt: skip
    files_are_the_warehouse(cli, root)


def test_an_interrupt_during_the_fold_stops_the_members_statement(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fold is interrupted while the hook's statement runs: the run raises the interrupt
    only once that statement is stopped and its thread gone; the next run catches the files
    up."""
    started, seen = threading.Event(), []

    def long_statement(engine, *args, **kwargs):  # type: ignore[no-untyped-def]
        started.set()
        try:
            engine.query("select count(*) from range(100000000000)")
        except BaseException as exc:  # noqa: BLE001 - what stopped it
            seen.append(type(exc).__name__)
            raise
        return {}

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        assert started.wait(60)
        raise KeyboardInterrupt

    monkeypatch.setattr(roster, "write_many", long_statement)
    monkeypatch.setattr(runner, "fold", interrupted)
    at = dt.datetime(2026, 1, 2, 6, 0, tzinfo=dt.timezone.utc)
    with pytest.raises(KeyboardInterrupt):
        Project.load(root).run(at, Selection(select=("vip",)))
    assert seen == ["KeyboardInterrupt"]
    assert not [t for t in threading.enumerate() if t.name == "cadence-members"]
    monkeypatch.undo()
    later = Project.load(root).run(at + dt.timedelta(minutes=5), Selection(select=("regular",)))
    assert [r.status for r in later.results if r.name == "regular"] == ["success"]
    assert (root / "target" / "members" / "vip").is_dir()
    assert not (root / "target" / "members" / rosterkeep.BEHIND).exists()


@pytest.mark.parametrize("to_thread", [False, True], ids=["to-the-process", "to-another-thread"])
def test_an_interrupt_while_the_files_are_written_after_the_fold_reports_the_run(
    root: Path, cli, to_thread: bool
) -> None:
    """The run is folded (its publishes and state committed): an interrupt while its members
    files are written stops that statement, still writes run_results.json, then exits 130; the
    next run writes the files. Also when the signal lands on a thread other than the main one
    (a terminal's Ctrl-C goes to the process; the kernel picks the thread): the run waiting
    for the files must still see it, not when they are done."""
    env = {**os.environ, "CADENCE_T_TO_THREAD": "1" if to_thread else ""}
    late = subprocess.run(
        [sys.executable, "-c", LATE, "run", "-s", "vip", "--project-dir", str(root),
         "--at", "2026-01-02T06:00"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert (root / "target" / "members" / rosterkeep.BEHIND).exists()  # the files are owed
    assert late.returncode == 130, late.stdout + late.stderr
    assert late.stderr.splitlines()[-1] == "interrupted"
    assert the_run(root) == ("success", True)
    results = json.loads((root / "target" / "run_results.json").read_text())
    assert [(r["name"], r["status"]) for r in results["results"]] == [("vip", "success")]
    assert cli(root, "run", "--due", "--at", "2026-01-02T06:01").exit_code == 0
    assert held(cli, root, "members", "vip").stdout.split() == live_members(root, "vip")


# ``run ...`` with a batch per segment on two cores: the process dies (``kill``) or is
# interrupted (``interrupt``) right after the first batch of members files is written, while the
# builds go on
BATCHED = """
import os, signal, sys, threading
from cadence.activation import rosterkeep
from cadence.build import beside

mode, write_many = sys.argv[1], rosterkeep.roster.write_many
beside.BATCH, beside._cores = 1, lambda: 2
first = []

def then_stop(engine, root, targets, *args, **kwargs):
    found = write_many(engine, root, targets, *args, **kwargs)
    if not first:
        first.append([t.segment for t in targets])
        print("first batch", first[0], flush=True)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGINT)
        engine.query("select count(*) from range(100000000000)")  # until stopped
    return found

rosterkeep.roster.write_many = then_stop
from cadence.cli import main
main(sys.argv[2:])
"""


def batched_run(root: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return scripted(root, BATCHED, mode, "--threads", "1")


def test_a_sequential_build_writes_each_batch_of_members_files_while_the_next_models_build(
    root: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On two cores a sequential build leaves one idle: the files of the segments published so
    far are written there (a batch once ``BATCH`` wait), while the next model builds; the run
    waits only for the last batch. Here the second segment's build waits until the first
    segment's batch is written (each publish committed alone), so the batches are what the
    test says."""
    from cadence.build import grouped

    monkeypatch.setattr(grouped, "GROUP_SECONDS", 0.0)
    monkeypatch.setattr(beside, "BATCH", 1)
    monkeypatch.setattr(beside, "_cores", lambda: 2)
    calls: list[list[str]] = []
    first_written = threading.Event()
    original, build_model = roster.write_many, runner.build_model

    def counted(engine, root, targets, *args, **kwargs):  # type: ignore[no-untyped-def]
        found = original(engine, root, targets, *args, **kwargs)
        calls.append([t.segment for t in targets])
        first_written.set()
        return found

    published: list[str] = []

    def build(ctx, model, decision):  # type: ignore[no-untyped-def]
        if model.config.key and published:  # the second segment: once the first is written
            assert first_written.wait(30)
        result = build_model(ctx, model, decision)
        if model.config.key:
            published.append(model.name)
        return result

    monkeypatch.setattr(roster, "write_many", counted)
    monkeypatch.setattr(runner, "build_model", build)
    at = dt.datetime(2026, 1, 2, 6, 0, tzinfo=dt.timezone.utc)
    result = Project.load(root).run(at, Selection(), threads=1)
    assert result.ok
    assert calls[:2] == [published[:1], published[1:]]
    assert calls[2:] in ([], [[]])  # the call after the builds: nothing was left for it
    assert not (root / "target" / "members" / rosterkeep.BEHIND).exists()
    files_are_the_warehouse(cli, root)


@pytest.mark.parametrize("threads, cores", [(2, 2), (4, 2), (1, 1)])
def test_builds_that_keep_every_core_busy_write_the_members_files_once_after_them(
    root: Path, cli, monkeypatch: pytest.MonkeyPatch, threads: int, cores: int
) -> None:
    """Where the builds leave no core idle (threads >= cores), a batch written during them
    would take its time from them: the hook is called once, after them, with every segment."""
    monkeypatch.setattr(beside, "BATCH", 1)
    monkeypatch.setattr(beside, "_cores", lambda: cores)
    calls = passes(monkeypatch)
    at = dt.datetime(2026, 1, 2, 6, 0, tzinfo=dt.timezone.utc)
    assert Project.load(root).run(at, Selection(), threads=threads).ok
    assert calls == [["regular", "vip"]]
    for segment in ("vip", "regular"):
        assert held(cli, root, "members", segment).stdout.split() == live_members(root, segment)


@pytest.mark.parametrize("mode", ["kill", "interrupt"])
def test_a_run_stopped_after_its_first_batch_leaves_the_files_owed_and_the_next_run_writes_them(
    root: Path, cli, mode: str
) -> None:
    """kill -9, or Ctrl-C, right after the first batch of members files is written while the
    builds go on: the files stay marked behind (a reader sees whole files), and the next run,
    an idle one, brings every segment's files to the warehouse's members and history."""
    stopped = batched_run(root, mode)
    assert stopped.returncode == (-9 if mode == "kill" else 130), stopped.stdout + stopped.stderr
    assert "first batch" in stopped.stdout
    visible_files_are_complete(root)
    repaired_by_an_idle_run(cli, root)
    leftovers = [p for p in (root / "target" / "members").rglob(".*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_an_interrupt_between_a_commit_and_its_report_leaves_the_files_owed(
    root: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal can land after a segment's publish committed but before the members writer
    was given it: the interrupted run does not clear the mark (it cannot know every file is
    written), so the next run, an idle one, writes the files of every segment."""
    monkeypatch.setattr(beside, "_cores", lambda: 2)
    add = beside.Beside.add
    dropped: list[str] = []

    def lost(self, model):  # type: ignore[no-untyped-def]
        if model.config.key and not dropped:
            dropped.append(model.name)
            raise KeyboardInterrupt  # the signal, before the model is handed over
        add(self, model)

    monkeypatch.setattr(beside.Beside, "add", lost)
    at = dt.datetime(2026, 1, 2, 6, 0, tzinfo=dt.timezone.utc)
    with pytest.raises(KeyboardInterrupt):
        Project.load(root).run(at, Selection(), threads=1)
    monkeypatch.undo()
    assert dropped
    repaired_by_an_idle_run(cli, root)
