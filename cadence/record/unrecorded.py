"""Build records the warehouse refused: a failure at a full disk is recorded by the next run.

Input: the ``BuildRecord``s a run could not commit (a model's publish refused at commit -- no
space left on device -- and then its failure record refused too) -> output:
``target/unrecorded_builds.json`` (owner-only, written atomically and synced), which the next
invocation that can write turns into the build rows they are (``record_pending``), under the run
that made them. State and backoff follow as for any failure: a run not folded yet is replayed
from its build rows (``state.read_snapshot``), and a run that folded wrote the failure into
``model_state`` already. Read-only commands see the records at once (``overlay``).
Invariants: a record is inserted once (a row already there is not inserted again, so a file
left by a crash after the commit is harmless); the file is removed only after its rows
committed; a file that cannot be read or parsed is ignored, never half-applied.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from pathlib import Path

from cadence.disk import artifacts
from cadence.engines.base import Engine, EngineError
from cadence.plan.history import BuildRecord, ModelState, StateSnapshot, next_state
from cadence.record.state import (
    SCHEMA,
    ensure_schema,
    fold,
    read_snapshot,
    record_build,
    to_db,
)

FILE = f"{artifacts.TARGET}/unrecorded_builds.json"  # in a cadence project (target_dir)
NAME = "unrecorded_builds.json"
_FIELDS = (
    *("run_id", "model", "kind", "tick", "started_at", "status", "reason", "rows"),
    *("duration_s", "sql_hash", "error"),
)


def disk_full(message: str) -> bool:
    """Whether an engine's or the system's message says the disk (or quota) is full."""
    text = message.lower()
    return any(s in text for s in ("no space left", "disk full", "disk quota exceeded"))


_WRAPPED = "disk full: the warehouse could not be written ("  # engines.duckdb's own wording


def _cause(message: str) -> str:
    """The first line of an engine's message, without a wording of its own around it."""
    first = message.strip().splitlines()[0] if message.strip() else "I/O error"
    if first.startswith(_WRAPPED):
        first = first[len(_WRAPPED) :].removesuffix(")")
    return first


def full_disk_error(cause: str, warehouse: str) -> str:
    """A build's error when the warehouse refused it for lack of space (``cause``: the engine's
    message), with what to do."""
    return (
        f"no space left on device: the warehouse ({warehouse}) could not be written, the "
        f"previous version stays live ({_cause(cause)}); free space on that disk: the next run "
        "records this failure and builds it again"
    )


def refused_error(cause: str, warehouse: str) -> str:
    """The warehouse refused a run's own writes (its start, its record): why, said plainly."""
    if disk_full(cause):
        return (
            f"no space left on device: the warehouse ({warehouse}) could not be written "
            f"({_cause(cause)}); free space on that disk"
        )
    return f"the warehouse ({warehouse}) could not be written: {_cause(cause)}"


def _encode(record: BuildRecord) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in _FIELDS:
        value = getattr(record, name)
        out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
    return out


def _decode(item: dict[str, object]) -> BuildRecord:
    def time(name: str) -> dt.datetime | None:
        value = item.get(name)
        return None if value is None else dt.datetime.fromisoformat(str(value))

    started = time("started_at")
    if started is None or started.tzinfo is None:
        raise ValueError("started_at")
    rows = item.get("rows")
    return BuildRecord(
        run_id=str(item["run_id"]),
        model=str(item["model"]),
        kind=str(item["kind"]),
        tick=time("tick"),
        started_at=started,
        status=str(item["status"]),
        reason=str(item["reason"]),
        rows=None if rows is None else int(str(rows)),
        duration_s=float(str(item["duration_s"])),
        sql_hash=None if item.get("sql_hash") is None else str(item["sql_hash"]),
        error=None if item.get("error") is None else str(item["error"]),
    )


def read(root: Path) -> tuple[BuildRecord, ...]:
    """The records kept; () when there is no file (the common case: one failed ``open``) or
    it cannot be read or parsed."""
    try:
        data = json.loads(artifacts.read_regular(artifacts.target_dir(root) / NAME))
        return tuple(_decode(item) for item in data["builds"])
    except (OSError, ValueError, KeyError, TypeError):
        return ()


def save(root: Path, records: Iterable[BuildRecord]) -> Path:
    """Add ``records`` to the file (owner-only, atomic, synced); raises ``CadenceError`` naming
    the file when it cannot be written."""
    kept = list(read(root))
    kept += [r for r in records if r not in kept]
    body = json.dumps({"builds": [_encode(r) for r in kept]}, indent=1) + "\n"
    return artifacts.write_text(artifacts.target_dir(root) / NAME, body, root)


def insert(engine: Engine, records: Iterable[BuildRecord]) -> None:
    """Write the build rows of ``records`` not already there, in one transaction (raises the
    engine's error when it refuses)."""
    store = engine.state_store()
    records = list(records)
    with store.transaction():
        runs = sorted({r.run_id for r in records})
        marks = ", ".join("?" for _ in runs)
        store.execute(  # a run with a failure it could not record did not succeed
            f"update {SCHEMA}.runs set status = 'error' where status = 'running' "
            f"and run_id in ({marks})",
            runs,
        )
        for record in records:
            found = store.query(
                f"select 1 from {SCHEMA}.model_builds where run_id = ? and model = ? "
                "and started_at = ? and status = ? limit 1",
                (record.run_id, record.model, to_db(record.started_at), record.status),
            )
            if not found:
                record_build(store, record, ModelState(record.model))


def record_pending(engine: Engine, root: Path) -> int:
    """At the start of an invocation that writes: the records a full disk kept out of the
    warehouse become build rows, then the file goes. Returns how many were recorded (0 when
    none are kept, or the warehouse still refuses: the file stays for the next one)."""
    records = read(root)
    if not records:
        return 0
    try:
        ensure_schema(engine)
        insert(engine, records)
        # the runs they belong to ended there and then: fold them now, so model_state says it
        # at once (not only at the next run that builds)
        state = read_snapshot(engine)
        if state.pending_runs:
            fold(engine, {n: state.models[n] for n in state.pending_models}, [*state.pending_runs])
    except EngineError:
        return 0
    forget(root)
    return len(records)


def forget(root: Path) -> None:
    """Remove the file once its records are in the warehouse."""
    try:
        os.unlink(artifacts.target_dir(root) / NAME)
    except OSError:
        pass  # inserted once: the next invocation finds the rows there and adds nothing


def overlay(root: Path, state: StateSnapshot) -> StateSnapshot:
    """``state`` as it will be once the kept records are written, for read-only commands: the
    records of a run not folded yet are replayed on top (a folded run's are in it already)."""
    records = [r for r in read(root) if r.run_id in state.pending_runs]
    if not records:
        return state
    models = dict(state.models)
    for record in sorted(records, key=lambda r: r.started_at):
        models[record.model] = next_state(
            models.get(record.model) or ModelState(record.model), record
        )
    return StateSnapshot(
        models,
        state.relations,
        state.source_loaded,
        state.pending_runs,
        state.pending_models | {r.model for r in records},
        state.as_of,
        state.note,
    )
