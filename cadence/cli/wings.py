"""The commands of the wings: activation (members, export), serve, and review (lint, diff,
advise, docs).

Each parses flags, makes one library call (``Project`` or the wing's own entry point), renders
the result with the wing's ``render`` functions and maps a failure to exit 1 (``Failed``).
Registered on the group by ``cadence.cli``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from cadence.cli import common
from cadence.cli.common import (
    Failed,
    _at,
    _held,
    _load,
    _render_deliveries,
    at_option,
    command,
    dated,
    echo,
    json_option,
)
from cadence.errors import CadenceError, LockHeld


@click.command()
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
    from cadence.plan.due import parse_at

    project = _load(project_dir)
    when = parse_at(since, project.tz) if since else None
    found = project.members(segment, changes=changes or since is not None, since=when)
    for line, to_stderr in member_output(found, project.tz, as_json):
        echo(line, err=to_stderr)


@click.command()
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

    wall = common._now()
    if not dry_run:  # what acts is dated (a cron log); a preview moves nothing
        dated("export", wall, as_json=as_json)
    project = _load(project_dir)
    if not dry_run:
        dated("export", wall, project, at, as_json=as_json)
    try:
        result = project.export(
            _at(project, at, wall),
            channel,
            dry_run=dry_run,
            rebaseline=rebaseline,
            force=force,
            wait_s=wait_s,
        )
    except LockHeld as exc:  # a run holds the project: exit 0, as run --due does
        _held(exc)
        return
    if dry_run:
        if as_json:
            echo(json.dumps({"preview": [r.to_json() for r in result]}, indent=2))
        else:
            for line in preview_lines(result):
                echo(line, err=line.startswith("error:"))
        if any(r.failed for r in result):  # what the delivery would fail on fails the preview
            raise Failed()
        return
    if as_json:
        echo(json.dumps({"deliveries": [d.to_json() for d in result.deliveries]}, indent=2))
    elif not result.deliveries:
        echo("no channel with an export to deliver")
    else:
        _render_deliveries(result)
    if not result.ok:
        raise Failed()


@click.command()
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
        echo(exc.render())
        raise Failed() from None
    problems = lint_rules(project, recorded_groups(project)) + (
        lint_engine(project, target_engine) if target_engine else []
    )
    warnings = [w for w in problems if w.severity != "error"]
    errors = [e for e in problems if e.severity == "error"]
    for w in problems:
        echo(w.render())
    counts = [f"{len(errors)} error(s)"] if errors else []
    counts += [f"{len(warnings)} warning(s)"] if warnings else []
    echo(", ".join(counts) if counts else "no problems found")
    if errors or (strict and warnings):
        raise Failed()


@click.command()
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
        echo(json.dumps(diff_json(report), indent=2))
    else:
        echo(diff_markdown(report) if fmt == "markdown" else diff_text(report), nl=False)
        if fmt != "markdown":
            echo("")
    if fail_pct is not None and report.cost_increase_pct() > fail_pct:
        echo(f"cost per day grows by more than {fail_pct:g}%", err=True)
        raise Failed()


@click.command()
@click.option("--channel", multiple=True, help="Only this channel (repeatable).")
@click.option(
    "--since",
    default="30d",
    show_default=True,
    metavar="SPAN|TIMESTAMP",
    help="History to read: back from now (90m, 24h, 30d) or from a time (ISO 8601).",
)
@click.option(
    "--cadences",
    default=None,
    metavar="'C1; C2; ...'",
    help="Candidate cadences separated by ';' (cron has commas); default: every 5 minutes; "
    "every 15 minutes; hourly; every 4 hours; daily at the channel's hour.",
)
@at_option
@json_option
@command
def advise(
    channel: tuple[str, ...],
    since: str,
    cadences: str | None,
    at: str | None,
    as_json: bool,
    project_dir: Path | None,
) -> None:
    """What each channel's cadence buys and costs: reach delays, missed members and cost at
    candidate cadences, from recorded history (never builds)."""
    from cadence.review.advise import advise as advise_channels
    from cadence.review.advise import parse_candidates, parse_since
    from cadence.review.render import advise_json, advise_text

    project = _load(project_dir)
    now = _at(project, at)
    candidates = parse_candidates(cadences) if cadences is not None else None
    start = parse_since(since, now, project.tz)
    advice = advise_channels(project, now, start, channel, candidates)
    if as_json:
        echo(json.dumps(advise_json(advice), indent=2))
    else:
        echo(advise_text(advice))


@click.command()
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
    echo(f"wrote {result.models} model pages; open {result.index}")


def _history(project: Any) -> Any:
    """Recorded builds for durations; none while a run holds the warehouse ("no history")."""
    from cadence.plan.history import StateSnapshot

    try:
        return project.read_state()
    except CadenceError:
        return StateSnapshot()


@click.command()
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
        clock=common._now,
        on_log=lambda line: echo(line, err=True),
    )
    stop = threading.Event()
    signals = {"last": 0}

    def handler(signum: int, frame: Any) -> None:
        signals["last"] = signum
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    versions = ", ".join(f"{n} ({v or 'no snapshot yet'})" for n, v in server.versions().items())
    echo(f"serving {versions} on http://{host}:{server.port} ({server.stack})", err=True)
    server.run(stop)
    echo("stopped", err=True)
    if signals["last"] == signal.SIGINT:
        sys.exit(130)
