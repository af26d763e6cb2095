"""The state snapshot file: what read-only commands answer from while a run holds the warehouse.

Input: a ``StateSnapshot`` read from the warehouse at the end of a run -> output:
``target/state_snapshot.json``; and back: a ``StateSnapshot`` whose ``as_of`` is when the file
was written. The file is data only (versioned JSON: names, times, numbers; no code, no
secrets: the state holds none), written to a temporary name, fsynced and renamed, owner-only
(0600), so a reader sees the previous snapshot or the new one, never half of one. DuckDB admits
no reader while a run writes, so ``status``, ``plan``, ``explain``, ``ls`` (and ``members``)
read this instead and say "as of" when.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from cadence.disk import artifacts
from cadence.errors import CadenceError
from cadence.plan.history import ModelState, StateSnapshot

SNAPSHOT_FILE = "target/state_snapshot.json"  # in a cadence project (artifacts.target_dir)
SNAPSHOT_NAME = "state_snapshot.json"
FORMAT = "cadence.state_snapshot"
VERSION = 1

_TIMES = ("last_success_at", "last_success_tick", "last_attempt_at")
_FIELDS = (
    "kind",
    "last_sql_hash",
    "last_status",
    "last_error",
    "failure_streak",
    "last_rows",
    "last_duration_s",
    "avg_duration_s",
    "builds",
)

_TYPES: dict[str, type | tuple[type, ...]] = {
    "kind": str,
    "last_sql_hash": str,
    "last_status": str,
    "last_error": str,
    "failure_streak": int,
    "last_rows": int,
    "last_duration_s": (int, float),
    "avg_duration_s": (int, float),
    "builds": int,
}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: object) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time without offset: {value!r}")
    return parsed


def to_data(state: StateSnapshot, run_id: str, run_at: dt.datetime) -> dict[str, Any]:
    models = []
    for st in state.models.values():
        row: dict[str, Any] = {"name": st.name}
        row.update({k: _iso(getattr(st, k)) for k in _TIMES})
        row.update({k: getattr(st, k) for k in _FIELDS})
        models.append(row)
    return {
        "format": FORMAT,
        "version": VERSION,
        "run_id": run_id,
        "run_at": run_at.isoformat(),
        "models": models,
        "relations": [[s, i, kind] for (s, i), kind in sorted(state.relations.items())],
        "source_loaded": [[s, t, _iso(v)] for (s, t), v in sorted(state.source_loaded.items())],
        "pending_runs": list(state.pending_runs),
        "pending_models": sorted(state.pending_models),
    }


def from_data(data: object, as_of: dt.datetime, note: str | None) -> StateSnapshot:
    """Raises ValueError (or KeyError/TypeError) on anything that is not a snapshot."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("not a cadence state snapshot")
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ValueError(f"snapshot version {version!r} is newer than this cadence ({VERSION})")
    models = {}
    for row in data["models"]:
        values: dict[str, Any] = {k: _time(row.get(k)) for k in _TIMES}
        for k in _FIELDS:
            value = row.get(k)
            if value is None:
                continue
            if not isinstance(value, _TYPES[k]) or isinstance(value, bool):
                raise ValueError(f"model {row.get('name')!r}: {k} is {value!r}")
            values[k] = value
        st = ModelState(name=str(row["name"]), **values)
        models[st.name] = st
    relations = {(str(s), str(i)): str(kind) for s, i, kind in data["relations"]}
    loaded = {(str(s), str(t)): _time(v) for s, t, v in data["source_loaded"]}
    return StateSnapshot(
        models,
        relations,
        loaded,
        tuple(str(r) for r in data["pending_runs"]),
        frozenset(str(m) for m in data["pending_models"]),
        as_of=as_of,
        note=note,
    )


def write(root: Path, state: StateSnapshot, run_id: str, run_at: dt.datetime) -> Path:
    """Write the snapshot atomically (temp, fsync, rename), owner-only."""
    body = json.dumps(to_data(state, run_id, run_at), separators=(",", ":")).encode()
    return artifacts.write_bytes(artifacts.target_dir(root) / SNAPSHOT_NAME, body, root)


def exists(root: Path) -> bool:
    return (artifacts.target_dir(root) / SNAPSHOT_NAME).is_file()


def read(root: Path, why: str) -> StateSnapshot:
    """The last snapshot, for when the warehouse cannot be opened (``why`` says why)."""
    path = artifacts.target_dir(root) / SNAPSHOT_NAME
    shown = artifacts.shown(root, SNAPSHOT_NAME)
    try:
        text = artifacts.read_regular(path).decode("utf-8")
        as_of = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
    except FileNotFoundError:
        raise CadenceError(
            f"{why}, and no state snapshot has been written yet",
            file=shown,
            hint="try again when it finishes (every run that changes state leaves a snapshot "
            "for read-only commands to answer from)",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CadenceError(
            f"{why}, and the state snapshot cannot be read: {exc}",
            file=shown,
            hint="try again when it finishes; the next run writes a new snapshot",
        ) from None
    try:
        return from_data(json.loads(text), as_of, why)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CadenceError(
            f"{why}, and the state snapshot is corrupt ({exc})",
            file=shown,
            hint="try again when it finishes; the next run writes a new snapshot",
        ) from None
