"""Decide what runs: a pure function of the project, its state and ``now``.

Input: ``ParsedProject``, ``Dag``, ``Cadences``, ``StateSnapshot``, ``now``, the selection and
the run mode -> output: ``Plan``, one ``Decision`` per considered model saying whether it is
built and why (SPEC §4). Nothing here reads the clock or the database. A view whose SQL depends
on the run (``run_dependent_views``) is recreated, in the same run and before it, for every
model built that reads it: its window never freezes at the run that first created it. Also the
time helpers around a decision: ``parse_at`` reads an ``--at`` time, ``fmt`` shows one,
``clock_warning`` says when recorded builds lie after ``now``; and ``freshness_sources``, what
state must read for ``refresh: on_new_data``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

from cadence.load.parser import Model, ParsedProject
from cadence.plan.cadences import Cadences, ModelCadence
from cadence.plan.dag import Dag
from cadence.plan.history import ModelState, StateSnapshot
from cadence.plan.instants import parse_at, real_instant  # noqa: F401 - re-exported

BUILD = "build"
SKIP = "skip"


@dataclass(frozen=True)
class Decision:
    name: str
    kind: str  # "model" | "seed"
    action: str  # BUILD | SKIP
    reason: str
    tick: dt.datetime | None = None
    pulled_by: str | None = None
    next_retry: dt.datetime | None = None
    # skipped by refresh: on_new_data (nothing new upstream): its relation is current
    current: bool = False

    @property
    def builds(self) -> bool:
        return self.action == BUILD


@dataclass(frozen=True)
class Plan:
    at: dt.datetime
    due_mode: bool
    decisions: tuple[Decision, ...]  # topological order
    # (model, newest recorded time) for models with builds recorded after ``at``: the clock
    # went back (an NTP step) or an earlier run used a future --at; they stall until then
    clock_behind: tuple[tuple[str, dt.datetime], ...] = ()

    def to_build(self) -> list[Decision]:
        return [d for d in self.decisions if d.builds]

    def get(self, name: str) -> Decision | None:
        for d in self.decisions:
            if d.name == name:
                return d
        return None


@lru_cache(maxsize=4096)
def fmt(t: dt.datetime | None, tz: ZoneInfo) -> str:
    if t is None:
        return "never"
    return real_instant(t).astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


# the longest doubling: 2**30 minutes (2,000 years) is past any interval, and a timedelta of
# 2**41 minutes or more cannot be made at all (a model failing 42 times in a row, capped at
# every 5 minutes: 3.5 hours, once crashed every run after it)
_LONGEST_DOUBLING = 30


def backoff_wait(streak: int, interval: dt.timedelta | None) -> dt.timedelta:
    """Wait after ``streak`` consecutive failures: next run, then 2, 4, 8... minutes, capped."""
    if streak <= 1:
        return dt.timedelta(0)
    wait = dt.timedelta(minutes=2 ** min(streak - 1, _LONGEST_DOUBLING))
    if interval is not None and wait > interval:
        wait = interval
    return wait


def retry_time(
    last_attempt_at: dt.datetime, streak: int, interval: dt.timedelta | None
) -> dt.datetime:
    """When a model that failed ``streak`` times in a row, last at ``last_attempt_at``, is
    retried (``backoff_wait``). Counted in invocations (cron: one a minute, each starting a
    little earlier or later in its minute): from the minute of the failed attempt, so "2 minutes
    later" is the run two minutes on, never a third one because it started a second earlier."""
    return last_attempt_at.replace(second=0, microsecond=0) + backoff_wait(streak, interval)


def view_hash(model: Model, project: ParsedProject) -> str:
    return project.view_hashes[model.name]


def run_dependent_views(project: ParsedProject, dag: Dag) -> dict[str, str]:
    """Each view whose SQL depends on the run -> why: what its own text reads
    (``Model.run_dependent``), or that of an ephemeral inlined into it. Ephemerals themselves
    are rendered again per run where they are inlined (``build.compiler``)."""
    own = {m.name: m for m in project.models if m.run_dependent}
    out = {n: m.run_dependent for n, m in own.items() if m.materialized == "view"}
    if all(m.materialized == "view" for m in own.values()):
        return out  # the common case: no DAG edge read (on the idle path, nothing lazy decoded)
    models = project.by_name
    for view in project.models:
        if view.materialized != "view" or view.name in out:
            continue
        stack, seen = list(dag.parents.get(view.name, ())), set()
        while stack:
            name = stack.pop()
            inlined = models.get(name)
            if name in seen or inlined is None or inlined.materialized != "ephemeral":
                continue
            seen.add(name)
            if inlined.run_dependent:
                out[view.name] = f"{inlined.run_dependent}, via ephemeral {name}"
                break
            stack.extend(dag.parents.get(name, ()))
    return out


def decide(
    project: ParsedProject,
    dag: Dag,
    cadences: Cadences,
    state: StateSnapshot,
    now: dt.datetime,
    selected: set[str],
    *,
    due_only: bool,
    full_refresh: bool = False,
    retry_failed: bool = False,
) -> Plan:
    """For every selected model (and seeds it needs), whether it is built now and why."""
    tz = project.config.tz
    models = project.by_name
    decisions: dict[str, Decision] = {}
    run_views = run_dependent_views(project, dag)
    # models share schedules and tick sets: ask each distinct schedule once, and combine each
    # tick set once (by identity: the tick sets live as long as ``cadences``)
    memo: dict[tuple[str, object], dt.datetime | None] = {}
    combined: dict[tuple[str, int], dt.datetime | None] = {}

    def ask(cad: ModelCadence, query: str) -> dt.datetime | None:
        ticks = cad.ticks
        key = (query, id(ticks))
        if key in combined:
            return combined[key]
        found: list[dt.datetime] = []
        for schedule in ticks.schedules:
            at = (query, schedule)
            if at not in memo:
                memo[at] = getattr(schedule, query)(now, tz)
            tick = memo[at]
            if tick is not None:
                found.append(tick)
        combined[key] = value = (max if query == "latest_tick" else min)(found, default=None)
        return value

    def latest_tick(cad: ModelCadence) -> dt.datetime | None:
        return ask(cad, "latest_tick")

    def next_tick(cad: ModelCadence) -> dt.datetime | None:
        return ask(cad, "next_tick")

    ticking: dict[int, bool] = {}
    tails: dict[int, str] = {}  # tick set -> the end of its "not due" reason

    def has_ticks(cad: ModelCadence) -> bool:
        found = ticking.get(id(cad.ticks))
        if found is None:
            found = ticking[id(cad.ticks)] = cad.has_ticks
        return found

    def retry_block(name: str, st: ModelState) -> dt.datetime | None:
        if retry_failed or st.last_status != "error" or st.last_attempt_at is None:
            return None
        if st.last_attempt_at > now:
            return None  # replaying an earlier time (--at): the recorded attempt is in its future
        interval = cadences.of(name).ticks.nominal_interval() if name in cadences.models else None
        retry_at = retry_time(st.last_attempt_at, st.failure_streak, interval)
        return retry_at if retry_at > now else None

    def model_decision(m: Model) -> Decision:
        st = state.of(m.name)
        cad = cadences.of(m.name)
        exists = state.exists(m.schema, m.identifier)
        mat = m.materialized
        if mat == "ephemeral":
            if m.run_dependent:
                return Decision(
                    m.name,
                    "model",
                    SKIP,
                    f"ephemeral: inlined into the models that use it; depends on the run "
                    f"({m.run_dependent}): rendered again for each of their builds",
                )
            return Decision(m.name, "model", SKIP, "ephemeral: inlined into the models that use it")
        ticks = has_ticks(cad)
        latest = latest_tick(cad) if ticks else None
        if not due_only:
            return Decision(m.name, "model", BUILD, "selected", tick=latest)
        if mat == "view":
            if not exists:
                return Decision(m.name, "model", BUILD, "view does not exist yet", tick=latest)
            if st.last_sql_hash != view_hash(m, project):
                return Decision(m.name, "model", BUILD, "view SQL changed", tick=latest)
            if m.name in run_views:
                return Decision(
                    m.name,
                    "model",
                    SKIP,
                    f"view is current; it depends on the run ({run_views[m.name]}): "
                    "recreated for each build of a model that reads it",
                )
            return Decision(
                m.name, "model", SKIP, "view is current (views always show current data)"
            )
        if not ticks:
            return Decision(
                m.name, "model", SKIP, f"not due: {cad.provenance()}; built only when selected"
            )
        assert latest is not None
        blocked = retry_block(m.name, st)
        if blocked is not None:
            return Decision(
                m.name,
                "model",
                SKIP,
                f"backing off after {st.failure_streak} failures; next retry at {fmt(blocked, tz)}",
                next_retry=blocked,
            )
        if st.last_success_at is not None and exists and st.last_success_at >= latest:
            # the common case under cron: say why not, cheaply (the ticks part once per tick set)
            tail = tails.get(id(cad.ticks))
            if tail is None:
                nxt = next_tick(cad)
                tail = tails[id(cad.ticks)] = (
                    f" for tick {fmt(latest, tz)}; next tick {fmt(nxt, tz)}"
                )
            return Decision(
                m.name, "model", SKIP, f"not due: built {fmt(st.last_success_at, tz)}{tail}"
            )
        why = f"tick {fmt(latest, tz)} ({cad.provenance()})"
        if st.last_success_at is None:
            return Decision(m.name, "model", BUILD, f"never built; {why}", tick=latest)
        if not exists:
            return Decision(
                m.name, "model", BUILD, f"relation {m.relation} is missing; {why}", tick=latest
            )
        if st.last_success_at < latest:
            stale = _no_new_data(m, project, dag, state, st.last_success_at)
            if stale is not None:
                return Decision(
                    m.name,
                    "model",
                    SKIP,
                    f"{stale}; tick {fmt(latest, tz)} skipped (refresh: on_new_data)",
                    current=True,
                )
            if st.last_status == "error":
                return Decision(
                    m.name,
                    "model",
                    BUILD,
                    f"retry after {st.failure_streak} failure(s); {why}",
                    tick=latest,
                )
        return Decision(
            m.name,
            "model",
            BUILD,
            f"due: {why}; last built {fmt(st.last_success_at, tz)}",
            tick=latest,
        )

    for name in dag.order:
        if name in models and name in selected:
            decisions[name] = model_decision(models[name])

    if due_only:
        _pull_upstream(project, dag, cadences, state, decisions, models, tz, retry_block)
    if run_views and any(d.builds for d in decisions.values()):
        _pull_run_dependent_views(dag, decisions, models, run_views, tz)

    _add_seeds(project, dag, state, decisions, selected, full_refresh)
    ordered = tuple(decisions[n] for n in dag.order if n in decisions)
    return Plan(at=now, due_mode=due_only, decisions=ordered, clock_behind=clock_behind(state, now))


def clock_behind(state: StateSnapshot, now: dt.datetime) -> tuple[tuple[str, dt.datetime], ...]:
    """Models whose state was recorded after ``now`` (pure), with the newest recorded time."""
    out = []
    for name, st in state.models.items():
        attempt, success = st.last_attempt_at, st.last_success_at
        newest = (
            success if attempt is None or (success is not None and success > attempt) else attempt
        )
        if newest is not None and newest > now:
            out.append((name, newest))
    return tuple(sorted(out))


def clock_warning(
    behind: tuple[tuple[str, dt.datetime], ...], now: dt.datetime, tz: ZoneInfo
) -> str | None:
    """The warning every run and `status` show while the clock is behind recorded state."""
    if not behind:
        return None
    names = ", ".join(n for n, _ in behind[:10])
    if len(behind) > 10:
        names += f" and {len(behind) - 10} more"
    newest = max(t for _, t in behind)
    return (
        f"warning: clock is behind recorded state: {len(behind)} model(s) have builds recorded "
        f"after now ({fmt(now, tz)}), the latest at {fmt(newest, tz)}: {names}\n"
        "  hint: they are not due again until that time. If now is right (the clock was "
        "stepped back, or a run used a future --at), rebuild them: cadence run -s "
        + " ".join(n for n, _ in behind[:10])
        + "; if the clock is wrong, fix it (NTP)"
    )


def upstream_sources(project: ParsedProject, dag: Dag, name: str) -> list[tuple[str, str]]:
    """Source tables a model reads, directly or through its upstream models."""
    models = {m.name: m for m in project.models}
    found: list[tuple[str, str]] = []
    for n in [name, *dag.ancestors(name)]:
        for s in models[n].sources if n in models else ():
            if s not in found:
                found.append(s)
    return found


def freshness_sources(
    project: ParsedProject, dag: Dag
) -> tuple[tuple[tuple[str, str], str, str], ...]:
    """Sources whose newest ``loaded_at`` decides models with ``refresh: on_new_data``:
    ((source, table), relation, loaded_at column), for ``record.state`` to read."""
    wanted: set[tuple[str, str]] = set()
    for m in project.models:
        if m.config.refresh == "on_new_data":
            wanted |= set(upstream_sources(project, dag, m.name))
    return tuple(
        ((s.source_name, s.table), s.relation, s.loaded_at)
        for s in project.sources
        if (s.source_name, s.table) in wanted and s.loaded_at
    )


def _no_new_data(
    m: Model, project: ParsedProject, dag: Dag, state: StateSnapshot, since: dt.datetime
) -> str | None:
    """For ``refresh: on_new_data``: why there is nothing new to build from, or None."""
    if m.config.refresh != "on_new_data":
        return None
    sources = upstream_sources(project, dag, m.name)
    if not sources:
        return None
    for key in sources:
        loaded = state.source_loaded.get(key)
        if loaded is None or loaded > since:
            return None  # new rows, or cannot tell: build
    names = ", ".join(f"{a}.{b}" for a, b in sources)
    return f"no new rows in {names} since the last build"


def _pull_upstream(project, dag, cadences, state, decisions, models, tz, retry_block) -> None:  # type: ignore[no-untyped-def]
    """Build, in the same run, every upstream table not built since the tick being served."""
    for name in reversed(dag.order):
        d = decisions.get(name)
        if d is None or not d.builds or d.tick is None:
            continue
        stack = list(dag.parents.get(name, ()))
        seen: set[str] = set()
        while stack:
            parent = stack.pop()
            if parent in seen or parent not in models:
                continue
            seen.add(parent)
            pm = models[parent]
            if pm.materialized in ("view", "ephemeral"):
                stack.extend(dag.parents.get(parent, ()))  # ticks pass through
                already = decisions.get(parent)
                if (
                    pm.materialized == "view"
                    and not state.exists(pm.schema, pm.identifier)
                    and not (already and already.builds)
                ):
                    decisions[parent] = Decision(
                        parent,
                        "model",
                        BUILD,
                        f"view needed by {name} does not exist",
                        tick=d.tick,
                        pulled_by=name,
                    )
                continue
            existing = decisions.get(parent)
            if existing is not None and existing.builds:
                continue
            st = state.of(parent)
            cad = cadences.of(parent)
            never = st.last_success_at is None or not state.exists(pm.schema, pm.identifier)
            if cad.explicit and not never:
                continue  # its own cadence decides; its current data is used
            if not never and st.last_success_at is not None and st.last_success_at >= d.tick:
                continue
            if retry_block(parent, st) is not None:
                continue
            decisions[parent] = Decision(
                parent,
                "model",
                BUILD,
                f"upstream of {name}: not built since tick {fmt(d.tick, tz)}",
                tick=d.tick,
                pulled_by=name,
            )
            stack.extend(dag.parents.get(parent, ()))


def _pull_run_dependent_views(
    dag: Dag,
    decisions: dict[str, Decision],
    models: dict[str, Model],
    run_views: dict[str, str],
    tz: ZoneInfo,
) -> None:
    """Recreate, in the same run, every view whose SQL depends on the run that a model built in
    this run reads (directly or through views and ephemerals): compiled at this run's time, for
    the consumer's tick. In every run mode: a model built by a plain ``cadence run`` reads it
    too."""
    for name in reversed(dag.order):  # consumers first: the views they pull are visited after
        d = decisions.get(name)
        if d is None or not d.builds or name not in models:
            continue
        stack, seen = list(dag.parents.get(name, ())), set()
        while stack:
            parent = stack.pop()
            pm = models.get(parent)
            if parent in seen or pm is None or pm.materialized not in ("view", "ephemeral"):
                continue  # a table's own upstream is read at its own build
            seen.add(parent)
            stack.extend(dag.parents.get(parent, ()))
            already = decisions.get(parent)
            if parent not in run_views or (already is not None and already.builds):
                continue
            served = f"'s tick {fmt(d.tick, tz)}" if d.tick is not None else ""
            decisions[parent] = Decision(
                parent,
                "model",
                BUILD,
                f"view depends on the run ({run_views[parent]}); rebuilt for {name}{served}",
                tick=d.tick,
                pulled_by=name,
            )


def _add_seeds(project, dag, state, decisions, selected, full_refresh) -> None:  # type: ignore[no-untyped-def]
    """Load a seed when it is missing or its file changed and something in the run needs it."""
    # the seeds upstream of anything built: one walk up from all of them (not one per model)
    seen: set[str] = set()
    stack = [name for name, d in decisions.items() if d.builds]
    while stack:
        for parent in dag.parents.get(stack.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    needed = {a for a in seen if dag.kinds.get(a) == "seed"}
    needed |= {s.name for s in project.seeds if s.name in selected}
    for seed in project.seeds:
        if seed.name not in needed:
            continue
        st = state.of(seed.name)
        exists = state.exists(seed.schema, seed.table)
        if full_refresh or not exists or st.last_sql_hash != seed.digest:
            reason = "seed file changed" if exists and not full_refresh else "seed not loaded yet"
            if full_refresh:
                reason = "full refresh"
            decisions[seed.name] = Decision(seed.name, "seed", BUILD, reason)
