"""Instants: the ``--at`` time a command runs as, and the real instant of a wall time.

Input: ``--at`` text and the project timezone -> output: an aware ``datetime``. ISO 8601 with an
offset is taken as written; a naive time is read in the project timezone, and one that falls in
a spring-forward gap (``02:30`` on the night clocks jump to ``03:00``) names the instant it
would be (``03:30``). Standard library only: the idle ``run --due`` (``build.idle``) reads
``--at`` before loading anything else.
"""

from __future__ import annotations

import datetime as dt

from cadence.errors import UsageError


def real_instant(t: dt.datetime) -> dt.datetime:
    """The same instant with a wall time that exists: a time in a spring-forward gap
    (``02:30 EST`` on the night clocks jump to ``03:00 EDT``) becomes ``03:30 EDT``."""
    if t.tzinfo is None:
        return t
    return t.astimezone(dt.timezone.utc).astimezone(t.tzinfo)


def parse_at(text: str, tz: dt.tzinfo) -> dt.datetime:
    """``--at``: ISO 8601 with offset, or naive in the project timezone."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"cannot read time '{text}'",
            hint="use ISO 8601, e.g. 2026-03-29T05:00 or 2026-03-29T05:00:00+02:00",
        ) from None
    if parsed.tzinfo is None:
        # a naive time in the spring-forward gap does not exist: use the real instant it names
        return real_instant(parsed.replace(tzinfo=tz))
    return parsed.astimezone(tz)
