"""Render results for people and machines: progress on a terminal, plain lines when piped
(cron mail), JSON with --json. Only the CLI uses this module.

Every line goes out through ``echo``. A command that acts (run, seed, export) first ``date``s
its invocation: the first line it prints, to either stream, is preceded by one line carrying
the invocation's time (ISO 8601 with offset, in the project timezone), so a cron log can be
read by date; an invocation that prints nothing (an idle ``run --due``) stays silent, and JSON
on stdout stays one document (the time line then goes only before lines on stderr).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from cadence.build.runner import Event, ModelResult, RunResult
from cadence.plan.due import Plan, fmt

if TYPE_CHECKING:
    from cadence.review.cost import CostReport

COLORS = {"success": "green", "error": "red", "upstream_failed": "yellow", "skipped": "blue"}
LABEL = {"success": "OK", "error": "ERROR", "upstream_failed": "SKIP", "skipped": "skip"}


def _tty() -> bool:
    return sys.stdout.isatty()


class _Stamp:
    """The time line of this invocation, held until the first line is printed."""

    def __init__(self) -> None:
        self.line: str | None = None
        self.printed = False
        self.json_stdout = False

    def reset(self) -> None:
        self.line, self.printed, self.json_stdout = None, False, False

    def arm(self, line: str, json_stdout: bool, again: bool = False) -> None:
        """``again``: the line was taken but its stream could not be written."""
        if again:
            self.printed = False
        if not self.printed:
            self.line = line
        self.json_stdout = json_stdout

    def take(self, err: bool) -> str | None:
        if self.line is None or (self.json_stdout and not err):
            return None
        line, self.line, self.printed = self.line, None, True
        return line


_STAMP = _Stamp()


def date(
    command: str,
    wall: dt.datetime,
    tz: Any = None,
    at: dt.datetime | None = None,
    *,
    as_json: bool = False,
) -> None:
    """Arm the time line: ``2026-06-01T09:07:02+02:00 cadence run --due`` (and the replayed
    time when ``--at`` is given). ``tz``: the project timezone (None before the project
    loads: the machine's own zone); called again once the project loads, it puts a line not
    printed yet in the project's zone."""
    stamp = wall.astimezone(tz) if tz is not None else wall.astimezone()
    line = f"{stamp.replace(microsecond=0).isoformat()} cadence {command}"
    if at is not None:
        line += f" (as if at {at.isoformat()})"
    _STAMP.arm(line, as_json)


def undate() -> None:
    """Forget the time line and the streams given up: the next invocation in this process
    starts afresh."""
    _STAMP.reset()
    _LOST.clear()


def echo(message: str = "", *, err: bool = False, nl: bool = True) -> None:
    """``click.echo``, after the invocation's time line when it has not been printed yet. A
    stream that cannot be written (the disk of the log it goes to is full, its reader left) is
    given up for the rest of the command (``_give_up``): the work goes on (a run is never cut
    short by its own log), and the exit code still says how it ended."""
    if err in _LOST:
        return
    line = _STAMP.take(err)
    try:
        if line is not None:
            click.echo(line, err=err)
        click.echo(message, err=err, nl=nl)
    except OSError as exc:
        if line is not None:  # the other stream's first line carries it then
            _STAMP.arm(line, _STAMP.json_stdout, again=True)
        _give_up(err, exc)


_LOST: set[bool] = set()  # the streams given up (err: True for stderr)


def _give_up(err: bool, exc: OSError) -> None:
    """Send the rest of a stream that failed to /dev/null (its buffered bytes, and the flush at
    exit, which would otherwise fail again), and say so once on the other stream if it works."""
    _LOST.add(err)
    stream = sys.stderr if err else sys.stdout
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):  # a stream without a file (a test's capture)
        pass
    if not err and isinstance(exc, BrokenPipeError):
        return  # `cadence plan | head`: the reader left, nothing to say
    if not err:
        what = exc.strerror or type(exc).__name__
        echo(f"warning: cannot write to standard output ({what}): the rest is not shown", err=True)


class RunRenderer:
    """Turns run events into lines (and a summary)."""

    def __init__(self, *, as_json: bool, due: bool, tz: Any) -> None:
        self.as_json = as_json
        self.due = due
        self.tz = tz
        self.tty = _tty()
        self._warned: set[tuple[str, str]] = set()  # shown with their model's line

    def _bar(self, total: int) -> Any:
        """A progress bar on a terminal (rich); lines still print above it."""
        if getattr(self, "_progress", None) is None:
            echo(nl=False)  # the time line goes above the bar
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("building"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
            )
            self._task = self._progress.add_task("build", total=total)
            self._progress.start()
        return self._progress

    def event(self, event: Event) -> None:
        if self.as_json:
            return
        if self.tty:
            bar = self._bar(event.total)
            if event.kind == "result":
                bar.advance(self._task)
        if event.kind != "result" or event.result is None:
            return
        r = event.result
        width = len(str(event.total))
        status = (
            click.style(f"{LABEL.get(r.status, r.status):<5}", fg=COLORS.get(r.status))
            if self.tty
            else f"{LABEL.get(r.status, r.status):<5}"
        )
        rows = f" {r.rows} rows" if r.rows is not None else ""
        line = (
            f"[{event.index:>{width}}/{event.total}] {status} {r.name} ({r.duration_s:.2f}s{rows})"
        )
        self._echo(line)
        if r.error:
            self._echo("    " + r.error.replace("\n", "\n    "))
        for w in r.warnings:
            self._echo(f"    warning: {w}")
            self._warned.add((r.name, w))

    def _echo(self, line: str) -> None:
        progress = getattr(self, "_progress", None)
        if progress is None:
            echo(line)
            return
        from rich.text import Text

        progress.console.print(Text.from_ansi(line), highlight=False)

    def finish(self, result: RunResult) -> None:
        if getattr(self, "_progress", None) is not None:
            self._progress.stop()
        if self.as_json:
            doc = result.to_json()
            if result.deliveries is not None and result.deliveries.deliveries:
                doc["deliveries"] = [d.to_json() for d in result.deliveries.deliveries]
            if result.snapshots is not None and result.snapshots.snapshots:
                doc["snapshots"] = [s.to_json() for s in result.snapshots.snapshots]
            echo(json.dumps(doc, indent=2))
            return
        counts: dict[str, int] = {}
        for r in result.results:
            counts[r.status] = counts.get(r.status, 0) + 1
            for w in r.warnings:  # found after the builds (a members file not written)
                if (r.name, w) not in self._warned:
                    echo(f"warning: {r.name}: {w}")
        built = counts.get("success", 0) + counts.get("error", 0) + counts.get("upstream_failed", 0)
        if built == 0:
            if self.tty or not self.due:
                echo("nothing to do" + (" (nothing is due)" if self.due else ""))
            return
        total = (
            result.wall_s
            if result.wall_s is not None
            else sum(r.duration_s for r in result.results)
        )
        parts = [f"{counts.get('success', 0)} built"]
        if counts.get("error"):
            parts.append(f"{counts['error']} failed")
        if counts.get("upstream_failed"):
            parts.append(f"{counts['upstream_failed']} skipped (upstream failed)")
        if counts.get("skipped"):
            parts.append(
                f"{counts['skipped']} not due" if self.due else f"{counts['skipped']} skipped"
            )
        echo(f"done in {total:.2f}s: " + ", ".join(parts))
        for r in result.failed:
            where = f" (compiled SQL: {r.compiled_path})" if r.compiled_path else ""
            first = (r.error or "").splitlines()[0] if r.error else ""
            line = f"error: {r.name}: {first}{where if where not in first else ''}"
            echo(click.style(line, fg="red") if self.tty else line, err=not self.tty)


def plan_json(plan: Plan, project: Any, cost: CostReport | None = None) -> dict[str, Any]:
    tz = project.tz
    models = []
    decisions = {d.name: d for d in plan.decisions}
    for name in project.model_names():  # models only: seeds load when their file changes
        d = decisions.get(name)
        cad = project.cadences.of(name)
        model = project.parsed.model(name)
        nxt = (
            cad.ticks.next_tick(plan.at, tz)
            if cad.has_ticks and model.materialized not in ("view", "ephemeral")
            else None
        )
        models.append(
            {
                "name": name,
                "due": bool(d and d.builds),
                "reason": d.reason if d else "not selected",
                "cadence": cad.describe(),
                "next_tick": nxt.astimezone(tz).isoformat() if nxt else None,
            }
        )
    out: dict[str, Any] = {"at": plan.at.isoformat(), "models": models}
    if cost is not None:
        per_model = {m["name"]: m for m in cost_json(cost)["models"]}
        for row in models:
            c = per_model.get(row["name"], {})
            row["builds_per_day"] = c.get("builds_per_day", 0.0)
            row["compute_s_per_day"] = c.get("compute_s_per_day")
            row["cost_per_month"] = c.get("cost_per_month")
        out["cost"] = cost_json(cost)
    return out


def render_plan(plan: Plan, project: Any, *, as_json: bool) -> None:
    if as_json:
        echo(json.dumps(plan_json(plan, project), indent=2))
        return
    tz = project.tz
    build = plan.to_build()
    echo(f"at {fmt(plan.at, tz)}: {len(build)} to build")
    for d in build:
        echo(f"  build {d.name}: {d.reason}")
    skipped = [d for d in plan.decisions if not d.builds]
    if skipped:
        echo(f"not due ({len(skipped)}):")
        for d in skipped:
            echo(f"  skip  {d.name}: {d.reason}")


def cost_json(report: CostReport) -> dict[str, Any]:
    """The cost model as plain data (``plan --json`` key ``cost``)."""
    return {
        "horizon": report.horizon,
        "models": [
            {
                "name": m.name,
                "builds_per_day": round(m.builds_per_day, 3),
                "own_builds_per_day": round(m.own_builds / report.days, 3) if report.days else 0,
                "pulled_builds_per_day": round(m.pulled_builds / report.days, 3)
                if report.days
                else 0,
                "pulled_by": list(m.pulled_by),
                "avg_duration_s": m.avg_duration_s,
                "compute_s_per_day": m.compute_s_per_day,
                "cost_per_month": _money(report.per_month(m.compute_s_per_day)),
                "channels": {ch: round(n / report.days, 3) for ch, n in m.channel_builds}
                if report.days
                else {},
            }
            for m in report.models
        ],
        "channels": [
            {
                "name": c.name,
                "cadence": c.cadence,
                "models": list(c.models),
                "builds_per_day": round(c.builds_per_day, 3),
                "compute_s_per_day": round(c.compute_s_per_day, 3),
                "cost_per_month": _money(report.per_month(c.compute_s_per_day)),
                "deliveries_per_day": round(c.deliveries_per_day, 3),
            }
            for c in report.channels
        ],
        "total_builds_per_day": round(report.total_builds_per_day, 3),
        "total_compute_s_per_day": round(report.total_compute_s_per_day, 3),
        "total_cost_per_month": _money(report.per_month(report.total_compute_s_per_day)),
        "currency": report.price.currency if report.price else None,
        "no_history": list(report.no_history),
    }


def _money(value: float | None) -> float | None:
    """Money in JSON: 4 decimals, so the cost of a small project does not round to 0."""
    return None if value is None else round(value, 4)


def render_cost(report: CostReport) -> str:
    from cadence.review.render import money

    priced = report.price is not None
    month = f"{'per month':>12}" if priced else ""
    rate = ""
    if report.price is not None:
        price = report.price
        rate = f"; {f'{price.per_compute_hour:g} {price.currency}'.strip()} per compute hour"
    lines = [
        f"cost over {report.horizon} (durations from recorded builds; "
        f"pulled = built because a faster consumer reads it{rate}):",
        f"  {'model':<28} {'builds/day':>10} {'pulled':>7} {'avg s':>8} {'s/day':>9}{month}"
        "  cadence",
    ]
    for m in report.models:
        avg = f"{m.avg_duration_s:.2f}" if m.avg_duration_s is not None else "-"
        compute = f"{m.compute_s_per_day:.1f}" if m.compute_s_per_day is not None else "-"
        pulled = m.pulled_builds / report.days if report.days else 0.0
        cost = f"{money(report.per_month(m.compute_s_per_day), report.price):>12}" if priced else ""
        lines.append(
            f"  {m.name:<28} {m.builds_per_day:>10.1f} {pulled:>7.1f} {avg:>8} "
            f"{compute:>9}{cost}  {m.cadence}"
        )
    lines.append("per channel (a build shared by several channels is split equally among them):")
    for c in report.channels:
        cost = (
            f" {money(report.per_month(c.compute_s_per_day), report.price)}/month" if priced else ""
        )
        received = f" {c.deliveries_per_day:>6.1f} deliveries/day" if c.name != "no channel" else ""
        lines.append(
            f"  {c.name:<28} {c.cadence:<22} {c.builds_per_day:>8.1f} builds/day "
            f"{c.compute_s_per_day:>9.1f} s/day{received}{cost}"
        )
    total_cost = (
        f", {money(report.per_month(report.total_compute_s_per_day), report.price)} per month"
        if priced
        else ""
    )
    lines.append(
        f"total: {report.total_builds_per_day:.1f} builds/day, "
        f"{report.total_compute_s_per_day:.1f} s/day of compute{total_cost}"
    )
    if report.no_history:
        lines.append(f"no history (no recorded builds) for {len(report.no_history)} model(s)")
    return "\n".join(lines)


def _local(iso: str | None, tz: Any) -> str | None:
    """An ISO instant of a status row as people read it: ``2026-06-01 09:05 EDT``."""
    return fmt(dt.datetime.fromisoformat(iso), tz) if iso else None


def render_status(rows: list[dict[str, Any]], tz: Any) -> str:
    out = [f"{'model':<26} {'last good build':<22} {'status':<16} {'next tick':<22} cadence"]
    for r in rows:
        flag = " OVERDUE" if r["overdue"] else ""
        status = (r["last_status"] or "never") + (
            f" x{r['failure_streak']}" if r["failure_streak"] else ""
        )
        out.append(
            f"{r['name']:<26} {r['last_good_age'] or 'never':<22} {status:<16} "
            f"{_local(r['next_tick_local'], tz) or '-':<22} {r['cadence']}{flag}"
        )
        if r["channels"]:
            out.append(f"{'':<26} channels: {', '.join(r['channels'])}")
        if r["last_error"]:
            error = r["last_error"].replace("\n", "\n" + " " * 34)  # under "error: "
            out.append(f"{'':<26} error: {error}")
        if r.get("next_retry"):
            out.append(f"{'':<26} next retry: {_local(r['next_retry'], tz)}")
    return "\n".join(out)


def render_ls(project: Any, chosen: set[str], as_json: bool) -> str:
    rows = []
    for name in project.dag.order:
        if name not in chosen:
            continue
        if project.dag.kinds[name] == "seed":
            seed = next(s for s in project.parsed.seeds if s.name == name)
            rows.append(
                {
                    "name": name,
                    "kind": "seed",
                    "materialized": "seed",
                    "channels": [],
                    "cadence": "when the file changes",
                    "provenance": "",
                    "path": seed.path,
                }
            )
            continue
        m = project.parsed.model(name)
        cad = project.cadences.of(name)
        rows.append(
            {
                "name": name,
                "kind": "model",
                "materialized": m.materialized,
                "channels": list(cad.channels),
                "cadence": cad.describe(),
                "provenance": cad.provenance(),
                "path": m.path,
            }
        )
    if as_json:
        return json.dumps(rows, indent=2)
    if not rows:
        return ""
    width = [max(len(str(r[k])) for r in rows) for k in ("name", "materialized", "cadence")]
    return "\n".join(
        f"{r['name']:<{width[0]}}  {r['materialized']:<{width[1]}}  {r['cadence']:<{width[2]}}  "
        f"{r['path']}".rstrip()
        for r in rows
    )


def render_tests(outcomes: list[Any], as_json: bool) -> str:
    if as_json:
        return json.dumps([o.to_json() for o in outcomes], indent=2)
    lines = []
    for o in outcomes:
        lines.append(f"{o.status.upper():<5} {o.name}" + (f": {o.message}" if o.message else ""))
    fails = sum(o.status == "fail" for o in outcomes)
    warns = sum(o.status == "warn" for o in outcomes)
    passed = sum(o.status == "pass" for o in outcomes)
    errors = sum(o.status == "error" for o in outcomes)
    summary = f"{passed} passed, {fails} failed, {warns} warned"
    lines.append(summary + (f", {errors} errored" if errors else ""))
    return "\n".join(lines)


__all__ = ["ModelResult", "RunRenderer", "plan_json", "render_plan"]


def freshness_lines(fresh: dict[str, Any], tz: Any) -> list[str]:
    """``status``: per channel its lag, objective and state; per source its freshness."""
    from cadence.observe.objectives import human

    def objective(row: dict[str, Any]) -> str:
        o = row["objective"]
        parts = [
            f"{k} {human(o[k + '_after_s'])}"
            for k in ("warn", "error")
            if o.get(k + "_after_s") is not None
        ]
        if not o.get("declared"):
            return "default (warn: older than its 2nd-latest tick, error: its 4th-latest)"
        return ", ".join(parts) or "none"

    lines = []
    for row in fresh["channels"]:
        lag = "never brought up to date" if row["lag_s"] is None else f"lag {human(row['lag_s'])}"
        why = f" ({row['reason']})" if row["state"] != "ok" and row.get("reason") else ""
        lines.append(
            f"channel {row['channel']}: {row['state']}{why}, {lag}, objective {objective(row)}"
        )
    for row in fresh["sources"]:
        age = "loaded_at unknown" if row["lag_s"] is None else f"{human(row['lag_s'])} old"
        lines.append(f"source {row['source']}: {row['state']}, {age}, objective {objective(row)}")
    return lines


def status_json(
    at: dt.datetime,
    fresh: dict[str, Any],
    tz: Any,
    models: list[dict[str, Any]] | None = None,
    deliveries: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``status --json``: one object, ``{"at", "state", "models", "channels", "sources",
    "deliveries", "observed_at", "alerts_pending"}``; ``status --check --json`` is the same
    object without ``models`` and ``deliveries`` (it reads ``target/observe.json`` alone)."""
    out: dict[str, Any] = {"at": at.astimezone(tz).isoformat(), "state": fresh["state"]}
    if models is not None:
        out["models"] = models
    out["channels"] = fresh["channels"]
    out["sources"] = fresh["sources"]
    if deliveries is not None:  # each with ``held``: the reason the last run held it, or null
        out["deliveries"] = [_instants(row, tz) for row in deliveries]
    out["observed_at"] = fresh.get("observed_at")
    out["alerts_pending"] = fresh.get("alerts_pending", 0)
    return out


def _instants(value: Any, tz: Any) -> Any:
    """A delivery status row with every time an instant in the project timezone."""
    if isinstance(value, dict):
        return {k: _instants(v, tz) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return aware.astimezone(tz).isoformat()
    return value
