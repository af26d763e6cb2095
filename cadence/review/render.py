"""Text, markdown and JSON for the review wing's reports (the CLI prints what these return).

Input: ``DiffReport`` or ``Advice`` -> output: a string or plain JSON-ready data. Nothing here
prints.
"""

from __future__ import annotations

from typing import Any

from cadence.load.costconfig import CostConfig
from cadence.review.advise import Advice
from cadence.review.configdiff import ConfigChange
from cadence.review.diff import Delta, DiffReport
from cadence.review.reach import Delays


def money(value: float | None, price: CostConfig | None) -> str:
    """``12.30 EUR`` (4 decimals below 1, so a small project's cost does not read 0.00); ``-``
    without a figure."""
    if value is None:
        return "-"
    text = f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.4f}"
    currency = price.currency if price is not None else ""
    return f"{text} {currency}".strip()


def _num(value: float | None, digits: int = 1) -> str:
    return "no history" if value is None else f"{value:.{digits}f}"


def _arrow(before: float | None, after: float | None, digits: int = 1) -> str:
    text = f"{_num(before, digits)} -> {_num(after, digits)}"
    if before is not None and after is not None and before != after:
        delta = after - before
        text += f" ({'+' if delta > 0 else ''}{delta:.{digits}f})"
    return text


def _pct(report: DiffReport) -> str:
    pct = report.cost_increase_pct()
    if pct == float("inf"):
        return "new cost"
    return f"{'+' if pct > 0 else ''}{pct:.1f}%"


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _at_line(line: int | None) -> str:
    return f":{line}" if line else ""


def _reach(report: DiffReport, change: ConfigChange) -> str:
    """``; reaches models a, b; channels web (builds/day 192.0 -> 288.0)``."""
    parts = []
    if change.models:
        parts.append("models " + ", ".join(change.models))
    if change.channels:
        costs = {d.name: d for d in report.channel_costs}
        shown = []
        for name in change.channels:
            d = costs.get(name)
            moved = d is not None and abs(d.builds_after - d.builds_before) > 1e-9
            shown.append(
                f"{name} (builds/day {_arrow(d.builds_before, d.builds_after)})"
                if moved and d is not None
                else name
            )
        parts.append("channels " + ", ".join(shown))
    return "; reaches " + "; ".join(parts) if parts else ""


def diff_json(report: DiffReport) -> dict[str, Any]:
    def delta(d: Delta) -> dict[str, Any]:
        return {
            "name": d.name,
            "builds_per_day": {
                "before": round(d.builds_before, 3),
                "after": round(d.builds_after, 3),
            },
            "compute_s_per_day": {
                "before": _round(d.compute_before, 3),
                "after": _round(d.compute_after, 3),
            },
            "cost_per_month": {
                "before": _round(report.per_month(d.compute_before), 4),
                "after": _round(report.per_month(d.compute_after), 4),
            },
        }

    return {
        "ref": report.ref,
        "commit": report.commit,
        "at": report.at.isoformat(),
        "horizon": report.horizon,
        "changed": [
            {"name": c.name, "change": c.change, "reasons": list(c.reasons), "path": c.path}
            for c in report.changes
        ],
        "config_changes": [
            {
                "subject": c.subject,
                "key": c.key,
                "before": c.before,
                "after": c.after,
                "line": c.line,
                "models": list(c.models),
                "channels": list(c.channels),
            }
            for c in report.config
        ],
        "downstream": list(report.downstream),
        "channels": list(report.channels),
        "cadence_changes": [
            {
                "name": c.name,
                "before": c.before,
                "after": c.after,
                "before_provenance": c.before_provenance,
                "after_provenance": c.after_provenance,
            }
            for c in report.cadence_changes
        ],
        "models": [delta(d) for d in report.models],
        "channel_costs": [delta(d) for d in report.channel_costs],
        "total": delta(report.total),
        "cost_increase_pct": None
        if report.cost_increase_pct() == float("inf")
        else round(report.cost_increase_pct(), 3),
        "currency": report.price.currency if report.price else None,
    }


def diff_text(report: DiffReport) -> str:
    lines = [f"cadence diff against {report.ref} ({report.commit[:10]})"]
    if report.unchanged:
        lines.append("no model changed")
        return "\n".join(lines)
    for change in report.config:
        lines.append(
            f"  cadence.yml{_at_line(change.line)}: {change.describe()}{_reach(report, change)}"
        )
    for c in report.changes:
        why = f": {'; '.join(c.reasons)}" if c.reasons else ""
        lines.append(f"  {c.change:<8} {c.name} ({c.path}){why}")
    if report.downstream:
        lines.append(f"downstream ({len(report.downstream)}): {', '.join(report.downstream)}")
    if report.channels:
        lines.append(f"channels reached: {', '.join(report.channels)}")
    for cc in report.cadence_changes:
        lines.append(f"cadence of {cc.name}: {cc.before} -> {cc.after}")
        lines.append(f"    now: {cc.after_provenance}")
    priced = report.price is not None
    lines.append(
        f"cost over {report.horizon} (builds/day; compute s/day"
        + ("; money per month):" if priced else "):")
    )
    for d in (*report.models, *report.channel_costs):
        kind = "channel " if d in report.channel_costs else ""
        lines.append(
            f"  {kind + d.name:<34} {_arrow(d.builds_before, d.builds_after):<28} "
            f"{_arrow(d.compute_before, d.compute_after, 2)}" + _money_arrow(report, d, "  ")
        )
    t = report.total
    lines.append(
        f"  {'total':<34} {_arrow(t.builds_before, t.builds_after):<28} "
        f"{_arrow(t.compute_before, t.compute_after, 2)}"
        + _money_arrow(report, t, "  ")
        + f"  [{_pct(report)}]"
    )
    return "\n".join(lines)


def _money_arrow(report: DiffReport, d: Delta, lead: str) -> str:
    """``lead`` + ``0.0115 EUR -> 0.0230 EUR`` (money per month), or nothing without a price."""
    if report.price is None:
        return ""
    before = money(report.per_month(d.compute_before), report.price)
    after = money(report.per_month(d.compute_after), report.price)
    return f"{lead}{before} -> {after}"


def diff_markdown(report: DiffReport) -> str:
    out = [f"### cadence diff against `{report.ref}` (`{report.commit[:10]}`)", ""]
    if report.unchanged:
        out.append("No model changed.")
        return "\n".join(out) + "\n"
    if report.config:
        out += ["| cadence.yml | change | reaches |", "|---|---|---|"]
        for change in report.config:
            what = change.describe().replace("|", "\\|")
            reach = _reach(report, change).removeprefix("; ").replace("|", "\\|") or "-"
            out.append(f"| `cadence.yml{_at_line(change.line)}` | {what} | {reach} |")
        out.append("")
    if report.changes:
        out += ["| model | change | why |", "|---|---|---|"]
        for c in report.changes:
            why = "; ".join(c.reasons).replace("|", "\\|") or "-"
            out.append(f"| `{c.name}` | {c.change} | {why} |")
        out.append("")
    if report.downstream:
        names = ", ".join(f"`{n}`" for n in report.downstream)
        out.append(f"**Downstream ({len(report.downstream)}):** {names}")
        out.append("")
    if report.channels:
        out.append("**Channels reached:** " + ", ".join(f"`{c}`" for c in report.channels))
        out.append("")
    if report.cadence_changes:
        out += ["| model | cadence before | cadence after | because |", "|---|---|---|---|"]
        for cc in report.cadence_changes:
            out.append(f"| `{cc.name}` | {cc.before} | {cc.after} | {cc.after_provenance} |")
        out.append("")
    priced = report.price is not None
    out += [
        f"| cost over {report.horizon} | builds/day | compute s/day |"
        + (" per month |" if priced else ""),
        "|---|---|---|" + ("---|" if priced else ""),
    ]
    for d in report.models:
        out.append(
            f"| `{d.name}` | {_arrow(d.builds_before, d.builds_after)} | "
            f"{_arrow(d.compute_before, d.compute_after, 2)} |"
            + (_money_arrow(report, d, " ") + " |" if priced else "")
        )
    for d in report.channel_costs:
        out.append(
            f"| channel `{d.name}` | {_arrow(d.builds_before, d.builds_after)} | "
            f"{_arrow(d.compute_before, d.compute_after, 2)} |"
            + (_money_arrow(report, d, " ") + " |" if priced else "")
        )
    t = report.total
    out.append(
        f"| **total** | {_arrow(t.builds_before, t.builds_after)} | "
        f"{_arrow(t.compute_before, t.compute_after, 2)} ({_pct(report)}) |"
        + (_money_arrow(report, t, " ") + " |" if priced else "")
    )
    return "\n".join(out) + "\n"


# -- cadence advise ------------------------------------------------------------------------------


def advise_json(advice: Advice) -> dict[str, Any]:
    """SPEC §11's ``advise --json`` document, exactly its keys."""

    def delays(d: Delays) -> dict[str, float | None]:
        return d.to_json()

    return {
        "at": advice.at.isoformat(),
        "since": advice.since.isoformat(),
        "channels": [
            {
                "channel": c.channel,
                "cadence": c.cadence,
                "objective": {
                    "warn_after_s": c.objective.warn_after_s,
                    "error_after_s": c.objective.error_after_s,
                },
                "observed": {
                    "entered": c.observed.entered,
                    "missed": c.observed.missed,
                    "pending": c.observed.pending,
                    "delay_s": delays(c.observed.delays),
                    "builds_per_day": round(c.observed.builds_per_day, 3),
                    "compute_s_per_day": _round(c.observed.compute_s_per_day, 3),
                },
                "candidates": [
                    {
                        "cadence": k.cadence,
                        "builds_per_day": round(k.builds_per_day, 3),
                        "compute_s_per_day": _round(k.compute_s_per_day, 3),
                        "cost_per_month": _round(k.cost_per_month, 4),
                        "delay_s": delays(k.delays),
                        "missed_at_least": k.missed_at_least,
                        "meets_objective": k.meets_objective,
                    }
                    for k in c.candidates
                ],
                "recommended": c.recommended,
                "note": c.note,
            }
            for c in advice.channels
        ],
    }


def _span(seconds: float | None) -> str:
    """A delay for people: ``45 s``, ``4.5 min``, ``2.0 h``, ``1.5 d``; ``-`` without one."""
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def advise_text(advice: Advice) -> str:
    price = advice.price
    lines = [f"cadence advise at {advice.at.isoformat()}, history since {advice.since.isoformat()}"]
    for c in advice.channels:
        o = c.objective
        rule = "declared" if o.declared else "default: its 2nd and 4th latest tick"
        objective = (
            f"warn after {_span(o.warn_after_s)}, error after {_span(o.error_after_s)} ({rule})"
            if o.warn_after_s is not None
            else "none (no ticks)"
        )
        seen = c.observed
        start = "event_time" if c.event_time else "the publish that first contained them"
        end = "the delivery that reached them" if c.exported else "their publish"
        lines += [
            "",
            f"{c.channel}: {c.cadence}; objective {objective}",
            f"  observed: {seen.entered} entered, {seen.missed} missed, {seen.pending} pending; "
            f"reach delay p50 {_span(seen.delays.p50)}, p90 {_span(seen.delays.p90)}, "
            f"max {_span(seen.delays.max)} (from {start} to {end})",
            f"  this channel: {seen.builds_per_day:.1f} builds/day, "
            + (
                f"{seen.compute_s_per_day:.1f} s/day of compute"
                if seen.compute_s_per_day is not None
                else "no recorded build durations"
            ),
            f"  {'candidate (project total)':<26} {'builds/day':>10} {'s/day':>8} "
            f"{'per month':>12} {'p50':>9} {'p90':>9} {'max':>9} {'missed>=':>8}  objective",
        ]
        for k in c.candidates:
            mark = " (now)" if k.cadence == c.cadence else ""
            compute = f"{k.compute_s_per_day:.1f}" if k.compute_s_per_day is not None else "-"
            lines.append(
                f"  {k.cadence + mark:<26} {k.builds_per_day:>10.1f} {compute:>8} "
                f"{money(k.cost_per_month, price):>12} {_span(k.delays.p50):>9} "
                f"{_span(k.delays.p90):>9} {_span(k.delays.max):>9} {k.missed_at_least:>8}  "
                + ("meets" if k.meets_objective else "misses")
            )
        if any(k.faster for k in c.candidates):
            lines.append(
                f"  missed>= for cadences faster than {c.cadence} is a lower bound: members who "
                "entered and left between two recorded builds were never seen"
            )
        for step in c.steps:
            extra = (
                f"{'+' if step.extra >= 0 else ''}{money(step.extra, price)}/month"
                if price is not None
                else f"{'+' if step.extra >= 0 else ''}{step.extra:.1f} s/day of compute"
            )
            per = (
                f"{money(step.per_minute, price)} per minute saved"
                if price is not None
                else f"{step.per_minute:.2f} s/day per minute saved"
            )
            lines.append(
                f"  {step.slower} -> {step.faster}: {extra} for "
                f"{step.minutes_saved:.1f} min less p90 delay ({per})"
            )
        lines.append(f"  recommended: {c.recommended or 'none'}")
        if not c.event_time and seen.entered:
            lines.append(
                "  (no event_time on its segments: delays start at the publish, so no cadence "
                "can look faster than the builds that found the members; set event_time)"
            )
        if c.note:
            lines.append(f"  note: {c.note}")
    return "\n".join(lines)
