"""``cadence lint``: warnings about cadences that buy nothing and segments that cannot work
(SPEC §10).

Input: a loaded ``Project`` (and, for the rules that compare with what was recorded, the
``StateSnapshot``, read-only) -> output: a list of ``CadenceError`` with ``severity="warning"``,
each with file, line where known, a hint, and the rule's name in brackets at the end of the
message (docs/guides/choosing-cadences.md explains every rule). Nothing here writes.

Rules: ``slower-upstream``, ``faster-than-source``, ``ads-faster-than-hourly``,
``unused-channel``, ``export-without-key``, ``segment-without-key``,
``incremental-without-key``, ``never-refreshed``, ``holdout-changed``,
``unknown-audience-name``, ``slower-suppression``; plus the warnings the
parser found (unknown YAML entries, unsupported tests).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from cadence.errors import CadenceError
from cadence.load.projectconfig import PROJECT_FILE
from cadence.plan.schedule import CadenceSyntaxError, parse_cadence

HOUR = dt.timedelta(hours=1)
TICKED = ("table", "incremental", "snapshot")  # built at ticks (views show current data)


def _warn(rule: str, message: str, file: str | None, line: int | None, hint: str) -> CadenceError:
    return CadenceError(f"{message} [{rule}]", file=file, line=line, hint=hint, severity="warning")


def _interval(cad: Any) -> dt.timedelta | None:
    return cad.ticks.nominal_interval() if cad.has_ticks else None


def _show(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    for size, unit in ((1440, "day"), (60, "hour"), (1, "minute")):
        if minutes % size == 0:
            n = minutes // size
            return f"{unit}" if n == 1 else f"{n} {unit}s"
    return f"{minutes} minutes"  # pragma: no cover


def _ref_line(model: Any, name: str) -> int | None:
    for ref, line, _column in model.ref_lines:
        if ref == name:
            return int(line)
    return None


def _config_line(model: Any, key: str) -> tuple[str, int | None]:
    """Where ``key`` is set: the recorded origin, else its line in the model's config() call."""
    file, line = model.config.origins.get(key, (model.path, None))
    if line is None and file == model.path:
        for number, text in enumerate(model.raw_sql.splitlines(), start=1):
            if key in text and "config(" in model.raw_sql[: model.raw_sql.find(text) + len(text)]:
                return file, number
    return file, line


def _table_parents(project: Any, name: str) -> Iterator[tuple[str, str]]:
    """(upstream table, the direct parent it is read through): through views and ephemerals."""
    models = project.parsed.by_name
    for direct in project.dag.parents.get(name, ()):
        stack, seen = [direct], set()
        while stack:
            parent = stack.pop()
            if parent in seen or parent not in models:
                continue
            seen.add(parent)
            if models[parent].materialized in TICKED:
                yield parent, direct
            else:
                stack.extend(project.dag.parents.get(parent, ()))


def lint(
    project: Any, delivered: dict[str, tuple[tuple[str, bool], ...]] | None = None
) -> list[CadenceError]:
    """Every warning for the project (parse warnings first, then the rules, in DAG order).
    ``delivered``: per segment, delivered keys with their recorded holdout group
    (``recorded_groups``); without it the holdout rule is not checked."""
    warnings = list(project.parsed.warnings)
    warnings += _model_rules(project)
    warnings += _source_rules(project)
    warnings += _channel_rules(project)
    if delivered:
        warnings += _holdout_rules(project, delivered)
    return warnings


def recorded_groups(project: Any) -> dict[str, tuple[tuple[str, bool], ...]]:
    """What the warehouse recorded of each segment's delivered holdout groups (read-only; empty
    without a warehouse, or while a run holds it)."""
    from cadence.build.lock import current_holder
    from cadence.engines.base import EngineError
    from cadence.record.state import read_delivered_groups

    if not project.warehouse_exists() or current_holder(project.root) is not None:
        return {}
    segments = tuple(m.name for m in project.parsed.models if m.config.key)
    try:
        engine = project.open_engine(read_only=True)
    except (CadenceError, EngineError):
        return {}
    try:
        return read_delivered_groups(engine, segments)
    finally:
        engine.close()


def _holdout_rules(
    project: Any, delivered: dict[str, tuple[tuple[str, bool], ...]]
) -> list[CadenceError]:
    """A live segment whose holdout now puts delivered members in the other group: its percent
    or salt changed (or it was removed), so members move between held-out and treated."""
    from cadence.activation.audience import holdout_of, is_held_out

    out = []
    for name, keys in sorted(delivered.items()):
        m = project.parsed.model(name)
        if m is None or not keys:
            continue
        holdout = holdout_of(m)
        moved = sum(
            1
            for key, held in keys
            if held != (is_held_out(holdout.salt, key, holdout.percent) if holdout else False)
        )
        if not moved:
            continue
        file, line = _config_line(m, "holdout")
        now = f"{holdout.percent:g}% with salt '{holdout.salt}'" if holdout else "no holdout"
        out.append(
            _warn(
                "holdout-changed",
                f"the holdout of live segment '{name}' changed (now {now}): {moved} of "
                f"{len(keys)} delivered member(s) checked would move between the held-out and "
                "the treated group",
                file,
                line,
                "keep percent and salt while an experiment runs; start a new segment for a new "
                "holdout, or rebaseline the channel on purpose (cadence export --rebaseline)",
            )
        )
    return out


def _model_rules(project: Any) -> list[CadenceError]:
    out = []
    channels = {c.name: c for c in project.parsed.config.channels}
    for name in project.model_names():
        m = project.parsed.model(name)
        cad = project.cadences.of(name)
        mine = _interval(cad)
        if mine is not None and m.materialized in TICKED:
            reported: set[str] = set()
            for parent, direct in _table_parents(project, name):
                pcad = project.cadences.of(parent)
                theirs = _interval(pcad)
                if (
                    parent in reported
                    or not pcad.explicit
                    or (theirs is not None and theirs <= mine)
                ):
                    continue
                reported.add(parent)
                pfile, pline = _config_line(project.parsed.model(parent), "cadence")
                out.append(
                    _warn(
                        "slower-upstream",
                        f"'{name}' ({cad.describe()}) reads '{parent}', whose own cadence "
                        f"({pcad.describe()}) is slower: '{name}' cannot be fresher "
                        f"than '{parent}'",
                        m.path,
                        _ref_line(m, direct),
                        f"{pfile}:{pline or 1}: remove the cadence of '{parent}' so it is "
                        "refreshed for its readers, or accept the lag",
                    )
                )
        exported = [
            c for c in m.config.channels if c in channels and channels[c].export is not None
        ]
        if m.materialized in TICKED and not m.config.key and exported:
            file, line = _config_line(m, "channels")
            out.append(
                _warn(
                    "export-without-key",
                    f"segment '{name}' feeds channel(s) with an export "
                    f"({', '.join(exported)}) but has no key: nothing can be delivered",
                    file,
                    line,
                    "add config(key='customer_id') (the member key column) to the segment",
                )
            )
        elif m.materialized in TICKED and not m.config.key and m.config.channels:
            file, line = _config_line(m, "channels")
            out.append(
                _warn(
                    "segment-without-key",
                    f"segment '{name}' feeds channels but has no key, so no entered/exited lists",
                    file,
                    line,
                    "add config(key='customer_id') or similar",
                )
            )
        if m.materialized == "incremental" and not (m.config.watermark or m.config.unique_key):
            out.append(
                _warn(
                    "incremental-without-key",
                    f"incremental model '{name}' has neither unique_key nor watermark",
                    m.path,
                    None,
                    "set unique_key to avoid duplicate rows",
                )
            )
        deliberate = cad.explicit and m.config.cadence and "demand" in m.config.cadence.lower()
        if m.materialized in TICKED and not cad.has_ticks and not deliberate:
            out.append(
                _warn(
                    "never-refreshed",
                    f"nothing refreshes '{name}': it feeds no channel, has no cadence and no "
                    "consumer with ticks; never due, built only when selected",
                    m.path,
                    None,
                    "add channels: [...] or a cadence, set cadence: 'on demand' if that is "
                    "intended, or remove it",
                )
            )
    return out


def _source_rules(project: Any) -> list[CadenceError]:
    """A model refreshed faster than data lands in a source it reads wastes builds."""
    out = []
    landing: dict[tuple[str, str], tuple[dt.timedelta, Any]] = {}
    for s in project.parsed.sources:
        if not s.updates:
            continue
        try:
            interval = parse_cadence(str(s.updates)).nominal_interval()
        except CadenceSyntaxError as exc:
            out.append(
                _warn(
                    "faster-than-source",
                    f"cannot read updates '{s.updates}' of source {s.source_name}.{s.table}",
                    s.file,
                    s.line,
                    f"write it as a cadence, e.g. 'every 10 minutes' ({exc.message})",
                )
            )
            continue
        if interval is not None:
            landing[(s.source_name, s.table)] = (interval, s)
    if not landing:
        return out
    reads: dict[str, set[tuple[str, str]]] = {}
    for name in project.dag.order:  # sources read directly or through upstream models
        m = project.parsed.model(name)
        if m is None:
            continue
        found = set(m.sources)
        for parent in project.dag.parents.get(name, ()):
            found |= reads.get(parent, set())
        reads[name] = found
    for name in project.model_names():
        m = project.parsed.model(name)
        mine = _interval(project.cadences.of(name))
        if mine is None or m.materialized not in TICKED:
            continue
        keys = reads.get(name, set())
        # only when every source it reads lands slower: one fast source makes ticks useful
        if not keys or not all(k in landing for k in keys):
            continue
        interval, s = min((landing[k] for k in sorted(keys)), key=lambda x: x[0])
        if interval > mine:
            out.append(
                _warn(
                    "faster-than-source",
                    f"'{name}' is refreshed {project.cadences.of(name).describe()} but the "
                    f"sources it reads update every {_show(interval)} at most "
                    f"({s.source_name}.{s.table}: {s.updates}): most builds see no new data",
                    m.path,
                    None,
                    f"{s.file}:{s.line or 1} declares updates: {s.updates}; slow the "
                    "cadence down to match, or use refresh: on_new_data",
                )
            )
    return out


def _channel_rules(project: Any) -> list[CadenceError]:
    out = []
    fed = {c for m in project.parsed.models for c in m.config.channels}
    for ch in project.parsed.config.channels:
        schedule = project.cadences.channels.get(ch.name)
        interval = schedule.nominal_interval() if schedule is not None else None
        is_ads = (ch.kind or ch.name) == "ads"
        if is_ads and interval is not None and interval < HOUR:
            out.append(
                _warn(
                    "ads-faster-than-hourly",
                    f"ads channel '{ch.name}' refreshes {ch.cadence}, faster than hourly: ad "
                    "platforms absorb audience changes every few hours",
                    PROJECT_FILE,
                    ch.line,
                    "use 'every 4 hours' or slower; faster only costs builds",
                )
            )
        if ch.name not in fed:
            out.append(
                _warn(
                    "unused-channel",
                    f"no model feeds channel '{ch.name}'",
                    PROJECT_FILE,
                    ch.line,
                    f"add config(channels=['{ch.name}']) to a segment, or remove the channel",
                )
            )
        if ch.suppress or ch.priority:
            out += _audience_names(project, ch.name)
        if ch.suppress and schedule is not None:
            out += _slower_suppression(project, ch, schedule)
    return out


def _slower_suppression(project: Any, ch: Any, schedule: Any) -> list[CadenceError]:
    """``slower-suppression``: a suppression list (a model) with an explicit cadence of its own
    slower than the channel's: its current data is used at each delivery (SPEC §7), so someone
    who opted out is still sent entries until the list's next build."""
    out: list[CadenceError] = []
    mine = schedule.nominal_interval()
    if mine is None:
        return out  # an on-demand channel delivers only when asked
    for name in ch.suppress:
        m = project.parsed.model(name)
        if m is None or name not in project.cadences.models:
            continue  # a seed (reloaded when its file changes) or an unknown name
        cad = project.cadences.of(name)
        theirs = _interval(cad)
        if not cad.explicit or (theirs is not None and theirs <= mine):
            continue
        file, line = _config_line(m, "cadence")
        out.append(
            _warn(
                "slower-suppression",
                f"channel '{ch.name}' ({ch.cadence}) suppresses with '{name}', whose own "
                f"cadence ({cad.describe()}) is slower: each delivery reads '{name}' as last "
                f"built, so someone who opted out can still be sent entries until it is rebuilt",
                PROJECT_FILE,
                ch.line_of("suppress"),
                f"{file}:{line or 1}: remove the cadence of '{name}' so it is rebuilt before "
                f"each delivery of '{ch.name}' (it then takes the channel's ticks)",
            )
        )
    return out


def _audience_names(project: Any, channel: str) -> list[CadenceError]:
    """``unknown-audience-name``: what fails the channel's deliveries, found before any runs:
    a ``suppress`` name that is no model or seed, a ``priority`` name that is no segment of it."""
    from cadence.activation.audience import check_channel
    from cadence.errors import ProjectErrors

    try:
        check_channel(project.parsed, channel)
    except CadenceError as exc:
        found = exc.errors if isinstance(exc, ProjectErrors) else (exc,)
        return [
            _warn("unknown-audience-name", e.message, e.file, e.line, e.hint or "") for e in found
        ]
    return []
