"""What a channel receives from its segments: members minus suppressed, claimed and held-out keys.

Input: the parsed project and a channel name -> output: SQL over the LIVE relations, one row per
(segment, key) the channel considers: ``segment VARCHAR, key VARCHAR, held_out BOOLEAN``.
Invariants: suppressed keys (any model or seed of the channel's ``suppress`` list, matched on the
segment's key column) and keys claimed by an earlier segment of ``priority`` are absent; a key
is held out when ``sha256(f"{salt}:{key}")``'s first 8 bytes, as an unsigned big-endian integer,
mod 100 is below ``percent`` - the same formula in SQL (``holdout_sql``) and Python
(``is_held_out``), so it is stable across runs, machines and Python versions. Priority is decided
before holdout: a key held out of the segment that claims it receives nothing from the channel.
The SQL stays within what sqlglot transpiles to Spark (no QUALIFY, no DuckDB-only functions
beyond sha256/substr/casts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError, did_you_mean
from cadence.load.channelconfig import ChannelConfig
from cadence.load.parser import Model, ParsedProject
from cadence.load.relations import quote


@dataclass(frozen=True)
class Holdout:
    percent: float
    salt: str


def is_held_out(salt: str, key: str, percent: float) -> bool:
    """The holdout rule, in Python (``holdout_sql`` is the same in SQL)."""
    value = int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big")
    return value % 100 < percent


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_HEX = "0123456789abcdef"
# weight of the i-th of the 16 leading hex digits in the 64-bit prefix, modulo 100 (16^(15-i))
_WEIGHTS = tuple(pow(16, 15 - i, 100) for i in range(16))


def holdout_sql(salt: str, key_expr: str, percent: float) -> str:
    """SQL boolean: is the key (a VARCHAR expression) held out. The 64-bit prefix modulo 100 is
    summed digit by digit (each hex digit found with ``instr``, times 16^k mod 100), so no engine
    has to parse hexadecimal or hold an unsigned 64-bit value: the same in DuckDB and Spark."""
    if percent <= 0:
        return "false"
    digest = f"sha256({_literal(salt + ':')} || {key_expr})"
    terms = " + ".join(
        f"(instr('{_HEX}', substr({digest}, {i + 1}, 1)) - 1) * {w}"
        for i, w in enumerate(_WEIGHTS)
        if w
    )
    return f"(({terms}) % 100 < {percent:g})"


def holdout_of(model: Model) -> Holdout | None:
    h = model.config.holdout
    if not h or not h.get("percent"):
        return None
    return Holdout(float(h["percent"]), str(h.get("salt") or model.name))


def channel_of(parsed: ParsedProject, channel: str) -> ChannelConfig:
    found = parsed.config.channel(channel)
    if found is None:
        names = [c.name for c in parsed.config.channels]
        guess = did_you_mean(channel, names)
        raise CadenceError(
            f"unknown channel '{channel}'",
            hint=f"did you mean '{guess}'?" if guess else "channels: " + ", ".join(names),
        )
    return found


def segments_of(parsed: ParsedProject, channel: str) -> tuple[Model, ...]:
    """The channel's segments (models with ``key`` feeding it), ``priority`` ones first in that
    order, then the others by name."""
    config = channel_of(parsed, channel)
    feeding = {
        m.name: m
        for m in parsed.models
        if m.config.key and channel in m.config.channels and m.materialized != "ephemeral"
    }
    first = [feeding[n] for n in config.priority if n in feeding]
    rest = sorted((m for n, m in feeding.items() if n not in config.priority), key=lambda m: m.name)
    return tuple(first + rest)


def check_channel(parsed: ParsedProject, channel: str) -> None:
    """Every name in ``suppress`` is a model or seed and every ``priority`` name one of the
    channel's segments; errors name cadence.yml and the line."""
    config = channel_of(parsed, channel)
    relations = {m.name for m in parsed.models} | {s.name for s in parsed.seeds}
    segments = {m.name for m in segments_of(parsed, channel)}
    problems = []
    for name in config.suppress:
        if name not in relations:
            guess = did_you_mean(name, sorted(relations))
            problems.append(
                CadenceError(
                    f"channel '{channel}': suppress names '{name}', which is no model or seed",
                    file="cadence.yml",
                    line=config.line_of("suppress"),
                    hint=f"did you mean '{guess}'?" if guess else "add the seed or model",
                )
            )
    for name in config.priority:
        if name not in segments:
            guess = did_you_mean(name, sorted(segments))
            problems.append(
                CadenceError(
                    f"channel '{channel}': priority names '{name}', which is not a segment "
                    "of this channel (a model with key and this channel)",
                    file="cadence.yml",
                    line=config.line_of("priority"),
                    hint=f"did you mean '{guess}'?"
                    if guess
                    else "segments: " + ", ".join(sorted(segments)),
                )
            )
    if problems:
        from cadence.errors import ProjectErrors

        raise problems[0] if len(problems) == 1 else ProjectErrors(problems)


def suppress_relations(parsed: ParsedProject, channel: str) -> tuple[tuple[str, str, str], ...]:
    """(name, relation SQL, (schema, identifier) joined by '.') of each suppression list."""
    config = channel_of(parsed, channel)
    out = []
    seeds = {s.name: s for s in parsed.seeds}
    for name in config.suppress:
        model = parsed.model(name)
        if model is not None:
            out.append((name, model.relation, f"{model.schema}.{model.identifier}"))
        elif name in seeds:
            seed = seeds[name]
            out.append((name, seed.relation, f"{seed.schema}.{seed.table}"))
    return tuple(out)


def segment_audience_sql(
    parsed: ParsedProject,
    channel: str,
    segment: str,
    columns: tuple[str, ...] = (),
    *,
    present: Collection[str] | None = None,
) -> str:
    """One segment's rows of the channel's audience (plus ``columns`` of the segment).
    ``present``: names of segments whose live relation exists (others cannot claim keys)."""
    segments = segments_of(parsed, channel)
    config = channel_of(parsed, channel)
    model = next(m for m in segments if m.name == segment)
    key = quote(model.config.key or "")
    key_text = f"cast(m.{key} as varchar)"
    conditions = [f"m.{key} is not null"]
    for _name, relation, _ident in suppress_relations(parsed, channel):
        conditions.append(
            f"not exists (select 1 from {relation} as s "
            f"where cast(s.{key} as varchar) = {key_text})"
        )
    if segment in config.priority:
        for earlier in config.priority[: config.priority.index(segment)]:
            other = next((m for m in segments if m.name == earlier), None)
            if other is None or (present is not None and earlier not in present):
                continue
            other_key = quote(other.config.key or "")
            conditions.append(
                f"not exists (select 1 from {other.relation} as p "
                f"where cast(p.{other_key} as varchar) = {key_text})"
            )
    holdout = holdout_of(model)
    held = holdout_sql(holdout.salt, key_text, holdout.percent) if holdout else "false"
    extra = "".join(f", m.{quote(c)} as {quote(c)}" for c in columns)
    where = "\n  and ".join(conditions)
    return (
        f"select {_literal(segment)} as segment, {key_text} as key, {held} as held_out{extra}\n"
        f"from {model.relation} as m\nwhere {where}"
    )


def missing_export_column(
    engine: Engine, config: ChannelConfig, segment: str, relation: str
) -> str | None:
    """Why the export's ``columns`` cannot be read from the segment (None: they can), naming
    cadence.yml and the line; checked where the state lives with the warehouse (DuckDB)."""
    export = config.export
    if export is None or not export.columns or engine.state_store() is not engine:
        return None
    have = [str(r[0]) for r in engine.query(f"describe select * from {relation}")]
    lower = {h.lower() for h in have}
    missing = [c for c in export.columns if c.lower() not in lower]
    if not missing:
        return None
    line = export.columns_line or export.line
    where = f"cadence.yml:{line}: " if line else "cadence.yml: "
    return (
        f"{where}channel '{config.name}' export: column '{missing[0]}' is not a column of "
        f"segment '{segment}' (hint: its columns: {', '.join(have)}; list only columns every "
        "segment of the channel has)"
    )


def key_problem(
    engine: Engine,
    parsed: ParsedProject,
    config: ChannelConfig,
    segment: str,
    present: Collection[str] | None = None,
) -> str | None:
    """Why the segment's audience cannot be computed because a key column is missing (None:
    it can), checked before any of its SQL runs: the segment's ``key`` must be a column of the
    segment, of each suppression list, and each earlier ``priority`` segment's key of that
    segment. The message names where the key is set (file:line) and the columns there are, so
    a wrong key fails this segment's delivery with its cause, never with the audience SQL."""
    model = next((m for m in segments_of(parsed, config.name) if m.name == segment), None)
    if model is None or not model.config.key:
        return None
    checks = [(model, model.relation, f"segment '{segment}'")]
    checks += [
        (model, relation, f"suppression list '{name}' (cadence.yml:{config.line_of('suppress')})")
        for name, relation, _ident in suppress_relations(parsed, config.name)
    ]
    if segment in config.priority:
        for earlier in config.priority[: config.priority.index(segment)]:
            other = parsed.model(earlier)
            if other is not None and other.config.key and (present is None or earlier in present):
                checks.append((other, other.relation, f"segment '{earlier}' (earlier in priority)"))
    for owner, relation, what in checks:
        key = owner.config.key or ""
        try:
            have = [str(r[0]) for r in engine.query(f"describe select * from {relation}")]
        except (EngineError, CadenceError):
            continue  # cannot be described here: computing the audience says why
        if key.lower() in {h.lower() for h in have}:
            continue
        file, line = owner.config.origins.get("key", (owner.path, None))
        where = f"{file}:{line}" if line else file
        guess = did_you_mean(key, have)
        hint = (f"did you mean '{guess}'? " if guess else "") + "its columns: " + ", ".join(have)
        return (
            f"{where}: key '{key}' of segment '{owner.name}' is not a column of {what} "
            f"(hint: {hint})"
        )
    return None


def empty_audience_sql(columns: Sequence[str], column_types: Sequence[tuple[str, str]] = ()) -> str:
    """The audience of a segment the channel no longer receives: no rows, the same columns."""
    types = dict(column_types)
    cols = "".join(f", cast(null as {types.get(c, 'VARCHAR')}) as {quote(c)}" for c in columns)
    return (
        "select cast(null as varchar) as segment, cast(null as varchar) as key, "
        f"false as held_out{cols} where 1 = 0"
    )


def audience_sql(
    parsed: ParsedProject, channel: str, *, present: Collection[str] | None = None
) -> str:
    """The channel's whole audience (contract (b)): ``segment, key, held_out`` per row."""
    parts = [
        segment_audience_sql(parsed, channel, m.name, present=present)
        for m in segments_of(parsed, channel)
        if present is None or m.name in present
    ]
    if not parts:
        return (
            "select cast(null as varchar) as segment, cast(null as varchar) as key, "
            "cast(null as boolean) as held_out where 1 = 0"
        )
    return "\nunion all\n".join(parts)


__all__ = [
    "Holdout",
    "audience_sql",
    "empty_audience_sql",
    "missing_export_column",
    "check_channel",
    "holdout_sql",
    "is_held_out",
    "key_problem",
    "segment_audience_sql",
    "segments_of",
]
