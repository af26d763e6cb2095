"""The observe wing's record: ``target/observe.json``, what the last observation saw.

Input: a plain dict (per channel the time of the data it was last brought up to date with and
per segment of it, its state and when cadence first saw it; per segment the data time of its
current version; per source its newest loaded_at and state; per model its health and failure
count; per channel x segment its delivery health and, while its delivery is held (an input it
reads failing), the reason the run reported; the alert outbox; the next instant to look
again) -> the file, and back.
Invariants: written to a temporary name, fsynced and renamed, owner-only (0600): a reader (status
--check polling every minute, serve's /healthz) sees the previous record or the new one, never
the warehouse; data only (names, times, numbers; alert bodies carry no secret); a missing or
unreadable file reads as empty (the next observation rebuilds it).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from cadence.disk import artifacts

OBSERVE_NAME = "observe.json"  # in target/ (<target-path>/cadence/ in a dbt project)
FORMAT = "cadence.observe"
VERSION = 1


def empty() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "at": None,
        "channels": {},
        "segments": {},
        "sources": {},
        "models": {},
        "deliveries": {},
        "holds": {},
        "outbox": [],
        "next_wake": None,
        "alert_error": None,
        "stats": {},
        "run_duration_s": None,
    }


def path_of(root: Path) -> Path:
    return artifacts.target_dir(root) / OBSERVE_NAME


def read(root: Path) -> dict[str, Any] | None:
    """The last record, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads(artifacts.read_regular(path_of(root)))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    out = empty()
    for key, default in list(out.items()):
        value = data.get(key)
        if default is None or isinstance(value, type(default)):
            out[key] = value if value is not None or default is None else default
    return out


def write(root: Path, data: dict[str, Any]) -> Path:
    body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return artifacts.write_bytes(path_of(root), body, root)


def time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def next_wake(data: dict[str, Any] | None) -> dt.datetime | None:
    """The next instant the observe wing needs a run to look again (an objective crossing, a
    pending alert's retry); None: nothing until something is built or delivered."""
    if not data:
        return None
    return time(data.get("next_wake"))
