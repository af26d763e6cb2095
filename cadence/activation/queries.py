"""What the read-only commands ask of activation: a segment's members or membership changes
(``cadence members``) and each exported channel x segment's delivery status (``cadence status``).

Input: the parsed project (or a segment's model) and the warehouse opened read-only, or ``None``
when there is none to read -> output: a ``MembersAnswer``, or one status row per channel x
segment. Invariants: nothing here opens, writes or closes the warehouse: the facade decides
whether it may be read (while a run holds it, ``members`` answers from the members snapshot,
``rosterread.read``, and ``status`` says nothing of deliveries).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cadence.activation import audience, deliver, outbox, ticks
from cadence.activation.roster import MembersAnswer
from cadence.engines.base import Engine
from cadence.errors import UsageError
from cadence.load.parser import Model, ParsedProject
from cadence.plan.deliveries import ChannelState, next_delivery
from cadence.plan.schedule import Schedule
from cadence.record import membership


def segment(parsed: ParsedProject, name: str) -> Model:
    """The model ``name`` (it exists), which must be a segment: a model with a key."""
    model = parsed.model(name)
    assert model is not None
    if not model.config.key:
        raise UsageError(
            f"model '{name}' is not a segment (it has no key)",
            file=model.path,
            hint="set config(key='customer_id') on it to record its members",
        )
    return model


def members(
    engine: Engine | None, model: Model, *, changes: bool, since: dt.datetime | None
) -> MembersAnswer:
    """The segment's current members (sorted keys), or with ``changes`` its history since
    ``since``; none without a warehouse or before the segment was first built."""
    empty = MembersAnswer(model.name, (), () if changes else None)
    if engine is None:
        return empty
    if changes:
        found = membership.read_changes(engine, model.name, since)
        return replace(empty, changes=tuple(found))
    if (model.schema, model.identifier) not in engine.relations():
        return empty
    assert model.config.key
    keys = membership.read_members(engine, model.relation, model.config.key)
    return replace(empty, keys=tuple(keys))


def delivery_status(
    parsed: ParsedProject,
    engine: Engine | None,
    schedules: Mapping[str, Schedule] | None = None,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Per channel x segment with an export: its last delivery attempt, how many changes are
    pending (frozen, not yet delivered), whether a run owes the channel a delivery (it built
    the channel's inputs and stopped before delivering: ``behind``), and for the channel the
    tick its last delivery served and when ``run --due`` delivers it next (``channel``; with
    ``schedules`` and ``now``). Without a warehouse to read: no attempt, nothing pending."""
    last: dict[tuple[str, str], Any] = {}
    pending: dict[tuple[str, str], int] = {}
    states: dict[str, ChannelState] = {}
    relations: set[tuple[str, str]] = set()
    if engine is not None:
        relations = set(engine.relations())
        last = {(a.channel, a.segment): a for a in outbox.last_attempts(engine)}
        pending = outbox.pending_by_segment(engine)
        states = ticks.read_states(engine.state_store(), relations)
    rows = []
    for c in deliver.exported_channels(parsed):
        state = states.get(c.name) or ChannelState()
        channel = _channel_status(parsed, c.name, state, relations, schedules, now)
        for m in audience.segments_of(parsed, c.name):
            a = last.get((c.name, m.name))
            rows.append(
                {
                    "channel": c.name,
                    "segment": m.name,
                    "pending": pending.get((c.name, m.name), 0),
                    "behind": state.owed_at is not None,
                    "delivery": channel,
                    "last": None
                    if a is None
                    else {
                        "status": a.status,
                        "export_id": a.export_id,
                        "started_at": a.started_at,
                        "entered": a.entered,
                        "exited": a.exited,
                        "error": a.error,
                    },
                }
            )
    return rows


def _channel_status(
    parsed: ParsedProject,
    channel: str,
    state: ChannelState,
    relations: set[tuple[str, str]],
    schedules: Mapping[str, Schedule] | None,
    now: dt.datetime | None,
) -> dict[str, Any]:
    """The channel's own line: its cadence, the tick its last delivery served, whether a tick
    is waiting (unserved) and its next delivery under ``run --due``."""
    config = parsed.config.channel(channel)
    out: dict[str, Any] = {
        "cadence": config.cadence if config else None,
        "served_tick": state.served_tick,
        "delivered": state.delivered,
        "waiting_tick": None,
        "next_delivery": None,
    }
    schedule = (schedules or {}).get(channel)
    if schedule is None or now is None:
        return out
    tz = parsed.config.tz
    latest = schedule.latest_tick(now, tz)
    if (
        state.delivered
        and latest is not None
        and (state.served_tick is None or latest > state.served_tick)
    ):
        out["waiting_tick"] = latest
    ready = any(
        (m.schema, m.identifier) in relations for m in audience.segments_of(parsed, channel)
    )
    out["next_delivery"] = next_delivery(schedule, state, now, tz, ready=ready)
    return out
