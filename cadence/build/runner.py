"""Execute a plan on the engine: build, test, publish and record, model by model.

Input: a ``Plan`` (what to build and why), the compiled project and an open ``Engine`` ->
output: ``RunResult``, one ``ModelResult`` per considered model, also written to
``target/run_results.json``. Each table is built into a staging relation, its blocking tests run
on it, and it replaces the live relation in the same transaction as its state record (one
model: ``publish``; one seed: ``seeds``): a failure at any step leaves the live relation and
state as they were. This module is the run loop around them: it prepares the warehouse, skips
the descendants of failed models (``upstream_failed``) unless ``on_error: continue``, runs
builds in order or on threads (``parallel``) and folds the run's state at the end. Progress is
reported through events; the runner never prints. Used by the ``Project`` facade (``execute``)
and the CLI's output (``RunResult``, ``ModelResult``, ``Event``).
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cadence.build import grouped, parallel
from cadence.build.beside import Beside, PublishHook
from cadence.build.compiler import Compiler
from cadence.build.context import ModelResult, RunContext, record_failure
from cadence.build.hooks import runs_sql
from cadence.build.publish import build_model, records_members
from cadence.build.seeds import load_seed
from cadence.disk import artifacts, reserve
from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError, DiskFull
from cadence.load.parser import Model, ParsedProject, Seed
from cadence.load.relations import quote
from cadence.load.testspecs import DataTest
from cadence.plan.dag import Dag
from cadence.plan.due import Decision, Plan, real_instant
from cadence.plan.history import BuildRecord, StateSnapshot
from cadence.record import membership, segmentkeys, unrecorded
from cadence.record.state import (
    SCHEMA,
    STATE_TABLES,
    ensure_schema,
    fold,
    record_run_start,
)
from cadence.record.unrecorded import refused_error


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
    duration_s: float = 0.0  # building, testing and publishing (metrics: the run's duration)
    wall_s: float | None = None  # the run's wall time, once it held the lock (Project.run)
    # the observe wing's warning (an alert not sent, metrics not written); set by Project.run
    observe_warning: str | None = None

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
    ``on_published`` is given the models published as their publishes commit, in batches, on a
    cursor of its own beside the builds (``beside``; where the engine has no cursors of its own,
    once, after the builds); the warnings it returns join those models' results."""
    now = plan.at
    run_id = new_run_id(now)
    root = Path(project.root)
    if not any(d.builds for d in plan.decisions):
        # nothing to do (the common cron case): no writes to the warehouse at all, and the
        # last run_results.json stays in place (SPEC §5; the facade writes it if the run
        # delivers)
        skipped = tuple(
            ModelResult(d.name, "skipped", d.reason, kind=d.kind) for d in plan.decisions
        )
        return RunResult(run_id, now, skipped, clock_behind=plan.clock_behind)
    reserve.keep(root)  # room to record a failure if this run fills the disk
    try:
        tables = (*STATE_TABLES, membership.TABLE_NAME, segmentkeys.TABLE_NAME)
        pruned = project.config.history_keep_days is not None
        if not all((SCHEMA, t) in state.relations for t in tables):
            ensure_schema(engine)  # a new warehouse (or one from before activation)
            membership.ensure_tables(engine)
            # one from before segment keys were kept: the segments it holds keep their history
            segmentkeys.ensure_table(engine, _published_segments(project, state), pruned=pruned)
        elif any(m.config.key for m in project.models):
            membership.ensure_tables(engine)  # columns added since the warehouse was made
        try:
            segment_keys = segmentkeys.read(engine)
        except EngineError:  # made by a development version, with other columns: again
            candidates = _published_segments(project, state)
            segmentkeys.ensure_table(engine, candidates, pruned=pruned, again=True)
            segment_keys = segmentkeys.read(engine)
        record_run_start(engine, run_id, now, command, os.getpid(), replay)
        schemas = {m.schema for m in project.models} | {s.schema for s in project.seeds}
        for schema in sorted(schemas | {project.config.warehouse.schema}):
            engine.create_schema(schema)  # once, up front: concurrent creates would conflict
    except EngineError as exc:  # the warehouse takes no writes (a full disk): nothing was built
        cause = refused_error(str(exc), project.config.warehouse.path)
        skipped = tuple(
            ModelResult(d.name, "skipped", f"not built: {cause}" if d.builds else d.reason)
            for d in plan.decisions
        )
        unstarted = RunResult(
            run_id, now, skipped, clock_behind=plan.clock_behind, write_error=cause
        )
        return write_results(root, unstarted)
    tests_by_model: dict[str, list[DataTest]] = {}
    for t in project.tests:
        for owner in t.refs if t.kind == "singular" else ((t.model,) if t.model else ()):
            tests_by_model.setdefault(owner, []).append(t)
    ctx = RunContext(
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
        settles_at_commit=engine.groups_commits and not runs_sql(project),
        segment_keys=segment_keys,
    )
    emit = on_event or (lambda e: None)
    models = {m.name: m for m in project.models}
    seeds = {s.name: s for s in project.seeds}
    building = [d for d in plan.decisions if d.builds]
    deps = parallel.dependencies(dag, {d.name for d in building})
    outcome: dict[str, ModelResult] = {}
    failed: set[str] = set()
    counter = [0]
    published: list[Model] = []
    status = "success"
    clock = time.perf_counter()

    def build(decision: Decision, task_ctx: RunContext) -> ModelResult:
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
            record_failure(task_ctx, decision, result, None)
            return result
        try:
            if decision.kind == "seed":
                return load_seed(task_ctx, seeds[decision.name], decision)
            return build_model(task_ctx, models[decision.name], decision)
        except KeyboardInterrupt:
            interrupted(decision, task_ctx)
            raise

    def interrupted(decision: Decision, task_ctx: RunContext) -> None:
        # the build's transaction was rolled back: live relation and state unchanged
        result = ModelResult(
            decision.name,
            "error",
            decision.reason,
            kind=decision.kind,
            error="interrupted (SIGINT/SIGTERM); previous version kept live",
        )
        outcome[decision.name] = result
        record_failure(task_ctx, decision, result, None, status="interrupted")

    def relation(decision: Decision) -> tuple[str, str] | None:
        return _relation(decision.name, models, seeds)

    def done(decision: Decision, result: ModelResult) -> None:
        outcome[decision.name] = result
        if result.status == "success" and decision.name in models:
            published.append(models[decision.name])
            if beside is not None:
                beside.add(models[decision.name])
        if result.status == "upstream_failed" or (
            result.status == "error"
            and (decision.name not in models or models[decision.name].config.on_error != "continue")
        ):
            failed.add(decision.name)
        counter[0] += 1
        emit(Event("result", decision.name, counter[0], len(building), result))

    sequential = threads <= 1 or len(building) <= 1
    # the members files of what is published are written beside the builds, in a thread
    beside = (
        Beside.of(engine, on_published, run_id, now, 1 if sequential else threads)
        if on_published is not None
        else None
    )
    try:
        if sequential and engine.groups_commits:
            grouped.run(
                building,
                ctx,
                build,
                done,
                interrupted,
                lambda d: emit(Event("start", d.name, counter[0] + 1, len(building))),
                relation,
            )
        elif sequential:
            for decision in building:
                emit(Event("start", decision.name, counter[0] + 1, len(building)))
                done(decision, build(decision, ctx))
        else:
            parallel.run(
                building,
                deps,
                threads,
                ctx.engine,
                grouped.task(ctx, build, interrupted, relation)
                if engine.groups_commits
                else parallel.one(lambda d, cursor: build(d, replace(ctx, engine=cursor))),
                done,
                lambda d, n: emit(Event("start", d.name, n, len(building))),
            )
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        late: KeyboardInterrupt | None = None  # while the members files were written, once folded
        try:  # the last members files are written while the run folds its state
            # an interrupted run writes what it published but leaves the files marked behind:
            # a signal may have come between a commit and its report (the next run repairs)
            if beside is not None:
                beside.end(settle=status != "interrupted")
            elif on_published is not None and published:  # no cursor of its own: in turn
                try:
                    found = on_published.write(engine, published, run_id, now)
                    if status != "interrupted":
                        on_published.settle(found)
                    _warn(outcome, found)
                except Exception:  # noqa: BLE001 - never masks an interrupt; the hook's own
                    if status != "interrupted":  # files are repaired by the next run
                        raise
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
            finished = now + dt.timedelta(seconds=time.perf_counter() - clock)
            # this run's end and state (and that of runs killed before folding) at once
            carried = {name: state.models[name] for name in state.pending_models}

            def record() -> None:
                if ctx.unrecorded:  # failures the warehouse refused when they happened
                    unrecorded.insert(engine, ctx.unrecorded)
                    ctx.unrecorded.clear()
                keyed = [
                    (m.name, str(m.config.key), segmentkeys.table_of(m.schema, m.identifier))
                    for m in published
                    if records_members(m)
                ]
                changed = segmentkeys.changed(ctx.segment_keys, keyed)
                fold(
                    engine,
                    {**carried, **ctx.new_states},
                    [*state.pending_runs, run_id],
                    (run_id, finished, status),
                    also=lambda store: segmentkeys.register(
                        store, changed, compact=bool(ctx.segment_keys.forgotten)
                    ),
                )

            refused: str | None = None
            try:
                record()
            except EngineError as exc:
                if status != "interrupted":
                    if beside is not None:  # its files take what the disk has left first: the
                        beside.wait()  # reserve freed below is for the run's record
                    refused = _record_refused(project, root, ctx, record, str(exc))
                elif ctx.unrecorded:  # else left unfolded, replayed by the next run
                    _keep_quietly(root, ctx.unrecorded)
            except Exception:  # noqa: BLE001 - interrupted with a cursor busy: left unfolded,
                if status != "interrupted":  # the next run replays its committed build records
                    raise
            if beside is not None:
                try:
                    _warn(outcome, beside.finish())
                except KeyboardInterrupt as exc:  # the run is folded: its results are written,
                    beside.stop()  # then it ends interrupted (the next run writes the files)
                    late = exc
                results = [outcome.get(r.name, r) for r in results]
        except BaseException:
            if beside is not None:
                beside.stop()
            raise
        run_result = RunResult(
            run_id,
            now,
            tuple(results),
            command == "seed",
            clock_behind=plan.clock_behind,
            write_error=refused,
            duration_s=round(time.perf_counter() - clock, 6),
        )
        run_result = write_results(root, run_result)
        compiler.accepted.save()  # the queries the parser accepted, for the next run
        if late is not None:
            raise late
    return run_result


def _warn(outcome: dict[str, ModelResult], found: dict[str, tuple[str, ...]]) -> None:
    for name, warnings in found.items():
        result = outcome[name]
        outcome[name] = replace(result, warnings=result.warnings + warnings)


def _keep_quietly(root: Path, records: list[BuildRecord]) -> None:
    """Interrupted as well: keep what the warehouse refused if the disk takes it."""
    try:
        unrecorded.save(root, records)
    except CadenceError:
        pass


def _record_refused(
    project: ParsedProject,
    root: Path,
    ctx: RunContext,
    record: Callable[[], None],
    cause: str,
) -> str | None:
    """The warehouse refused the run's record (its failures, its state): keep the failures it
    does not hold in target/ (space freed from the reserve first, so they fit on a disk the run
    filled), then try the warehouse once more. Returns what the run must report, or None when
    the second try recorded everything."""
    reserve.release(root)
    kept = list(ctx.unrecorded)
    saved: str | None = None
    if kept:
        try:
            unrecorded.save(root, kept)
        except CadenceError as exc:
            saved = exc.message
    try:
        record()
    except EngineError:
        pass
    else:
        if kept and saved is None:
            unrecorded.forget(root)  # in the warehouse after all
        return None
    refused = refused_error(cause, project.config.warehouse.path)
    if not kept:
        return f"{refused}: the end of this run is not recorded; the next run records its builds"
    names = ", ".join(sorted({r.model for r in kept}))
    if saved is None:
        return (
            f"{refused}: the failure of {names} is kept in {unrecorded.FILE}; the next run "
            "records it"
        )
    return f"{refused}: the failure of {names} is not recorded ({saved})"


def only_delivered(root: Path, result: RunResult) -> RunResult:
    """A run that built nothing but delivered (its deliveries set by the facade after
    ``execute``) writes its run_results.json now (SPEC §5); any other is returned as it is."""
    built = any(r.status != "skipped" for r in result.results)
    if built or result.deliveries is None or not result.deliveries.deliveries:
        return result
    return write_results(root, result)


def write_results(root: Path, result: RunResult) -> RunResult:
    """``target/run_results.json`` for ``result`` (a failed write is reported on the result,
    never raised: it must not mask an interrupt in flight, nor turn into exit 2)."""
    try:
        try:
            artifacts.write_json(root, "run_results.json", result.to_json())
        except DiskFull:
            if not reserve.release(root):  # the space kept for this: the results still fit
                raise
            artifacts.write_json(root, "run_results.json", result.to_json())
    except CadenceError as exc:  # never masks an interrupt in flight, never exit 2 for it
        also = f"{result.write_error}; " if result.write_error else ""
        return replace(result, write_error=also + exc.message)
    return result


def _missing_upstream(
    ctx: RunContext, name: str, models: dict[str, Model], seeds: dict[str, Seed]
) -> str | None:
    """An upstream relation this model reads that does not exist (e.g. it is backing off)."""
    for parent in _upstream_models(ctx.dag, name, models):
        if parent in models and models[parent].materialized == "ephemeral":
            continue
        key = _relation(parent, models, seeds)
        if key is not None and key not in ctx.relations:
            return parent
    return None


def _published_segments(
    project: ParsedProject, state: StateSnapshot
) -> list[tuple[str, str, str, str]]:
    """The project's segments that cadence has published and whose tables exist (name, key,
    table, relation): in a warehouse from before ``_cadence.segment_keys``, the candidates
    for a row (``segmentkeys.ensure_table`` checks each against its history)."""
    return [
        (m.name, str(m.config.key), segmentkeys.table_of(m.schema, m.identifier), m.relation)
        for m in project.models
        if records_members(m)
        and state.of(m.name).last_success_at is not None
        and state.relations.get((m.schema, m.identifier)) == "table"
    ]


def _relation(
    name: str, models: dict[str, Model], seeds: dict[str, Seed]
) -> tuple[str, str] | None:
    """The relation a model or seed publishes, as ``RunContext.relations`` keys it."""
    if name in models:
        return (models[name].schema, models[name].identifier)
    if name in seeds:
        return (seeds[name].schema, seeds[name].table)
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


__all__ = ["Event", "ModelResult", "RunResult", "execute", "quote"]
