"""cadence.yml's ``cost:``: what an hour of compute costs, so compute seconds become money.

Input: the raw cadence.yml mapping -> output: a ``CostConfig`` (or None without ``cost:``),
every problem an error naming cadence.yml:line with a hint. ``review.cost.per_month`` turns
compute seconds per day into money per month with it (``plan``, ``diff``, ``advise``, the docs
site).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cadence.errors import CadenceError, ErrorCollector, unknown_key_error
from cadence.load.yamlfile import line_of

PROJECT_FILE = "cadence.yml"
COST_KEYS = ("per_compute_hour", "currency")


@dataclass(frozen=True)
class CostConfig:
    """``cost: {per_compute_hour, currency}``: what an hour of compute costs, so compute
    seconds become money per month (``review.cost.per_month``)."""

    per_compute_hour: float
    currency: str = ""


CURRENCY_RE = re.compile(r"^[^\s{}<>&\"'`]{1,12}$")  # EUR, USD, €: short and harmless in HTML
COST_HINT = "write cost: {per_compute_hour: 0.40, currency: EUR}"


def parse_cost(raw: dict[str, Any], errors: ErrorCollector) -> CostConfig | None:
    """``cost: {per_compute_hour: N, currency: TEXT}``: N a number >= 0, currency optional."""
    value = raw.get("cost")
    if value is None:
        return None
    line = line_of(raw, "cost")
    if not isinstance(value, dict):
        errors.add(
            CadenceError("'cost' must be a mapping", file=PROJECT_FILE, line=line, hint=COST_HINT)
        )
        return None
    for key in value:
        if key not in COST_KEYS:
            errors.add(
                unknown_key_error(str(key), COST_KEYS, what="cost", file=PROJECT_FILE, line=line)
            )
    price = value.get("per_compute_hour")
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not 0 <= price < 1e9:
        errors.add(
            CadenceError(
                "cost.per_compute_hour must be a number of money units per hour of compute "
                f"(0 or more), got {_short(repr(price))}",
                file=PROJECT_FILE,
                line=line_of(value, "per_compute_hour") or line,
                hint=COST_HINT,
            )
        )
        return None
    currency = value.get("currency", "")
    if not isinstance(currency, str) or (currency and not CURRENCY_RE.match(currency)):
        errors.add(
            CadenceError(
                f"cost.currency must be a short currency name, got {_short(repr(currency))}",
                file=PROJECT_FILE,
                line=line_of(value, "currency") or line,
                hint=COST_HINT,
            )
        )
        return None
    return CostConfig(float(price), currency)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
