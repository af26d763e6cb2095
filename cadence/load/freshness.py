"""Freshness and alert settings of cadence.yml: a channel's ``freshness`` objective and
``on_stale_source``, a source's dbt ``freshness:``, and the project's ``alerts:``.

Input: raw YAML values (with line numbers) -> output: ``Objective``, ``AlertsConfig``.
Invariants: durations are whole seconds > 0 ("30 minutes", "2 hours", "1 day", or dbt's
``{count: 2, period: hour}``); ``warn_after`` never exceeds ``error_after``; every problem is a
CadenceError naming cadence.yml:line with a hint; the alert secret stays in the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cadence.errors import CadenceError, ErrorCollector, unknown_key_error
from cadence.load.yamlfile import line_of
from cadence.outbound.urlpolicy import url_problem

PROJECT_FILE = "cadence.yml"
UNITS = {"minute": 60, "hour": 3600, "day": 86400}
OBJECTIVE_KEYS = ("warn_after", "error_after", "filter")
STALE_CHOICES = ("hold", "deliver")
ALERTS_KEYS = ("webhook",)
ALERT_WEBHOOK_KEYS = ("url", "secret_env", "allow_private", "timeout_s")
_TEXT = re.compile(r"^\s*(\d+)\s*(minute|hour|day)s?\s*$", re.IGNORECASE)
_SHORT = re.compile(r"^\s*(\d+)\s*(m|min|h|d)\s*$", re.IGNORECASE)
_SHORT_UNITS = {"m": "minute", "min": "minute", "h": "hour", "d": "day"}


@dataclass(frozen=True)
class Objective:
    """How old a channel's (or source's) data may get: seconds; None where not declared."""

    warn_after_s: int | None = None
    error_after_s: int | None = None
    line: int | None = None


@dataclass(frozen=True)
class AlertsConfig:
    url: str
    secret_env: str
    allow_private: bool = False
    timeout_s: float = 3.0
    line: int | None = None


def duration_s(value: Any) -> int | None:
    """Seconds of "30 minutes" / "2 hours" / "1 day" / {count: 2, period: hour}; None if not."""
    if isinstance(value, dict):
        count, period = value.get("count"), value.get("period")
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            return None
        unit = str(period).lower().rstrip("s") if isinstance(period, str) else None
        return count * UNITS[unit] if unit in UNITS else None
    if not isinstance(value, str):
        return None
    match = _TEXT.match(value)
    if match:
        n, unit = int(match.group(1)), match.group(2).lower()
    else:
        short = _SHORT.match(value)
        if not short:
            return None
        n, unit = int(short.group(1)), _SHORT_UNITS[short.group(2).lower()]
    return n * UNITS[unit] if n > 0 else None


def _err(message: str, line: int | None, hint: str, file: str = PROJECT_FILE) -> CadenceError:
    return CadenceError(message, file=file, line=line, hint=hint)


def parse_objective(
    raw: Any, what: str, line: int | None, errors: ErrorCollector, file: str = PROJECT_FILE
) -> Objective | None:
    """``freshness: {warn_after, error_after}`` (either may be omitted, not both)."""
    if raw is None:
        return None
    example = 'write freshness: {warn_after: "30 minutes", error_after: "2 hours"}'
    if not isinstance(raw, dict):
        errors.add(_err(f"{what}: freshness must be a mapping", line, example, file))
        return None
    for key in raw:
        if key not in OBJECTIVE_KEYS:
            errors.add(
                unknown_key_error(
                    str(key), OBJECTIVE_KEYS, what="freshness", file=file, line=line_of(raw, key)
                )
            )
    seconds: dict[str, int | None] = {}
    for key in ("warn_after", "error_after"):
        value = raw.get(key)
        if isinstance(value, dict) and value.get("count") is None:
            value = None  # dbt's {count: null}: not declared
        seconds[key] = None if value is None else duration_s(value)
        if value is not None and seconds[key] is None:
            errors.add(
                _err(
                    f"{what}: {key} {value!r} is not a duration",
                    line_of(raw, key) or line,
                    'write a number of minutes, hours or days, e.g. "30 minutes", "2 hours", '
                    '"1 day", or dbt\'s {count: 2, period: hour}',
                    file,
                )
            )
    warn, error = seconds["warn_after"], seconds["error_after"]
    if warn is None and error is None:
        given = any(raw.get(k) is not None for k in ("warn_after", "error_after"))
        if file == PROJECT_FILE and not given:  # a source's may be dbt's "no check"
            errors.add(
                _err(
                    f"{what}: freshness names neither warn_after nor error_after",
                    line_of(raw) or line,
                    example,
                    file,
                )
            )
        return None
    if warn is not None and error is not None and warn > error:
        errors.add(
            _err(
                f"{what}: warn_after ({raw.get('warn_after')}) is later than error_after "
                f"({raw.get('error_after')})",
                line_of(raw, "warn_after") or line,
                "warn_after must be at most error_after",
                file,
            )
        )
    return Objective(warn, error, line_of(raw) or line)


def parse_on_stale_source(raw: Any, what: str, line: int | None, errors: ErrorCollector) -> bool:
    """``on_stale_source: hold|deliver`` -> whether a stale source holds the delivery."""
    if raw is None or raw == "hold":
        return True
    if raw == "deliver":
        return False
    errors.add(_err(f"{what}: invalid on_stale_source {raw!r}", line, "use one of: hold, deliver"))
    return True


def parse_alerts(raw: dict[str, Any], errors: ErrorCollector) -> AlertsConfig | None:
    """``alerts: {webhook: {url, secret_env[, allow_private, timeout_s]}}``."""
    value = raw.get("alerts")
    line = line_of(raw, "alerts")
    example = "write alerts: {webhook: {url: https://example.com/hooks, secret_env: ALERT_SECRET}}"
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.add(_err("'alerts' must be a mapping", line, example))
        return None
    for key in value:
        if key not in ALERTS_KEYS:
            errors.add(
                unknown_key_error(
                    str(key),
                    ALERTS_KEYS,
                    what="alerts",
                    file=PROJECT_FILE,
                    line=line_of(value, key),
                )
            )
    hook = value.get("webhook")
    where = line_of(value, "webhook") or line
    if not isinstance(hook, dict):
        errors.add(_err("alerts: webhook must be a mapping", where, example))
        return None
    for key in hook:
        if key not in ALERT_WEBHOOK_KEYS:
            errors.add(
                unknown_key_error(
                    str(key),
                    ALERT_WEBHOOK_KEYS,
                    what="alerts webhook",
                    file=PROJECT_FILE,
                    line=line_of(hook, key),
                )
            )
    url, secret_env = hook.get("url"), hook.get("secret_env")
    allow_private = hook.get("allow_private", False)
    timeout = hook.get("timeout_s", 3.0)
    ok = True
    if not isinstance(url, str) or not url:
        errors.add(_err("alerts webhook needs a url", where, example))
        ok = False
    if not (isinstance(secret_env, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", secret_env)):
        errors.add(
            _err(
                "alerts webhook: secret_env must name an environment variable",
                line_of(hook, "secret_env") or where,
                "write secret_env: ALERT_WEBHOOK_SECRET (alerts are always signed; the "
                "secret stays in the environment)",
            )
        )
        ok = False
    if not isinstance(allow_private, bool):
        errors.add(
            _err(
                "alerts webhook: allow_private must be true or false",
                line_of(hook, "allow_private") or where,
                "write allow_private: true",
            )
        )
        allow_private = False
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 30:
        errors.add(
            _err(
                f"alerts webhook: timeout_s must be a number of seconds in (0, 30], got "
                f"{timeout!r}",
                line_of(hook, "timeout_s") or where,
                "write timeout_s: 3",
            )
        )
        timeout = 3.0
    if isinstance(url, str) and url:
        problem = url_problem(url, allow_private)
        if problem is not None:
            errors.add(
                _err(f"alerts webhook: {problem[0]}", line_of(hook, "url") or where, problem[1])
            )
            ok = False
    if not ok:
        return None
    return AlertsConfig(str(url), str(secret_env), allow_private, float(timeout), where)
