"""The command line: each command parses flags, makes one library call, renders the result and
maps errors to exit codes (0 ok, 1 a model or test failed, 2 usage or project error)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cadence import __version__
from cadence.errors import CadenceError, DiskFull, LockHeld

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _now() -> dt.datetime:
    """The one place the clock is read."""
    return dt.datetime.now(dt.timezone.utc)


class Failed(Exception):
    """A model or test failed: exit 1 after the output was rendered."""


def command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Common options and error mapping for every command."""

    @click.option(
        "--project-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Project folder (default: search upwards from the current folder).",
    )
    @click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
    @functools.wraps(fn)
    def wrapper(*args: Any, debug: bool = False, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Failed:
            sys.exit(EXIT_FAILED)
        except CadenceError as exc:
            click.echo(exc.render(), err=True)
            sys.exit(EXIT_FAILED if isinstance(exc, DiskFull) else EXIT_USAGE)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # `cadence plan | head`: the reader left; not an error
            import os

            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_OK)
        except Exception as exc:  # noqa: BLE001 - last line of defence
            if _INTERRUPTED:
                # a signal stopped the run and a handle it closed failed after it (every build
                # is its own transaction: what committed is recorded, the rest rolled back)
                if debug:
                    traceback.print_exc()
                click.echo("interrupted", err=True)
                sys.exit(130)
            if debug:
                traceback.print_exc()
            else:
                click.echo(
                    f"internal error, please report: {type(exc).__name__}: {exc}\n"
                    "  (run again with --debug for the traceback)",
                    err=True,
                )
            sys.exit(3)

    return wrapper


_INTERRUPTED: list[int] = []  # signals received by this run (non-empty: it was interrupted)


def _stop_on_sigterm() -> None:
    """SIGTERM stops a run like Ctrl-C: the build in flight rolls back and is recorded."""
    import signal

    _INTERRUPTED.clear()

    def handler(signum: int, frame: Any) -> None:
        _INTERRUPTED.append(signum)
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _load(project_dir: Path | None) -> Any:
    from cadence.project import Project

    return Project.load(project_dir or Path.cwd())


def _at(project: Any, at: str | None, wall: dt.datetime | None = None) -> dt.datetime:
    from cadence.project import parse_at

    return parse_at(at, project.tz) if at else (wall or _now()).astimezone(project.tz)


def _state(project: Any) -> Any:
    """State for a read-only command; when it comes from the snapshot (a run holds the
    warehouse), say so and as of when, on stderr (JSON on stdout stays parseable)."""
    from cadence.plan.due import fmt

    state = project.read_state()
    if state.as_of is not None:
        click.echo(
            f"note: {state.note}; showing state as of {fmt(state.as_of, project.tz)} "
            "(target/state_snapshot.json)",
            err=True,
        )
    return state


def _selection(
    project: Any,
    select: tuple[str, ...],
    exclude: tuple[str, ...] = (),
    channel: tuple[str, ...] = (),
) -> Any:
    """The selection, warning (stderr, exit unchanged) about terms that match nothing."""
    from cadence.project import Selection

    selection = Selection(tuple(select), tuple(exclude), tuple(channel))
    for warning in project.selection_warnings(selection):
        click.echo(warning.render(), err=True)
    return selection


select_option = click.option(
    "-s",
    "--select",
    "select",
    multiple=True,
    help="Select models (dbt syntax: name, +name, name+, tag:x, path:dir, "
    "channel:x, due:true; space = union, comma = intersection).",
)
exclude_option = click.option("--exclude", multiple=True, help="Exclude models (same syntax).")
at_option = click.option(
    "--at",
    "at",
    default=None,
    metavar="TIMESTAMP",
    help="Evaluate as if now were this time (ISO 8601; naive = project timezone).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="cadence")
def main() -> None:
    """cadence: refresh customer segments at the speed each channel needs."""
    import os

    os.umask(os.umask(0o077) | 0o077)  # whatever cadence (and DuckDB) creates is owner-only


@main.command()
@click.argument("name", required=False, default="cadence_project")
@click.option("--debug", is_flag=True, hidden=True)
def init(name: str, debug: bool) -> None:
    """Create a new project NAME (a small shop that runs offline at once)."""
    from cadence.scaffold import init_project

    try:
        path = init_project(Path(name))
    except CadenceError as exc:
        click.echo(exc.render(), err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"created {path}\n  next: cd {name} && cadence run")


@main.command()
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
    from cadence import output

    project = _load(project_dir)
    wall = _now()
    now = _at(project, at, wall)
    _stop_on_sigterm()
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
    except LockHeld as exc:
        click.echo(exc.render(), err=True)  # overlapping cron starts are normal: exit 0
        return
    from cadence.plan.due import clock_warning

    behind = clock_warning(result.clock_behind, result.at, project.tz)
    if dry_run:
        output.render_plan(result, project, as_json=as_json)
        if behind:
            click.echo(behind, err=True)
        return
    renderer.finish(result)
    if behind:  # on every run, idle ones too: a stalled project must not be silent
        click.echo(behind, err=True)
    if result.write_error:
        click.echo(f"error: {result.write_error}", err=True)
    if not as_json:  # with --json the run's one document holds deliveries and snapshots
        _render_deliveries(result.deliveries)
    if not due or any(r.status != "skipped" for r in result.results):
        # project warnings (e.g. dbt keys cadence ignores); an idle cron run stays quiet
        for warning in project.parsed.warnings:
            click.echo(warning.render(), err=True)
    if not as_json:
        _render_snapshots(result.snapshots)
    if not result.ok:
        raise Failed()


def _render_snapshots(report: Any) -> None:
    if report is None or not report.snapshots:
        return
    for s in report.snapshots:
        if s.status == "written":
            click.echo(f"serve {s.channel}: snapshot {s.version} ({s.keys} keys)")
        else:
            click.echo(
                f"error: serve {s.channel}: snapshot not written, the last one stays "
                f"served: {s.error}",
                err=True,
            )


def _render_deliveries(report: Any) -> None:
    if report is None or not report.deliveries:
        return
    from cadence.activation.render import delivery_lines

    for line in delivery_lines(report):
        click.echo(line, err=line.startswith("error:"))


@main.command()
@click.argument("segment")
@click.option("--changes", is_flag=True, help="Show who entered and exited, oldest first.")
@click.option(
    "--since", default=None, metavar="TIMESTAMP", help="With --changes: only changes from T on."
)
@json_option
@command
def members(
    segment: str, changes: bool, since: str | None, as_json: bool, project_dir: Path | None
) -> None:
    """Current members of SEGMENT (its keys), or with --changes its history."""
    from cadence.activation.render import member_output
    from cadence.project import parse_at

    project = _load(project_dir)
    when = parse_at(since, project.tz) if since else None
    found = project.members(segment, changes=changes or since is not None, since=when)
    for line, to_stderr in member_output(found, project.tz, as_json):
        click.echo(line, err=to_stderr)


@main.command()
@click.option("--channel", multiple=True, help="Only this channel (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what would be delivered; move nothing.")
@click.option(
    "--rebaseline", is_flag=True, help="Send the full audience, flagged replace (needs --channel)."
)
@click.option("--force", is_flag=True, help="Deliver even when max_change would hold it back.")
@at_option
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=0.0,
    metavar="S",
    help="If a run holds the project, wait up to S seconds.",
)
@json_option
@command
def export(
    channel: tuple[str, ...],
    dry_run: bool,
    rebaseline: bool,
    force: bool,
    at: str | None,
    wait_s: float,
    as_json: bool,
    project_dir: Path | None,
) -> None:
    """Deliver pending changes of each channel's segments, without building."""
    from cadence.activation.render import preview_lines

    project = _load(project_dir)
    try:
        result = project.export(
            _at(project, at),
            channel,
            dry_run=dry_run,
            rebaseline=rebaseline,
            force=force,
            wait_s=wait_s,
        )
    except LockHeld as exc:
        click.echo(exc.render(), err=True)
        return
    if dry_run:
        if as_json:
            click.echo(json.dumps({"preview": [r.to_json() for r in result]}, indent=2))
        else:
            click.echo("\n".join(preview_lines(result)))
        return
    if as_json:
        click.echo(json.dumps({"deliveries": [d.to_json() for d in result.deliveries]}, indent=2))
    elif not result.deliveries:
        click.echo("no channel with an export to deliver")
    else:
        _render_deliveries(result)
    if not result.ok:
        raise Failed()


@main.command()
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
        click.echo(json.dumps(output.plan_json(the_plan, project, cost), indent=2))
        return
    output.render_plan(the_plan, project, as_json=False)
    click.echo("")
    click.echo(output.render_cost(cost))


@main.command()
@at_option
@json_option
@command
def status(at: str | None, as_json: bool, project_dir: Path | None) -> None:
    """Per model: channels, cadence, last good build, last status, next tick, overdue."""
    from cadence import output
    from cadence.plan.due import clock_warning
    from cadence.record.reports import status_report

    project = _load(project_dir)
    now = _at(project, at)
    rows = status_report(project, _state(project), now)
    behind = tuple(
        (r["name"], dt.datetime.fromisoformat(r["recorded_after_now"]))
        for r in rows
        if r.get("recorded_after_now")
    )
    warning = clock_warning(behind, now, project.tz)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        if warning:
            click.echo(warning, err=True)
        return
    from cadence.activation.render import status_lines

    if warning:
        click.echo(warning)
    click.echo(output.render_status(rows))
    for line in status_lines(project.delivery_status(), project.tz):
        click.echo(line)


@main.command()
@click.argument("model")
@at_option
@command
def explain(model: str, at: str | None, project_dir: Path | None) -> None:
    """Why MODEL is or is not due, with the ticks and builds involved."""
    from cadence.record.reports import explain_model

    project = _load(project_dir)
    project.check_model(model)
    click.echo(explain_model(project, _state(project), _at(project, at), model))


@main.command(name="ls")
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
    chosen = project.selected(_selection(project, select, exclude), None, _now())
    text = output.render_ls(project, chosen, as_json)
    if text:
        click.echo(text)


@main.command(name="compile")
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
        click.echo(f"{name}: {path}")


@main.command()
@select_option
@exclude_option
@json_option
@command
def test(
    select: tuple[str, ...], exclude: tuple[str, ...], as_json: bool, project_dir: Path | None
) -> None:
    """Run data tests against the live relations."""
    from cadence import output
    from cadence.build.testing import run_tests

    project = _load(project_dir)
    outcomes = run_tests(project, _selection(project, select, exclude), _now())
    click.echo(output.render_tests(outcomes, as_json))
    if any(o.status in ("fail", "error") for o in outcomes):
        raise Failed()


@main.command()
@select_option
@at_option
@json_option
@command
def seed(select: tuple[str, ...], at: str | None, as_json: bool, project_dir: Path | None) -> None:
    """(Re)load the CSV files under seeds/ as tables."""
    from cadence import output

    project = _load(project_dir)
    renderer = output.RunRenderer(as_json=as_json, due=False, tz=project.tz)
    wall = _now()
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


@main.command()
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
@click.option(
    "--engine",
    "target_engine",
    type=click.Choice(["spark"]),
    default=None,
    help="Also name constructs that cannot run, or would differ, on this engine.",
)
@command
def lint(strict: bool, target_engine: str | None, project_dir: Path | None) -> None:
    """Check the project for problems and risky patterns (exit 1 on errors; --strict: warnings)."""
    from cadence.errors import ProjectErrors
    from cadence.record.reports import lint_engine
    from cadence.review.lint import lint as lint_rules
    from cadence.review.lint import recorded_groups

    try:
        project = _load(project_dir)
    except ProjectErrors as exc:  # every project error, then exit 1 (SPEC §10)
        click.echo(exc.render())
        raise Failed() from None
    problems = lint_rules(project, recorded_groups(project)) + (
        lint_engine(project, target_engine) if target_engine else []
    )
    warnings = [w for w in problems if w.severity != "error"]
    errors = [e for e in problems if e.severity == "error"]
    for w in problems:
        click.echo(w.render())
    counts = [f"{len(errors)} error(s)"] if errors else []
    counts += [f"{len(warnings)} warning(s)"] if warnings else []
    click.echo(", ".join(counts) if counts else "no problems found")
    if errors or (strict and warnings):
        raise Failed()


@main.command()
@click.argument("git_ref", required=False, default=None)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown"]),
    default="text",
    show_default=True,
    help="markdown: a block for a pull request comment.",
)
@json_option
@click.option(
    "--fail-on-cost-increase",
    "fail_pct",
    type=float,
    default=None,
    metavar="PCT",
    help="Exit 1 when the total cost per day grows by more than PCT percent.",
)
@at_option
@click.option("--horizon", default="24h", show_default=True, help="Window for builds/day and cost.")
@command
def diff(
    git_ref: str | None,
    fmt: str,
    as_json: bool,
    fail_pct: float | None,
    at: str | None,
    horizon: str,
    project_dir: Path | None,
) -> None:
    """Models, channels and cost per day a change affects, against GIT_REF (default: the merge
    base with the default branch)."""
    from cadence.record.reports import parse_horizon
    from cadence.review.diff import diff_project
    from cadence.review.render import diff_json, diff_markdown, diff_text

    span = parse_horizon(horizon)
    project = _load(project_dir)
    report = diff_project(project, _history(project), git_ref, _at(project, at), span, horizon)
    if as_json:
        click.echo(json.dumps(diff_json(report), indent=2))
    else:
        click.echo(diff_markdown(report) if fmt == "markdown" else diff_text(report), nl=False)
        if fmt != "markdown":
            click.echo("")
    if fail_pct is not None and report.cost_increase_pct() > fail_pct:
        click.echo(f"cost per day grows by more than {fail_pct:g}%", err=True)
        raise Failed()


@main.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the site (default: target/docs).",
)
@at_option
@command
def docs(out: Path | None, at: str | None, project_dir: Path | None) -> None:
    """Write a static docs site: lineage graph, refresh timelines, a page per model."""
    from cadence.review.site import build_docs

    project = _load(project_dir)
    result = build_docs(project, out.resolve() if out else None, _at(project, at))
    click.echo(f"wrote {result.models} model pages; open {result.index}")


def _history(project: Any) -> Any:
    """Recorded builds for durations; none while a run holds the warehouse ("no history")."""
    from cadence.plan.history import StateSnapshot

    try:
        return project.read_state()
    except CadenceError:
        return StateSnapshot()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8787, show_default=True, help="Port (0: any free).")
@click.option(
    "--channel", multiple=True, help="Serve only this channel (repeatable; default: all served)."
)
@click.option(
    "--token-env",
    metavar="NAME",
    default=None,
    help="Require 'Authorization: Bearer <token>', the token read from environment variable NAME "
    "(needed for any address but loopback).",
)
@command
def serve(
    host: str, port: int, channel: tuple[str, ...], token_env: str | None, project_dir: Path | None
) -> None:
    """Answer segment lookups over HTTP from the served channels' snapshots."""
    import os
    import signal
    import threading

    project = _load(project_dir)
    server = project.server(
        host=host,
        port=port,
        channels=channel,
        token_env=token_env,
        env=os.environ,
        clock=_now,
        on_log=lambda line: click.echo(line, err=True),
    )
    stop = threading.Event()
    signals = {"last": 0}

    def handler(signum: int, frame: Any) -> None:
        signals["last"] = signum
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    versions = ", ".join(f"{n} ({v or 'no snapshot yet'})" for n, v in server.versions().items())
    click.echo(f"serving {versions} on http://{host}:{server.port} ({server.stack})", err=True)
    server.run(stop)
    click.echo("stopped", err=True)
    if signals["last"] == signal.SIGINT:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
