"""What the planner knows of past runs: per-model state and the relations that exist.

Input: nothing (plain values) -> output: ``ModelState``, ``StateSnapshot``, ``BuildRecord`` and
``next_state`` (the state after one more build, pure). ``record.state`` fills these from the
warehouse and writes them back; ``due`` decides from them without touching a database.
Times are aware UTC instants.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelState:
    name: str
    kind: str = "model"
    last_success_at: dt.datetime | None = None
    last_success_tick: dt.datetime | None = None
    last_sql_hash: str | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_attempt_at: dt.datetime | None = None
    failure_streak: int = 0
    last_rows: int | None = None
    last_duration_s: float | None = None
    avg_duration_s: float | None = None
    builds: int = 0


@dataclass(frozen=True)
class StateSnapshot:
    """What the warehouse says now: per-model state and the relations that exist."""

    models: dict[str, ModelState] = field(default_factory=dict)
    relations: dict[tuple[str, str], str] = field(default_factory=dict)
    # newest loaded_at per source table, for refresh: on_new_data (None: unknown)
    source_loaded: dict[tuple[str, str], dt.datetime | None] = field(default_factory=dict)
    # runs whose builds are not folded into model_state yet (the next run folds them)
    pending_runs: tuple[str, ...] = ()
    pending_models: frozenset[str] = frozenset()
    # read from the snapshot file instead of the warehouse: when it was written, and why
    as_of: dt.datetime | None = None
    note: str | None = None

    def of(self, name: str) -> ModelState:
        return self.models.get(name) or ModelState(name)

    def exists(self, schema: str, identifier: str) -> bool:
        return (schema, identifier) in self.relations


@dataclass(frozen=True)
class BuildRecord:
    run_id: str
    model: str
    kind: str
    tick: dt.datetime | None
    started_at: dt.datetime
    status: str
    reason: str
    rows: int | None
    duration_s: float
    sql_hash: str | None
    error: str | None


def next_state(previous: ModelState, record: BuildRecord) -> ModelState:
    """The state of a model after one more build (pure)."""
    ok = record.status == "success"
    n = min(previous.builds, 19)
    avg = previous.avg_duration_s
    if ok:
        avg = record.duration_s if avg is None else (avg * n + record.duration_s) / (n + 1)
    return ModelState(
        name=record.model,
        kind=record.kind,
        last_success_at=record.started_at if ok else previous.last_success_at,
        last_success_tick=record.tick if ok else previous.last_success_tick,
        last_sql_hash=record.sql_hash if ok else previous.last_sql_hash,
        last_status=record.status,
        last_error=None if ok else record.error,
        last_attempt_at=record.started_at,
        failure_streak=0
        if ok
        else previous.failure_streak + (1 if record.status == "error" else 0),
        last_rows=record.rows if ok else previous.last_rows,
        last_duration_s=record.duration_s,
        avg_duration_s=avg,
        builds=previous.builds + (1 if ok else 0),
    )
