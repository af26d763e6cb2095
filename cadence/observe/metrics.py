"""Metrics in the Prometheus text format: ``target/metrics.prom`` and serve's ``GET /metrics``.

Input: the observe record (per channel the time of its data, last delivery, pending changes;
per model its build figures), the channels' standings and the run's duration -> output: the
exposition text (``render``), written atomically and owner-only (``write``), for
node_exporter's textfile collector.
Invariants: ``prometheus_client`` is imported only here and only when rendering (an idle run
never pays its import), which writes the text from metric families cadence fills (no Gauge
objects: they cost ~10x per sample, and in a shell exporting PROMETHEUS_MULTIPROC_DIR they
would write .db files into that folder); times are unix seconds, so Prometheus computes lag
(``time() - cadence_channel_data_timestamp_seconds``) between invocations; a value cadence
does not know is left out, never written as 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cadence.disk import artifacts
from cadence.observe import record
from cadence.observe.objectives import STATES, Standing

METRICS_NAME = "metrics.prom"  # in target/ (<target-path>/cadence/ in a dbt project)


def render(
    project: str,
    data: Mapping[str, Any],
    standings: Sequence[Standing],
    run_duration_s: float | None = None,
) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    # metric families filled directly (prometheus_client's custom-collector API), not Gauge
    # children: the same text, a fraction of the cost per model (4 samples each)
    families: list[GaugeMetricFamily] = []

    def gauge(name: str, doc: str, labels: tuple[str, ...]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=("project", *labels))
        families.append(family)
        return family

    data_ts = gauge(
        "cadence_channel_data_timestamp_seconds",
        "Time of the data the channel was last brought up to date with",
        ("channel",),
    )
    warn = gauge(
        "cadence_channel_objective_warn_seconds",
        "Lag above which the channel is at warn",
        ("channel",),
    )
    error = gauge(
        "cadence_channel_objective_error_seconds",
        "Lag above which the channel is at error",
        ("channel",),
    )
    state = gauge(
        "cadence_channel_freshness_state", "Freshness state: 0 ok, 1 warn, 2 error", ("channel",)
    )
    delivered = gauge(
        "cadence_channel_last_delivery_timestamp_seconds",
        "Time of the channel's last successful delivery",
        ("channel",),
    )
    pending = gauge(
        "cadence_channel_pending_changes",
        "Membership changes not yet delivered to the channel",
        ("channel",),
    )
    for s in standings:
        entry = data.get("channels", {}).get(s.name, {})
        labels = (str(project), str(s.name))
        if s.data_at is not None:
            data_ts.add_metric(labels, float(s.data_at.timestamp()))
        if s.warn_after_s is not None:
            warn.add_metric(labels, float(s.warn_after_s))
        if s.error_after_s is not None:
            error.add_metric(labels, float(s.error_after_s))
        state.add_metric(labels, float(STATES.index(s.state)))
        last = record.time(entry.get("last_delivery_at"))
        if last is not None:
            delivered.add_metric(labels, float(last.timestamp()))
        if isinstance(entry.get("pending"), int):
            pending.add_metric(labels, float(entry["pending"]))
    success = gauge(
        "cadence_model_last_success_timestamp_seconds",
        "Start of the model's last successful build",
        ("model",),
    )
    duration = gauge(
        "cadence_model_last_duration_seconds",
        "Duration of the model's last successful build",
        ("model",),
    )
    builds = gauge("cadence_model_builds", "Builds of the model recorded", ("model",))
    failures = gauge("cadence_model_failures", "Failed builds of the model observed", ("model",))
    for name, stats in sorted(data.get("stats", {}).items()):
        labels = (str(project), str(name))
        at = record.time(stats.get("last_success_at"))
        if at is not None:
            success.add_metric(labels, float(at.timestamp()))
        if stats.get("last_duration_s") is not None:
            duration.add_metric(labels, float(stats["last_duration_s"]))
        builds.add_metric(labels, float(stats.get("builds", 0)))
        failures.add_metric(labels, float(stats.get("failures", 0)))
    run = gauge(
        "cadence_run_duration_seconds",
        "Seconds the last run that did work spent building, testing and publishing",
        (),
    )
    run_at = gauge("cadence_run_timestamp_seconds", "When the last run that did work ran", ())
    if run_duration_s is not None:
        run.add_metric((str(project),), float(run_duration_s))
    at = record.time(data.get("at"))
    if at is not None:
        run_at.add_metric((str(project),), float(at.timestamp()))
    reg = CollectorRegistry()
    reg.register(_Families(families))
    return bytes(generate_latest(reg))


class _Families:
    """A collector yielding the families ``render`` filled, in the order they were made."""

    def __init__(self, families: Sequence[Any]) -> None:
        self.families = families

    def collect(self) -> Sequence[Any]:
        return self.families


def write(
    root: Path,
    project: str,
    data: Mapping[str, Any],
    standings: Sequence[Standing],
    run_duration_s: float | None,
) -> Path:
    return artifacts.write_bytes(
        artifacts.target_dir(root) / METRICS_NAME,
        render(project, data, standings, run_duration_s),
        root,
    )
