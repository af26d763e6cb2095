"""Bounded retries of an outbound request: which answers are worth another attempt, and how
long to wait before it.

Input: an HTTP status, a failed attempt's number, a ``Retry-After`` header and the wall-clock
time -> output: retry or not, seconds to wait.
Invariants: 408, 429 and 5xx are retried, any other status is final; backoff doubles from
``BACKOFF_BASE_S`` up to ``BACKOFF_CAP_S``; ``Retry-After`` is read as delta-seconds or an
HTTP-date (relative to ``now``, passed in: nothing here reads the clock), and a caller gives up
rather than wait past ``RETRY_AFTER_CAP_S``. How many attempts, and how much waiting in all, is
the caller's budget (which also retries timeouts and connection errors).
Used by the activation wing's webhook destination; alerts retry the same way.
"""

from __future__ import annotations

import datetime as dt
import email.utils

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
RETRY_AFTER_CAP_S = 60.0


def retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or HTTP-date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - now)


def backoff_s(attempt: int) -> float:
    """Wait after failed attempt number ``attempt`` (1-based): 0.5, 1, 2, 4 ... capped."""
    return float(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))


def retriable(status: int) -> bool:
    """Whether an HTTP status is worth another attempt (408, 429, 5xx)."""
    return status in (408, 429) or 500 <= status <= 599


__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "RETRY_AFTER_CAP_S",
    "backoff_s",
    "retriable",
    "retry_after_s",
]
