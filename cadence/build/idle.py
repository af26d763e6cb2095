"""The idle ``run --due``: prove from files alone that nothing is due, without opening anything.

Input: where the project is, the ``--at`` text (or None) and the wall-clock time -> output:
True when a ``run --due`` at that time would do nothing (build nothing, deliver nothing, write
nothing), proven from the wake file the last run left (``record.wakefile``); False whenever
that cannot be proven, and the caller then takes the full path, which decides as always.

True only when every one of these holds (docs/performance.md lists them as wake reasons):
the wake file verifies (checksum, format, this cadence's version); the time is not before the
run that wrote it (a clock that went back, an earlier ``--at``) and before its wake instant;
the warehouse file has the identity that run left (device, inode, size, mtime, ctime: a change
behind cadence's back, a ``cp -p`` restore) and no WAL beside it; the files an idle run would
repair are there (the state snapshot, each segment's members file) and unchanged (served
channels' snapshots); no other run holds the project lock; the environment variables the load
read hold the same values (digests); and every input file has the content the run loaded
(``load.inputs``, the load cache's own check). Standard library and light modules only: the
check runs before cadence imports its parser, DuckDB or Jinja.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cadence.build.lock import current_holder
from cadence.disk import artifacts
from cadence.errors import CadenceError
from cadence.load.inputs import (
    Fingerprint,
    env_unchanged,
    find_project_root,
    inputs_now,
    options_key,
    scan,
)
from cadence.load.layout import LoadOptions
from cadence.record import wakefile

if TYPE_CHECKING:
    from cadence.plan.due import Plan
    from cadence.plan.history import StateSnapshot
    from cadence.plan.wake import Wake


def asleep(start: Path, at: str | None, wall: dt.datetime) -> bool:
    """Whether a plain ``run --due`` (from ``start``, at ``at`` or else ``wall``) has nothing
    to do, proven without opening the warehouse (module docstring)."""
    try:
        root = find_project_root(start)
    except CadenceError:
        return False  # the full path says what is wrong
    record = wakefile.read(root)
    if record is None:
        return False
    if at is not None:
        from zoneinfo import ZoneInfo

        from cadence.plan.instants import parse_at

        try:
            now = parse_at(at, ZoneInfo(record.timezone))
        except (CadenceError, ValueError, KeyError):
            return False
    else:
        now = wall
    return _unchanged(root, record, now)


def _unchanged(root: Path, record: wakefile.WakeRecord, now: dt.datetime) -> bool:
    if now < record.run_at:
        return False  # a clock that went back, or a replay of an earlier time
    if record.wake_at is not None and now >= record.wake_at:
        return False
    warehouse = record.warehouse
    if wakefile.identity(warehouse.path) != warehouse or os.path.exists(warehouse.path + ".wal"):
        return False
    if not all(os.path.isfile(path) for path in record.present):
        return False
    if any(wakefile.identity(f.path) != f for f in record.unchanged):
        return False
    if current_holder(root) is not None:
        return False  # another run is under way: the full path says who holds the lock
    if not env_unchanged(record.env) or options_key(LoadOptions()) != record.options:
        return False
    found = inputs_now(root, scan(root, record.layout))
    return found is not None and found[0] == record.inputs


@dataclass(frozen=True)
class Pending:
    """What a run hands to ``leave`` before it closes the warehouse: the next wake (None:
    nothing time-driven is left), the fingerprint of the project it loaded, the project
    timezone, the warehouse file, and the files an idle run repairs when missing
    (``present``) or changed (``unchanged``), relative to the root."""

    wake: Wake | None
    fingerprint: Fingerprint
    timezone: str
    warehouse: str
    present: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()


def pending(
    project: Any,
    after: StateSnapshot,
    plan: Plan,
    now: dt.datetime,
    owed: list[tuple[dt.datetime, str]],
    present: list[str],
    unchanged: list[str],
) -> Pending | None:
    """What ``leave`` writes after a run of ``project`` (the facade: its root, parsed project,
    DAG, cadences and fingerprint) that left ``after`` (``plan``: the due plan of that state at
    ``now``): the earliest of ``plan.wake``'s next wake and the wings' own instants (``owed``:
    (when, why), ``now`` for work owed at once); the state snapshot and ``present`` must exist,
    ``unchanged`` keep their identity. None: no wake file (no fingerprint, Spark, a warehouse in
    memory)."""
    from cadence.plan.wake import Moment, Wake, next_wake
    from cadence.record.snapshot import SNAPSHOT_NAME

    warehouse = project.parsed.config.warehouse
    if project.fingerprint is None or warehouse.engine != "duckdb" or warehouse.path == ":memory:":
        return None
    found = next_wake(Moment(project.parsed, project.dag, project.cadences, after, now, plan))
    wakes = [*(Wake(at, why) for at, why in owed), *([found] if found is not None else [])]
    return Pending(
        min(wakes, key=lambda w: w.at) if wakes else None,
        project.fingerprint,
        project.parsed.config.timezone,
        str(project.root / warehouse.path),  # an absolute path stays itself
        (str(artifacts.target_dir(project.root) / SNAPSHOT_NAME), *present),
        tuple(unchanged),
    )


def leave(root: Path, run_id: str, run_at: dt.datetime, pending: Pending | None) -> None:
    """After a run closed the warehouse: the wake file for the next ``run --due``, or none when
    no shortcut can hold (``pending`` None, work owed at once, a WAL left, a watched file
    missing). A write that fails leaves no file behind: the next run takes the full path."""
    if pending is None:
        forget(root)
        return
    wake = pending.wake
    warehouse = wakefile.identity(pending.warehouse)
    unchanged = tuple(wakefile.identity(p) for p in pending.unchanged)
    if (
        (wake is not None and wake.at <= run_at)
        or warehouse is None
        or os.path.exists(pending.warehouse + ".wal")
        or not all(os.path.isfile(p) for p in pending.present)
    ):
        wakefile.remove(root)
        return
    kept = tuple(f for f in unchanged if f is not None)
    if len(kept) != len(unchanged):
        wakefile.remove(root)
        return
    record = wakefile.WakeRecord(
        run_id=run_id,
        run_at=run_at,
        wake_at=wake.at if wake is not None else None,
        reason=wake.reason if wake is not None else "nothing time-driven: only a change wakes",
        timezone=pending.timezone,
        inputs=pending.fingerprint.inputs,
        env=pending.fingerprint.env,
        layout=pending.fingerprint.layout,
        options=pending.fingerprint.options,
        warehouse=warehouse,
        present=pending.present,
        unchanged=kept,
    )
    try:
        wakefile.write(root, record)
    except (CadenceError, OSError):
        try:
            wakefile.remove(root)
        except OSError:
            pass


def forget(root: Path) -> None:
    """No wake file (a run that cannot leave one): the next ``run --due`` takes the full path."""
    try:
        wakefile.remove(root)
    except OSError:
        pass
