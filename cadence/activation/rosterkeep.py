"""Keeping the members snapshot current across runs (``roster`` writes the files).

Input: a run's plan and the segments it publishes, the relations after it, ``history.keep_days``
-> output: the members files brought up to date as the run publishes (``hook``, the runner's
one hook into this wing), those no run left repaired (``repair``), old parts pruned
(``prune``), and the list of files an idle run would write when missing (``files_kept``, for the
wake file).

Invariants: a run writes the members files of the segments it published in batches, beside
its builds and its fold (``build.beside``: a cursor of its own, in a thread), not after each
publish. So that a run killed before they are written leaves the next run something to repair
from, ``hook`` first marks the files behind (a file, synced before any segment publishes); the
mark is cleared once they are all written, and a run that finds it (``repair``), idle or not,
brings every segment up to date. A failed write never fails a run: it comes back as a warning,
and the mark stays for the next run.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cadence.activation import roster
from cadence.disk import artifacts
from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError
from cadence.load.parser import Model, ParsedProject

if TYPE_CHECKING:
    from cadence.build.runner import RunResult
    from cadence.plan.history import StateSnapshot


def files_kept(
    root: Path, parsed: ParsedProject, relations: Collection[tuple[str, str]]
) -> tuple[str, ...]:
    """The members file of every segment table that exists (absolute paths): what an idle run
    writes when one is missing, so the wake file watches them."""
    base = f"{roster.members_root(root)}/"
    return tuple(
        f"{base}{m.name}/{roster.MEMBERS}"
        for m in parsed.models
        if m.config.key
        and m.materialized not in ("view", "ephemeral")
        and (m.schema, m.identifier) in relations
        and roster.SAFE.match(m.name)
        and ".." not in m.name
    )


def missing(root: Path, segments: list[str]) -> list[str]:
    """Segments with no members file yet (a warehouse from before snapshots were kept). On
    every idle ``run --due``, for every segment: one stat each, no ``Path`` objects."""
    base = f"{roster.members_root(root)}/"
    return [s for s in segments if not os.path.isfile(f"{base}{s}/{roster.MEMBERS}")]


def prune(
    engine: Engine,
    root: Path,
    models: list[Model],
    before: dt.datetime,
    run_id: str,
    at: dt.datetime,
) -> int:
    """``history.keep_days``: drop change parts whose newest change is older than ``before``,
    oldest first (a kill midway leaves a contiguous newer history). A part the base does not
    cover yet is needed for the current members: the base is rewritten first. Returns parts
    removed."""
    removed = 0
    for model in models:
        segment = model.name
        if not roster.SAFE.match(segment) or ".." in segment:
            continue
        folder = roster.folder_of(root, segment)
        parts = roster.part_files(folder / roster.CHANGES)
        old = [p for p in parts if p[2] < before]
        if not old:
            continue
        try:
            through = roster.base_through(engine, folder / roster.MEMBERS)
            if through is not None and any(p[1] > through for p in old):
                roster.write_many(engine, root, _targets([model]), run_id, at, rebase=True)
                through = roster.base_through(engine, folder / roster.MEMBERS)
        except (OSError, EngineError):
            continue
        for _first, last, newest, path in parts:
            if newest >= before or through is None or last > through:
                break
            try:
                path.unlink()
                removed += 1
            except OSError:
                break
    return removed


# A run writes the members files of the segments it published in batches beside its builds
# and its fold (``hook``), not after each publish. So that a run killed before
# they are written leaves the next run something to repair from, ``hook`` first marks the files
# behind (a file, synced, before any segment publishes); the mark is cleared once they are
# written, and a run that finds it left (``repair``) brings every segment up to date.
BEHIND = ".behind"


def behind(root: Path) -> bool:
    """A run published segments whose members files it may not have written (killed, failed)."""
    return os.path.exists(roster.members_root(root) / BEHIND)


def _mark(root: Path) -> None:
    folder = artifacts.private_dir(roster.members_root(root), root)
    if not (folder / BEHIND).exists():
        os.close(os.open(folder / BEHIND, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
        artifacts.fsync_dir(folder)  # on disk before the first publish commits


def _settle(root: Path) -> None:
    try:
        os.unlink(roster.members_root(root) / BEHIND)
    except FileNotFoundError:
        pass


def _targets(models: Iterable[Model]) -> list[roster.Target]:
    return [
        roster.Target(m.name, m.relation, m.config.key)
        for m in models
        if m.config.key and m.materialized not in ("view", "ephemeral")
    ]


class Keeper:
    """The run's publish hook (``build.beside.PublishHook``): the members files of the segments
    published, written in batches beside the builds; the mark cleared once all are written."""

    def __init__(self, root: Path, was_behind: bool) -> None:
        self.root, self.was_behind = root, was_behind

    def wants(self, model: Model) -> bool:
        return bool(_targets([model]))

    def write(
        self, engine: Engine, models: list[Model], run_id: str, at: dt.datetime
    ) -> dict[str, tuple[str, ...]]:
        return roster.write_many(engine, self.root, _targets(models), run_id, at)

    def settle(self, found: dict[str, tuple[str, ...]]) -> None:
        if not found and not self.was_behind:
            _settle(self.root)


def hook(root: Path, segments: list[Model], building: Collection[str]) -> Keeper | None:
    """The runner's hook for a run that will build ``building``: None when no segment table is
    among them; else the files are marked behind now, and the hook writes those of the
    segments published as they are (``Keeper``), warnings back per segment."""
    if not any(t.segment in building for t in _targets(segments)):
        return None
    was_behind = behind(root)
    try:
        _mark(root)
    except (OSError, CadenceError):
        pass  # the writes below will fail and warn the same way
    return Keeper(root, was_behind)


def repair(
    engine: Engine,
    root: Path,
    parsed: ParsedProject,
    after: StateSnapshot,
    run: RunResult,
    pending_runs: Collection[str] = (),
) -> None:
    """After ``run`` (``after``: the state it left): the members files of segments that have
    none yet (a warehouse from before snapshots, a target/ cleaned), and of every segment once
    a run left them behind (or once a run that built folds ``pending_runs``, runs killed before
    folding). Failures stay quiet: the next run retries."""
    run_id, at, relations = run.run_id, run.at, after.relations
    everything = bool(pending_runs) and any(r.status != "skipped" for r in run.results)
    if engine.state_store() is not engine:
        return  # Spark: no members snapshot (and an idle run never connects)
    kept = _targets(m for m in parsed.models if (m.schema, m.identifier) in relations)
    stale = everything or behind(root)
    if not stale:  # one look for all the segments' files, not one per model
        absent = set(missing(root, [t.segment for t in kept]))
        kept = [t for t in kept if t.segment in absent]
    found = roster.write_many(engine, root, kept, run_id, at) if kept else {}
    if stale and not found:
        _settle(root)
