"""Observing a finished run: freshness per channel and source, alert transitions, metrics.

Entered through ``cadence.observe`` (``observe`` after a run, ``check`` for ``status``,
``Observer`` for ``serve``). Input: the parsed project, its
cadences, this run's results and deliveries, the warehouse (only to read the newest
``loaded_at`` of sources, and only after a run that did work) and ``now`` -> output:
``target/observe.json`` (``record``), alerts sent (``alerts``) and ``target/metrics.prom``
(``metrics``).
Invariants: it reads state, never builds; an invocation with nothing new (no build, no
delivery, no objective crossing due, no alert pending) does nothing but read one small file;
an alert or metrics problem never fails or delays a run (it is reported as a warning);
``next_wake`` is the next instant an idle run has something to observe.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadence.activation import datatime
from cadence.activation.stale import loaded_at
from cadence.observe import record
from cadence.observe.objectives import Standing, source_standing, standing, worst
from cadence.observe.record import next_wake


@dataclass(frozen=True)
class ObserveReport:
    events: int = 0
    sent: int = 0
    pending: int = 0
    warning: str | None = None


def channel_segments(parsed: Any, channel: str) -> list[str]:
    """The models feeding a channel directly (its segments, for its lag)."""
    return sorted(
        m.name
        for m in parsed.models
        if channel in m.config.channels and m.materialized != "ephemeral"
    )


def _objective(config: Any) -> tuple[float | None, float | None] | None:
    f = config.freshness
    return None if f is None else (f.warn_after_s, f.error_after_s)


def channel_standings(
    parsed: Any, cadences: Any, data: Mapping[str, Any], now: dt.datetime
) -> list[Standing]:
    """Every channel's freshness at ``now`` from the record ``data`` (pure)."""
    out = []
    for config in parsed.config.channels:
        entry = data.get("channels", {}).get(config.name, {})
        schedule = cadences.channels.get(config.name)
        ticks = None if schedule is None or schedule.on_demand else schedule
        out.append(
            standing(
                config.name,
                ticks,
                parsed.config.tz,
                _objective(config),
                record.time(entry.get("data_at")),
                record.time(entry.get("since")),
                now,
            )
        )
    return out


def source_standings(parsed: Any, data: Mapping[str, Any], now: dt.datetime) -> list[Standing]:
    """Sources declaring dbt's ``freshness:``: their newest loaded_at against it (pure)."""
    out = []
    for s in parsed.sources:
        if s.warn_after_s is None and s.error_after_s is None:
            continue
        name = f"{s.source_name}.{s.table}"
        loaded = record.time(data.get("sources", {}).get(name, {}).get("loaded_at"))
        out.append(source_standing(name, s.warn_after_s, s.error_after_s, loaded, now))
    return out


def _segment_times(
    parsed: Any, dag: Any, engine: Any, built: list[str], at: dt.datetime, tz: Any
) -> tuple[dict[str, str], dict[str, str | None]]:
    """Per segment built now, the time of its data: the newest loaded_at of the sources behind
    it that declare one, else the start of its build; and the loaded_at read per source."""
    by_key = {(s.source_name, s.table): s for s in parsed.sources if s.loaded_at}
    # the sources each model reads itself, indexed once (not once per segment built)
    reads = {m.name: m.sources for m in parsed.models if m.sources} if by_key else {}
    loaded: dict[str, str | None] = {}
    times: dict[str, str] = {}
    for name in built:
        newest: dt.datetime | None = None
        # no source declares a loaded_at: every segment's data time is its build's start,
        # without walking the graph upstream of each
        behind = (
            {k for n in (name, *dag.ancestors(name)) for k in reads.get(n, ())} if reads else ()
        )
        for key in behind:
            src = by_key.get(key)
            if src is None:
                continue
            label = f"{src.source_name}.{src.table}"
            if label not in loaded:
                loaded[label] = record.iso(loaded_at(engine, src, tz))
            value = record.time(loaded[label])
            if value is not None and (newest is None or value > newest):
                newest = value
        times[name] = record.iso(min(newest, at) if newest else at) or at.isoformat()
    return times, loaded


def observe(
    root: Path,
    parsed: Any,
    dag: Any,
    cadences: Any,
    engine: Any,
    result: Any,
    now: dt.datetime,
    *,
    state: Any = None,
    env: Mapping[str, str] | None = None,
    run_duration_s: float | None = None,
) -> ObserveReport | None:
    """After a run: record freshness, make and send alerts, write metrics. None: nothing to do
    (an idle run before the next crossing)."""
    previous = record.read(root)
    built = [r.name for r in result.results if r.status == "success"]
    deliveries = [d.to_json() for d in (result.deliveries.deliveries if result.deliveries else ())]
    worked = bool(built or deliveries or any(r.status != "skipped" for r in result.results))
    wake = next_wake(previous)
    if previous is not None and not worked and (wake is None or now < wake):
        return None
    data = previous or record.empty()
    fed_by = {c.name: channel_segments(parsed, c.name) for c in parsed.config.channels}
    feeding = {s for names in fed_by.values() for s in names}
    segments = {k: v for k, v in data["segments"].items() if k in feeding}
    if state is not None:  # first observation of a project with history: its last builds
        for name in feeding - set(segments):
            last = state.of(name).last_success_at
            if last is not None:
                segments[name] = last.isoformat()
    # a record lost (deleted, unreadable): what the destinations acknowledged is in the state
    acknowledged = _acknowledged(parsed, engine) if previous is None else {}
    fed = [name for name in built if name in feeding]
    times, loaded = _segment_times(parsed, dag, engine, fed, result.at, parsed.config.tz)
    segments.update(times)
    for src in parsed.sources if worked else ():  # sources with an objective: read each time
        label = f"{src.source_name}.{src.table}"
        declared = src.warn_after_s is not None or src.error_after_s is not None
        if declared and src.loaded_at and label not in loaded:
            loaded[label] = record.iso(loaded_at(engine, src, parsed.config.tz))
    data["stats"] = _stats(data.get("stats") or {}, state, result)
    if worked:
        data["run_duration_s"] = run_duration_s
        pending = _pending(parsed, engine)
    sources = {k: dict(v) for k, v in data["sources"].items()}
    for name, value in loaded.items():
        sources.setdefault(name, {})["loaded_at"] = value
    delivered = {
        (d["channel"], d["segment"]) for d in deliveries if d["status"] in ("delivered", "nothing")
    }
    # the data time each freeze recorded with the version it took (activation.datatime)
    frozen = datatime.read(engine.state_store()) if delivered and engine is not None else {}
    channels: dict[str, Any] = {}
    for config in parsed.config.channels:
        entry = dict(data["channels"].get(config.name, {}))
        entry.setdefault("since", now.isoformat())
        per_segment = dict(entry.get("segments", {}))
        names = fed_by[config.name]
        for seg in names:
            if config.export is None:  # without a destination, the publish counts
                if seg in segments:
                    per_segment[seg] = segments[seg]
            elif (config.name, seg) in delivered:  # what the destination acknowledged
                took = record.iso(frozen.get((config.name, seg))) or segments.get(seg)
                if took is not None:
                    per_segment[seg] = took
            elif (config.name, seg) in acknowledged and seg not in per_segment:
                per_segment[seg] = acknowledged[(config.name, seg)]
        if any(c == config.name for c, _ in delivered):
            entry["last_delivery_at"] = now.isoformat()
        if worked and config.export is not None:
            entry["pending"] = pending.get(config.name)
        values = [record.time(per_segment.get(s)) for s in names]
        entry["segments"] = {s: per_segment[s] for s in names if s in per_segment}
        entry["data_at"] = (
            record.iso(min(v for v in values if v is not None))
            if names and all(v is not None for v in values)
            else None
        )
        channels[config.name] = entry
    data = {
        **data,
        "holds": held_reasons(data.get("holds") or {}, deliveries),
        "at": now.isoformat(),
        "segments": segments,
        "sources": sources,
        "channels": channels,
    }
    return _transitions(root, parsed, cadences, data, result, deliveries, now, env, worked)


def held_reasons(previous: Mapping[str, str], deliveries: list[dict[str, Any]]) -> dict[str, str]:
    """Channel x segment -> the reason its delivery is held (an input it reads failing), as
    this run reported it; any other outcome of its delivery clears it."""
    holds = dict(previous)
    for d in deliveries:
        key = f"{d['channel']}/{d['segment']}"
        if d["status"] == "held":
            holds[key] = d.get("error") or ""
        else:
            holds.pop(key, None)
    return holds


def _transitions(
    root: Path,
    parsed: Any,
    cadences: Any,
    data: dict[str, Any],
    result: Any,
    deliveries: list[dict[str, Any]],
    now: dt.datetime,
    env: Mapping[str, str] | None,
    worked: bool,
) -> ObserveReport:
    from cadence.observe import alerts  # not on the idle path: it pulls in http.client, ssl

    project = parsed.config.name
    chans = channel_standings(parsed, cadences, data, now)
    srcs = source_standings(parsed, data, now)
    events = alerts.freshness_events(
        "channel",
        {n: e.get("state", "ok") for n, e in data["channels"].items()},
        {s.name: _figures(s) for s in chans},
        now,
        project,
    )
    events += alerts.freshness_events(
        "source",
        {n: e.get("state", "ok") for n, e in data["sources"].items()},
        {s.name: _figures(s) for s in srcs},
        now,
        project,
    )
    for s in chans:
        data["channels"][s.name]["state"] = s.state
    for s in srcs:
        data["sources"].setdefault(s.name, {})["state"] = s.state
    results = [(r.name, r.status, r.error) for r in result.results]
    data["models"], model_events = alerts.model_events(data["models"], results, now, project)
    data["deliveries"], delivery_events = alerts.delivery_events(
        data["deliveries"], deliveries, now, project
    )
    events += model_events + delivery_events
    config = parsed.config.alerts
    outbox = alerts.bounded(list(data["outbox"]) + events) if config else []
    report = alerts.SendReport(0, 0)
    if config and outbox:
        outbox, report = alerts.send(config, outbox, env or {})
    data["outbox"] = outbox
    data["alert_error"] = report.error
    crossings = [s.next_change for s in chans + srcs if s.next_change is not None]
    if outbox:  # retried at the next invocation (SPEC 11), whenever in its minute it starts
        crossings.append(now)
    data["next_wake"] = record.iso(min(crossings, default=None))
    warning = report.error
    try:
        record.write(root, data)
        if worked:
            from cadence.observe import metrics

            metrics.write(root, project, data, chans, data.get("run_duration_s"))
    except OSError as exc:
        warning = f"observe: {exc}"
    return ObserveReport(len(events), report.sent, len(outbox), warning)


def _stats(previous: Mapping[str, Any], state: Any, result: Any) -> dict[str, Any]:
    """Per model: last success, last duration, builds and failures (for metrics)."""
    stats = {k: dict(v) for k, v in previous.items()}
    for name, st in state.models.items() if state is not None else ():
        if name not in stats:
            stats[name] = {
                "last_success_at": record.iso(st.last_success_at),
                "last_duration_s": st.last_duration_s,
                "builds": st.builds,
                "failures": 1 if st.last_status == "error" else 0,
            }
    for r in result.results:
        if r.status not in ("success", "error"):
            continue
        entry = stats.setdefault(r.name, {"builds": 0, "failures": 0})
        entry["builds"] = int(entry.get("builds") or 0) + 1
        if r.status == "success":
            entry["last_success_at"] = result.at.isoformat()
            entry["last_duration_s"] = round(r.duration_s, 6)
        else:
            entry["failures"] = int(entry.get("failures") or 0) + 1
    return stats


def _acknowledged(parsed: Any, engine: Any) -> dict[tuple[str, str], str]:
    """(channel, segment) -> the data time of its last freeze, where a delivery was made and
    nothing frozen waits to be delivered: every freeze, the last included, was acknowledged."""
    if engine is None or not any(c.export is not None for c in parsed.config.channels):
        return {}
    from cadence.activation import queries

    try:
        rows = queries.delivery_status(parsed, engine)
        frozen = datatime.read(engine.state_store())
    except Exception:  # noqa: BLE001 - observing never fails a run
        return {}
    out: dict[tuple[str, str], str] = {}
    for row in rows:
        key = (row["channel"], row["segment"])
        value = record.iso(frozen.get(key))
        if value is not None and row["last"] is not None and not row["pending"]:
            out[key] = value
    return out


def _pending(parsed: Any, engine: Any) -> dict[str, int]:
    """Membership changes not yet delivered, per channel with a destination."""
    if engine is None or not any(c.export is not None for c in parsed.config.channels):
        return {}
    from cadence.activation import queries

    totals: dict[str, int] = {}
    try:
        rows = queries.delivery_status(parsed, engine)
    except Exception:  # noqa: BLE001 - metrics never fail a run
        return {}
    for row in rows:
        totals[row["channel"]] = totals.get(row["channel"], 0) + int(row.get("pending") or 0)
    return totals


def _figures(s: Standing) -> dict[str, Any]:
    return {
        "state": s.state,
        "lag_s": None if s.lag_s is None else round(s.lag_s, 3),
        "data_at": record.iso(s.data_at),
        "warn_after_s": s.warn_after_s,
        "error_after_s": s.error_after_s,
        "reason": s.reason,
    }


def check(parsed: Any, cadences: Any, root: Path, now: dt.datetime) -> dict[str, Any]:
    """For ``status`` (and ``--check``, ``serve``): per channel and source its freshness at
    ``now``, from the record alone (never the warehouse), and the worst state."""
    data = record.read(root) or record.empty()
    chans = channel_standings(parsed, cadences, data, now)
    srcs = source_standings(parsed, data, now)
    tz = parsed.config.tz
    rows = [s.to_json(tz) for s in chans]
    source_rows = []
    for s in srcs:
        row = s.to_json(tz)
        row["source"] = row.pop("channel")
        row["loaded_at"] = row.pop("data_at")
        source_rows.append(row)
    return {
        "channels": rows,
        "sources": source_rows,
        "state": worst([s.state for s in chans + srcs]),
        "observed_at": data.get("at"),
        "alerts_pending": len(data.get("outbox") or []),
    }


class Observer:
    """What ``cadence serve`` asks of the observe wing: per channel its freshness state (for
    /healthz) and the metrics text (for GET /metrics), from the record alone."""

    def __init__(self, root: Path, parsed: Any, cadences: Any) -> None:
        self.root, self.parsed, self.cadences = root, parsed, cadences

    def states(self, now: dt.datetime) -> dict[str, dict[str, Any]]:
        data = record.read(self.root) or record.empty()
        return {
            s.name: _figures(s) for s in channel_standings(self.parsed, self.cadences, data, now)
        }

    def metrics(self, now: dt.datetime) -> bytes:
        from cadence.observe import metrics

        data = record.read(self.root) or record.empty()
        chans = channel_standings(self.parsed, self.cadences, data, now)
        return metrics.render(self.parsed.config.name, data, chans, data.get("run_duration_s"))
