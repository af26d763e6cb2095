"""Delivery orchestration: for each channel with an ``export``, freeze its segments' pending
changes and hand them to the channel's destination, whatever kind it is.

Input: the parsed project, an open engine, ``now`` and which channels to deliver -> output: a
``DeliveryReport`` with one ``SegmentDelivery`` per channel x segment. Steps per channel x
segment, each its own transaction: (1) freeze the changes against what was delivered plus what
is pending (``outbox.freeze``); (2) fix the attempt's range and record it ``started``; (3) send
(file or webhook); (4) advance delivered state to what the destination reports and record the
outcome. A kill -9 between any two steps leaves the range fixed in (2), so the next attempt
sends exactly it again: nothing lost, nothing sent twice. A channel's ``max_change`` holds back
a delivery whose entries or exits exceed that share of what was delivered, until ``force``.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cadence.activation import audience, outbox
from cadence.activation.files import checkpoint, deliver_file
from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError
from cadence.load.channelconfig import ChannelConfig
from cadence.load.parser import ParsedProject
from cadence.load.relations import quote
from cadence.record.state import SCHEMA

# activation's history for ``history: {keep_days}`` (table, time column[, keep-latest keys]):
# membership changes, delivery attempts except the newest per channel x segment, when entries
# reached their channel and when freezes ran. Current state (delivered, outbox,
# delivery_cursor) is never history.
HISTORY_TABLES: tuple[tuple[str, ...], ...] = (
    ("_cadence.membership_changes", "at"),
    (outbox.DELIVERIES, "started_at", "channel", "segment"),
    (outbox.REACHED, "reached_at"),
    (outbox.FREEZES, "at"),
)


@dataclass(frozen=True)
class SegmentDelivery:
    channel: str
    segment: str
    status: str  # delivered | nothing | failed | held_back | skipped
    destination: str = "file"
    export_id: str | None = None
    first_seq: int | None = None
    last_seq: int | None = None
    entered: int = 0
    exited: int = 0
    rows: int | None = None
    path: str | None = None
    error: str | None = None
    replace: bool = False

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "held_back")

    def to_json(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "segment": self.segment,
            "status": self.status,
            "destination": self.destination,
            "export_id": self.export_id,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "entered": self.entered,
            "exited": self.exited,
            "rows": self.rows,
            "path": self.path,
            "error": self.error,
            "replace": self.replace,
        }


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


def _present(
    parsed: ParsedProject, channel: str, relations: Mapping[tuple[str, str], str]
) -> set[str]:
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
    present = _present(parsed, config.name, relations)
    # read once: nothing publishes while a delivery holds the run lock
    inputs = outbox.input_versions(engine.state_store(), _inputs_of(parsed, config))
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
    return _send_all(parsed, store, now, config, segment, options)


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
    problem = audience.missing_export_column(engine, config, segment, model.relation)
    if problem is not None:
        return [SegmentDelivery(channel, segment, "failed", export.kind, error=problem)]
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
    return _send_all(parsed, engine, now, config, segment, options)


def _send_all(
    parsed: ParsedProject,
    engine: Engine,
    now: dt.datetime,
    config: ChannelConfig,
    segment: str,
    options: DeliveryOptions,
) -> list[SegmentDelivery]:
    """Send what is pending: a range left in flight by an earlier attempt goes first, as it
    was fixed, then the changes frozen after it."""
    channel = config.name
    results = []
    for _ in range(2):  # at most: the range in flight, then the rest (one range)
        done = _send_next(parsed, engine, now, config, segment, options)
        results.append(done)
        cursor = outbox.read_cursor(engine, channel, segment)
        if done.status != "delivered" or cursor.frozen_seq <= cursor.delivered_seq:
            break
    return results


def _send_next(
    parsed: ParsedProject,
    engine: Engine,
    now: dt.datetime,
    config: ChannelConfig,
    segment: str,
    options: DeliveryOptions,
) -> SegmentDelivery:
    """One attempt: the range in flight, or else everything frozen and pending (unless
    ``max_change`` holds it back), sent and recorded."""
    export = config.export
    assert export is not None
    channel = config.name
    started = time.perf_counter()
    cursor = outbox.read_cursor(engine, channel, segment)
    if not cursor.in_flight and cursor.frozen_seq <= cursor.delivered_seq:
        return SegmentDelivery(channel, segment, "nothing", export.kind)
    counts = outbox.pending_counts(engine, channel, segment, cursor)
    limit = None if cursor.in_flight or options.force else config.max_change
    if limit is not None and outbox.is_replace(
        engine, channel, segment, cursor.delivered_seq + 1, cursor.frozen_seq
    ):
        limit = None  # a rebaseline sends everyone by request: not a mass enter
    if limit is not None:
        size = outbox.delivered_size(engine, channel, segment)
        share = max(counts.entered, counts.exited) / size if size else 0.0
        if size and share > limit:
            error = (
                f"held back: {counts.entered} entered and {counts.exited} exited of "
                f"{size} delivered ({share:.0%} > max_change {limit:.0%}); "
                "check the segment, then 'cadence export --force'"
            )
            attempt = outbox.Attempt(
                channel,
                segment,
                None,
                cursor.delivered_seq + 1,
                cursor.frozen_seq,
                counts.entered,
                counts.exited,
                None,
                "held_back",
                error,
                now,
                0.0,
                export.kind,
                attempt_id=_attempt_id(engine),
            )
            with engine.transaction():
                outbox.record_attempt(engine, attempt)
            return SegmentDelivery(
                channel,
                segment,
                "held_back",
                export.kind,
                None,
                attempt.first_seq,
                attempt.last_seq,
                counts.entered,
                counts.exited,
                error=error,
            )
    with engine.transaction():
        cursor = outbox.plan_attempt(engine, channel, segment, now)
        first, last = cursor.planned_first or 0, cursor.planned_last or 0
        counts = outbox.pending_counts(engine, channel, segment, cursor)
        replace = outbox.is_replace(engine, channel, segment, first, last)
        from cadence.activation.files import export_id

        attempt = outbox.Attempt(
            channel,
            segment,
            export_id(channel, segment, first, last),
            cursor.delivered_seq + 1,
            last,
            counts.entered,
            counts.exited,
            None,
            "started",
            None,
            now,
            0.0,
            export.kind,
            replace,
            attempt_id=_attempt_id(engine),
        )
        outbox.record_attempt(engine, attempt)
    checkpoint("after_plan")
    path = None
    rows = None
    try:
        if export.kind == "file":
            result = deliver_file(
                engine,
                export,
                root=Path(parsed.root),
                export_root=parsed.config.export_root,
                channel=channel,
                segment=segment,
                cursor=cursor,
                counts=counts,
                replace=replace,
                published_at=now,
            )
            outcome, path, rows = result.outcome, result.path, result.rows
        else:
            outcome = _send_webhook(engine, config, segment, cursor, options)
    except OSError as exc:  # a destination promises outcomes, not raises: fail this one only
        reason = f"{exc.strerror or type(exc).__name__}" + (
            f" ({exc.filename})" if exc.filename else ""
        )
        outcome = outbox.DeliveryOutcome(None, 0, f"cannot deliver: {reason}")
    checkpoint("after_send")
    through = outcome.delivered_through
    status = "delivered" if through is not None and through >= last else "failed"
    if status == "failed" and outcome.error is None:
        outcome = outbox.DeliveryOutcome(through, outcome.sent, "destination stopped early")
    done = outbox.Attempt(
        channel,
        segment,
        attempt.export_id,
        attempt.first_seq,
        last,
        counts.entered,
        counts.exited,
        rows if rows is not None else outcome.sent,
        status,
        outcome.error,
        now,
        time.perf_counter() - started,
        export.kind,
        replace,
        through,
        attempt.attempt_id,
    )
    with engine.transaction():
        if through is not None:
            outbox.apply(engine, channel, segment, through, now)
        outbox.finish_attempt(engine, done)
    return SegmentDelivery(
        channel,
        segment,
        status,
        export.kind,
        attempt.export_id,
        attempt.first_seq,
        last,
        counts.entered,
        counts.exited,
        done.rows,
        path,
        outcome.error,
        replace,
    )


def _attempt_id(engine: Engine) -> str:
    n = int(engine.query(f"select count(*) from {outbox.DELIVERIES}")[0][0])
    return f"{n + 1:010d}"


def _send_webhook(
    engine: Engine,
    config: ChannelConfig,
    segment: str,
    cursor: outbox.Cursor,
    options: DeliveryOptions,
) -> outbox.DeliveryOutcome:
    from cadence.activation.webhook import deliver_webhook  # the webhook wing

    assert config.export is not None
    changes = outbox.pending(
        engine, config.name, segment, cursor.delivered_seq + 1, cursor.planned_last or 0
    )
    env = options.env if options.env else os.environ
    return deliver_webhook(config.export, config.name, segment, changes, env)


@dataclass(frozen=True)
class PreviewRow:
    """What ``export --dry-run`` shows for one channel x segment; nothing is moved."""

    channel: str
    segment: str
    entered: int
    exited: int
    suppressed: int
    held_out: int
    pending: int
    samples: dict[str, tuple[str, ...]]
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "segment": self.segment,
            "entered": self.entered,
            "exited": self.exited,
            "suppressed": self.suppressed,
            "held_out": self.held_out,
            "pending": self.pending,
            "samples": {k: list(v) for k, v in self.samples.items()},
            "error": self.error,
        }


def preview(
    parsed: ParsedProject,
    engine: Engine,
    channels: Collection[str],
    *,
    rebaseline: bool = False,
    sample: int = 3,
) -> tuple[PreviewRow, ...]:
    """Per channel x segment: what the next delivery would send, read-only."""
    relations = engine.relations()
    has_state = (SCHEMA, "outbox") in relations and (SCHEMA, "delivered") in relations
    rows = []
    for config in exported_channels(parsed):
        if config.name not in set(channels):
            continue
        present = _present(parsed, config.name, relations)
        for model in audience.segments_of(parsed, config.name):
            if model.name not in present:
                rows.append(PreviewRow(config.name, model.name, 0, 0, 0, 0, 0, {}, "not built yet"))
                continue
            try:
                rows.append(
                    _preview_segment(
                        parsed, engine, config, model.name, present, has_state, rebaseline, sample
                    )
                )
            except (EngineError, CadenceError) as exc:
                rows.append(
                    PreviewRow(config.name, model.name, 0, 0, 0, 0, 0, {}, str(exc).splitlines()[0])
                )
    return tuple(rows)


def _preview_segment(
    parsed: ParsedProject,
    engine: Engine,
    config: ChannelConfig,
    segment: str,
    present: set[str],
    has_state: bool,
    rebaseline: bool,
    sample: int,
) -> PreviewRow:
    channel = config.name
    model = parsed.model(segment)
    assert model is not None
    columns = config.export.columns if config.export is not None else ()
    sql = audience.segment_audience_sql(parsed, channel, segment, columns, present=present)
    store = engine.state_store()
    if store is not engine:
        # state kept apart (Spark): the audience comes beside it, as a delivery brings it
        sql = f"select * from {engine.localize(sql, f'audience_{channel}_{segment}')}"
    if has_state:
        changes = outbox.changes_sql(channel, segment, sql, (), rebaseline=rebaseline)
        pending = int(
            store.query(
                f"select count(*) from {outbox.OUTBOX} where channel = ? and segment = ?",
                (channel, segment),
            )[0][0]
        )
    else:
        changes = f"select a.key, 'entered' as change from ({sql}) as a where not a.held_out"
        pending = 0
    samples: dict[str, tuple[str, ...]] = {}
    counts: dict[str, int] = {}
    for change in ("entered", "exited"):
        found = store.query(
            f"select key from ({changes}) as c where change = '{change}' order by key"
        )
        counts[change] = len(found)
        samples[change] = tuple(str(r[0]) for r in found[:sample])
    held = store.query(f"select key from ({sql}) as a where a.held_out order by key")
    samples["held_out"] = tuple(str(r[0]) for r in held[:sample])
    key = quote(model.config.key or "")
    suppressed: list[str] = []
    for _name, relation, _ident in audience.suppress_relations(parsed, channel):
        suppressed += [
            str(r[0])
            for r in engine.query(
                f"select cast(m.{key} as varchar) from {model.relation} as m where exists "
                f"(select 1 from {relation} as s where cast(s.{key} as varchar) = "
                f"cast(m.{key} as varchar)) order by 1"
            )
        ]
    unique = sorted(set(suppressed))
    samples["suppressed"] = tuple(unique[:sample])
    return PreviewRow(
        channel,
        segment,
        counts["entered"],
        counts["exited"],
        len(unique),
        len(held),
        pending,
        samples,
    )


__all__ = [
    "DeliveryOptions",
    "DeliveryReport",
    "PreviewRow",
    "SegmentDelivery",
    "channels_pending",
    "channels_touched",
    "deliver",
    "preview",
]
