"""What every command shares: the clock, the common options (--project-dir, --vars, --target,
--profiles-dir, --debug, --select, --exclude, --at, --json), loading the project and its state,
and the mapping of errors to exit codes (0 ok, 1 a model or test failed, 2 usage or project
error, 3 internal error, 130 interrupted; a ``run --due`` hold already reported for the same
reason is not a failure: ``repeated_holds``).

Input: flags -> output: the loaded project, ``now`` and the selection a command hands to the
library. Invariants: ``_now`` is the one place cadence reads the clock (commands call it as
``common._now()``, so a test can stub it here); warnings go to stderr, so JSON on stdout stays
parseable. Used by ``cli.pipeline`` and ``cli.wings``.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cadence.cli import signals
from cadence.errors import CadenceError, DiskFull

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def echo(message: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Every line a command prints: after its invocation's time line when it armed one
    (``cadence.output.date``: run, seed and export)."""
    from cadence.output import echo as out

    out(message, err=err, nl=nl)


def dated(
    command: str, wall: dt.datetime, project: Any = None, at: str | None = None, *,
    as_json: bool = False,
) -> None:  # fmt: skip
    """Arm the time line of an invocation that acts (run, seed, export): its wall-clock time in
    the project timezone (the machine's before the project loads), and ``--at`` when given."""
    from cadence.output import date

    replay = _at(project, at) if project is not None and at else None
    date(command, wall, project.tz if project is not None else None, replay, as_json=as_json)


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
    @click.option(
        "--vars",
        "vars_text",
        default=None,
        metavar="YAML",
        help="Values for var() over the project's vars: a YAML or JSON mapping, as dbt's --vars.",
    )
    @click.option(
        "--target",
        default=None,
        help="dbt project: the output of its profile to run on (default: DBT_TARGET, "
        "else the profile's target).",
    )
    @click.option(
        "--profiles-dir",
        default=None,
        metavar="DIR",
        help="dbt project: the folder holding profiles.yml (default: DBT_PROFILES_DIR, the "
        "project folder, ~/.dbt).",
    )
    @click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
    @functools.wraps(fn)
    def wrapper(
        *args: Any,
        debug: bool = False,
        vars_text: str | None = None,
        target: str | None = None,
        profiles_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            _guarded(fn, debug, (vars_text, target, profiles_dir), *args, **kwargs)
        finally:
            from cadence.output import undate

            undate()

    return wrapper


_OPTIONS: list[Any] = []  # the LoadOptions of this invocation (--vars, --target, --profiles-dir)


def _guarded(
    fn: Callable[..., Any], debug: bool, options: tuple[Any, ...], *args: Any, **kwargs: Any
) -> None:
    """Run a command with this invocation's load options, mapping errors to exit codes."""
    try:
        from cadence.load.layout import LoadOptions, parse_vars

        vars_text, target, profiles_dir = options
        _OPTIONS[:] = [LoadOptions(parse_vars(vars_text), target, profiles_dir)]
        signals.interrupt_on_signals()
        try:
            try:
                fn(*args, **kwargs)
            except (SystemExit, Failed, CadenceError):  # an end of its own, unless a signal
                if not signals.ignored():  # came meanwhile: then it is an interrupt
                    raise
            if signals.ignored():
                raise KeyboardInterrupt
        finally:  # before any message below: a second signal must not cut it short
            signals.command_finished()
    except Failed:
        sys.exit(EXIT_FAILED)
    except CadenceError as exc:
        echo(exc.render(), err=True)
        sys.exit(EXIT_FAILED if isinstance(exc, DiskFull) else EXIT_USAGE)
    except (click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except KeyboardInterrupt:
        echo(signals.MESSAGE, err=True)
        sys.exit(signals.EXIT_INTERRUPTED)
    except BrokenPipeError:  # `cadence plan | head`: the reader left; not an error
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(EXIT_OK)
    except Exception as exc:  # noqa: BLE001 - last line of defence
        if signals.received:
            # a signal stopped the run and a handle it closed failed after it (every build
            # is its own transaction: what committed is recorded, the rest rolled back)
            if debug:
                traceback.print_exc()
            echo(signals.MESSAGE, err=True)
            sys.exit(signals.EXIT_INTERRUPTED)
        if debug:
            traceback.print_exc()
        else:
            echo(
                f"internal error, please report: {type(exc).__name__}: {exc}\n"
                "  (run again with --debug for the traceback)",
                err=True,
            )
        sys.exit(3)


def _load(project_dir: Path | None) -> Any:
    from cadence.project import Project

    options = _OPTIONS[0] if _OPTIONS else None
    return Project.load(project_dir or Path.cwd(), options=options)


def _at(project: Any, at: str | None, wall: dt.datetime | None = None) -> dt.datetime:
    from cadence.plan.due import parse_at

    return parse_at(at, project.tz) if at else (wall or _now()).astimezone(project.tz)


def _state(project: Any) -> Any:
    """State for a read-only command; when it comes from the snapshot (a run holds the
    warehouse), say so and as of when, on stderr (JSON on stdout stays parseable)."""
    from cadence.disk import artifacts
    from cadence.plan.due import fmt

    state = project.read_state()
    if state.as_of is not None:
        shown = artifacts.shown(project.root, "state_snapshot.json")
        echo(
            f"note: {state.note}; showing state as of {fmt(state.as_of, project.tz)} ({shown})",
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
        echo(warning.render(), err=True)
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


def _held(exc: CadenceError) -> None:
    """Another run holds the project: normal under cron (exit 0), so a note, not an error."""
    note = CadenceError(exc.message, file=exc.file, line=exc.line, hint=exc.hint, severity="note")
    echo(note.render())


def repeated_holds(result: Any, reported: dict[str, str]) -> frozenset[tuple[str, str]]:
    """The (channel, segment) deliveries a ``run --due`` need not report again: held (an input
    they read failing) for the reason an earlier run reported (``reported``, from the observe
    wing), in a run that fails nothing else. Empty when the run fails anyway: its output says
    why the channel waits too."""
    import dataclasses

    report = result.deliveries
    if report is None or not reported:
        return frozenset()
    same = frozenset(
        (d.channel, d.segment)
        for d in report.deliveries
        if d.status == "held" and reported.get(f"{d.channel}/{d.segment}") == (d.error or "")
    )
    if not same:
        return same
    rest = tuple(d for d in report.deliveries if (d.channel, d.segment) not in same)
    if not dataclasses.replace(result, deliveries=dataclasses.replace(report, deliveries=rest)).ok:
        return frozenset()
    return same


def _render_deliveries(report: Any, skip: frozenset[tuple[str, str]] = frozenset()) -> None:
    if report is None or not report.deliveries:
        return
    from cadence.activation.render import delivery_lines

    if skip:  # holds already reported for the same reason: not news
        import dataclasses

        kept = tuple(d for d in report.deliveries if (d.channel, d.segment) not in skip)
        report = dataclasses.replace(report, deliveries=kept)
    to_stderr = False
    for line in delivery_lines(report):
        # an error and the indented lines under it (its hint) go to stderr together
        to_stderr = line.startswith("error:") or (to_stderr and line.startswith(" "))
        echo(line, err=to_stderr)
