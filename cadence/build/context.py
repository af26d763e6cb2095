"""What one build step works with: the run's context in, a ``ModelResult`` out.

Input: the run's fixed inputs (parsed project, DAG, compiler, engine or one thread's cursor,
state snapshot, run time and id) -> ``RunContext``, which every step of a run reads, plus the
writes all steps share: ``swap`` (a staging relation replaces the live one) and
``record_failure`` (a failed step's build record, in a transaction of its own). Each step
returns a ``ModelResult``.
Invariants: ``relations`` is shared by every step of a run and kept current as publishes
commit; ``new_states`` collects each step's state, folded once at the end of the run; a failure
record the warehouse refuses (a full disk) is never lost: its state joins ``new_states`` and the
record waits in ``unrecorded`` for the end of the run (``runner``); a thread gets a copy of the
context with its own cursor, never a shared one. Used by ``runner`` (the
run loop), ``publish`` (models), ``seeds`` and ``gate`` (blocking tests).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cadence.build.compiler import Compiler
from cadence.engines.base import Engine, EngineError
from cadence.load.parser import ParsedProject
from cadence.load.testspecs import DataTest
from cadence.plan.dag import Dag
from cadence.plan.due import Decision
from cadence.plan.history import BuildRecord, ModelState, StateSnapshot, next_state
from cadence.record.segmentkeys import Registry
from cadence.record.state import record_build


@dataclass(frozen=True)
class ModelResult:
    name: str
    status: str  # success | error | upstream_failed | skipped
    reason: str
    rows: int | None = None
    duration_s: float = 0.0
    error: str | None = None
    compiled_path: str | None = None
    kind: str = "model"
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "rows": self.rows,
            "duration_s": round(self.duration_s, 4),
            "error": self.error,
        }


@dataclass
class RunContext:
    project: ParsedProject
    dag: Dag
    compiler: Compiler
    engine: Engine
    state: StateSnapshot
    now: dt.datetime
    run_id: str
    full_refresh: bool
    root: Path
    tests_by_model: dict[str, list[DataTest]] = field(default_factory=dict)
    relations: dict[tuple[str, str], str] = field(default_factory=dict)  # shared, kept current
    new_states: dict[str, ModelState] = field(default_factory=dict)  # folded at the end
    visible: dict[tuple[str, str], str] | None = None  # relations the open transaction sees
    # failure records the warehouse refused (shared by every thread's copy): written at the end
    unrecorded: list[BuildRecord] = field(default_factory=list)
    # a commit group may settle its publishes' first membership rows and their own-table data
    # tests once, at its commit (``grouped``): nothing in the project runs SQL of its own that
    # could change a table between a publish and that commit (``hooks.runs_sql``)
    settles_at_commit: bool = False
    # segment -> (key, table) it was last published with (``record.segmentkeys``), read once
    segment_keys: Registry = field(default_factory=Registry)


def record_failure(
    ctx: RunContext,
    decision: Decision,
    result: ModelResult,
    sql_hash: str | None,
    status: str | None = None,
) -> None:
    record = BuildRecord(
        ctx.run_id,
        decision.name,
        decision.kind,
        decision.tick,
        ctx.now,
        status or result.status,
        decision.reason,
        None,
        result.duration_s,
        sql_hash,
        result.error,
    )
    group = ctx.engine.group
    if group is not None and group.broken:  # rolled back: the model is built again on its own
        return
    previous = ctx.state.of(decision.name)
    try:
        with ctx.engine.transaction():
            ctx.new_states[decision.name] = record_build(ctx.engine, record, previous)
    except EngineError:  # refused too (no space left): kept for the end of the run
        ctx.new_states[decision.name] = next_state(previous, record)
        ctx.unrecorded.append(record)


def swap(ctx: RunContext, staging: str, live: str, schema: str, identifier: str) -> None:
    ctx.engine.publish(staging, live, schema, identifier, ctx.relations.get((schema, identifier)))
