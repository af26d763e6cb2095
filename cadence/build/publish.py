"""Publish one model: compile it, build it, gate it, and swap it live with its record.

Input: the ``RunContext`` and a model's BUILD ``Decision`` -> output: its ``ModelResult``. A
view is created in place (replacing a table of the same name). A table is built into a staging
relation, its blocking tests (``gate``) run on it, a segment's membership changes are recorded
against it, and it replaces the live relation; an incremental is staged from its new rows and
merged in (``incremental``). On an engine whose DDL is transactional, a table with nothing to
compare with its previous version (its first version, or not a segment and no ``max_change``)
is built straight into its live name: the transaction is its staging. All of it commits in one
transaction with the model's build record: a failure at any step (compile, SQL, a blocking
test) rolls back and leaves the live relation and state as they were, and the failure is
recorded on its own; a snapshot's next version is built, gated and swapped the same way
(``snapshots``). Used by ``runner``, once per model decision, on the run's engine or one
thread's cursor.
"""

from __future__ import annotations

import time
from dataclasses import replace

from cadence.build import hooks
from cadence.build.compiler import CompiledModel, ensure_query
from cadence.build.context import ModelResult, RunContext, record_failure, swap
from cadence.build.gate import TestsCannotRun, run_tests
from cadence.build.incremental import merge_keys, settle_columns, stage
from cadence.build.snapshots import compiled_path, publish_snapshot
from cadence.disk import artifacts
from cadence.engines.base import EngineError
from cadence.errors import CadenceError
from cadence.load.parser import Model
from cadence.plan.due import Decision, view_hash
from cadence.plan.history import BuildRecord
from cadence.record import membership, segmentkeys
from cadence.record.state import record_build
from cadence.record.unrecorded import disk_full, full_disk_error


def build_model(ctx: RunContext, model: Model, decision: Decision) -> ModelResult:
    started = time.perf_counter()
    engine = ctx.engine
    mat = model.materialized
    # merged into only when its table exists: a view of the same name (it was one) is replaced
    exists = ctx.state.relations.get((model.schema, model.identifier)) == "table"
    incremental = mat == "incremental" and exists and not _full_refresh(ctx, model)
    compiled_rel: str | None = None
    sql_hash: str | None = None
    try:
        compiled = ctx.compiler.compile(
            model.name,
            ctx.now,
            decision.tick,
            incremental,
            query=engine.query_named,
            invocation_id=ctx.run_id,
        )
        compiled_rel = artifacts.write_compiled(ctx.root, compiled_path(model), compiled.sql)
        ensure_query(compiled.sql, model.path, ctx.compiler.accepted)
        membership.before_reading(engine, compiled.sql)
        sql_hash = view_hash(model, ctx.project) if mat == "view" else compiled.sql_hash
        # what this transaction can see: relations committed before it begins (others being
        # built in parallel commit later, invisible to it)
        ctx = replace(ctx, visible=dict(ctx.relations))
        with engine.transaction():
            hooks.before_build(ctx.compiler, model, engine, ctx.now)
            if mat == "view":
                kind = ctx.relations.get((model.schema, model.identifier))
                if kind == "table":
                    engine.drop(model.relation, "table")
                engine.create_view_as(model.relation, compiled.sql)
                rows = None
                warnings: list[str] = []
            elif mat == "snapshot":
                rows, warnings = publish_snapshot(ctx, model, compiled)
            else:
                rows, warnings = _publish_table(ctx, model, compiled, incremental, decision)
            hooks.after_build(ctx.compiler, model, engine, ctx.now)
            # rows this publish makes untrue (it records no members, or with another key)
            segmentkeys.forget(
                engine,
                ctx.segment_keys.untrue(
                    model.name,
                    segmentkeys.table_of(model.schema, model.identifier),
                    model.config.key if records_members(model) else None,
                ),
                ctx.segment_keys,
            )
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
        if isinstance(exc, TestsCannotRun):  # rolled back: the engine can answer again
            exc = exc.named(engine)
        if isinstance(exc, CadenceError):
            message = exc.message
        else:
            message = f"{exc}"
        where = f" (compiled SQL: {compiled_rel})" if compiled_rel else f" ({model.path})"
        if isinstance(exc, EngineError) and disk_full(message):
            message, where = full_disk_error(message, ctx.project.config.warehouse.path), ""
        result = ModelResult(
            model.name,
            "error",
            decision.reason,
            None,
            time.perf_counter() - started,
            error=f"{message}{where}",
            compiled_path=compiled_rel,
        )
        record_failure(ctx, decision, result, sql_hash)
        return result


def _full_refresh(ctx: RunContext, model: Model) -> bool:
    """``--full-refresh``, unless the model's ``full_refresh`` config says otherwise (``false``:
    never rebuilt from scratch; ``true``: always), as in dbt."""
    own = model.config.extra.get("full_refresh")
    return ctx.full_refresh if own is None else bool(own)


def records_members(model: Model) -> bool:
    """A publish of ``model`` records who entered and exited: a table (or incremental) with a
    ``key``."""
    return bool(model.config.key) and model.materialized not in ("view", "snapshot")


class _TestsFailed(EngineError):
    pass


def _publish_table(
    ctx: RunContext, model: Model, compiled: CompiledModel, incremental: bool, decision: Decision
) -> tuple[int, list[str]]:
    """Inside the caller's transaction: stage, test, swap (an incremental: merge, judging
    ``unique`` on the merged table). Returns (rows, warnings)."""
    engine = ctx.engine
    existing = ctx.relations.get((model.schema, model.identifier))
    tests = ctx.tests_by_model.get(model.name, ())
    in_place = (
        engine.builds_in_place
        and not incremental
        and (
            existing is None  # a first version: nothing to compare it with
            or (not model.config.key and not any(t.kind == "max_change" for t in tests))
        )
    )
    if in_place:  # the transaction is the staging: a failure rolls the old version back
        staging = model.relation
        if existing == "view":
            engine.drop(model.relation, "view")
    else:
        staging = engine.staging_relation(model.schema, model.identifier, ctx.run_id)
    created = stage(engine, compiled, staging)
    rows = created if created is not None else engine.row_count(staging)
    merge_into = model.relation if incremental else None  # judged as the merge will leave it
    outcomes = run_tests(
        ctx, model, staging, None if incremental else rows, merge_into, built_from=compiled.sql
    )
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
        # the live relation is what the history describes only if it was published as this
        # segment; else (a table that became one, a new key) the diff is against the history
        live = existing == "table" and ctx.segment_keys.trusted(
            model.name,
            model.config.key,
            segmentkeys.table_of(model.schema, model.identifier),
        )
        membership.record_changes(
            engine,
            segment=model.name,
            key=model.config.key,
            candidate=staging,
            live=model.relation if live else None,
            run_id=ctx.run_id,
            tick=decision.tick,
            at=ctx.now,
            exits=not incremental or not live,  # merged into a table it cannot trust: vs history
            event_time=model.config.event_time,
            tz=ctx.project.config.tz,
            vanished=ctx.state.of(model.name).last_success_at is not None,
            at_commit=ctx.settles_at_commit and staging == model.relation,
            merged_into=model.relation if incremental and not live else None,
        )
    if incremental:
        settle_columns(engine, model, staging)
        engine.append(model.relation, staging, merge_keys(model), ctx.run_id)
    elif not in_place:
        swap(ctx, staging, model.relation, model.schema, model.identifier)
    return rows, warnings
