"""One delivery attempt of a channel x segment: the changes frozen in the outbox and not yet
delivered -> a fixed range, sent to the channel's destination (file or webhook) and recorded ->
a ``SegmentDelivery``.

Input: a segment whose changes ``deliver`` froze, ``now``, ``force`` and the environment holding
a webhook's secret -> output: one ``SegmentDelivery`` per attempt, at most two: a range left in
flight by an earlier attempt goes first, as it was fixed, then the changes frozen after it.
Steps of an attempt, each its own transaction: fix the range and record the attempt
``started``; send; advance delivered state to what the destination reports and record the
outcome. A kill -9 between any two steps leaves the range fixed, so the next attempt sends
exactly it again: nothing lost, nothing sent twice. A channel's ``max_change`` holds back a
range whose entries or exits exceed that share of what was delivered, unless ``force``, the
range is already in flight or it replaces the audience (a rebaseline). A destination reports
how far it got rather than raising; an ``OSError`` fails this segment only.
Used by ``deliver`` (steps 2-4 of its per-segment sequence).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cadence.activation import instants, outbox
from cadence.activation.files import checkpoint, deliver_file
from cadence.engines.base import Engine, EngineError
from cadence.load.channelconfig import ChannelConfig
from cadence.load.parser import ParsedProject
from cadence.load.relations import quote


@dataclass(frozen=True)
class SegmentDelivery:
    """What became of one channel x segment in a delivery: an attempt's outcome, or why there
    was none (nothing pending, not built yet, held back, the channel failed, or ``held``: an
    input its delivery reads is failing, so nothing was frozen or sent)."""

    channel: str
    segment: str
    status: str  # delivered | nothing | failed | held_back | held | skipped
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
        return self.status in ("failed", "held_back", "held")

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


def send_pending(
    parsed: ParsedProject,
    engine: Engine,
    now: dt.datetime,
    config: ChannelConfig,
    segment: str,
    *,
    force: bool,
    env: Mapping[str, str],
) -> list[SegmentDelivery]:
    """Send what is pending: a range left in flight by an earlier attempt goes first, as it
    was fixed, then the changes frozen after it."""
    channel = config.name
    results = []
    for _ in range(2):  # at most: the range in flight, then the rest (one range)
        done = _send_next(parsed, engine, now, config, segment, force, env)
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
    force: bool,
    env: Mapping[str, str],
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
    limit = None if cursor.in_flight or force else config.max_change
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
                key_type=_key_type(parsed, engine, segment),
            )
            outcome, path, rows = result.outcome, result.path, result.rows
        else:
            outcome = _send_webhook(engine, config, segment, cursor, env)
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


def _key_type(parsed: ParsedProject, engine: Engine, segment: str) -> str | None:
    """The type of the segment's key column in its live relation (None when it cannot be read
    here: a segment gone from the project, or state kept apart from a Spark warehouse)."""
    model = parsed.model(segment)
    if model is None or not model.config.key:
        return None
    try:
        found = engine.query(f"describe select {quote(model.config.key)} from {model.relation}")
    except EngineError:
        return None
    return str(found[0][1]) if found else None


def _attempt_id(engine: Engine) -> str:
    n = int(engine.query(f"select count(*) from {outbox.DELIVERIES}")[0][0])
    return f"{n + 1:010d}"


def _send_webhook(
    engine: Engine,
    config: ChannelConfig,
    segment: str,
    cursor: outbox.Cursor,
    env: Mapping[str, str],
) -> outbox.DeliveryOutcome:
    from cadence.activation.webhook import deliver_webhook  # the webhook wing

    assert config.export is not None
    changes = outbox.pending(
        engine, config.name, segment, cursor.delivered_seq + 1, cursor.planned_last or 0
    )
    # a segment's timestamp columns are sent as instants with their offset, like ``at``
    kinds = {name: kind for name, kind in cursor.column_types if instants.is_instant(kind)}
    if kinds:
        changes = [
            dataclasses.replace(
                c,
                columns={
                    k: instants.json_value(v, kinds[k]) if k in kinds else v
                    for k, v in c.columns.items()
                },
            )
            for c in changes
        ]
    environ = env if env else os.environ
    return deliver_webhook(config.export, config.name, segment, changes, environ)


__all__ = ["SegmentDelivery", "send_pending"]
