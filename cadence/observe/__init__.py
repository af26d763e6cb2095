"""The observe wing: freshness objectives, alerts and metrics, from what runs recorded.

Entered from one place: ``after_run`` (the facade, after every run), ``check`` (``status``),
``reported_holds`` (``run --due``, before the run), ``Observer`` (``serve``), ``wake_at`` and
``files_kept`` (the idle shortcut). Input: the project, a finished run, ``now`` -> output:
``target/observe.json`` (``record``), alerts (``alerts``), ``target/metrics.prom``
(``metrics``); the logic is in ``watch``.
Invariants: it reads state, never builds; this module stays light (the idle ``run --due``
imports it): an invocation with nothing new (no build, no delivery, no objective crossing due,
no alert pending) reads one small file and imports nothing more; an alert or metrics problem
never fails or delays a run (it is printed as a warning).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cadence.observe import record


def wake_at(root: Path) -> dt.datetime | None:
    """The next instant an idle run has something to observe (an objective crossing, a pending
    alert's retry); None: nothing until something is built or delivered."""
    return record.next_wake(record.read(root))


def files_kept(root: Path) -> list[str]:
    """The files whose identity an idle run must find as the run left them (absolute paths):
    the record, which only a run that observes writes. Without it (deleted, never written) the
    next run observes anew and writes it, also an alert for a state it now sees; replaced by
    another copy, it may hold alerts to send or another next instant to look."""
    return [str(record.path_of(root))]


def after_run(
    project: Any,
    engine: Any,
    state: Any,
    result: Any,
    now: dt.datetime,
) -> Any:
    """The facade's one call after a run; None when there was nothing to observe. Its
    ``warning`` (an alert not sent, metrics not written) is the caller's to show."""
    worked = result.deliveries is not None or any(r.status != "skipped" for r in result.results)
    if not worked and (root_wake := _idle_wake(project.root)) is not None and now < root_wake:
        return None
    from cadence.observe.watch import observe

    report = observe(
        project.root,
        project.parsed,
        project.dag,
        project.cadences,
        engine,
        result,
        now,
        state=state,
        run_duration_s=result.duration_s,
    )
    return report


def _idle_wake(root: Path) -> dt.datetime | None:
    """For an idle run: when to look next; the far future when the record says never."""
    data = record.read(root)
    if data is None:
        return None  # no record yet: observe now
    wake = record.next_wake(data)
    return wake or dt.datetime.max.replace(tzinfo=dt.timezone.utc)


def reported_holds(root: Path) -> dict[str, str]:
    """Channel x segment -> the reason its delivery was held at the last run that observed
    (read before a ``run --due``: a hold already reported for the same reason is not news)."""
    data = record.read(root)
    return dict(data["holds"]) if data is not None else {}


def check(parsed: Any, cadences: Any, root: Path, now: dt.datetime) -> dict[str, Any]:
    """Per channel and source its freshness at ``now`` from the record alone (``status``)."""
    from cadence.observe.watch import check as freshness

    return freshness(parsed, cadences, root, now)


def Observer(project: Any) -> Any:  # noqa: N802 - a factory
    """What ``cadence serve`` asks: freshness per channel (/healthz), metrics (/metrics)."""
    from cadence.observe.watch import Observer as Made

    return Made(project.root, project.parsed, project.cadences)
