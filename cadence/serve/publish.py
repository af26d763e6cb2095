"""The run hook: write the snapshot of each served channel whose audience a run may have changed.

Input: the parsed project, the run's engine, the models the run published and the run's time ->
output: ``SnapshotReport`` (one ``ChannelSnapshot`` per channel written or failed) and the files
``target/serve/<channel>.snap``.

Invariants:
- The audience is the activation wing's per-segment audience SQL (contract (b)), read from the
  LIVE relations after the run published them: serve answers what the channel's exports see.
  One query (``audience_query``) combines the segments in the warehouse, a row per key with its
  bitmasks and hash, in hash order, so a million keys take seconds, not minutes, in Python.
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
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadence.activation import audience
from cadence.engines import Engine
from cadence.engines.base import EngineError
from cadence.errors import CadenceError
from cadence.load.parser import ParsedProject
from cadence.load.relations import quote
from cadence.plan.history import StateSnapshot
from cadence.plan.schedule import parse_cadence
from cadence.serve.snapshot import (
    KEY_HASH_SQL,
    Audience,
    Snapshot,
    SnapshotError,
    snapshot_path,
    write_snapshot,
)


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


def files_kept(root: Path, parsed: ParsedProject) -> tuple[str, ...]:
    """The snapshot file of every served channel (absolute paths): an idle run rewrites one
    that is missing or older than its channel's last publish, so the wake file keeps their
    identities."""
    return tuple(str(snapshot_path(root, name)) for name in served(parsed))


def owed(
    root: Path, parsed: ParsedProject, state: StateSnapshot, now: dt.datetime
) -> list[tuple[dt.datetime, str]]:
    """What an idle ``run --due`` would write at once (``channels_to_write`` with nothing
    built), for the wake file: ``[(now, why)]``, or nothing."""
    channels = channels_to_write(root, parsed, state, now, (), ())
    return [(now, "serve snapshots to write for " + ", ".join(channels))] if channels else []


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


_MASK64 = (1 << 64) - 1


def _bit(i: int) -> str:
    """SQL BIGINT of bit ``i % 64`` (bit 63 is the sign bit: no literal overflows)."""
    bit = i % 64
    return "(-9223372036854775807 - 1)" if bit == 63 else f"cast({1 << bit} as bigint)"


def audience_query(parts: Sequence[tuple[int, str]], words: int, columns: Sequence[str]) -> str:
    """One query for a channel's whole audience, a row per key in hash order: ``h`` (the
    snapshot's ``KEY_HASH_SQL``), ``key``, ``words`` member mask words ``m0..``, as many holdout
    words ``h0..``, then ``columns`` from the first segment that delivers the key. ``parts``:
    (segment index, SQL with ``key``, ``held_out`` and ``columns``) per segment present. The
    warehouse does the per-key work (grouping, bit sets, hashing, sorting); Python then only
    reads a row per key."""
    if not parts:
        return (
            "select cast(null as varchar) as h, cast(null as varchar) as key"
            + "".join(f", cast(null as bigint) as m{w}" for w in range(words))
            + "".join(f", cast(null as bigint) as h{w}" for w in range(words))
            + "".join(f", null as c{j}" for j in range(len(columns)))
            + " where 1 = 0"
        )
    # columns are c0, c1, ... inside: a column named like one of these names cannot clash
    extra = "".join(f", a.{quote(c)} as c{j}" for j, c in enumerate(columns))
    union = "\nunion all\n".join(
        f"select {i} as i, a.key, coalesce(a.held_out, false) as held"
        + "".join(
            f", {_bit(i) if i // 64 == w else 'cast(null as bigint)'} as b{w}" for w in range(words)
        )
        + f"{extra}\nfrom ({sql}) as a"
        for i, sql in parts
    )
    masks = "".join(
        f", coalesce(bit_or(case when not held then b{w} end), 0) as m{w}" for w in range(words)
    ) + "".join(
        f", coalesce(bit_or(case when held then b{w} end), 0) as h{w}" for w in range(words)
    )
    grouped = f"select key{masks} from u group by key"
    picked = ", ".join(f"c{j}" for j in range(len(columns)))
    key_hash = KEY_HASH_SQL("g.key")
    head = f"select {key_hash} as h, g.*"
    if not columns:
        return f"with u as (\n{union}\n)\n{head} from ({grouped}) as g order by h"
    firsts = (
        f"select key, {picked} from (select key, {picked}, "
        "row_number() over (partition by key order by i) as rn from u where not held) as r "
        "where rn = 1"
    )
    return (
        f"with u as (\n{union}\n)\n{head}"
        + "".join(f", f.c{j}" for j in range(len(columns)))
        + f" from ({grouped}) as g left join ({firsts}) as f on f.key = g.key order by h"
    )


def read_audience(rows: Sequence[tuple[Any, ...]], words: int, columns: Sequence[str]) -> Audience:
    """The ``Audience`` of ``audience_query``'s rows: a few passes over the rows, no per-key
    work beyond taking the values out."""
    keys = [r[1] for r in rows]
    hashes = bytes.fromhex("".join([r[0] for r in rows]))

    def masks(at: int) -> list[int]:
        if words == 1:
            out = [r[at] for r in rows]
            return [m & _MASK64 for m in out] if out and min(out) < 0 else out
        return [sum((r[at + w] & _MASK64) << (64 * w) for w in range(words)) for r in rows]

    attributes = None
    if columns:
        start = 2 + 2 * words  # a key only held out has no attributes
        attributes = [
            dict(zip(columns, r[start:])) if any(r[2 : 2 + words]) else None for r in rows
        ]
    return Audience(
        tuple(keys),
        tuple(masks(2)),
        tuple(masks(2 + words)),
        None if attributes is None else tuple(attributes),
        hashes,
    )


def _audience(
    parsed: ParsedProject, engine: Engine, channel: str, columns: tuple[str, ...]
) -> tuple[tuple[str, ...], Audience]:
    relations = engine.relations()
    segments = audience.segments_of(parsed, channel)
    present = {m.name for m in segments if (m.schema, m.identifier) in relations}
    names = tuple(m.name for m in segments)
    words = max(1, (len(names) + 63) // 64)
    parts = [
        (i, audience.segment_audience_sql(parsed, channel, m.name, columns, present=present))
        for i, m in enumerate(segments)
        if m.name in present
    ]
    rows = engine.query(audience_query(parts, words, columns))
    return names, read_audience(rows, words, columns)


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
            segments, members = _audience(parsed, engine, name, tuple(config.serve))
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
