"""Times for machines: every time a delivery writes - the ``at`` of a change, a segment's own
timestamp columns - is an instant with its offset (SPEC §7, "Times carry their zone").

Input: a column's DuckDB type and either a SQL expression (file exports) or a value decoded
from the outbox's JSON (webhook bodies) -> output: the same column as an instant. Invariants:
a naive ``TIMESTAMP`` is read the way cadence's warehouse reads it - its session time zone is
UTC, so a model comparing it with a ``timestamptz`` sees exactly this instant - which is also how
state records times (UTC); parquet gets ``TIMESTAMP WITH TIME ZONE``; text (csv, jsonl, webhook
bodies) gets ISO 8601 with its offset, ``2026-12-01T04:00:00+00:00``, as Python's ``isoformat``
writes it (fractional seconds only when there are some). Columns of other types pass through
unchanged.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

INSTANT = "TIMESTAMP WITH TIME ZONE"
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def is_instant(kind: str) -> bool:
    """A timestamp of any precision, with or without a zone (not DATE, not TIME)."""
    upper = kind.strip().upper()
    return upper.startswith("TIMESTAMP") and not upper.endswith("[]")


def _is_zoned(kind: str) -> bool:
    upper = kind.strip().upper()
    return upper in ("TIMESTAMPTZ", INSTANT)


def instant_sql(expr: str, kind: str) -> str:
    """``expr`` (of type ``kind``) as a ``timestamptz``; a naive timestamp is read as UTC."""
    if _is_zoned(kind):
        return f"cast({expr} as timestamptz)"
    return f"timezone('UTC', cast({expr} as timestamp))"


def iso_sql(instant: str) -> str:
    """A ``timestamptz`` expression as ISO 8601 text with offset ``+00:00``."""
    utc = f"timezone('UTC', {instant})"
    return (
        f"(regexp_replace(strftime({utc}, '%Y-%m-%dT%H:%M:%S.%f'), '\\.000000$', '') || '+00:00')"
    )


def file_column(expr: str, kind: str, fmt: str) -> tuple[str, str]:
    """(SQL, type written) of one column of a data file in ``fmt``: instants as
    ``TIMESTAMP WITH TIME ZONE`` in parquet and as ISO 8601 text with offset in csv and jsonl
    (the manifest names the logical type, ``TIMESTAMP WITH TIME ZONE``, for all three)."""
    if not is_instant(kind):
        return expr, kind
    instant = instant_sql(expr, kind)
    return (instant if fmt == "parquet" else iso_sql(instant)), INSTANT


def json_value(value: Any, kind: str) -> Any:
    """A column value decoded from the outbox's JSON (DuckDB writes timestamps as
    ``2026-12-01 04:00:00`` or ``...+00``) as ISO 8601 text with offset when the column is an
    instant; anything else, or text that is no timestamp (``infinity``), as it came."""
    if not isinstance(value, str) or not is_instant(kind):
        return value
    try:
        parsed = dt.datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip(), count=1))
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).isoformat()


__all__ = ["INSTANT", "file_column", "instant_sql", "is_instant", "iso_sql", "json_value"]
