"""When a command delivers: the facade's one entry into activation around a run or an export.

Input: the parsed project, its cadences, an open engine, the state the run started from, its
plan and result, ``now`` -> output: the result with its ``DeliveryReport`` (unchanged when no
channel had anything to do), or the report of a ``cadence export``.
It reads what ``_cadence`` records of each channel (``ticks.read_states``), asks the pure
``plan.deliveries.decide_deliveries`` which channels freeze, send what is pending, are held or
do nothing, and hands those decisions to ``deliver``. Invariants: a plain run or seed records,
before it builds, which exported channels it owes a delivery (``owe_before_run``: those whose
inputs it builds), so a kill between its publishes and its deliveries is delivered by the next
invocation, also an idle ``run --due``; an idle ``run --due`` reads two small tables and writes
nothing unless a channel delivers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import replace

from cadence.activation import deliver, outbox, ticks
from cadence.build.runner import RunResult
from cadence.engines.base import Engine, EngineError
from cadence.load.parser import ParsedProject
from cadence.plan import deliveries
from cadence.plan.cadences import Cadences
from cadence.plan.deliveries import DUE, EXPORT, RUN
from cadence.plan.due import Plan
from cadence.plan.history import StateSnapshot
from cadence.record.state import read_snapshot


def _exported(parsed: ParsedProject) -> list[str]:
    return [c.name for c in deliver.exported_channels(parsed)]


def owe_before_run(parsed: ParsedProject, engine: Engine, plan: Plan, now: dt.datetime) -> None:
    """A plain run or seed (not ``run --due``): record the exported channels whose inputs it
    is about to build as owed a delivery (their ``owed_at``), in one transaction."""
    channels = _exported(parsed)
    if plan.due_mode or not channels:
        return
    building = {d.name for d in plan.decisions if d.builds}
    owed = deliveries.touched(deliveries.channel_inputs(parsed, channels), building)
    if owed:
        try:
            ticks.owe(engine.state_store(), owed, now)
        except EngineError:
            pass  # a warehouse refusing writes (a full disk) fails the builds, which say so


def after_run(
    parsed: ParsedProject,
    cadences: Cadences,
    engine: Engine,
    state: StateSnapshot,
    plan: Plan,
    result: RunResult,
    now: dt.datetime,
) -> RunResult:
    """The run's ``RunResult`` with the deliveries after its builds (``deliveries``; left as
    it was when no channel had anything to do): under ``run --due`` each channel at its own
    ticks; after a plain run or seed the channels whose inputs it built, at once; retries of
    frozen ranges; holds."""
    channels = _exported(parsed)
    if not channels:
        return result
    outcomes = {r.name: (r.status, r.error) for r in result.results}
    built = {name for name, (status, _e) in outcomes.items() if status == "success"}
    building = {d.name for d in plan.decisions if d.builds}
    present = set(state.relations)
    inputs = deliveries.channel_inputs(parsed, channels)
    models = parsed.by_name
    ready = {
        c
        for c, i in inputs.items()
        if any(
            n in built or (models[n].schema, models[n].identifier) in present for n in i.segments
        )
    }
    states = ticks.read_states(engine.state_store(), present)
    ready |= _retracting(engine, [c for c in channels if c not in ready], inputs, states)
    decisions = deliveries.decide_deliveries(
        channels,
        cadences.channels,
        states,
        now,
        parsed.config.tz,
        mode=DUE if plan.due_mode else RUN,
        at_once=() if plan.due_mode else deliveries.touched(inputs, building),
        in_scope=deliveries.covered(parsed, inputs, {d.name for d in plan.decisions}),
        ready=ready,
        held=deliveries.failing_reads(inputs, state, outcomes),
        current=deliveries.current_for_tick(parsed, cadences, inputs, state, built, now),
    )
    if not any(d.acts for d in decisions):
        return result
    return replace(result, deliveries=deliver.deliver(parsed, engine, now, decisions))


def _retracting(
    engine: Engine,
    channels: list[str],
    inputs: dict[str, deliveries.ChannelInputs],
    states: dict[str, deliveries.ChannelState],
) -> set[str]:
    """Of ``channels`` (none of their segments exists), those that still have members of a
    segment taken off them: at their ticks they freeze its exits (``deliver``), as a channel
    with segments does."""
    store = engine.state_store()
    return {
        c
        for c in channels
        if c in states
        and states[c].delivered
        and set(outbox.segments_with_state(store, c)) - set(inputs[c].segments)
    }


def for_export(
    parsed: ParsedProject,
    cadences: Cadences,
    engine: Engine,
    chosen: Collection[str],
    now: dt.datetime,
    options: deliver.DeliveryOptions,
) -> deliver.DeliveryReport:
    """``cadence export``: the chosen channels freeze and send at once (held when an input
    their delivery reads is failing, as recorded in ``_cadence.model_state``)."""
    state = read_snapshot(engine, (), parsed.config.tz)
    channels = [c for c in _exported(parsed) if c in set(chosen)]
    inputs = deliveries.channel_inputs(parsed, channels)
    decisions = deliveries.decide_deliveries(
        channels,
        cadences.channels,
        ticks.read_states(engine.state_store(), set(state.relations)),
        now,
        parsed.config.tz,
        mode=EXPORT,
        at_once=channels,
        held=deliveries.failing_reads(inputs, state, {}),
        current=deliveries.current_for_tick(parsed, cadences, inputs, state, (), now),
    )
    return deliver.deliver(parsed, engine, now, decisions, options)


def next_delivery(
    parsed: ParsedProject,
    cadences: Cadences,
    engine: Engine,
    state: StateSnapshot,
    now: dt.datetime,
) -> list[tuple[dt.datetime, str]]:
    """When ``run --due`` next delivers, after a run that left ``state`` (for the wake file):
    the earliest ``plan.deliveries.next_delivery`` of the exported channels, from what
    ``_cadence`` records of each (``now`` when one has something to do already: a delivery owed,
    changes frozen and not sent, an unserved tick); nothing when no channel ever will by time."""
    channels = _exported(parsed)
    present = set(state.relations)
    inputs = deliveries.channel_inputs(parsed, channels)
    models = parsed.by_name
    states = ticks.read_states(engine.state_store(), present)
    found = []
    for c in channels:
        segments = [models[n] for n in inputs[c].segments if n in models]
        ready = any((m.schema, m.identifier) in present for m in segments)
        state_of = states.get(c) or deliveries.ChannelState()
        at = deliveries.next_delivery(
            cadences.channels.get(c), state_of, now, parsed.config.tz, ready=ready
        )
        if at is not None:
            found.append((at, f"{'a delivery owed to' if at <= now else 'next delivery of'} {c}"))
    return [min(found)] if found else []


__all__ = ["after_run", "for_export", "next_delivery", "owe_before_run"]
