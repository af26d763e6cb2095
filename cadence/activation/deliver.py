"""Delivery orchestration: for each channel with an ``export``, freeze its segments' pending
changes and hand them to the channel's destination, whatever kind it is.

Input: the parsed project, an open engine, ``now`` and which channels to deliver -> output: a
``DeliveryReport`` with one ``SegmentDelivery`` per channel x segment (and attempt). Steps per
channel x segment, each its own transaction: (1) freeze the changes against what was delivered
plus what is pending (``outbox.freeze``); then ``attempt`` (2) fixes the attempt's range and
records it ``started``, (3) sends it (file or webhook), (4) advances delivered state to what the
destination reports and records the outcome. A kill -9 between any two steps leaves the range
fixed in (2), so the next attempt sends exactly it again: nothing lost, nothing sent twice. A
channel's ``max_change`` holds back a delivery whose entries or exits exceed that share of what
was delivered, until ``force``. A channel whose suppression lists are missing or whose config is
wrong delivers nothing; a segment taken off a channel sends what it delivered as exits.
Used by ``Project.run`` (after a run) and ``Project.export``; ``preview`` shows what the next
delivery would send, with the same choice of channels and segments.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from cadence.activation import audience, datatime, outbox, stale
from cadence.activation.attempt import SegmentDelivery, send_pending
from cadence.activation.files import checkpoint
from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError
from cadence.load.channelconfig import ChannelConfig
from cadence.load.parser import ParsedProject
from cadence.load.relations import quote
from cadence.record.state import SCHEMA

# activation's history for ``history: {keep_days}`` (table, time column[, keep-latest keys]):
# membership changes, and delivery attempts except the newest per channel x segment. Current
# state (delivered, outbox, delivery_cursor) is never history.
HISTORY_TABLES: tuple[tuple[str, ...], ...] = (
    ("_cadence.membership_changes", "at"),
    (outbox.DELIVERIES, "started_at", "channel", "segment"),
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
    one of their segments, suppression lists or (through them) priority segments."""
    built = set(built)
    out = []
    for config in exported_channels(parsed):
        names = {m.name for m in audience.segments_of(parsed, config.name)} | set(config.suppress)
        if names & built:
            out.append(config.name)
    return tuple(out)


def channels_pending(engine: Engine, relations: Collection[tuple[str, str]]) -> tuple[str, ...]:
    """Channels with changes frozen but not delivered (an earlier delivery failed or died),
    and channels whose inputs were published after their last freeze (a run killed between
    publishing and delivering): the next invocation delivers them, also an idle one."""
    if (SCHEMA, "delivery_cursor") not in relations:
        return ()
    store = engine.state_store()
    rows = store.query(
        f"select distinct channel from {outbox.CURSOR} where frozen_seq > delivered_seq"
    )
    return tuple(sorted({r[0] for r in rows} | channels_stale(engine)))


def channels_stale(engine: Engine) -> set[str]:
    """Channels whose segments or lists were published but never frozen (a run killed between
    publishing and delivering); none in a warehouse from before input versions were recorded."""
    try:
        return outbox.stale_channels(engine.state_store())
    except EngineError:
        return set()


def deliver(
    parsed: ParsedProject,
    engine: Engine,
    now: dt.datetime,
    channels: Collection[str],
    options: DeliveryOptions = DeliveryOptions(),
) -> DeliveryReport:
    """Deliver every segment of ``channels`` (those with an ``export``), in project order."""
    wanted = [c for c in exported_channels(parsed) if c.name in set(channels)]
    if not wanted:
        return DeliveryReport()
    checkpoint("before_deliver")  # test-only: segments published, nothing frozen yet
    outbox.ensure_tables(engine.state_store())
    relations = engine.relations()
    results: list[SegmentDelivery] = []
    for config in wanted:
        results.extend(_deliver_channel(parsed, engine, now, config, relations, options))
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


def _deliver_channel(
    parsed: ParsedProject,
    engine: Engine,
    now: dt.datetime,
    config: ChannelConfig,
    relations: Mapping[tuple[str, str], str],
    options: DeliveryOptions,
) -> list[SegmentDelivery]:
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
    # read once: nothing publishes while a delivery holds the run lock
    inputs = outbox.input_versions(engine.state_store(), _inputs_of(parsed, config))
    names = [m.name for m in segments if m.name in present]
    held = stale.held_segments(parsed, engine, config, names, now, {})
    out = []
    for model in segments:
        if model.name not in present:
            out.append(
                SegmentDelivery(
                    config.name,
                    model.name,
                    "skipped",
                    kind,
                    error="not built yet: nothing to deliver",
                )
            )
            continue
        why = held.get(model.name)
        if why is not None:  # built, not delivered: data too stale to trust is not sent
            out.append(SegmentDelivery(config.name, model.name, "held_back", kind, error=why))
            continue
        out.extend(
            _deliver_segment(parsed, engine, now, config, model.name, present, inputs, options)
        )
    current = {m.name for m in segments}
    store = engine.state_store()
    for segment in outbox.segments_with_state(store, config.name):
        if segment not in current:
            out.extend(_deliver_dropped(parsed, engine, now, config, segment, inputs, options))
    # segments not frozen now (skipped, or taken off with nothing left) must not keep the
    # channel looking stale: only the ones just frozen, or dropped ones still pending, count
    dropped = set(outbox.segments_with_state(store, config.name)) - current
    outbox.forget_inputs(store, config.name, present | dropped)
    return out


def _deliver_dropped(
    parsed: ParsedProject,
    engine: Engine,
    now: dt.datetime,
    config: ChannelConfig,
    segment: str,
    inputs: str,
    options: DeliveryOptions,
) -> list[SegmentDelivery]:
    """A segment that no longer feeds the channel (taken off it, or gone) but that the channel
    still has members of: its audience is empty, so what was delivered is sent as exits (a
    channel keeps no one a segment no longer gives it; ``max_change`` guards it as any mass
    exit)."""
    export = config.export
    assert export is not None
    store = engine.state_store()
    with store.transaction():
        cursor = outbox.read_cursor(store, config.name, segment)
        empty = audience.empty_audience_sql(export.columns, cursor.column_types)
        outbox.freeze(
            store, config.name, segment, empty, export.columns, cursor.column_types, now,
            inputs=inputs,
        )  # fmt: skip
    checkpoint("after_freeze")
    return send_pending(parsed, store, now, config, segment, force=options.force, env=options.env)


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


def _inputs_of(parsed: ParsedProject, config: ChannelConfig) -> list[str]:
    """What a channel's audience is computed from: its segments and suppression lists."""
    return [m.name for m in audience.segments_of(parsed, config.name)] + list(config.suppress)


def _column_types(
    engine: Engine, relation: str, columns: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    if not columns:
        return ()
    cols = ", ".join(quote(c) for c in columns)
    return tuple(
        (str(r[0]), str(r[1])) for r in engine.query(f"describe select {cols} from {relation}")
    )


def _deliver_segment(
    parsed: ParsedProject,
    engine: Engine,
    now: dt.datetime,
    config: ChannelConfig,
    segment: str,
    present: set[str],
    inputs: str,
    options: DeliveryOptions,
) -> list[SegmentDelivery]:
    """Freeze the segment's changes, then send what is pending: a range left in flight by an
    earlier attempt goes first, as it was fixed, then the changes frozen after it."""
    export = config.export
    assert export is not None
    channel = config.name
    model = parsed.model(segment)
    assert model is not None
    problem = audience.key_problem(
        engine, parsed, config, segment, present
    ) or audience.missing_export_column(engine, config, segment, model.relation)
    if problem is not None:
        return [SegmentDelivery(channel, segment, "failed", export.kind, error=problem)]
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
                engine = store
            else:
                types = _column_types(engine, model.relation, export.columns)
            outbox.freeze(
                engine,
                channel,
                segment,
                sql,
                export.columns,
                types,
                now,
                rebaseline=options.rebaseline,
                inputs=inputs,
            )
            datatime.note(engine, channel, segment, data_at, now)
    except EngineError as exc:
        return [
            SegmentDelivery(
                channel,
                segment,
                "failed",
                export.kind,
                error=f"cannot compute the audience: {str(exc).splitlines()[0]}",
            )
        ]
    checkpoint("after_freeze")
    return send_pending(parsed, engine, now, config, segment, force=options.force, env=options.env)


__all__ = [
    "DeliveryOptions",
    "DeliveryReport",
    "channels_pending",
    "channels_touched",
    "deliver",
    "exported_channels",
    "present_segments",
]
