"""Work beside the builds: the run's publish hook (the members files) on a cursor of its own.

Input: the run's ``PublishHook``, an engine with cursors of its own (DuckDB), the models whose
publish committed, as they commit (``add``), and the end of the builds (``end``) -> output: the
hook's warnings per model (``finish``).

Invariants: the hook is given only committed publishes, in batches, one batch at a time, in a
thread, on a cursor of its own, so that the second core writes the files of the segments
published so far while the next models build (a sequential build leaves it idle) and the run
waits at its end only for what the last batch holds. A batch is written once ``BATCH`` models
the hook wants are waiting (only where the builds leave a core idle: ``of``), or once the
builds end (then whatever is left, and always one call, even empty, when anything was
published). ``settle`` is called once, after the last batch, only when every batch was
written: a run stopped (interrupted) or one whose hook raised leaves it uncalled, and the next
run repairs the files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import threading
from typing import Protocol

from cadence.engines.base import Engine
from cadence.load.parser import Model

# models the hook wants waiting before a batch is written while the builds go on: a batch costs
# a few statements of its own (a COPY of all its segments' files, the footers read back), so a
# bigger one is cheaper per segment; the batches grow by themselves when the writer falls behind
BATCH = 32


class PublishHook(Protocol):
    """What a run does with its committed publishes beside the builds (``rosterkeep.Keeper``)."""

    def wants(self, model: Model) -> bool:
        """Whether ``model``'s publish gives the hook anything to write."""

    def write(
        self, engine: Engine, models: list[Model], run_id: str, at: dt.datetime
    ) -> dict[str, tuple[str, ...]]:
        """One batch: warnings per model name (never raises for a file it could not write)."""

    def settle(self, found: dict[str, tuple[str, ...]]) -> None:
        """Every batch is written (``found``: all their warnings)."""


class Beside:
    """The hook's thread and cursor for one run (``of``); the run calls ``add`` as publishes
    commit (from any build thread), ``end`` once the builds are over, then ``finish``."""

    def __init__(
        self, cursor: Engine, hook: PublishHook, run_id: str, at: dt.datetime, batch: int
    ) -> None:
        self.cursor, self.hook, self.run_id, self.at, self.batch = cursor, hook, run_id, at, batch
        self.found: dict[str, tuple[str, ...]] = {}
        self.error: BaseException | None = None
        self._waiting: list[Model] = []
        self._published = False  # anything published at all: the last call is made, even empty
        self._settles = True  # False once the run is interrupted or stopped
        self._ended = False
        self._ready = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="cadence-members", daemon=True)
        self.thread.start()

    @classmethod
    def of(
        cls, engine: Engine, hook: PublishHook, run_id: str, at: dt.datetime, builds_at_once: int
    ) -> Beside | None:
        """Started and waiting; None on an engine without cursors of its own (then the run
        calls the hook itself, once, after its builds). Batches are written during the builds
        only when ``builds_at_once`` leave a core idle (a sequential build on two cores): where
        the builds keep every core busy, a batch would take its time from them, and the hook
        is called once, beside the fold (measured: a parallel build of 1,000 small models on
        two cores took 5% longer with batches during it; a sequential one 7% less)."""
        cursor = engine.cursor()
        if cursor is engine:
            return None
        idle_core = builds_at_once < _cores()
        return cls(cursor, hook, run_id, at, BATCH if idle_core else sys.maxsize)

    def add(self, model: Model) -> None:
        """``model``'s publish committed."""
        with self._ready:
            self._published = True
            if self.hook.wants(model):
                self._waiting.append(model)
                if len(self._waiting) >= self.batch:
                    self._ready.notify()

    def end(self, settle: bool = True) -> None:
        """The builds are over: what is left is the last batch (``settle``: False for a run
        interrupted, whose publishes the hook may not all have been given, since a signal can
        come between a commit and its ``add``: the next run then repairs every file)."""
        with self._ready:
            self._ended = True
            self._settles = self._settles and settle
            self._ready.notify()

    def _run(self) -> None:
        try:
            while True:
                with self._ready:
                    while not self._ended and len(self._waiting) < self.batch:
                        self._ready.wait()
                    batch, self._waiting = self._waiting, []
                    last = self._ended
                if batch or (last and self._published):
                    found = self.hook.write(self.cursor, batch, self.run_id, self.at)
                    self.found.update(found)
                if last:
                    break
            if self._published and self._settles:
                self.hook.settle(self.found)
        except BaseException as exc:  # noqa: BLE001 - raised in the run's thread by finish
            self.error = exc

    def wait(self) -> None:
        """Wait for the last batch, waking now and then: a signal the kernel gave another
        thread (a DuckDB worker, this one) is handled by the main thread only when it runs
        again, so an untimed join would hold a Ctrl-C until the files were written."""
        self.end()
        while self.thread.is_alive():
            self.thread.join(0.1)

    def finish(self) -> dict[str, tuple[str, ...]]:
        """Wait for the last batch: the warnings per model (what the hook raised, raised here)."""
        self.wait()
        self._close()
        if self.error is not None:
            raise self.error
        return self.found

    def stop(self) -> None:
        """The run is interrupted: stop the hook's statement and wait for its thread (the files
        it did not write are written by the next run, ``rosterkeep.repair``)."""
        with self._ready:  # no batch after the one running, and no settling
            self._waiting, self._published, self._settles, self._ended = [], False, False, True
            self._ready.notify()
        while self.thread.is_alive():
            self.cursor.interrupt()
            self.thread.join(0.1)
        self._close()

    def _close(self) -> None:
        with contextlib.suppress(Exception):  # a handle the interrupt left broken
            self.cursor.close()


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1
