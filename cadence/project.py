"""The ``Project`` facade: sequences the stages and owns nothing else.

load files -> parse models -> build DAG -> resolve cadences (``Project.load``), then per call:
read state -> decide what is due -> compile -> execute -> record. Everything the CLI does is one
call here; ``now`` is always a parameter.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cadence.build import hooks, idle
from cadence.build.compiler import Compiler
from cadence.build.lock import RunLock, current_holder
from cadence.build.runner import EventSink, PublishHook, RunResult, execute, only_delivered
from cadence.build.snapshots import compiled_path
from cadence.disk import artifacts
from cadence.engines import Engine, access, connect
from cadence.engines.base import EngineError
from cadence.errors import CadenceError, UsageError, WarehouseBusy, did_you_mean
from cadence.load.inputs import Fingerprint, find_project_root
from cadence.load.layout import LoadOptions
from cadence.load.parser import ParsedProject
from cadence.load.projectconfig import THREADS_HINT, threads_problem
from cadence.observe import Observer, after_run, files_kept, wake_at
from cadence.plan.cadences import Cadences
from cadence.plan.dag import Dag
from cadence.plan.due import Plan, decide, freshness_sources
from cadence.plan.history import StateSnapshot
from cadence.plan.selection import feeding, select, unmatched_warnings
from cadence.record import snapshot, unrecorded
from cadence.record.state import HISTORY_TABLES, prune_history, read_snapshot

OPEN_GRACE_S = 2.0

if TYPE_CHECKING:
    from cadence.activation.roster import MembersAnswer
    from cadence.serve import AsgiServer, Server


def _or_write_error(result: RunResult, step: Callable[[], object], warehouse: str) -> RunResult:
    """Run ``step``; a write it could not make joins the run's ``write_error``."""
    try:
        step()
    except CadenceError as exc:
        message = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
        if exc.file and exc.file not in message:
            message = f"{exc.file}: {message}"
    except EngineError as exc:
        message = unrecorded.refused_error(str(exc), warehouse)
    else:
        return result
    also = f"{result.write_error}; " if result.write_error else ""
    return replace(result, write_error=also + message)


@dataclass(frozen=True)
class Selection:
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()


class Project:
    """A loaded project. Construct with ``Project.load(path)``."""

    fingerprint: Fingerprint | None = None  # the files ``load`` read (None: no wake file)

    def __init__(
        self, root: Path, parsed: ParsedProject, dag: Dag, cadences: Cadences, compiler: Compiler
    ) -> None:
        self.root = root
        self.parsed = parsed
        self.dag = dag
        self.cadences = cadences
        self.compiler = compiler
        self.options = LoadOptions()  # what the command line added to the load

    @classmethod
    def load(
        cls,
        path: str | Path = ".",
        *,
        use_cache: bool = True,
        options: LoadOptions | None = None,
    ) -> Project:
        """The project at or above ``path``; ``options``: --vars, --target, --profiles-dir."""
        from cadence.plan import manifest

        root, chosen = find_project_root(Path(path)), options or LoadOptions()
        found = manifest.load_fingerprinted(root, use_cache=use_cache, options=chosen)
        project = cls(root, found[0], found[1], found[2], Compiler(found[0]))
        project.options, project.fingerprint = chosen, found[3]
        return project

    # -- helpers -------------------------------------------------------------------------
    @property
    def tz(self):  # type: ignore[no-untyped-def]
        return self.parsed.config.tz

    def open_engine(self, *, read_only: bool = False) -> Engine:
        allowed = access.declared(self.parsed)
        return connect(
            self.parsed.config.warehouse, self.root, read_only=read_only, allowed=allowed
        )

    def warehouse_exists(self) -> bool:
        path = self.parsed.config.warehouse.path
        return path == ":memory:" or (self.root / path).exists() or Path(path).exists()

    def _reader(self) -> Engine | str:
        """The warehouse opened read-only, or why it cannot be: a run (or another process)
        holds it."""
        holder = current_holder(self.root)
        if holder is not None:
            return f"a cadence run is in progress ({holder})"
        try:
            return self.open_engine(read_only=True)
        except WarehouseBusy as exc:
            return f"the warehouse is open in {exc.holder}"

    def read_state(self, engine: Engine | None = None) -> StateSnapshot:
        """State from the warehouse; while a run (or another process) holds it, from the
        snapshot the last run left (its ``as_of`` and ``note`` say when and why)."""
        if engine is not None:
            return read_snapshot(engine, freshness_sources(self.parsed, self.dag), self.tz)
        if not self.warehouse_exists():
            return StateSnapshot()
        reader = self._reader()
        if isinstance(reader, str):
            return snapshot.read(self.root, reader)
        try:
            # with the failures a full disk kept out of the warehouse (the next run writes them)
            state = read_snapshot(reader, freshness_sources(self.parsed, self.dag), self.tz)
            return unrecorded.overlay(self.root, state)
        finally:
            reader.close()

    def _keep_snapshot(self, engine: Engine, run: RunResult, state: StateSnapshot) -> StateSnapshot:
        """After a run that changed state (or when none exists yet): the state as committed,
        for read-only commands during the next run. Returns the state as the run left it."""
        changed = any(r.status != "skipped" for r in run.results)
        if changed or not snapshot.exists(self.root):
            # a run that built folded every pending run before it returned
            sources = freshness_sources(self.parsed, self.dag)
            state = read_snapshot(engine, sources, self.tz, folded=changed)
            snapshot.write(self.root, state, run.run_id, run.at)
        return state

    def _wake(
        self, engine: Engine, after: StateSnapshot, plan: Plan | None, now: dt.datetime
    ) -> idle.Pending | None:
        """The wake file's makings (``build.idle.pending``) from the state a run left (``plan``:
        that state's due plan, when known) and what each wing an idle run would do or repair."""
        channels, owed, present = self.parsed.config.channels, [], list[str]()
        unchanged: list[str] = []
        if any(c.export is not None for c in channels):
            from cadence.activation import timing

            owed += timing.next_delivery(self.parsed, self.cadences, engine, after, now)
        if any(m.config.key for m in self.parsed.models):
            from cadence.activation import rosterkeep

            present += rosterkeep.files_kept(self.root, self.parsed, after.relations)
        if any(c.serve is not None for c in channels):
            from cadence.serve import publish

            owed += publish.owed(self.root, self.parsed, after, now)
            unchanged += publish.files_kept(self.root, self.parsed)
        observed = wake_at(self.root)  # the observe wing: an objective crossing, an alert retry
        unchanged += files_kept(self.root)  # and its record, which a run without it writes
        if observed is not None:
            owed.append((observed, "a freshness objective crossing or an alert to retry"))
        plan = plan or self.plan(now, due_only=True, state=after)
        return idle.pending(self, after, plan, now, owed, present, unchanged)

    def _prune_history(self, engine: Engine, result: RunResult, now: dt.datetime) -> None:
        """``history: {keep_days: N}``: after a run that wrote history, drop what is older."""
        keep_days = self.parsed.config.history_keep_days
        if keep_days and any(r.status != "skipped" for r in result.results):
            cutoff = now - dt.timedelta(days=keep_days)
            from cadence.activation import deliver, rosterkeep

            # besides runs and builds: membership changes and delivery attempts (activation)
            prune_history(engine, cutoff, HISTORY_TABLES + deliver.HISTORY_TABLES)
            segments = [m for m in self.parsed.models if m.config.key]
            rosterkeep.prune(engine, self.root, segments, cutoff, result.run_id, now)

    def _open_for_run(self, deadline: float, wait_s: float) -> Engine:
        """Open the warehouse for writing; another process holding the file (a notebook, a BI
        tool) is waited for until ``deadline`` (``--wait``), like a run holding the lock."""
        while True:
            try:
                return self.open_engine()
            except WarehouseBusy as exc:
                if time.monotonic() >= deadline:
                    if not wait_s:
                        raise
                    raise WarehouseBusy(
                        f"{exc.message}, still after waiting {wait_s:g}s",
                        holder=exc.holder,
                        file=exc.file,
                        hint="nothing was done; close the warehouse in that process "
                        "(DuckDB admits no run while another process has the file open)",
                    ) from None
                time.sleep(0.2)

    def model_names(self) -> list[str]:
        return [n for n in self.dag.order if self.dag.kinds[n] == "model"]

    def check_model(self, name: str) -> None:
        if self.parsed.model(name) is None:
            guess = did_you_mean(name, self.model_names())
            raise UsageError(
                f"no model named '{name}'",
                hint=f"did you mean '{guess}'?" if guess else "list models with 'cadence ls'",
            )

    def selection_warnings(self, selection: Selection) -> list[CadenceError]:
        """A warning for each ``--select`` term that matches nothing (as dbt warns)."""
        return unmatched_warnings(selection.select, self.parsed, self.dag, self.cadences)

    def selected(
        self, selection: Selection, state: StateSnapshot | None, now: dt.datetime
    ) -> set[str]:
        by_channel = feeding(self.parsed, selection.channels) if selection.channels else None

        def due_set() -> set[str]:
            snapshot = state if state is not None else self.read_state()
            plan = self.plan(now, state=snapshot)  # the whole project, as `run --due` sees it
            return {d.name for d in plan.decisions if d.builds}

        chosen = select(
            selection.select, selection.exclude, self.parsed, self.dag, self.cadences, due_set
        )
        return chosen if by_channel is None else chosen & by_channel

    # -- commands ------------------------------------------------------------------------
    def plan(
        self,
        now: dt.datetime,
        selection: Selection = Selection(),
        *,
        due_only: bool = True,
        state: StateSnapshot | None = None,
        full_refresh: bool = False,
        retry_failed: bool = False,
    ) -> Plan:
        """What a run at ``now`` would build, and why (pure: no writes)."""
        snapshot = state if state is not None else self.read_state()
        chosen = self.selected(selection, snapshot, now)
        return decide(
            self.parsed,
            self.dag,
            self.cadences,
            snapshot,
            now,
            chosen,
            due_only=due_only,
            full_refresh=full_refresh,
            retry_failed=retry_failed,
        )

    def run(
        self,
        now: dt.datetime,
        selection: Selection = Selection(),
        *,
        due_only: bool = False,
        full_refresh: bool = False,
        retry_failed: bool = False,
        dry_run: bool = False,
        on_event: EventSink | None = None,
        wait_s: float = 0.0,
        threads: int | None = None,
        replay: bool = False,
        started: dt.datetime | None = None,
    ) -> RunResult | Plan:
        """Build what is selected (or due); returns the plan only when ``dry_run``.

        Raises ``LockHeld`` when another run holds the project, ``WarehouseBusy`` when another
        process has the warehouse open (each after ``wait_s`` seconds). ``started`` is the
        wall-clock start, shown to a run that finds the lock held (default ``now``).
        """
        if threads is not None and threads_problem(threads):
            raise UsageError(f"--threads: {threads_problem(threads)}", hint=THREADS_HINT)
        if dry_run:
            return self.plan(
                now,
                selection,
                due_only=due_only,
                full_refresh=full_refresh,
                retry_failed=retry_failed,
            )
        # a read-only command opens the warehouse for a moment: always allow a short grace
        deadline = time.monotonic() + max(wait_s, OPEN_GRACE_S)
        lock = RunLock(
            self.root,
            (started or now).isoformat(),
            at=now.isoformat() if replay else None,
            command="run --due" if due_only else "run",
        )
        with artifacts.private_umask(), lock.acquire(wait_s):
            clock = time.perf_counter()
            result = self._run_locked(
                now,
                selection,
                due_only,
                full_refresh,
                retry_failed,
                on_event,
                threads or self.parsed.config.warehouse.threads,
                replay,
                self._open_for_run(deadline, wait_s),
            )
        return replace(result, wall_s=time.perf_counter() - clock)

    def _run_locked(
        self,
        now: dt.datetime,
        selection: Selection,
        due_only: bool,
        full_refresh: bool,
        retry_failed: bool,
        on_event: EventSink | None,
        threads: int = 1,
        replay: bool = False,
        engine: Engine | None = None,
    ) -> RunResult:
        engine, wake = engine or self.open_engine(), None
        try:
            unrecorded.record_pending(engine, self.root)  # failures a full disk kept out of it
            state = self.read_state(engine)
            plan = self.plan(
                now,
                selection,
                due_only=due_only,
                state=state,
                full_refresh=full_refresh,
                retry_failed=retry_failed,
            )
            self._owe_deliveries(engine, plan, now)
            hooked = hooks.start_of_run(self.parsed, self.compiler, engine, plan.decisions, now)
            result = execute(
                self.parsed,
                self.dag,
                plan,
                engine,
                state,
                compiler=self.compiler,
                full_refresh=full_refresh,
                command="run --due" if due_only else "run",
                on_event=on_event,
                threads=threads,
                replay=replay,
                on_published=self._members_hook(plan),
            )
            if hooked:
                hooks.end_of_run(self.parsed, self.compiler, engine, result.results, now)
            result = only_delivered(self.root, self._after_run(engine, state, plan, result, now))
            # files and pruning after the run: one that fails to write (a full disk) is the
            # run's write error (exit 1, the path and cause named), never an abort
            done, warehouse, after = result, self.parsed.config.warehouse.path, [state]
            observed: list[Any] = []
            for step in (
                lambda: self._prune_history(engine, done, now),
                lambda: after.append(self._keep_snapshot(engine, done, state)),
                lambda: self._keep_rosters(engine, state, after[-1], done),
                lambda: observed.append(after_run(self, engine, state, done, now)),
            ):
                result = _or_write_error(result, step, warehouse)
            if observed and observed[0] is not None and observed[0].warning:
                result = replace(result, observe_warning=observed[0].warning)
            same = due_only and selection == Selection() and not retry_failed and after[-1] is state
            if result.write_error is None:  # else no wake file: the next run looks again
                wake = self._wake(engine, after[-1], plan if same else None, now)
        finally:
            engine.close()
        idle.leave(self.root, result.run_id, now, wake)  # the warehouse as this run left it
        return result

    def _members_hook(self, plan: Plan) -> PublishHook | None:
        """Members files, written as the segments publish (None: the plan publishes none)."""
        segments = [m for m in self.parsed.models if m.config.key]
        if not segments or self.parsed.config.warehouse.engine != "duckdb":
            return None
        from cadence.activation import rosterkeep

        return rosterkeep.hook(self.root, segments, {d.name for d in plan.decisions if d.builds})

    def _keep_rosters(
        self, engine: Engine, state: StateSnapshot, after: StateSnapshot, result: RunResult
    ) -> None:
        """Members files no run left (none yet, or left behind by a killed run): activation."""
        if any(m.config.key for m in self.parsed.models):
            from cadence.activation import rosterkeep

            rosterkeep.repair(engine, self.root, self.parsed, after, result, state.pending_runs)

    def _after_run(
        self, engine: Engine, state: StateSnapshot, plan: Plan, result: RunResult, now: dt.datetime
    ) -> RunResult:
        """Hooks after a run (contract (e)): deliveries first, then serve snapshots."""
        result = self._deliver_after_run(engine, state, result, now, plan)
        return self._snapshot_after_run(engine, state, result, now)

    def _snapshot_after_run(
        self, engine: Engine, state: StateSnapshot, result: RunResult, now: dt.datetime
    ) -> RunResult:
        """Snapshots of served channels the run touched (or that have none yet)."""
        if all(c.serve is None for c in self.parsed.config.channels):
            return result  # nothing served: the serve wing is not even imported (cron path)
        from cadence.serve import publish

        built = {r.name for r in result.results if r.status == "success"}
        failed = {r.name for r in result.results if r.status in ("error", "upstream_failed")}
        channels = publish.channels_to_write(self.root, self.parsed, state, now, built, failed)
        if not channels:
            return result
        report = publish.write_channel_snapshots(self.root, self.parsed, engine, now, channels)
        return replace(result, snapshots=report)

    def _owe_deliveries(self, engine: Engine, plan: Plan, now: dt.datetime) -> None:
        """Before a plain run or seed builds: the channels it owes a delivery (activation)."""
        if not plan.due_mode and any(c.export for c in self.parsed.config.channels):
            from cadence.activation import timing

            timing.owe_before_run(self.parsed, engine, plan, now)

    def _deliver_after_run(
        self, engine: Engine, state: StateSnapshot, result: RunResult, now: dt.datetime, plan: Plan
    ) -> RunResult:
        """Deliveries after a run, as ``activation.timing`` decides them (SPEC §7 "When")."""
        if not any(c.export for c in self.parsed.config.channels):
            return result
        from cadence.activation import timing

        return timing.after_run(self.parsed, self.cadences, engine, state, plan, result, now)

    def export(
        self,
        now: dt.datetime,
        channels: tuple[str, ...] = (),
        *,
        dry_run: bool = False,
        rebaseline: bool = False,
        force: bool = False,
        wait_s: float = 0.0,
    ) -> Any:
        """Deliver pending changes without building (``cadence export``); with ``dry_run``
        return a preview per channel x segment and move nothing."""
        from cadence.activation import deliver, preview, timing

        chosen = deliver.chosen_channels(self.parsed, channels, rebaseline)
        if dry_run:
            if not self.warehouse_exists():
                return ()
            holder = current_holder(self.root)
            if holder is not None:  # it holds the warehouse: say so, not "a notebook or BI tool"
                raise CadenceError(
                    f"a cadence run is in progress ({holder}); the preview reads the warehouse",
                    hint="try again when it finishes (nothing was moved)",
                )
            engine = self.open_engine(read_only=True)
            try:
                return preview.preview(self.parsed, engine, chosen, rebaseline=rebaseline)
            finally:
                engine.close()
        lock = RunLock(self.root, now.isoformat(), command="export")
        with artifacts.private_umask(), lock.acquire(wait_s):
            engine = self.open_engine()
            try:
                unrecorded.record_pending(engine, self.root)  # failures a full disk kept out
                options = deliver.DeliveryOptions(force=force, rebaseline=rebaseline)
                return timing.for_export(self.parsed, self.cadences, engine, chosen, now, options)
            finally:
                engine.close()

    def delivery_status(self, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Per channel x segment with an export: its last delivery attempt, changes pending and
        the channel's served tick and next delivery (``activation.queries.delivery_status``)."""
        from cadence.activation import deliver, queries

        if not deliver.exported_channels(self.parsed):
            return []
        engine: Engine | None = None
        if self.warehouse_exists():
            if current_holder(self.root) is not None:
                return []  # a run holds the warehouse: say nothing rather than something stale
            try:
                engine = self.open_engine(read_only=True)
            except CadenceError:  # another process has it (WarehouseBusy) or it is unreadable
                engine = None
        try:
            return queries.delivery_status(self.parsed, engine, self.cadences.channels, now)
        finally:
            if engine is not None:
                engine.close()

    def members(
        self, segment: str, *, changes: bool = False, since: dt.datetime | None = None
    ) -> MembersAnswer:
        """Current members of a segment (sorted keys), or with ``changes`` its history, as a
        ``MembersAnswer``; while a run (or another process) holds the warehouse, from the
        members snapshot the last publish left (its ``as_of`` says when)."""
        from cadence.activation import queries, rosterread

        self.check_model(segment)
        model = queries.segment(self.parsed, segment)
        reader = self._reader() if self.warehouse_exists() else None
        if isinstance(reader, str):
            return rosterread.read(self.root, segment, changes=changes, since=since, why=reader)
        try:
            return queries.members(reader, model, changes=changes, since=since)
        finally:
            if reader is not None:
                reader.close()

    def seed(
        self,
        now: dt.datetime,
        selection: Selection = Selection(),
        on_event: EventSink | None = None,
        started: dt.datetime | None = None,
    ) -> RunResult:
        """(Re)load every selected seed."""
        lock = RunLock(self.root, (started or now).isoformat(), command="seed")
        with artifacts.private_umask(), lock.acquire(0):
            return self._seed_locked(now, selection, on_event)

    def _seed_locked(
        self, now: dt.datetime, selection: Selection, on_event: EventSink | None
    ) -> RunResult:
        engine = self.open_engine()
        try:
            state = self.read_state(engine)
            chosen = self.selected(selection, state, now)
            plan = decide(
                self.parsed,
                self.dag,
                self.cadences,
                state,
                now,
                {s.name for s in self.parsed.seeds if s.name in chosen},
                due_only=False,
                full_refresh=True,
            )
            self._owe_deliveries(engine, plan, now)
            result = execute(
                self.parsed,
                self.dag,
                plan,
                engine,
                state,
                compiler=self.compiler,
                command="seed",
                on_event=on_event,
            )
            result = self._after_run(engine, state, plan, result, now)  # reloaded lists too
            self._keep_snapshot(engine, result, state)
            return result
        finally:
            engine.close()

    def compile(
        self, now: dt.datetime, selection: Selection = Selection()
    ) -> list[tuple[str, str]]:
        """Write rendered SQL under target/compiled/; returns (model, compiled path)."""
        chosen = self.selected(selection, None, now)
        out = []
        for name in self.model_names():
            if name not in chosen:
                continue
            model = self.parsed.model(name)
            assert model is not None
            latest = self.cadences.of(name).ticks.latest_tick(now, self.tz)
            compiled = self.compiler.compile(name, now, latest, False)
            path = compiled_path(model)
            out.append((name, artifacts.write_compiled(self.root, path, compiled.sql)))
        if not selection.select and not selection.exclude:  # a dbt project's analyses
            for n, p, sql in self.compiler.analyses(now):
                out.append((n, artifacts.write_compiled(self.root, p, sql)))
        return out

    def server(self, **options: Any) -> Server | AsgiServer:
        """A bound ``cadence serve`` server (see ``cadence.serve.open_server`` for options)."""
        from cadence.serve import open_server

        return open_server(self.root, self.parsed.config, observer=Observer(self), **options)

    def models_for(self, names: Iterable[str]) -> list[str]:
        return [n for n in self.dag.sort(names) if self.dag.kinds[n] == "model"]


__all__ = ["CadenceError", "Project", "Selection"]
