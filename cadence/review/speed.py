"""The docs site's speed section: per channel its lag against its freshness objective, and a
chart of cost per month against p90 reach delay across candidate cadences, the current cadence
marked (SPEC §11); laid out here, in Python, so the page only draws it (``assets/speed.js``).

Input: an ``Advice`` (``advise`` over the site's recorded history, or None when none could be
read) and per channel its lag (``channel_lags``: the observe wing's, as ``status`` shows it) ->
output: plain data for ``data.js`` (``speed``): per channel its cadence, objective, lag,
recommendation and note, and a chart: plot box, axis ticks, a point per measured candidate
(meets the objective or not, recommended or not), the current cadence (observed p90 at today's
cost) and the objective's warn_after as a line. Delays run on a log scale (seconds to days);
cost is money per month with ``cost:`` in cadence.yml, else compute seconds per day.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from cadence.review.advise import Advice, Candidate, ChannelAdvice

WIDTH, HEIGHT = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 78, 24, 16, 46
DELAY_TICKS = (
    (1, "1 s"),
    (10, "10 s"),
    (60, "1 min"),
    (300, "5 min"),
    (900, "15 min"),
    (3600, "1 h"),
    (4 * 3600, "4 h"),
    (86400, "1 d"),
    (7 * 86400, "1 wk"),
)


def channel_lags(project: Any, now: dt.datetime) -> dict[str, tuple[float | None, str | None]]:
    """Per channel its lag in seconds and its state (``ok``, ``warn``, ``error``) against its
    freshness objective, as ``cadence status`` shows them (the observe wing's record of the
    last run: never the warehouse); a channel never brought up to date has no lag."""
    from cadence.observe import check

    found = check(project.parsed, project.cadences, project.root, now)
    return {str(r["channel"]): (r.get("lag_s"), r.get("state")) for r in found.get("channels", ())}


def speed_section(
    project: Any, now: dt.datetime, advice: Advice | None, note: str | None = None
) -> dict[str, Any]:
    """``data.js``'s ``speed``: a block per channel (``note``: why there is no history)."""
    lags = channel_lags(project, now)
    if advice is None:
        return {"note": note or "no recorded history to measure reach from", "channels": []}
    price = advice.price
    unit = f"{price.currency} per month".strip() if price is not None else "compute s/day"
    return {
        "note": note,
        "since": advice.since.isoformat(),
        "unit": unit,
        "channels": [_channel(c, lags.get(c.channel), price is not None) for c in advice.channels],
    }


def _channel(
    c: ChannelAdvice, lag: tuple[float | None, str | None] | None, priced: bool
) -> dict[str, Any]:
    return {
        "name": c.channel,
        "cadence": c.cadence,
        "objective": {
            "warn_after_s": c.objective.warn_after_s,
            "error_after_s": c.objective.error_after_s,
            "declared": c.objective.declared,
        },
        "lag_s": lag[0] if lag else None,
        "state": lag[1] if lag else None,
        "entered": c.observed.entered,
        "missed": c.observed.missed,
        "pending": c.observed.pending,
        "p90_s": c.observed.delays.p90,
        "recommended": c.recommended,
        "note": c.note,
        "candidates": [
            {
                "cadence": k.cadence,
                "p90_s": k.delays.p90,
                "cost": _cost(k, priced),
                "meets": k.meets_objective,
            }
            for k in c.candidates
        ],
        "chart": chart(c, priced),
    }


def _cost(k: Candidate, priced: bool) -> float | None:
    return k.cost_per_month if priced else k.compute_s_per_day


def chart(c: ChannelAdvice, priced: bool) -> dict[str, Any] | None:
    """The laid-out chart of one channel; None when no candidate has both a p90 delay and a
    cost (no reached member, or no recorded build durations)."""
    points = [
        (k, k.delays.p90, _cost(k, priced))
        for k in c.candidates
        if k.delays.p90 is not None and _cost(k, priced) is not None
    ]
    if not points:
        return None
    current_cost = c.current_cost_per_month if priced else c.current_compute_s_per_day
    now_p90 = c.observed.delays.p90
    delays = [max(p90, 1.0) for _k, p90, _ in points if p90 is not None]
    if now_p90 is not None:
        delays.append(max(now_p90, 1.0))
    warn = c.objective.warn_after_s
    if warn:
        delays.append(warn)
    low, high = math.log10(min(delays) / 1.6), math.log10(max(delays) * 1.6)
    costs = [cost for _k, _p, cost in points if cost is not None]
    if current_cost is not None:
        costs.append(current_cost)
    top = _nice_top(max(costs))
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP

    def x(seconds: float) -> float:
        return round(x0 + (math.log10(max(seconds, 1.0)) - low) / (high - low) * (x1 - x0), 1)

    def y(cost: float) -> float:
        return round(y0 - cost / top * (y0 - y1), 1)

    return {
        "width": WIDTH,
        "height": HEIGHT,
        "plot": {"x0": x0, "x1": x1, "y0": y0, "y1": y1},
        "x_label": "p90 reach delay (log scale)",
        "x_ticks": [
            {"x": x(s), "label": text} for s, text in DELAY_TICKS if low <= math.log10(s) <= high
        ],
        "y_ticks": [{"y": y(top * i / 4), "label": _short(top * i / 4)} for i in range(5)],
        "points": [
            {
                "x": x(p90),
                "y": y(cost),
                "label": k.cadence,
                "meets": k.meets_objective,
                "recommended": k.cadence == c.recommended,
            }
            for k, p90, cost in points
            if p90 is not None and cost is not None
        ],
        "current": (
            {"x": x(now_p90), "y": y(current_cost), "label": f"now: {c.cadence}"}
            if now_p90 is not None and current_cost is not None
            else None
        ),
        "objective": {"x": x(warn), "label": "warn_after"} if warn else None,
    }


def _nice_top(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    scale = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * scale >= value:
            return step * scale
    return 10 * scale  # pragma: no cover - the loop ends at 10


def _short(value: float) -> str:
    if value == 0:
        return "0"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 1:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


__all__ = ["channel_lags", "chart", "speed_section"]
