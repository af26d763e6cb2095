"""The run hook: write the snapshot of each served channel whose audience a run may have changed.

Input: the parsed project, the run's engine, the models the run published and the run's time ->
output: ``SnapshotReport`` (one ``ChannelSnapshot`` per channel written or failed) and the files
``target/serve/<channel>.snap``.

Invariants:
- The audience is the activation wing's ``audience_sql`` (contract (b)), read from the LIVE
  relations after the run published them: serve answers what the channel's exports see.
- A channel is written when one of its segments or suppression lists was published by the run,
  when it has no snapshot yet, when its snapshot is older than such a publish (the run that
  published was killed before writing it), or at its first run after a tick of the channel in
  which none of them failed (see ``channels_to_write``); otherwise the file is left alone, and a
  failed write leaves the last snapshot in place (temporary name, fsync, rename).
- Attributes (``serve: {columns: [...]}``) come from the first segment, in the channel's order,
  that delivers the key; a key only held out gets none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadence.activation import audience
from cadence.engines import Engine
from cadence.engines.base import EngineError
from cadence.errors import CadenceError
from cadence.parser import ParsedProject
from cadence.schedule import parse_cadence
from cadence.serve.snapshot import Member, Snapshot, SnapshotError, snapshot_path, write_snapshot
from cadence.state import StateSnapshot


@dataclass(frozen=True)
class ChannelSnapshot:
    channel: str
    status: str  # "written" | "failed"
    version: str | None = None
    keys: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "status": self.status,
            "version": self.version,
            "keys": self.keys,
            "error": self.error,
        }


@dataclass(frozen=True)
class SnapshotReport:
    snapshots: tuple[ChannelSnapshot, ...] = ()

    @property
    def ok(self) -> bool:
        return all(s.status == "written" for s in self.snapshots)


def served(parsed: ParsedProject) -> tuple[str, ...]:
    return tuple(c.name for c in parsed.config.channels if c.serve is not None)


def channels_to_write(
    root: Path,
    parsed: ParsedProject,
    state: StateSnapshot,
    now: dt.datetime,
    built: Collection[str],
    failed: Collection[str] = (),
) -> tuple[str, ...]:
    """Served channels whose snapshot this run writes: one of its segments or suppression lists
    was published; it has no readable snapshot; its snapshot is older than such a publish (the
    run that published was killed before writing it; ``state`` is from before this run); or a
    tick of the channel passed since its snapshot and none of those models failed in this run
    (segments skipped by ``refresh: on_new_data`` are current, and the answers say so; a failing
    one leaves the snapshot ageing, so ``/healthz`` turns 503)."""
    out = []
    for name in served(parsed):
        config = parsed.config.channel(name)
        assert config is not None
        feeding = {m.name for m in audience.segments_of(parsed, name)} | set(config.suppress)
        if feeding & set(built):
            out.append(name)
            continue
        published = _published(snapshot_path(root, name))
        if published is None:
            out.append(name)
            continue
        built_at = [state.of(n).last_success_at for n in feeding]
        if any(at is not None and at > published for at in built_at):
            out.append(name)
            continue
        latest = parse_cadence(config.cadence).latest_tick(now, parsed.config.tz)
        if latest is not None and latest > published and not feeding & set(failed):
            out.append(name)
    return tuple(out)


def _published(path: Path) -> dt.datetime | None:
    try:
        snap = Snapshot.open(path)
    except (SnapshotError, OSError, ValueError):
        return None
    published = snap.published_at
    snap.close()
    return published


def _members(
    parsed: ParsedProject, engine: Engine, channel: str, columns: tuple[str, ...]
) -> tuple[tuple[str, ...], list[Member]]:
    relations = engine.relations()
    segments = audience.segments_of(parsed, channel)
    present = {m.name for m in segments if (m.schema, m.identifier) in relations}
    names = tuple(m.name for m in segments)
    delivered: dict[str, list[str]] = {}
    held: dict[str, list[str]] = {}
    attributes: dict[str, dict[str, Any]] = {}
    for model in segments:
        if model.name not in present:
            continue
        sql = audience.segment_audience_sql(parsed, channel, model.name, columns, present=present)
        for row in engine.query(f"select * from ({sql}) as a"):
            _segment, key, is_held = row[0], str(row[1]), bool(row[2])
            if is_held:
                held.setdefault(key, []).append(model.name)
                continue
            delivered.setdefault(key, []).append(model.name)
            if columns and key not in attributes:
                attributes[key] = dict(zip(columns, row[3:]))
    keys = delivered.keys() | held.keys()
    members = [
        Member(
            key,
            tuple(delivered.get(key, ())),
            tuple(held.get(key, ())),
            attributes.get(key),
        )
        for key in keys
    ]
    return names, members


def write_channel_snapshots(
    root: Path, parsed: ParsedProject, engine: Engine, now: dt.datetime, channels: Collection[str]
) -> SnapshotReport:
    """Write each channel's snapshot; a failure is reported, never raised (the run's builds are
    already published) and keeps the channel's last snapshot."""
    out = []
    for name in channels:
        config = parsed.config.channel(name)
        assert config is not None and config.serve is not None
        try:
            audience.check_channel(parsed, name)
            segments, members = _members(parsed, engine, name, tuple(config.serve))
            written = write_snapshot(
                snapshot_path(root, name), name, segments, members, now, tuple(config.serve)
            )
        except (CadenceError, EngineError, OSError, ValueError) as exc:
            # a missing column, a full disk, an unwritable target/: say so, keep the last file
            message = exc.message if isinstance(exc, CadenceError) else str(exc)
            out.append(ChannelSnapshot(name, "failed", error=message))
            continue
        out.append(ChannelSnapshot(name, "written", written.version, written.keys))
    return SnapshotReport(tuple(out))
