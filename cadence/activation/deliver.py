"""Delivery orchestration: for each channel with an ``export``, carry out what
``plan.deliveries`` decided for it: freeze its segments' new changes and hand what is pending
to the channel's destination, whatever kind it is; or send only what earlier freezes left; or
report it held.

Input: the parsed project, an open engine, ``now`` and one ``ChannelDecision`` per channel ->
output: a ``DeliveryReport`` with one ``SegmentDelivery`` per channel x segment (and attempt).
A ``freeze`` decision: (1) each segment's changes are frozen against what was delivered plus
what is pending (``outbox.freeze``, one transaction per segment); (2) once all froze, the tick
the decision serves is recorded and a debt a run recorded is cleared (``ticks.settle``, one
transaction); then ``attempt`` per segment (3) fixes the attempt's range and records it
``started``, (4) sends it (file or webhook), (5) advances delivered state to what the
destination reports and records the outcome. A kill -9 before (2) leaves the old tick, so the
next invocation freezes again (harmless); after it, the next invocation sends exactly the
frozen ranges: nothing lost, nothing sent twice. A channel's ``max_change`` holds back a
delivery whose entries or exits exceed that share of what was delivered, until ``force``. A
channel whose suppression lists are missing or whose config is wrong delivers nothing; a
segment taken off a channel sends what it delivered as exits.
Used by ``timing`` (after a run, and for ``cadence export``); ``preview`` shows what the next
delivery would send, with the same choice of channels and segments.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from cadence.activation import audience, datatime, outbox, stale, ticks
from cadence.activation.attempt import SegmentDelivery, send_pending
from cadence.activation.files import checkpoint
from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError, UsageError, did_you_mean
from cadence.load.channelconfig import ChannelConfig
from cadence.load.parser import ParsedProject
from cadence.load.relations import quote
from cadence.plan import deliveries
from cadence.plan.deliveries import HOLD, ChannelDecision

# activation's history for ``history: {keep_days}`` (table, time column[, keep-latest keys]):
# membership changes, delivery attempts except the newest per channel x segment, when entries
# reached their channel and when freezes ran. Current state (delivered, outbox, delivery_cursor,
# channel_ticks) is never history.
HISTORY_TABLES: tuple[tuple[str, ...], ...] = (
    ("_cadence.membership_changes", "at"),
    (outbox.DELIVERIES, "started_at", "channel", "segment"),
    (outbox.REACHED, "reached_at"),
    (outbox.FREEZES, "at"),
)


@dataclass(frozen=True)
class DeliveryReport:
    deliveries: tuple[SegmentDelivery, ...] = ()

    @property
    def failed(self) -> list[SegmentDelivery]:
        return [d for d in self.deliveries if d.failed]

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class DeliveryOptions:
    force: bool = False
    rebaseline: bool = False
    env: Mapping[str, str] = field(default_factory=dict)


def exported_channels(parsed: ParsedProject) -> tuple[ChannelConfig, ...]:
    return tuple(c for c in parsed.config.channels if c.export is not None)


def channels_touched(parsed: ParsedProject, built: Collection[str]) -> tuple[str, ...]:
    """Exported channels whose audience may have changed because ``built`` were published:
    one of their segments, suppression lists or priority segments."""
    names = [c.name for c in exported_channels(parsed)]
    found = deliveries.touched(deliveries.channel_inputs(parsed, names), built)
    return tuple(n for n in names if n in found)


def deliver(
    parsed: ParsedProject,
    engine: Engine,
    now: dt.datetime,
    decisions: Sequence[ChannelDecision],
    options: DeliveryOptions = DeliveryOptions(),
) -> DeliveryReport:
    """Carry out each channel's decision (``plan.deliveries``), in project order: ``freeze``
    freezes every segment, records the tick served (``ticks.settle``), then sends what is
    pending; ``send_pending`` sends only what earlier freezes left; ``hold`` reports why."""
    by_name = {d.channel: d for d in decisions if d.acts}
    wanted = [c for c in exported_channels(parsed) if c.name in by_name]
    if not wanted:
        return DeliveryReport()
    checkpoint("before_deliver")  # test-only: segments published, nothing frozen yet
    store = engine.state_store()
    outbox.ensure_tables(store)
    ticks.ensure_table(store)
    relations = engine.relations()
    results: list[SegmentDelivery] = []
    for config in wanted:
        decision = by_name[config.name]
        if decision.action == HOLD:
            results.extend(_held(parsed, config, decision.reason))
        elif decision.freezes:
            results.extend(
                _deliver_channel(parsed, engine, now, config, relations, decision, options)
            )
        else:
            results.extend(_send_frozen(parsed, engine, now, config, options))
    return DeliveryReport(tuple(results))


def present_segments(
    parsed: ParsedProject, channel: str, relations: Mapping[tuple[str, str], str]
) -> set[str]:
    """The channel's segments that exist in the warehouse (built at least once)."""
    return {
        m.name
        for m in audience.segments_of(parsed, channel)
        if (m.schema, m.identifier) in relations
    }


def _held(parsed: ParsedProject, config: ChannelConfig, reason: str) -> list[SegmentDelivery]:
    assert config.export is not None
    kind = config.export.kind
    segments = audience.segments_of(parsed, config.name)
    return [SegmentDelivery(config.name, m.name, "held", kind, error=reason) for m in segments] or [
        SegmentDelivery(config.name, "-", "held", kind, error=reason)
    ]


def _deliver_channel(
    parsed: ParsedProject,
    engine: Engine,
    now: dt.datetime,
    config: ChannelConfig,
    relations: Mapping[tuple[str, str], str],
    decision: ChannelDecision,
    options: DeliveryOptions,
) -> list[SegmentDelivery]:
    """Freeze every segment of the channel (each its own transaction), record the tick served
    once all froze, then send. A kill before the tick is recorded makes the next invocation
    freeze again (harmless: against delivered plus pending); after it, the next invocation
    sends exactly the frozen ranges. A segment that could not be frozen leaves the tick
    unserved, so the next invocation tries again."""
    assert config.export is not None
    kind = config.export.kind
    segments = audience.segments_of(parsed, config.name)
    try:
        audience.check_channel(parsed, config.name)
        for name, _relation, ident in audience.suppress_relations(parsed, config.name):
            schema, _, identifier = ident.partition(".")
            if (schema, identifier) not in relations:
                raise CadenceError(
                    f"suppression list '{name}' does not exist yet (never built or loaded); "
                    "nothing is delivered without it"
                )
    except CadenceError as exc:
        error = _located(exc)
        return [
            SegmentDelivery(config.name, m.name, "failed", kind, error=error) for m in segments
        ] or [SegmentDelivery(config.name, "-", "failed", kind, error=error)]
    present = present_segments(parsed, config.name, relations)
    store = engine.state_store()
    found: dict[str, list[SegmentDelivery]] = {}
    to_send: list[str] = []
    names = [m.name for m in segments if m.name in present]
    held = stale.held_segments(parsed, engine, config, names, now, {})
    for model in segments:
        if model.name not in present:
            found[model.name] = [
                SegmentDelivery(
                    config.name,
                    model.name,
                    "skipped",
                    kind,
                    error="not built yet: nothing to deliver",
                )
            ]
            continue
        why = held.get(model.name)
        if why is not None:  # built, not delivered: data too stale to trust is not sent
            found[model.name] = [
                SegmentDelivery(config.name, model.name, "held_back", kind, error=why)
            ]
            continue
        problem = _freeze_segment(parsed, engine, now, config, model.name, present, options)
        if problem is not None:
            found[model.name] = [problem]
        to_send.append(model.name)
    current = {m.name for m in segments}
    for segment in outbox.segments_with_state(store, config.name):
        if segment not in current:
            _freeze_dropped(store, now, config, segment)
            to_send.append(segment)
    if not any(d.failed for d in (r for rs in found.values() for r in rs)):
        try:
            with store.transaction():
                ticks.settle(store, config.name, decision.serves, now, froze=bool(to_send))
            checkpoint("after_tick")
        except EngineError:
            pass  # refused (a full disk): the tick stays unserved, the next run freezes again
    for segment in to_send:
        sent = send_pending(
            parsed, store, now, config, segment, force=options.force, env=options.env
        )
        if segment in found:  # its freeze failed: only an earlier range it still had
            sent = [d for d in sent if d.status != "nothing"]
        found.setdefault(segment, []).extend(sent)
    order = [m.name for m in segments] + [s for s in to_send if s not in current]
    return [d for name in order for d in found.get(name, ())]


def _send_frozen(
    parsed: ParsedProject,
    engine: Engine,
    now: dt.datetime,
    config: ChannelConfig,
    options: DeliveryOptions,
) -> list[SegmentDelivery]:
    """Send exactly what earlier freezes left pending (a failed or killed delivery); freeze
    nothing: newer changes wait for the channel's next tick."""
    store = engine.state_store()
    out: list[SegmentDelivery] = []
    for segment in outbox.segments_with_state(store, config.name):
        cursor = outbox.read_cursor(store, config.name, segment)
        if cursor.in_flight or cursor.frozen_seq > cursor.delivered_seq:
            out.extend(
                send_pending(
                    parsed, store, now, config, segment, force=options.force, env=options.env
                )
            )
    return out


def _freeze_dropped(store: Engine, now: dt.datetime, config: ChannelConfig, segment: str) -> None:
    """A segment that no longer feeds the channel (taken off it, or gone) but that the channel
    still has members of: its audience is empty, so what was delivered is frozen as exits (a
    channel keeps no one a segment no longer gives it; ``max_change`` guards it as any mass
    exit)."""
    export = config.export
    assert export is not None
    with store.transaction():
        cursor = outbox.read_cursor(store, config.name, segment)
        empty = audience.empty_audience_sql(export.columns, cursor.column_types)
        outbox.freeze(store, config.name, segment, empty, export.columns, cursor.column_types, now)
    checkpoint("after_freeze")


def _located(exc: CadenceError) -> str:
    """One line for a delivery error: ``file:line: message (hint: ...)`` for each problem."""
    from cadence.errors import ProjectErrors

    found = list(exc.errors) if isinstance(exc, ProjectErrors) else [exc]
    parts = []
    for e in found:
        where = e.location()
        text = f"{where}: {e.message}" if where else e.message
        parts.append(text + (f" (hint: {e.hint})" if e.hint else ""))
    return "; ".join(parts)


def _column_types(
    engine: Engine, relation: str, columns: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    if not columns:
        return ()
    cols = ", ".join(quote(c) for c in columns)
    return tuple(
        (str(r[0]), str(r[1])) for r in engine.query(f"describe select {cols} from {relation}")
    )


def _freeze_segment(
    parsed: ParsedProject,
    engine: Engine,
    now: dt.datetime,
    config: ChannelConfig,
    segment: str,
    present: set[str],
    options: DeliveryOptions,
) -> SegmentDelivery | None:
    """Freeze the segment's new changes (one transaction); the failure, if it could not."""
    export = config.export
    assert export is not None
    channel = config.name
    model = parsed.model(segment)
    assert model is not None
    problem = audience.key_problem(
        engine, parsed, config, segment, present
    ) or audience.missing_export_column(engine, config, segment, model.relation)
    if problem is not None:
        return SegmentDelivery(channel, segment, "failed", export.kind, error=problem)
    data_at = datatime.segment_data_at(engine, parsed, segment)
    try:
        with engine.transaction():
            sql = audience.segment_audience_sql(
                parsed, channel, segment, export.columns, present=present
            )
            store = engine.state_store()
            if store is not engine:
                # state kept apart (Spark): the audience is computed in the warehouse and
                # copied beside the state; the diff and the delivery then run there, with the
                # same exactly-once rules
                local = engine.localize(sql, f"audience_{channel}_{segment}")
                sql = f"select * from {local}"
                types = _column_types(store, local, export.columns)
            else:
                types = _column_types(engine, model.relation, export.columns)
            outbox.freeze(
                store,
                channel,
                segment,
                sql,
                export.columns,
                types,
                now,
                rebaseline=options.rebaseline,
            )
            datatime.note(store, channel, segment, data_at, now)
    except EngineError as exc:
        return SegmentDelivery(
            channel,
            segment,
            "failed",
            export.kind,
            error=f"cannot compute the audience: {str(exc).splitlines()[0]}",
        )
    checkpoint("after_freeze")
    return None


__all__ = [
    "DeliveryOptions",
    "DeliveryReport",
    "channels_touched",
    "deliver",
    "exported_channels",
    "present_segments",
]


def chosen_channels(
    parsed: ParsedProject, channels: tuple[str, ...], rebaseline: bool
) -> tuple[str, ...]:
    """The channels ``cadence export`` delivers: those named (each must have an export), or
    every exported one; ``--rebaseline`` needs them named."""
    exported = [c.name for c in exported_channels(parsed)]
    for ch in channels:
        if ch not in exported:
            names = [c.name for c in parsed.config.channels]
            guess = did_you_mean(ch, exported or names)
            raise UsageError(
                f"channel '{ch}' has no export" if ch in names else f"unknown channel '{ch}'",
                hint=f"did you mean '{guess}'?"
                if guess
                else "channels with an export: " + (", ".join(exported) or "none"),
            )
    if rebaseline and not channels:
        raise UsageError(
            "--rebaseline needs --channel", hint="cadence export --rebaseline --channel email"
        )
    return channels or tuple(exported)
