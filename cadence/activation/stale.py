"""Stale sources hold deliveries back: a segment whose source is at error by its dbt
``freshness:`` is built but not delivered (SPEC §11), unless the channel says
``on_stale_source: deliver``.

Input: the parsed project, a channel, the warehouse (to read each source's newest ``loaded_at``)
and ``now`` -> output: per segment of the channel, why it is held back
(``held back: source raw.events is 5 h old, error_after 2 h``).
Invariants: only sources declaring both ``loaded_at`` and ``error_after`` can hold anything;
a source that cannot be read holds nothing (its freshness is unknown, not stale); each source is
read once per delivery.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cadence.engines.base import Engine, EngineError
from cadence.load.channelconfig import ChannelConfig
from cadence.load.parser import ParsedProject


def sources_behind(parsed: ParsedProject, name: str) -> list[tuple[str, str]]:
    """Source tables a model reads, directly or through the models it refs."""
    models = parsed.by_name
    found: list[tuple[str, str]] = []
    stack, seen = [name], set()
    while stack:
        model = models.get(stack.pop())
        if model is None or model.name in seen:
            continue
        seen.add(model.name)
        found += [s for s in model.sources if s not in found]
        stack.extend(model.refs)
    return found


def loaded_at(engine: Engine, source: Any, tz: dt.tzinfo) -> dt.datetime | None:
    """A source's newest ``loaded_at`` (naive values in ``tz``); None when it cannot be read."""
    try:
        value = engine.query(f'select max("{source.loaded_at}") from {source.relation}')[0][0]
    except EngineError:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    return None


def _human(seconds: float) -> str:
    s = int(seconds)
    if s < 3600:
        return f"{s // 60} min"
    h, m = divmod(s // 60, 60)
    return f"{h} h" + (f" {m} min" if m and h < 24 else "")


def held_segments(
    parsed: ParsedProject,
    engine: Engine,
    config: ChannelConfig,
    segments: list[str],
    now: dt.datetime,
    cache: dict[tuple[str, str], str | None],
) -> dict[str, str]:
    """Segment -> why it is held back, for the channel's segments behind a source at error."""
    if not config.hold_on_stale_source:
        return {}
    by_key = {(s.source_name, s.table): s for s in parsed.sources}
    held: dict[str, str] = {}
    for segment in segments:
        for key in sources_behind(parsed, segment):
            src = by_key.get(key)
            if src is None or src.error_after_s is None or not src.loaded_at:
                continue
            if key not in cache:
                newest = loaded_at(engine, src, parsed.config.tz)
                age = None if newest is None else (now - newest).total_seconds()
                cache[key] = (
                    f"held back: source {src.source_name}.{src.table} is {_human(age)} old, "
                    f"error_after {_human(src.error_after_s)}"
                    if age is not None and age > src.error_after_s
                    else None
                )
            if cache[key] is not None:
                held[segment] = str(cache[key])
                break
    return held
