"""Read-only reports over a loaded project and its state: status, explain.

The cost model and lint live in the review wing (``cadence.review``).

Input: ``Project``, ``StateSnapshot``, ``now`` -> output: plain data (dicts, strings) the CLI
renders. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from cadence.errors import CadenceError
from cadence.plan.due import fmt, real_instant, retry_time, run_dependent_views
from cadence.plan.history import StateSnapshot


def age(then: dt.datetime | None, now: dt.datetime) -> str | None:
    if then is None:
        return None
    seconds = int((now - then).total_seconds())
    if seconds < 0:
        return "in the future"
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def parse_horizon(text: str) -> dt.timedelta:
    m = re.fullmatch(r"\s*(\d+)\s*([mhd])\s*", text)
    if not m:
        from cadence.errors import UsageError

        raise UsageError(
            f"cannot read horizon '{text}'", hint="use minutes, hours or days: 90m, 24h, 7d"
        )
    n, unit = int(m.group(1)), m.group(2)
    return {"m": dt.timedelta(minutes=n), "h": dt.timedelta(hours=n), "d": dt.timedelta(days=n)}[
        unit
    ]


def status_report(project: Any, state: StateSnapshot, now: dt.datetime) -> list[dict[str, Any]]:
    tz = project.tz

    def local(t: dt.datetime | None) -> str | None:
        """An instant in the project timezone, as every time in ``status --json``."""
        return real_instant(t).astimezone(tz).isoformat() if t is not None else None

    plan = project.plan(now, state=state)
    behind = dict(plan.clock_behind)
    rows = []
    for name in project.model_names():
        model = project.parsed.model(name)
        cad = project.cadences.of(name)
        st = state.of(name)
        d = plan.get(name)
        ticking = cad.has_ticks and model.materialized not in ("view", "ephemeral")
        latest = cad.ticks.latest_tick(now, tz) if ticking else None
        previous = cad.ticks.previous_tick(latest, tz) if latest else None
        nxt = cad.ticks.next_tick(now, tz) if ticking else None
        overdue = bool(
            ticking
            and not (d is not None and d.current)
            and latest
            and (
                st.last_success_at is None
                or (previous is not None and st.last_success_at < previous)
            )
        )
        retry = None
        if st.last_status == "error" and st.last_attempt_at:
            retry_at = retry_time(
                st.last_attempt_at, st.failure_streak, cad.ticks.nominal_interval()
            )
            retry = local(max(retry_at, now))
        recorded_after = behind.get(name)
        rows.append(
            {
                "name": name,
                "materialized": model.materialized,
                # a build recorded after now: the clock went back (see due.clock_behind)
                "recorded_after_now": local(recorded_after),
                "channels": list(cad.channels),
                "cadence": cad.describe(),
                "provenance": cad.provenance(),
                "last_good_build": local(st.last_success_at),
                "last_good_age": age(st.last_success_at, now),
                "last_status": st.last_status,
                "last_error": st.last_error,
                "failure_streak": st.failure_streak,
                "next_retry": retry,
                "next_tick": nxt.isoformat() if nxt else None,
                # an instant with its offset, as every time in --json (the text shows it as
                # "2026-06-01 09:05 EDT")
                "next_tick_local": real_instant(nxt).astimezone(tz).isoformat() if nxt else None,
                "due": bool(d and d.builds),
                "overdue": overdue,
            }
        )
    return rows


def explain_model(project: Any, state: StateSnapshot, now: dt.datetime, name: str) -> str:
    tz = project.tz
    model = project.parsed.model(name)
    cad = project.cadences.of(name)
    st = state.of(name)
    plan = project.plan(now, state=state)
    d = plan.get(name)
    lines = [f"{name} ({model.materialized}, {model.path}) at {fmt(now, tz)}"]
    lines.append(f"  cadence: {cad.describe()}")
    lines.append(f"  because: {cad.provenance()}")
    if cad.channels:
        lines.append(f"  serves channels: {', '.join(cad.channels)}")
    if model.materialized in ("view", "ephemeral"):
        lines.append(
            f"  a {model.materialized} is never built on ticks (it shows current data); "
            "its ticks pass to the tables upstream"
        )
        why = model.run_dependent or run_dependent_views(project.parsed, project.dag).get(name)
        if why:
            again = "recreated" if model.materialized == "view" else "rendered again"
            lines.append(
                f"  its SQL depends on the run ({why}): {again} at the run's time for each "
                "build of a model that reads it"
            )
    elif cad.has_ticks:
        latest = cad.ticks.latest_tick(now, tz)
        lines.append(f"  latest tick <= now: {fmt(latest, tz)}")
        lines.append(f"  next tick: {fmt(cad.ticks.next_tick(now, tz), tz)}")
    lines.append(
        f"  last successful build started: {fmt(st.last_success_at, tz)}"
        + (f" (served tick {fmt(st.last_success_tick, tz)})" if st.last_success_tick else "")
    )
    if st.last_status and st.last_status != "success":
        lines.append(
            f"  last attempt: {st.last_status} at {fmt(st.last_attempt_at, tz)}: {st.last_error}"
        )
    parents = project.dag.parents.get(name, ())
    if parents:
        lines.append(f"  reads: {', '.join(parents)}")
    if d is None:
        lines.append("  decision: not considered")
    else:
        verdict = "DUE" if d.builds else "skip"
        lines.append(f"  decision: {verdict}: {d.reason}")
        if d.pulled_by:
            lines.append(f"  pulled in by: {d.pulled_by}")
    also = [x for x in plan.to_build() if x.pulled_by == name]
    for x in also:
        lines.append(f"  would also build upstream {x.name}: {x.reason}")
    return "\n".join(lines)


def lint_engine(project: Any, engine: str) -> list[CadenceError]:
    """``lint --engine spark``: constructs of each model that cannot run on that engine
    (errors) or could return different results there (warnings), with file and line."""
    if engine != "spark":
        return []
    try:
        from cadence.engines.spark_dialect import findings, locate
    except ImportError:
        return [
            CadenceError(
                "lint --engine spark needs sqlglot",
                file="cadence.yml",
                hint="pip install 'cadence[spark]'",
            )
        ]
    out: list[CadenceError] = []
    for m in project.parsed.models:
        if m.materialized == "ephemeral":
            continue  # checked where it is inlined
        try:
            sql = project.compiler.compile(m.name, None, None, False).sql
        except CadenceError as exc:
            out.append(exc)
            continue
        source = (project.root / m.path).read_text(encoding="utf-8", errors="replace")
        for f in findings(sql):
            out.append(
                CadenceError(
                    f"spark: {f.message}",
                    file=m.path,
                    line=locate(source, f.construct),
                    severity="error" if f.severity == "error" else "warning",
                    hint="rewrite it in the subset both engines run alike (docs/guides/spark.md)",
                )
            )
    return out
