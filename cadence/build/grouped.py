"""Publishes committed in groups: the run loop's builds on an engine that groups commits.

Input: the decisions to build, the run's context and the runner's callbacks (build one decision;
report a result; report a decision interrupted; the relation a decision publishes) -> output:
nothing; every decision whose group committed has been reported, in the order it became final.
Invariants: each publish and its build record are in one transaction (SPEC §6); the publishes
that follow it on the same handle join that transaction until the group has worked
``GROUP_SECONDS``, holds ``GROUP_MODELS`` publishes, runs out of ready work, or a result is not a
success (what later builds check, a failed upstream, is then settled). A group's builds see
the relations committed when it began and their own; nothing is reported, nor joins the run's
shared bookkeeping, before its group commits, so a model built on another thread never reads an
uncommitted one, and a kill loses only the open groups: every relation stays at its old or new
version with its state, and the next run builds what is still due. A statement that fails
inside a group aborts its transaction: a group's first publish is then handled as in a
transaction of its own; a later one has the publishes before it built again in a group of their
own and is built again alone, in a fresh transaction, exactly as without groups (its error and
record). Before it commits, a group settles what its publishes left for it, in the same
transaction: the first publishes' membership rows (one insert) and the data tests that read only
their model's table (one query, ``gate.settle``; only in a project that runs no SQL of its own
while it builds, ``hooks.runs_sql``; a statement naming ``_cadence`` has the pending membership
rows inserted before it runs, ``membership.before_reading``); a test that blocks there
has the group's decisions built again, in order, one transaction each, where it blocks as it
publishes and what was built on it is ``upstream_failed``. In order, the groups
after a failure start at one publish and double. A commit the
warehouse refuses (a full disk) builds the group's decisions again, one transaction each; an
interrupt, during the commit too, rolls the open group back and reports its decisions
interrupted (unless the commit landed as the signal came, which the warehouse says: then they
are reported as published, and the run still ends interrupted). Used by ``runner`` on an
engine with ``groups_commits`` (DuckDB): in order (``run``), or one group per task on threads
(``parallel``, through ``task``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from cadence.build.context import ModelResult, RunContext
from cadence.build.gate import settle
from cadence.engines.base import CommitGroup, Engine, EngineError
from cadence.plan.due import Decision
from cadence.record.membership import insert_entered
from cadence.record.state import build_committed, insert_builds

GROUP_SECONDS = 0.1  # of work a group holds at most: what a kill or a failure costs again
GROUP_MODELS = 64

Build = Callable[[Decision, RunContext], ModelResult]
Report = Callable[[Decision, ModelResult], None]
Take = Callable[[], "Decision | None"]
Key = Callable[[Decision], "tuple[str, str] | None"]  # the relation a decision publishes


def run(
    decisions: list[Decision],
    ctx: RunContext,
    build: Build,
    done: Report,
    interrupted: Callable[[Decision, RunContext], None],
    started: Callable[[Decision], None],
    key: Key,
) -> None:
    """Build ``decisions`` in order, committing them in groups."""
    todo = deque(decisions)
    limit = GROUP_MODELS
    while todo:
        limit = group(_taker(todo), ctx, build, done, interrupted, key, limit, started)


def task(
    ctx: RunContext,
    build: Build,
    interrupted: Callable[[Decision, RunContext], None],
    key: Key,
) -> Callable[[Engine, Decision, Take, list[tuple[Decision, ModelResult]]], None]:
    """One group as a task of ``parallel.run``: on its cursor, the decision it is given and the
    ready ones it takes after it, its results appended once they committed."""

    def work(
        cursor: Engine,
        first: Decision,
        take: Take,
        results: list[tuple[Decision, ModelResult]],
    ) -> None:
        given = [first]
        group(
            lambda: given.pop() if given else take(),
            replace(ctx, engine=cursor),
            build,
            lambda decision, result: results.append((decision, result)),
            interrupted,
            key,
        )

    return work


def _taker(todo: deque[Decision]) -> Take:
    return lambda: todo.popleft() if todo else None


def group(
    take: Take,
    ctx: RunContext,
    build: Build,
    report: Report,
    interrupted: Callable[[Decision, RunContext], None],
    key: Key,
    limit: int = GROUP_MODELS,
    started: Callable[[Decision], None] | None = None,
) -> int:
    """Build what ``take`` gives, up to ``limit``, in one group on ``ctx.engine``; returns the
    next group's limit. The group's builds see the relations committed when it began and its
    own (``mine``), which join the run's shared ones once it commits."""
    engine = ctx.engine
    mine = replace(ctx, relations=dict(ctx.relations), new_states={})
    opened = engine.open_group()
    began = time.perf_counter()
    built: list[tuple[Decision, ModelResult]] = []
    current: Decision | None = None
    committed = committing = closing = False
    try:
        while len(built) < limit:
            current = take()
            if current is None:
                break
            if started is not None:
                started(current)
            result = build(current, mine)
            if opened.broken:
                break
            built.append((current, result))
            current = None
            if result.status != "success" or time.perf_counter() - began >= GROUP_SECONDS:
                break
        unsettled = not opened.broken and not _settled(engine, opened, built)
        if not opened.broken and not unsettled:
            committing = True
            try:
                insert_entered(engine, opened.entered)
                insert_builds(engine, opened.records)
            except EngineError:
                engine.close_group(commit=False)
                raise
            closing = True
            engine.close_group(commit=True)
            committed = True
            _merge(ctx, mine, [d for d, _ in built], key)
            while built:
                decision, result = built.pop(0)
                report(decision, result)
            return min(limit * 2, GROUP_MODELS)
    except EngineError:  # the commit refused (a full disk): each again, one transaction each
        if engine.group is not None:
            engine.close_group(commit=False)
        if committed or not committing:
            raise
        for decision, _ in built:
            report(decision, build(decision, ctx))
        return 1
    except BaseException as exc:  # an interrupt (or a bug): nothing of the group stays
        if closing and not committed and isinstance(exc, KeyboardInterrupt):
            committed = _landed(engine, opened)
        if committed:  # ... unless it had committed: what it published is reported
            _merge(ctx, mine, [d for d, _ in built], key)
            for decision, result in built:
                report(decision, result)
            raise
        if engine.group is not None:
            engine.close_group(commit=False)
        if isinstance(exc, KeyboardInterrupt):
            for decision in [d for d, _ in built] + ([current] if current is not None else []):
                interrupted(decision, ctx)
        raise
    if unsettled:  # a test judged at the commit blocks: each again, in order, in a transaction
        engine.close_group(commit=False)  # of its own, where its tests are judged as it publishes
        for decision, _ in built:  # (a model built on the failing one: upstream_failed now)
            report(decision, build(decision, ctx))
        return 1
    # a statement failed inside the group. Either it was the group's first publish, and its
    # transaction() rolled the group back and handled the failure as in a transaction of its own
    # (its result and record stand), or the group held publishes before it: then those are
    # built again, in a group of their own, and it is built again alone, in a fresh transaction
    # (where it may not fail, or fail otherwise: a CHECKPOINT hook, a wrong key's named error).
    assert current is not None
    handled = engine.group is None
    if handled:
        _merge(ctx, mine, [current], key)
    else:
        engine.close_group(commit=False)
    again = deque(d for d, _ in built)
    while again:
        group(_taker(again), ctx, build, report, interrupted, key, len(again))
    report(current, result if handled else build(current, ctx))
    return 1


def _landed(engine: Engine, opened: CommitGroup) -> bool:
    """A signal came while the group's commit ran: whether it committed anyway (DuckDB ends a
    commit it has begun, and Python raises the signal as the call returns), asked of the
    warehouse (its first build row). Not known (a second signal, an error): not committed."""
    if not opened.records:
        return False
    try:
        return build_committed(engine, opened.records[0])
    except (KeyboardInterrupt, EngineError):
        return False


def _settled(
    engine: Engine, opened: CommitGroup, built: list[tuple[Decision, ModelResult]]
) -> bool:
    """Judge the tests the group's publishes left for its commit, in one statement; their
    warnings join the results in ``built``. False: one blocks (or the statement fails), and the
    group can only be rolled back."""
    try:
        verdicts = settle(engine, opened.checks)
    except EngineError:
        return False
    opened.checks.clear()
    for i, (decision, result) in enumerate(built):
        found = verdicts.get(decision.name, ())
        if any(o.blocking for o in found):
            return False
        warnings = tuple(o.message for o in found if not o.passed)
        if warnings:
            built[i] = (decision, replace(result, warnings=result.warnings + warnings))
    return True


def _merge(ctx: RunContext, mine: RunContext, decisions: list[Decision], key: Key) -> None:
    """What ``decisions`` changed in the group's bookkeeping joins the run's shared one (they
    committed)."""
    for decision in decisions:
        relation = key(decision)
        if relation is not None:
            if relation in mine.relations:
                ctx.relations[relation] = mine.relations[relation]
            else:
                ctx.relations.pop(relation, None)
        if decision.name in mine.new_states:
            ctx.new_states[decision.name] = mine.new_states[decision.name]
