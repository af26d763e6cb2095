"""SIGINT and SIGTERM at any moment of ``cadence run --due``, the first 0.3 s included (issue 17
item 9): exit 130 and the one line "interrupted" on stderr, never a traceback, never killed by the
signal (exit 143/-15) — while Python imports click and DuckDB, while the project loads, while a
model builds.

The signal is sent at fixed delays after the process starts. The child starts with SIGINT and
SIGTERM blocked (as a launcher can start it): a signal sent while the interpreter itself starts,
before any cadence code can run, stays pending, and arrives at cadence's first line, when its
handlers are in place. Without that, the earliest delays would land in Python's own start-up,
which no package reaches.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "cadence"  # the console script: cadence.cli:main
AT = "2026-03-02T06:00"
SLOW = (  # one model that builds for a second or more: the run is still going at 0.3 s
    "{{ config(channels=['email']) }}\n"
    "select count(*) as n from range(20000) a, range(20000) b where a.range + b.range > -1\n"
)
DELAYS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
CASES = [
    (launcher, signum, delay)
    for launcher in ("script", "module")
    for signum in (signal.SIGINT, signal.SIGTERM)
    for delay in (DELAYS if launcher == "script" else DELAYS[::3])
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("signals")
    (root / "models").mkdir()
    (root / "cadence.yml").write_text(
        "name: signals\nwarehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}\n"
        "timezone: Europe/Berlin\nchannels:\n  email: {cadence: 'daily at 05:00', kind: email}\n"
    )
    (root / "models" / "slow.sql").write_text(SLOW)
    return root


def _command(launcher: str, root: Path) -> list[str]:
    start = [str(SCRIPT)] if launcher == "script" else [sys.executable, "-m", "cadence"]
    return [*start, "run", "--due", "--at", AT, "--project-dir", str(root)]


def _start(command: list[str], **kw: object) -> subprocess.Popen[str]:
    """Start ``command`` with SIGINT and SIGTERM blocked (the mask survives exec)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's cadence, also for the script
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        return subprocess.Popen(
            command, cwd=REPO, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw,  # type: ignore[arg-type]
        )  # fmt: skip
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# the line an invocation that prints anything starts with: its time and command
DATED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d cadence .*")


@pytest.mark.parametrize(
    ("launcher", "signum", "delay"),
    CASES,
    ids=[f"{launcher}-{signal.Signals(s).name}-{d:.2f}s" for launcher, s, d in CASES],
)
def test_a_signal_at_any_moment_exits_130_with_one_line(
    project: Path, tmp_path: Path, launcher: str, signum: int, delay: float
) -> None:
    if launcher == "script" and not SCRIPT.exists():
        pytest.skip("the cadence console script is not installed next to this Python")
    # a project of its own: what one case leaves (a run that built) never decides another's
    project = shutil.copytree(project, tmp_path / "project")
    process = _start(_command(launcher, project))
    time.sleep(delay)
    assert process.poll() is None, "the run ended before the signal: make SLOW slower"
    sent = time.monotonic()
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    if lines and DATED.fullmatch(lines[0]):
        lines = lines[1:]  # the invocation's time line (cron logs), when the command had begun
    assert (process.returncode, lines) == (130, ["interrupted"]), _what_ran(
        project, stdout, time.monotonic() - sent
    )


def _what_ran(root: Path, stdout: str, after: float) -> str:
    """For a failure: what the process printed, how long it went on after the signal, and the
    runs and builds the warehouse holds (a run that went on to build after the signal)."""
    import duckdb

    try:
        with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
            runs = con.execute("select run_id, status, pid from _cadence.runs").fetchall()
            built = con.execute("select model, status from _cadence.model_builds").fetchall()
    except duckdb.Error as exc:
        runs, built = [str(exc)], []
    return f"stdout {stdout!r}; exited {after:.2f}s after the signal; runs {runs}; builds {built}"


def test_a_signal_the_parent_ignores_stays_ignored(project: Path, tmp_path: Path) -> None:
    """``nohup`` or a background job of a script: SIGINT is ignored, and cadence leaves it so."""
    root = tmp_path / "ignored"
    root.mkdir()
    for name in ("cadence.yml", "models/slow.sql"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text((project / name).read_text())
    process = _start(
        _command("module", root),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert (process.returncode, stderr) == (0, "")


def _handlers_after(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code + "\nimport signal\n"
         "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler,"
         " signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    "code",
    ["import cadence", "import cadence.cli", "from cadence.cli import main"],
)
def test_a_program_importing_cadence_keeps_its_own_handlers(code: str) -> None:
    assert _handlers_after(code) == "True True"


def test_importing_the_package_imports_nothing_slow() -> None:
    """The console script imports ``cadence`` before ``cadence.cli`` takes over the signals."""
    code = (
        "import sys; before = set(sys.modules); import cadence; "
        "print(sorted(m for m in set(sys.modules) - before if not m.startswith('cadence')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("depth", [0, 2])
def test_a_signal_during_an_import_comes_again_once_the_import_is_done(
    monkeypatch: pytest.MonkeyPatch, depth: int
) -> None:
    """A KeyboardInterrupt raised while a module is imported would leave it half made (a C
    module initialized twice warns on stderr) or, in importlib's module-lock weakref callback,
    be printed as "Exception ignored ... Traceback" and lost: the signal is sent again
    instead, to be handled once the import is done. ``depth``: frames of the module being
    imported between the handler and the import system."""
    import threading

    from cadence.cli import signals

    raised: list[tuple[int, int]] = []
    sent = threading.Event()

    def kill(pid: int, signum: int) -> None:
        raised.append((pid, signum))
        sent.set()

    monkeypatch.setattr(signals.os, "kill", kill)
    monkeypatch.setattr(signals, "received", [])
    namespace: dict[str, object] = {"signals": signals, "sys": sys, "signal": signal}
    inner = "".join(f"def f{i}():\n    f{i + 1}()\n" for i in range(depth))
    source = (
        inner + f"def f{depth}():\n    signals._interrupt(signal.SIGINT, sys._getframe())\n"
    )
    exec(compile(source, "models.py", "exec"), namespace)
    importer = compile("def cb(ref=None):\n    f0()\n", "<frozen importlib._bootstrap>", "exec")
    exec(importer, namespace)
    namespace["cb"]()  # type: ignore[operator]  # no KeyboardInterrupt here
    assert sent.wait(5)
    assert raised == [(os.getpid(), signal.SIGINT)]
    assert signals.received == [signal.SIGINT]
    with pytest.raises(KeyboardInterrupt):  # anywhere else it interrupts at once
        signals._interrupt(signal.SIGINT, sys._getframe())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_in_code_built_from_source_text_still_exits_130(
    tmp_path: Path, signum: int
) -> None:
    """``python -m cadence``, the signal landing while code built from source text runs (as
    ``dataclasses`` builds a class's methods with ``exec`` when the run imports a module): the
    interpreter marks a KeyboardInterrupt out of such an ``exec`` as unhandled and, under ``-m``,
    would kill the process with SIGINT after it exits (-2) although cadence handled it."""
    (tmp_path / "interrupted_in_exec.py").write_text(
        "import signal\n"
        "import cadence.output  # imported: the run printed its time line\n"
        "from cadence.cli import common, signals\n"
        "signals._taken_over.append(True)  # as under `python -m cadence`\n"
        "def work():\n"
        f"    exec('signal.raise_signal({int(signum)})')\n"
        "common._guarded(work, False, (None, None, None))\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "interrupted_in_exec"], cwd=tmp_path, capture_output=True,
        text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (130, "interrupted\n")


LOST = """
import signal, sys, time, weakref
import cadence.output
from cadence.cli import common, signals
signals._taken_over.append(True)

class Finalized:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # handled inside the finalizer

class Referent:
    pass

def work():
    if sys.argv[1] == "finalizer":
        Finalized()
    else:  # raised in a weakref callback: Python prints it as ignored and goes on
        ref = weakref.ref(Referent(), lambda _: signal.raise_signal(signal.SIGINT))
    for _ in range(50):  # the work goes on after the signal, for half a second
        time.sleep(0.01)
    print("the work ended")
    if sys.argv[1] == "callback, then a failure":
        raise common.Failed()  # what ends a run with a failed model (exit 1)

common._guarded(work, False, (None, None, None))
"""


@pytest.mark.parametrize("where", ["finalizer", "callback", "callback, then a failure"])
def test_a_signal_where_python_cannot_raise_still_ends_the_command_130(
    tmp_path: Path, where: str
) -> None:
    """A signal handled inside a finalizer is sent again once it is done, and stops the work
    there; one lost inside a weakref callback (Python prints the interrupt as ignored and the
    work goes on to its end) still ends the command with exit 130 and "interrupted"."""
    (tmp_path / "lost.py").write_text(LOST)
    result = subprocess.run(
        [sys.executable, "lost.py", where], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 130, result.stderr
    assert result.stderr.splitlines()[-1] == "interrupted"
    if where == "finalizer":  # stopped in the work, the one line only
        assert (result.stdout, result.stderr) == ("", "interrupted\n")
    else:
        assert result.stdout == "the work ended\n"


def test_a_signal_sent_again_after_its_command_ended_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sent again while a module was imported, a signal whose command ends first reaches
    neither the next command nor the program cadence runs in (that command's end already said
    it was interrupted: ``signals.ignored``)."""
    from cadence.cli import signals

    kills: list[tuple[int, int]] = []
    monkeypatch.setattr(signals.os, "kill", lambda pid, signum: kills.append((pid, signum)))
    monkeypatch.setattr(signals, "received", [])
    importer = compile(
        "def cb():\n    signals._interrupt(signal.SIGINT, sys._getframe())\n",
        "<frozen importlib._bootstrap>",
        "exec",
    )
    namespace: dict[str, object] = {"signals": signals, "sys": sys, "signal": signal}
    exec(importer, namespace)
    namespace["cb"]()  # type: ignore[operator]  # to be sent again in 5 ms
    assert signals.ignored()
    signals.command_finished()  # the command ends first
    time.sleep(0.2)
    assert kills == []
