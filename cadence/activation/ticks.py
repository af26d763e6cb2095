"""Per channel: the tick its last freeze served and a delivery a run owes it
(``_cadence.channel_ticks``), read back as ``plan.deliveries.ChannelState`` values.

Input: an open state store (``engine.state_store()``) -> output: rows of
``_cadence.channel_ticks`` (``channel``, ``served_tick``, ``frozen_at``, ``owed_at``) and, with
the delivery cursors, one ``ChannelState`` per channel. Invariants: ``served_tick`` and
``frozen_at`` change only in ``settle``, called once every segment of the channel froze for the
decision (a kill -9 before it leaves the old tick, and the next invocation freezes again, which
is harmless: changes are computed against what was delivered plus what is pending); ``owed_at``
is set by ``owe`` (a plain run or seed, before it builds, for the channels whose inputs it
builds) and cleared by ``settle``. A warehouse from before this table reads as "never
delivered": each channel's next delivery is at once, then its ticks rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable

from cadence.engines.base import Engine, EngineError
from cadence.plan.deliveries import ChannelState
from cadence.record.state import SCHEMA, from_db, to_db

TABLE_NAME = "channel_ticks"
TABLE = f"{SCHEMA}.{TABLE_NAME}"
DDL = (
    f"create schema if not exists {SCHEMA}",
    f"""create table if not exists {TABLE} (
        channel varchar, served_tick timestamp, frozen_at timestamp, owed_at timestamp)""",
)


def ensure_table(store: Engine) -> None:
    for statement in DDL:
        store.execute(statement)


def read_states(store: Engine, relations: Collection[tuple[str, str]]) -> dict[str, ChannelState]:
    """Every channel with a row or a delivery cursor (read-only; ``relations``: what exists)."""
    rows: dict[str, list[object]] = {}
    if (SCHEMA, TABLE_NAME) in relations:
        for channel, served, frozen, owed in store.query(
            f"select channel, served_tick, frozen_at, owed_at from {TABLE}"
        ):
            rows[str(channel)] = [frozen is not None, from_db(served), from_db(owed), False]
    if (SCHEMA, "delivery_cursor") in relations:
        try:
            pending = store.query(
                f"""select channel from {SCHEMA}.delivery_cursor
                group by channel having bool_or(frozen_seq > delivered_seq)"""
            )
        except EngineError:
            pending = []
        for (channel,) in pending:
            rows.setdefault(str(channel), [False, None, None, False])[3] = True
    return {
        name: ChannelState(bool(r[0]), r[1], r[2], bool(r[3]))  # type: ignore[arg-type]
        for name, r in rows.items()
    }


def owe(store: Engine, channels: Iterable[str], at: dt.datetime) -> None:
    """Record that a run is about to build these channels' inputs and owes them a delivery
    (its own transaction, before the builds): the next invocation delivers them if this one
    is killed first. An earlier mark that is still open keeps its time."""
    names = sorted(set(channels))
    if not names:
        return
    ensure_table(store)
    with store.transaction():
        known = {str(r[0]) for r in store.query(f"select channel from {TABLE}")}
        for name in names:
            if name in known:
                store.execute(
                    f"update {TABLE} set owed_at = ? where channel = ? and owed_at is null",
                    (to_db(at), name),
                )
            else:
                store.execute(f"insert into {TABLE} values (?, null, null, ?)", (name, to_db(at)))


def settle(
    store: Engine, channel: str, served: dt.datetime | None, at: dt.datetime, *, froze: bool
) -> None:
    """The channel's freezes for a decision are done: record the tick they served (None keeps
    the recorded one) and clear what a run owed it; ``froze`` False (none of its segments
    exists yet) only clears the debt. Call in a transaction."""
    rows = store.query(f"select served_tick, frozen_at from {TABLE} where channel = ?", (channel,))
    if not froze:
        if rows:
            store.execute(f"update {TABLE} set owed_at = null where channel = ?", (channel,))
        return
    old_served = rows[0][0] if rows else None
    new = to_db(served) if served is not None else old_served
    store.execute(f"delete from {TABLE} where channel = ?", (channel,))
    store.execute(f"insert into {TABLE} values (?, ?, ?, null)", (channel, new, to_db(at)))


__all__ = ["TABLE", "ensure_table", "owe", "read_states", "settle"]
