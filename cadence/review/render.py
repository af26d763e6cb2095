"""Text, markdown and JSON for the review wing's reports (the CLI prints what these return).

Input: ``DiffReport`` -> output: a string or plain JSON-ready data. Nothing here prints.
"""

from __future__ import annotations

from typing import Any

from cadence.review.configdiff import ConfigChange
from cadence.review.diff import Delta, DiffReport


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
                "before": None if d.compute_before is None else round(d.compute_before, 3),
                "after": None if d.compute_after is None else round(d.compute_after, 3),
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
    lines.append(f"cost over {report.horizon} (builds/day; compute s/day):")
    for d in (*report.models, *report.channel_costs):
        kind = "channel " if d in report.channel_costs else ""
        lines.append(
            f"  {kind + d.name:<34} {_arrow(d.builds_before, d.builds_after):<28} "
            f"{_arrow(d.compute_before, d.compute_after, 2)}"
        )
    t = report.total
    lines.append(
        f"  {'total':<34} {_arrow(t.builds_before, t.builds_after):<28} "
        f"{_arrow(t.compute_before, t.compute_after, 2)}  [{_pct(report)}]"
    )
    return "\n".join(lines)


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
    out += [
        f"| cost over {report.horizon} | builds/day | compute s/day |",
        "|---|---|---|",
    ]
    for d in report.models:
        out.append(
            f"| `{d.name}` | {_arrow(d.builds_before, d.builds_after)} | "
            f"{_arrow(d.compute_before, d.compute_after, 2)} |"
        )
    for d in report.channel_costs:
        out.append(
            f"| channel `{d.name}` | {_arrow(d.builds_before, d.builds_after)} | "
            f"{_arrow(d.compute_before, d.compute_after, 2)} |"
        )
    t = report.total
    out.append(
        f"| **total** | {_arrow(t.builds_before, t.builds_after)} | "
        f"{_arrow(t.compute_before, t.compute_after, 2)} ({_pct(report)}) |"
    )
    return "\n".join(out) + "\n"
