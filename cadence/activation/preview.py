"""The dry-run preview (``cadence export --dry-run``): what the next delivery of each channel x
segment would send, read from the warehouse with nothing moved.

Input: the parsed project, an engine opened read-only and the channels to preview -> output: one
``PreviewRow`` per channel x segment: keys that would enter and exit (against what was
delivered plus what is pending, by the same ``outbox.changes_sql`` a freeze runs), keys
suppressed and held out, changes already frozen and pending, and a few sample keys of each.
Invariants: nothing is frozen, sent or recorded (on Spark the audience is copied beside the
state as a delivery would see it, into a temporary table); a segment that cannot be computed
gets a row with its error, and the others are still previewed.
Used by ``Project.export(dry_run=True)``; ``render.preview_lines`` shows the rows.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from cadence.activation import audience, outbox
from cadence.activation.deliver import exported_channels, present_segments
from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError
from cadence.load.channelconfig import ChannelConfig
from cadence.load.parser import ParsedProject
from cadence.load.relations import quote
from cadence.record.state import SCHEMA

NOT_BUILT = "not built yet"  # a segment with nothing to preview: not an error


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

    @property
    def failed(self) -> bool:
        """The segment's next delivery could not be computed (a wrong key, a query error)."""
        return self.error is not None and self.error != NOT_BUILT

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
        present = present_segments(parsed, config.name, relations)
        for model in audience.segments_of(parsed, config.name):
            if model.name not in present:
                rows.append(PreviewRow(config.name, model.name, 0, 0, 0, 0, 0, {}, NOT_BUILT))
                continue
            problem = audience.key_problem(engine, parsed, config, model.name, present)
            if problem is not None:  # before any SQL: the cause, not the audience query
                rows.append(PreviewRow(config.name, model.name, 0, 0, 0, 0, 0, {}, problem))
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


__all__ = ["PreviewRow", "preview"]
