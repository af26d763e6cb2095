"""The time of the data a channel's freeze carries (SPEC §11, a channel's lag): per channel x
segment, recorded in ``_cadence.channel_data`` in the same transaction as the freeze.

Input: the warehouse (the newest ``loaded_at`` of the sources behind a segment), the state
store (the segment's last successful build in ``_cadence.model_state``) -> output: one row per
channel x segment (``channel``, ``segment``, ``data_at``, ``frozen_at``), and back.
Invariants: a segment's data time is the newest ``loaded_at`` of the sources behind it that
declare one (never later than the start of the build that read them), else the start of its
last successful build; ``note`` runs inside the caller's freeze transaction, so the row names
the version that freeze took; once its range is acknowledged (or nothing was left to send) it
is the time of the data the channel was brought up to date with (the observe wing reads it).
"""

from __future__ import annotations

import datetime as dt

from cadence.activation.stale import loaded_at, sources_behind
from cadence.engines.base import Engine, EngineError
from cadence.load.parser import ParsedProject
from cadence.record.state import SCHEMA, from_db, to_db

TABLE_NAME = "channel_data"
TABLE = f"{SCHEMA}.{TABLE_NAME}"
DDL = (
    f"create schema if not exists {SCHEMA}",
    f"""create table if not exists {TABLE} (
        channel varchar, segment varchar, data_at timestamp, frozen_at timestamp)""",
)


def segment_data_at(engine: Engine, parsed: ParsedProject, segment: str) -> dt.datetime | None:
    """The time of the data of the segment's current version (None: never built)."""
    try:
        rows = engine.state_store().query(
            f"select last_success_at from {SCHEMA}.model_state where model = ?", (segment,)
        )
    except EngineError:
        rows = []
    built = from_db(rows[0][0]) if rows else None
    by_key = {(s.source_name, s.table): s for s in parsed.sources}
    newest: dt.datetime | None = None
    for key in sources_behind(parsed, segment):
        src = by_key.get(key)
        if src is None or not src.loaded_at:
            continue
        value = loaded_at(engine, src, parsed.config.tz)
        if value is not None and (newest is None or value > newest):
            newest = value
    if newest is None:
        return built
    return min(newest, built) if built is not None else newest


def note(
    store: Engine, channel: str, segment: str, data_at: dt.datetime | None, now: dt.datetime
) -> None:
    """Inside the freeze's transaction: the data time of the version frozen."""
    for statement in DDL:
        store.execute(statement)
    store.execute(f"delete from {TABLE} where channel = ? and segment = ?", (channel, segment))
    store.execute(
        f"insert into {TABLE} values (?, ?, ?, ?)", (channel, segment, to_db(data_at), to_db(now))
    )


def read(store: Engine) -> dict[tuple[str, str], dt.datetime | None]:
    """(channel, segment) -> the data time of the version its last freeze took."""
    try:
        rows = store.query(f"select channel, segment, data_at from {TABLE}")
    except EngineError:
        return {}
    return {(str(c), str(s)): from_db(d) for c, s, d in rows}
