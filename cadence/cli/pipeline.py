"""The commands of the pipeline itself: create a project (init), build it (run, seed), see what
is due and why (plan, status, explain, ls), review its SQL (compile) and check its data (test).

Each parses flags, makes one library call (``Project`` or a stage), renders the result with
``cadence.output`` and maps a failure to exit 1 (``Failed``). Registered on the group by
``cadence.cli``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click

from cadence.cli import common
from cadence.cli.common import (
    EXIT_USAGE,
    Failed,
    _at,
    _held,
    _load,
    _render_deliveries,
    _selection,
    _state,
    at_option,
    command,
    dated,
    echo,
    exclude_option,
    json_option,
    select_option,
)
from cadence.errors import CadenceError, LockHeld


@click.command()
@click.argument("name", required=False, default=None)
@click.option("--debug", is_flag=True, hidden=True)
def init(name: str | None, debug: bool) -> None:
    """Create a new project NAME (a small shop that runs offline at once); inside a dbt
    project, without NAME, add a cadence.yml to it instead."""
    from cadence.scaffold import init_dbt, init_project

    here = Path.cwd()
    try:
        if name is None and (here / "dbt_project.yml").is_file():
            path = init_dbt(here)
            echo(f"created {path}\n  next: cadence run (then cron: cadence run --due)")
            return
        name = name or "cadence_project"
        path = init_project(Path(name))
    except CadenceError as exc:
        echo(exc.render(), err=True)
        sys.exit(EXIT_USAGE)
    echo(f"created {path}\n  next: cd {name} && cadence run")


@click.command()
@click.option("--due", is_flag=True, help="Build only what is due now (SPEC §4); for cron.")
@click.option("--channel", multiple=True, help="Only models feeding this channel (repeatable).")
@select_option
@exclude_option
@at_option
@click.option(
    "--threads", type=int, default=None, help="Parallel builds (default: warehouse.threads)."
)
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from scratch.")
@click.option("--dry-run", is_flag=True, help="Show what would be built, build nothing.")
@click.option("--retry-failed", is_flag=True, help="Retry failing models now, ignoring backoff.")
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=0.0,
    metavar="S",
    help="If another run holds the project, wait up to S seconds instead of exiting.",
)
@json_option
@command
def run(
    due: bool,
    channel: tuple[str, ...],
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    at: str | None,
    threads: int | None,
    full_refresh: bool,
    dry_run: bool,
    retry_failed: bool,
    wait_s: float,
    as_json: bool,
    project_dir: Path | None,
) -> None:
    """Build the selected models (all by default); with --due only what is due."""
    wall = common._now()
    if due and not sys.stdout.isatty() and _plain(click.get_current_context()):
        from cadence.build import idle

        # cron's minute: nothing is due, proven from files alone (nothing loaded or opened),
        # and nothing printed (on a terminal the full path says "nothing to do")
        if idle.asleep(project_dir or Path.cwd(), at, wall):
            return
    from cadence import output

    name = "run --due" if due else "run"
    if not dry_run:  # what acts is dated (a cron log); a preview prints its own "at"
        dated(name, wall, as_json=as_json)  # a project that fails to load is dated too
    project = _load(project_dir)
    if not dry_run:
        dated(name, wall, project, at, as_json=as_json)
    now = _at(project, at, wall)
    reported: dict[str, str] = {}
    if due and not dry_run:  # holds a run --due already reported are said once per reason
        from cadence.observe import reported_holds

        reported = reported_holds(project.root)
    renderer = output.RunRenderer(as_json=as_json, due=due, tz=project.tz)
    try:
        result = project.run(
            now,
            _selection(project, select, exclude, channel),
            due_only=due,
            full_refresh=full_refresh,
            retry_failed=retry_failed,
            dry_run=dry_run,
            on_event=renderer.event,
            wait_s=wait_s,
            threads=threads,
            replay=at is not None,
            started=wall.astimezone(project.tz),
        )
    except LockHeld as exc:  # overlapping cron starts are normal: exit 0
        _held(exc)
        return
    from cadence.plan.due import clock_warning

    behind = clock_warning(result.clock_behind, result.at, project.tz)
    if dry_run:
        output.render_plan(result, project, as_json=as_json)
        if behind:
            echo(behind, err=True)
        return
    renderer.finish(result)
    if behind:  # on every run, idle ones too: a stalled project must not be silent
        echo(behind, err=True)
    if result.observe_warning:  # an alert not sent: it is retried, the run stands
        echo(f"warning: {result.observe_warning}", err=True)
    if result.write_error:
        echo(f"error: {result.write_error}", err=True)
    quiet = common.repeated_holds(result, reported)
    if not as_json:  # with --json the run's one document holds deliveries and snapshots
        _render_deliveries(result.deliveries, quiet)
    if not due or any(r.status != "skipped" for r in result.results):
        # project warnings (e.g. dbt keys cadence ignores); an idle cron run stays quiet
        for warning in project.parsed.warnings:
            echo(warning.render(), err=True)
    if not as_json:
        _render_snapshots(result.snapshots)
    if not result.ok and not quiet:  # a hold already reported alone does not fail the run
        raise Failed()


# what a `run --due` may be given and still take the idle shortcut: any other option set (a
# selection, --json, --full-refresh, an option added later) takes the full path
_IDLE_OPTIONS = frozenset({"due", "at", "wait_s", "project_dir", "debug"})


def _plain(ctx: click.Context) -> bool:
    return not any(value for name, value in ctx.params.items() if name not in _IDLE_OPTIONS)


def _render_snapshots(report: Any) -> None:
    if report is None or not report.snapshots:
        return
    for s in report.snapshots:
        if s.status == "written":
            echo(f"serve {s.channel}: snapshot {s.version} ({s.keys} keys)")
        else:
            echo(
                f"error: serve {s.channel}: snapshot not written, the last one stays "
                f"served: {s.error}",
                err=True,
            )


@click.command()
@at_option
@click.option("--horizon", default="24h", show_default=True, help="Window for builds/day and cost.")
@select_option
@exclude_option
@json_option
@command
def plan(
    at: str | None,
    horizon: str,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    as_json: bool,
    project_dir: Path | None,
) -> None:
    """What would run now and why, and what each cadence costs per day."""
    from cadence import output
    from cadence.record.reports import parse_horizon
    from cadence.review.cost import project_cost

    span = parse_horizon(horizon)  # validate before printing anything
    project = _load(project_dir)
    now = _at(project, at)
    state = _state(project)
    the_plan = project.plan(now, _selection(project, select, exclude), due_only=True, state=state)
    cost = project_cost(project, state, now, span, horizon)
    if as_json:
        echo(json.dumps(output.plan_json(the_plan, project, cost), indent=2))
        return
    output.render_plan(the_plan, project, as_json=False)
    echo("")
    echo(output.render_cost(cost))


@click.command()
@at_option
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 when any channel or source is at error by its freshness objective (reads "
    "the state snapshot only; for monitors).",
)
@json_option
@command
def status(at: str | None, check: bool, as_json: bool, project_dir: Path | None) -> None:
    """Per model: channels, cadence, last good build, last status, next tick, overdue; per
    channel its deliveries, lag, objective and freshness state (ok, warn, error); per source
    its freshness."""
    from cadence import output
    from cadence.observe import check as freshness
    from cadence.observe import reported_holds
    from cadence.plan.due import clock_warning, fmt
    from cadence.record.reports import status_report

    project = _load(project_dir)
    now = _at(project, at)
    fresh = freshness(project.parsed, project.cadences, project.root, now)
    if check:
        if as_json:  # the status object without models and deliveries (no warehouse read)
            echo(json.dumps(output.status_json(now, fresh, project.tz), indent=2))
        else:
            for line in output.freshness_lines(fresh, project.tz):
                echo(line)
        if fresh["state"] == "error":
            raise Failed()
        return
    rows = status_report(project, _state(project), now)
    behind = tuple(
        (r["name"], dt.datetime.fromisoformat(r["recorded_after_now"]))
        for r in rows
        if r.get("recorded_after_now")
    )
    warning = clock_warning(behind, now, project.tz)
    holds = reported_holds(project.root)  # held at the last run: why a tick waits
    deliveries = [
        {**row, "held": holds.get(f"{row['channel']}/{row['segment']}")}
        for row in project.delivery_status(now)
    ]
    if as_json:
        document = output.status_json(now, fresh, project.tz, rows, deliveries)
        echo(json.dumps(document, indent=2, default=str))
        if warning:
            echo(warning, err=True)
        return
    from cadence.activation.render import status_lines

    if warning:
        echo(warning)
    echo(output.render_status(rows, project.tz))
    held = {f"{r['channel']}/{r['segment']}:": r["held"] for r in deliveries if r["held"]}
    observed = fresh.get("observed_at")
    when = fmt(dt.datetime.fromisoformat(observed), project.tz) if observed else "-"
    for line in status_lines(deliveries, project.tz):
        echo(line)
        reason = held.get(line.strip().split(" ", 1)[0])  # "email/vip:" opens a segment's line
        if reason:  # under its segment's line: why its tick waits
            echo(f"    held at the last run ({when}): {reason}")
    for line in output.freshness_lines(fresh, project.tz):
        echo(line)


@click.command()
@click.argument("model")
@at_option
@command
def explain(model: str, at: str | None, project_dir: Path | None) -> None:
    """Why MODEL is or is not due, with the ticks and builds involved."""
    from cadence.record.reports import explain_model

    project = _load(project_dir)
    project.check_model(model)
    echo(explain_model(project, _state(project), _at(project, at), model))


@click.command(name="ls")
@select_option
@exclude_option
@json_option
@command
def ls_(
    select: tuple[str, ...], exclude: tuple[str, ...], as_json: bool, project_dir: Path | None
) -> None:
    """List models with their materialization, channels and effective cadence."""
    from cadence import output

    project = _load(project_dir)
    chosen = project.selected(_selection(project, select, exclude), None, common._now())
    text = output.render_ls(project, chosen, as_json)
    if text:
        echo(text)


@click.command(name="compile")
@select_option
@exclude_option
@at_option
@command
def compile_(
    select: tuple[str, ...], exclude: tuple[str, ...], at: str | None, project_dir: Path | None
) -> None:
    """Write each model's rendered SQL under target/compiled/ for review."""
    project = _load(project_dir)
    for name, path in project.compile(_at(project, at), _selection(project, select, exclude)):
        echo(f"{name}: {path}")


@click.command()
@select_option
@exclude_option
@json_option
@command
def test(
    select: tuple[str, ...], exclude: tuple[str, ...], as_json: bool, project_dir: Path | None
) -> None:
    """Run unit tests (in memory) and data tests (against the live relations)."""
    from cadence import output
    from cadence.build.testing import run_tests

    project = _load(project_dir)
    outcomes = run_tests(project, _selection(project, select, exclude), common._now())
    echo(output.render_tests(outcomes, as_json))
    if any(o.status in ("fail", "error") for o in outcomes):
        raise Failed()


@click.command()
@select_option
@at_option
@json_option
@command
def seed(select: tuple[str, ...], at: str | None, as_json: bool, project_dir: Path | None) -> None:
    """(Re)load the CSV files under seeds/ as tables."""
    from cadence import output

    wall = common._now()
    dated("seed", wall, as_json=as_json)
    project = _load(project_dir)
    dated("seed", wall, project, at, as_json=as_json)
    renderer = output.RunRenderer(as_json=as_json, due=False, tz=project.tz)
    result = project.seed(
        _at(project, at, wall),
        _selection(project, select),
        on_event=renderer.event,
        started=wall.astimezone(project.tz),
    )
    renderer.finish(result)
    if not as_json:
        _render_deliveries(result.deliveries)
    if not result.ok:
        raise Failed()
