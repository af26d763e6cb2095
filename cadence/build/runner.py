"""Execute a plan on the engine: build, test, publish and record, model by model.

Input: a ``Plan`` (what to build and why), the compiled project and an open ``Engine`` ->
output: ``RunResult``, one ``ModelResult`` per considered model. Each table is built into a
staging relation, its blocking tests run on it, and it replaces the live relation in the same
transaction as its state record: a failure at any step leaves the live relation and state as
they were. Failed models skip their descendants (``upstream_failed``) unless ``on_error:
continue``. Progress is reported through events; the runner never prints.
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cadence.build import parallel
from cadence.build.compiler import CompiledModel, Compiler
from cadence.build.datatests import TestOutcome, describe_failure
from cadence.build.incremental import checked_sql, stage
from cadence.disk import artifacts
from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError
from cadence.load.parser import Model, ParsedProject, Seed
from cadence.load.relations import quote
from cadence.load.testspecs import DataTest
from cadence.plan.dag import Dag
from cadence.plan.due import Decision, Plan, real_instant, view_hash
from cadence.plan.history import BuildRecord, ModelState, StateSnapshot
from cadence.record import membership
from cadence.record.state import (
    SCHEMA,
    STATE_TABLES,
    ensure_schema,
    fold,
    record_build,
    record_run_start,
)


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


@dataclass(frozen=True)
class RunResult:
    run_id: str
    at: dt.datetime
    results: tuple[ModelResult, ...]
    seeds_listed: bool = False  # `cadence seed`: the seeds are what the run is about
    # activation's DeliveryReport for this run (None: no channel delivered); set by Project.run
    deliveries: Any = None
    clock_behind: tuple[tuple[str, dt.datetime], ...] = ()  # see due.clock_behind
    write_error: str | None = None  # run_results.json not written (full disk): exit 1
    # the serve wing's SnapshotReport (None: no served channel written); set by Project.run
    snapshots: Any = None

    @property
    def failed(self) -> list[ModelResult]:
        return [r for r in self.results if r.status == "error"]

    @property
    def ok(self) -> bool:
        delivered = self.deliveries is None or self.deliveries.ok
        snapshotted = self.snapshots is None or self.snapshots.ok
        return (
            delivered
            and self.write_error is None
            and snapshotted
            and not self.failed
            and not any(r.status == "upstream_failed" for r in self.results)
        )

    def to_json(self) -> dict[str, object]:
        # the contract lists models; a seed appears only when loading it failed (the models
        # reading it are then upstream_failed and point at it)
        return {
            "run_id": self.run_id,
            "at": self.at.isoformat(),
            "results": [
                r.to_json()
                for r in self.results
                if r.kind != "seed" or r.status == "error" or self.seeds_listed
            ],
        }


@dataclass(frozen=True)
class Event:
    kind: str  # "start" | "result"
    name: str
    index: int
    total: int
    result: ModelResult | None = None


EventSink = Callable[[Event], None]


@dataclass
class _RunContext:
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


# called after a model's publish committed: (engine, model, run id, run time) -> warnings
PublishHook = Callable[[Engine, Model, str, dt.datetime], tuple[str, ...]]


def new_run_id(now: dt.datetime) -> str:
    return real_instant(now).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def execute(
    project: ParsedProject,
    dag: Dag,
    plan: Plan,
    engine: Engine,
    state: StateSnapshot,
    *,
    compiler: Compiler,
    full_refresh: bool = False,
    command: str = "run",
    on_event: EventSink | None = None,
    threads: int = 1,
    replay: bool = False,
    on_published: PublishHook | None = None,
) -> RunResult:
    """Run every BUILD decision of ``plan`` in order; report SKIP decisions as skipped.
    ``on_published`` is called once a model's publish committed (and its result is recorded,
    so an interrupt there loses nothing); the warnings it returns join the model's result."""
    now = plan.at
    run_id = new_run_id(now)
    root = Path(project.root)
    if not any(d.builds for d in plan.decisions):
        # nothing to do (the common cron case): no writes to the warehouse at all
        skipped = tuple(
            ModelResult(d.name, "skipped", d.reason, kind=d.kind) for d in plan.decisions
        )
        idle = RunResult(run_id, now, skipped, clock_behind=plan.clock_behind)
        return _write_results(root, idle)
    if not all((SCHEMA, t) in state.relations for t in (*STATE_TABLES, membership.TABLE_NAME)):
        ensure_schema(engine)  # a new warehouse (or one from before activation)
        membership.ensure_tables(engine)
    record_run_start(engine, run_id, now, command, os.getpid(), replay)
    schemas = {m.schema for m in project.models} | {s.schema for s in project.seeds}
    for schema in sorted(schemas | {project.config.warehouse.schema}):
        engine.create_schema(schema)  # once, up front: concurrent creates would conflict
    tests_by_model: dict[str, list[DataTest]] = {}
    for t in project.tests:
        for owner in t.refs if t.kind == "singular" else ((t.model,) if t.model else ()):
            tests_by_model.setdefault(owner, []).append(t)
    ctx = _RunContext(
        project,
        dag,
        compiler,
        engine,
        state,
        now,
        run_id,
        full_refresh,
        root,
        tests_by_model,
        dict(state.relations),
    )
    emit = on_event or (lambda e: None)
    models = {m.name: m for m in project.models}
    seeds = {s.name: s for s in project.seeds}
    building = [d for d in plan.decisions if d.builds]
    deps = parallel.dependencies(dag, {d.name for d in building})
    outcome: dict[str, ModelResult] = {}
    failed: set[str] = set()
    counter = [0]
    status = "success"
    clock = time.perf_counter()

    def build(decision: Decision, task_ctx: _RunContext) -> ModelResult:
        blocker = next((p for p in deps[decision.name] if p in failed), None)
        missing = None if blocker else _missing_upstream(task_ctx, decision.name, models, seeds)
        if blocker is not None or missing is not None:
            why = (
                f"upstream {blocker} failed"
                if blocker
                else f"upstream {missing} does not exist (never built successfully)"
            )
            result = ModelResult(
                decision.name,
                "upstream_failed",
                f"skipped because {why}",
                kind=decision.kind,
                error=why,
            )
            _record_failure(task_ctx, decision, result, None)
            return result
        try:
            if decision.kind == "seed":
                return _load_seed(task_ctx, seeds[decision.name], decision)
            return _build_model(task_ctx, models[decision.name], decision)
        except KeyboardInterrupt:
            # the build's transaction was rolled back: live relation and state unchanged
            result = ModelResult(
                decision.name,
                "error",
                decision.reason,
                kind=decision.kind,
                error="interrupted (SIGINT/SIGTERM); previous version kept live",
            )
            outcome[decision.name] = result
            _record_failure(task_ctx, decision, result, None, status="interrupted")
            raise

    def done(decision: Decision, result: ModelResult) -> None:
        outcome[decision.name] = result
        if on_published and result.status == "success" and decision.name in models:
            found = on_published(engine, models[decision.name], run_id, now)
            outcome[decision.name] = result = replace(result, warnings=result.warnings + found)
        if result.status == "upstream_failed" or (
            result.status == "error"
            and (decision.name not in models or models[decision.name].config.on_error != "continue")
        ):
            failed.add(decision.name)
        counter[0] += 1
        emit(Event("result", decision.name, counter[0], len(building), result))

    try:
        if threads <= 1 or len(building) <= 1:
            for decision in building:
                emit(Event("start", decision.name, counter[0] + 1, len(building)))
                done(decision, build(decision, ctx))
        else:
            parallel.run(
                building,
                deps,
                threads,
                ctx.engine,
                lambda d, cursor: build(d, replace(ctx, engine=cursor)),
                done,
                lambda d, n: emit(Event("start", d.name, n, len(building))),
            )
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        results = []
        for d in plan.decisions:
            if not d.builds:
                results.append(ModelResult(d.name, "skipped", d.reason, kind=d.kind))
            elif d.name in outcome:
                results.append(outcome[d.name])
        if status != "interrupted":
            status = (
                "error"
                if any(r.status in ("error", "upstream_failed") for r in results)
                else "success"
            )
        try:
            finished = now + dt.timedelta(seconds=time.perf_counter() - clock)
            # this run's end and state (and that of runs killed before folding) at once
            carried = {name: state.models[name] for name in state.pending_models}
            fold(
                engine,
                {**carried, **ctx.new_states},
                [*state.pending_runs, run_id],
                (run_id, finished, status),
            )
        except Exception:  # noqa: BLE001 - interrupted with a cursor busy: left unfolded,
            if status != "interrupted":  # the next run replays its committed build records
                raise
        run_result = RunResult(
            run_id, now, tuple(results), command == "seed", clock_behind=plan.clock_behind
        )
        run_result = _write_results(root, run_result)
    return run_result


def _write_results(root: Path, result: RunResult) -> RunResult:
    try:
        artifacts.write_json(root, "run_results.json", result.to_json())
    except CadenceError as exc:  # never masks an interrupt in flight, never exit 2 for it
        return replace(result, write_error=exc.message)
    return result


def _missing_upstream(
    ctx: _RunContext, name: str, models: dict[str, Model], seeds: dict[str, Seed]
) -> str | None:
    """An upstream relation this model reads that does not exist (e.g. it is backing off)."""
    for parent in _upstream_models(ctx.dag, name, models):
        if parent in models:
            m = models[parent]
            if m.materialized == "ephemeral":
                continue
            key = (m.schema, m.identifier)
        elif parent in seeds:
            key = (seeds[parent].schema, seeds[parent].table)
        else:
            continue
        if key not in ctx.relations:
            return parent
    return None


def _upstream_models(dag: Dag, name: str, models: dict[str, Model]) -> list[str]:
    """Parents, looking through ephemerals (which are inlined)."""
    out: list[str] = []
    stack = list(dag.parents.get(name, ()))
    while stack:
        p = stack.pop()
        out.append(p)
        if p in models and models[p].materialized == "ephemeral":
            stack.extend(dag.parents.get(p, ()))
    return out


def _record_failure(
    ctx: _RunContext,
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
    with ctx.engine.transaction():
        ctx.new_states[decision.name] = record_build(
            ctx.engine, record, ctx.state.of(decision.name)
        )


def _load_seed(ctx: _RunContext, seed: Seed, decision: Decision) -> ModelResult:
    started = time.perf_counter()
    schema = seed.schema
    staging = ctx.engine.staging_relation(schema, seed.table, ctx.run_id)
    options = {"delimiter": seed.delimiter} if seed.delimiter else {}
    try:
        with ctx.engine.transaction():
            path = str(Path(ctx.project.root) / seed.path)
            ctx.engine.load_csv(staging, path, seed.column_types, **options)
            rows = ctx.engine.row_count(staging)
            _swap(ctx, staging, seed.relation, schema, seed.table)
            duration = time.perf_counter() - started
            ctx.new_states[seed.name] = record_build(
                ctx.engine,
                BuildRecord(
                    ctx.run_id,
                    seed.name,
                    "seed",
                    None,
                    ctx.now,
                    "success",
                    decision.reason,
                    rows,
                    duration,
                    seed.digest,
                    None,
                ),
                ctx.state.of(seed.name),
            )
        ctx.relations[(schema, seed.table)] = "table"
        return ModelResult(seed.name, "success", decision.reason, rows, duration, kind="seed")
    except EngineError as exc:
        result = ModelResult(
            seed.name,
            "error",
            decision.reason,
            None,
            time.perf_counter() - started,
            error=f"seed {seed.path} failed to load: {exc}",
            kind="seed",
        )
        _record_failure(ctx, decision, result, None)
        return result


def _swap(ctx: _RunContext, staging: str, live: str, schema: str, identifier: str) -> None:
    ctx.engine.publish(staging, live, schema, identifier, ctx.relations.get((schema, identifier)))


def _build_model(ctx: _RunContext, model: Model, decision: Decision) -> ModelResult:
    started = time.perf_counter()
    engine = ctx.engine
    mat = model.materialized
    exists = ctx.state.exists(model.schema, model.identifier)
    incremental = mat == "incremental" and exists and not ctx.full_refresh
    compiled_rel: str | None = None
    sql_hash: str | None = None
    try:
        compiled = ctx.compiler.compile(model.name, ctx.now, decision.tick, incremental)
        compiled_rel = artifacts.write_compiled(ctx.root, model.path, compiled.sql)
        sql_hash = view_hash(model, ctx.project) if mat == "view" else compiled.sql_hash
        # what this transaction can see: relations committed before it begins (others being
        # built in parallel commit later, invisible to it)
        ctx = replace(ctx, visible=dict(ctx.relations))
        with engine.transaction():
            if mat == "view":
                kind = ctx.relations.get((model.schema, model.identifier))
                if kind == "table":
                    engine.drop(model.relation, "table")
                engine.create_view_as(model.relation, compiled.sql)
                rows = None
                warnings: list[str] = []
            else:
                rows, warnings = _publish_table(ctx, model, compiled, incremental, decision)
            duration = time.perf_counter() - started
            ctx.new_states[model.name] = record_build(
                engine,
                BuildRecord(
                    ctx.run_id,
                    model.name,
                    "model",
                    decision.tick,
                    ctx.now,
                    "success",
                    decision.reason,
                    rows,
                    duration,
                    sql_hash,
                    None,
                ),
                ctx.state.of(model.name),
            )
        ctx.relations[(model.schema, model.identifier)] = "view" if mat == "view" else "table"
        return ModelResult(
            model.name,
            "success",
            decision.reason,
            rows,
            duration,
            compiled_path=compiled_rel,
            warnings=tuple(warnings),
        )
    except (EngineError, CadenceError) as exc:
        if isinstance(exc, CadenceError):
            message = exc.message
        else:
            message = f"{exc}"
        where = f" (compiled SQL: {compiled_rel})" if compiled_rel else f" ({model.path})"
        result = ModelResult(
            model.name,
            "error",
            decision.reason,
            None,
            time.perf_counter() - started,
            error=f"{message}{where}",
            compiled_path=compiled_rel,
        )
        _record_failure(ctx, decision, result, sql_hash)
        return result


class _TestsFailed(EngineError):
    pass


def _publish_table(
    ctx: _RunContext, model: Model, compiled: CompiledModel, incremental: bool, decision: Decision
) -> tuple[int, list[str]]:
    """Inside the caller's transaction: stage, test, swap (an incremental: merge, judging
    ``unique`` on the merged table). Returns (rows, warnings)."""
    engine = ctx.engine
    staging = engine.staging_relation(model.schema, model.identifier, ctx.run_id)
    created = stage(engine, compiled, staging)
    rows = created if created is not None else engine.row_count(staging)
    merge_into = model.relation if incremental else None  # judged as the merge will leave it
    outcomes = _run_tests(ctx, model, staging, None if incremental else rows, merge_into)
    warnings = [o.message for o in outcomes if not o.passed and not o.blocking]
    blocking = [o for o in outcomes if o.blocking]
    if blocking:
        kept = (
            "kept the previous version live"
            if (model.schema, model.identifier) in ctx.relations
            else "nothing published (no previous version)"
        )
        raise _TestsFailed(f"tests failed, {kept}: " + "; ".join(o.message for o in blocking))
    if model.config.key:  # a segment: who entered and exited commits with the publish
        membership.record_changes(
            engine,
            segment=model.name,
            key=model.config.key,
            candidate=staging,
            live=model.relation if (model.schema, model.identifier) in ctx.relations else None,
            run_id=ctx.run_id,
            tick=decision.tick,
            at=ctx.now,
            exits=not incremental,
        )
    if incremental:
        engine.append(model.relation, staging, model.config.unique_key or (), ctx.run_id)
    else:
        _swap(ctx, staging, model.relation, model.schema, model.identifier)
    return rows, warnings


def _run_tests(
    ctx: _RunContext,
    model: Model,
    relation: str,
    candidate_rows: int | None,
    merge_into: str | None = None,
) -> list[TestOutcome]:
    outcomes: list[TestOutcome] = []
    tests = list(ctx.tests_by_model.get(model.name, ()))
    if model.config.key:
        declared = {(t.kind, t.column) for t in tests if t.severity == "error" and not t.where}
        for kind in ("not_null", "unique"):
            if (kind, model.config.key) in declared:
                continue  # the YAML already checks it
            tests.append(
                DataTest(
                    name=f"key_{kind}_{model.name}",
                    kind=kind,
                    model=model.name,
                    column=model.config.key,
                    args={},
                    severity="error",
                    where=None,
                    file=model.path,
                    line=None,
                )
            )
    counted: list[tuple[DataTest, str]] = []  # failing-row counts, asked in one query
    for test in tests:
        if test.kind == "singular":
            others = [r for r in test.refs if r != model.name]
            if not all(_target_exists(ctx, f"ref('{r}')") for r in others):
                continue  # reads a relation that does not exist yet: checked on a later build
            # the singular test reads the candidate in place of the live relation
            sql = ctx.compiler.compile_sql(test.sql or "", ctx.now, {model.name: relation})
            try:
                failures = int(ctx.engine.query(f"select count(*) from (\n{sql}\n)")[0][0])
            except EngineError as exc:  # the test's SQL, not the model's: say which file
                raise EngineError(f"singular test {test.name} ({test.file}): {exc}") from exc
            outcomes.append(
                TestOutcome(
                    test,
                    failures,
                    f"singular test {test.name} ({test.file}): {failures} failing row(s)",
                )
            )
            continue
        if test.kind == "max_change":
            outcome = _max_change(ctx, model, test, candidate_rows)
        else:
            if test.kind == "relationships" and not _target_exists(ctx, str(test.args["to"])):
                outcomes.append(TestOutcome(test, 0, ""))  # nothing to check against yet
                continue
            counted_sql = checked_sql(test, relation, merge_into, model, ctx.compiler.relation_of)
            if counted_sql is not None:
                counted.append((test, counted_sql))
            continue
        outcomes.append(outcome)
    if counted:
        columns = ",\n".join(f"({sql}) as t{i}" for i, (_test, sql) in enumerate(counted))
        counts = ctx.engine.query(f"select\n{columns}")[0]
        for (test, _sql), failures in zip(counted, counts, strict=True):
            label = "key " if test.name.startswith("key_") else ""
            outcomes.append(
                TestOutcome(test, int(failures), label + describe_failure(test, int(failures)))
            )
    return outcomes


def _target_exists(ctx: _RunContext, to: str) -> bool:
    from cadence.plan.dag import ref_target

    name = ref_target(to)
    model = ctx.compiler.models.get(name)
    seed = ctx.compiler.seeds.get(name)
    schema, identifier = (
        (model.schema, model.identifier)
        if model is not None
        else (seed.schema, seed.table)
        if seed is not None
        else (ctx.project.config.warehouse.schema, name)
    )
    return (schema, identifier) in (ctx.visible if ctx.visible is not None else ctx.relations)


def _max_change(
    ctx: _RunContext, model: Model, test: DataTest, new_rows: int | None
) -> TestOutcome:
    if new_rows is None or not ctx.state.exists(model.schema, model.identifier):
        return TestOutcome(test, 0, "")
    old = ctx.engine.row_count(model.relation)
    limit = float(test.args.get("value", test.args.get("fraction", 0.5)))
    if old == 0:
        change = 0.0 if new_rows == 0 else float("inf")
    else:
        change = abs(new_rows - old) / old
    if change > limit and old > 0:
        msg = f"size changed from {old} to {new_rows} rows ({change:.0%} > {limit:.0%})"
        return TestOutcome(test, 1, describe_failure(test, 1, msg))
    return TestOutcome(test, 0, "")


__all__ = ["Event", "ModelResult", "RunResult", "execute", "quote"]
