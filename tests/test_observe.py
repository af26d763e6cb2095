"""The observe wing: freshness objectives and lag (SPEC §11), status --check, alerts, metrics."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cadence.errors import ErrorCollector
from cadence.load.freshness import duration_s, parse_objective
from cadence.observe.objectives import standing
from cadence.plan.schedule import parse_cadence

BERLIN = ZoneInfo("Europe/Berlin")


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=BERLIN)


Q = "every 15 minutes"


# -- lag and state, from values ------------------------------------------------------------
CASES = [
    # weekdays channel: on Sunday its last ticks are Fri, Thu, Wed, Tue: Friday's data is ok
    ("weekday sunday", "weekdays at 06:00", None, "2026-12-04T06:00", "2026-12-06T12:00", "ok"),
    # ... the data of Wednesday is older than the second-latest tick (Thursday): warn
    ("weekday stale", "weekdays at 06:00", None, "2026-12-02T06:00", "2026-12-06T12:00", "warn"),
    ("weekday error", "weekdays at 06:00", None, "2026-11-30T06:00", "2026-12-06T12:00", "error"),
    # never brought up to date: ok until the fourth tick after it was first seen, then error
    ("never, early", "hourly", None, None, "2026-12-06T12:30", "ok"),
    ("never, 4 ticks", "hourly", None, None, "2026-12-06T14:00", "error"),
    # declared objective: the lag against warn_after / error_after
    ("declared ok", "every 15 minutes", (1800, 7200), "2026-12-06T12:00", "2026-12-06T12:20", "ok"),
    (
        "declared warn",
        "every 15 minutes",
        (1800, 7200),
        "2026-12-06T12:00",
        "2026-12-06T12:31",
        "warn",
    ),
    (
        "declared err",
        "every 15 minutes",
        (1800, 7200),
        "2026-12-06T12:00",
        "2026-12-06T14:01",
        "error",
    ),
]


@pytest.mark.parametrize(("label", "cadence", "objective", "data_at", "now", "state"), CASES)
def test_channel_state_from_values(label, cadence, objective, data_at, now, state) -> None:
    since = t("2026-12-06T10:30")
    got = standing(
        "c",
        parse_cadence(cadence),
        BERLIN,
        objective,
        t(data_at) if data_at else None,
        since,
        t(now),
    )
    assert got.state == state, (label, got)
    if data_at:
        assert got.lag_s == (t(now) - t(data_at)).total_seconds()
    else:
        assert got.lag_s is None


def test_next_crossing_is_when_the_state_worsens() -> None:
    hourly = parse_cadence("hourly")
    got = standing("c", hourly, BERLIN, None, t("2026-12-06T12:00"), None, t("2026-12-06T12:10"))
    assert (got.state, got.next_change) == ("ok", t("2026-12-06T14:00"))
    got = standing(
        "c", hourly, BERLIN, (1800, 3600), t("2026-12-06T12:00"), None, t("2026-12-06T12:10")
    )
    assert got.next_change == t("2026-12-06T12:30")


def test_a_look_exactly_at_a_crossing_looks_again_right_after_it() -> None:
    """At a threshold's instant the lag is not over it yet (the better state): that instant is
    still the next look, so the next invocation sees the worse state, instead of sleeping to the
    following threshold (a run at 12:30 would have skipped warn until error at 14:00)."""
    from cadence.observe.objectives import source_standing

    q = parse_cadence(Q)
    at = t("2026-12-06T12:00")
    table = [  # now, state, next look
        ("2026-12-06T12:29", "ok", "2026-12-06T12:30"),
        ("2026-12-06T12:30", "ok", "2026-12-06T12:30"),
        ("2026-12-06T12:31", "warn", "2026-12-06T14:00"),
        ("2026-12-06T14:00", "warn", "2026-12-06T14:00"),
        ("2026-12-06T14:01", "error", None),
    ]
    for now, state, nxt in table:
        want = (state, t(nxt) if nxt else None)
        got = standing("c", q, BERLIN, (1800, 7200), at, None, t(now))
        assert (got.state, got.next_change) == want, now
        got = source_standing("raw.events", 1800, 7200, at, t(now))
        assert (got.state, got.next_change) == want, now


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30 minutes", 1800),
        ("2 hours", 7200),
        ("1 day", 86400),
        ({"count": 2, "period": "hour"}, 7200),
        ("soon", None),
        ({"count": 0, "period": "hour"}, None),
    ],
)
def test_durations(value, seconds) -> None:
    assert duration_s(value) == seconds


def test_bad_objective_names_cadence_yml_line() -> None:
    errors = ErrorCollector()
    parse_objective(
        {"warn_after": "3 hours", "error_after": "1 hour"}, "channel 'email'", 7, errors
    )
    parse_objective({"warn_after": "soon"}, "channel 'web'", 9, errors)
    found = [(e.file, e.line) for e in errors.errors]
    assert found == [("cadence.yml", 7), ("cadence.yml", 9)]


# -- end to end ------------------------------------------------------------------------------
YML = """\
name: obs
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: Europe/Berlin
channels:
  web: {cadence: "hourly", freshness: {warn_after: "90 minutes", error_after: "3 hours"}}
"""
# web daily at 10:00, warn after 1 hour, error after 3 hours
DAILY = YML.replace(
    '"hourly", freshness: {warn_after: "90 minutes"',
    '"daily at 10:00", freshness: {warn_after: "1 hour"',
)
MODELS = {
    "models/seg.sql": "{{ config(channels=['web'], key='id') }}\nselect 1 as id",
    "models/broken.sql": "{{ config(channels=['web']) }}\nselect * from {{ var('tbl', 'nope') }}",
}


def test_status_check_before_and_after_the_objective(make_project, cli) -> None:
    root = make_project({"models/seg.sql": MODELS["models/seg.sql"]}, YML)
    assert cli(root, "run", "--due", "--at", "2026-12-06T10:00").exit_code == 0
    ok = cli(root, "status", "--check", "--at", "2026-12-06T11:00")
    assert ok.exit_code == 0, ok.output
    assert "channel web: ok, lag 1 h" in ok.output
    # the warehouse held by another process: --check never opens it
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); "
            "print('held', flush=True); time.sleep(30)",
            str(root / "warehouse.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        warn = cli(root, "status", "--check", "--json", "--at", "2026-12-06T11:45")
        assert warn.exit_code == 0
        assert json.loads(warn.output)["channels"][0]["state"] == "warn"
        late = cli(root, "status", "--check", "--at", "2026-12-06T13:01")
        assert late.exit_code == 1, late.output
        assert "channel web: error" in late.output
    finally:
        holder.kill()
        holder.wait()


class Receiver:
    """A Standard Webhooks receiver on 127.0.0.1 that verifies every request."""

    def __init__(self, secret: str) -> None:
        from standardwebhooks.webhooks import Webhook

        self.hook = Webhook(secret)
        self.events: list[dict] = []
        self.ids: list[str] = []
        self.up = True
        self.refused = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["content-length"]))
                if not outer.up:
                    outer.refused += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                payload = outer.hook.verify(body, dict(self.headers))
                if self.headers["webhook-id"] not in outer.ids:
                    outer.ids.append(self.headers["webhook-id"])
                    outer.events.append(payload)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_alerts_once_per_transition_also_after_the_receiver_was_down(
    make_project, cli, monkeypatch
) -> None:
    monkeypatch.setenv("ALERT_SECRET", SECRET)
    receiver = Receiver(SECRET)
    try:
        yml = YML + f"alerts: {{webhook: {{url: '{receiver.url}', secret_env: ALERT_SECRET}}}}\n"
        root = make_project(dict(MODELS), yml)
        start = t("2026-12-06T10:00")
        for minute in range(0, 6 * 60, 7):
            at = start + dt.timedelta(minutes=minute)
            receiver.up = not (240 <= minute < 270)  # down when the channel goes to error
            if minute == 280:  # the broken model is fixed
                (root / "models/broken.sql").write_text(
                    "{{ config(channels=['web']) }}\nselect 2 as x"
                )
            result = cli(root, "run", "--due", "--at", at.isoformat())
            assert result.exit_code in (0, 1), result.output
        types = [(e["type"], e.get("model") or e.get("channel")) for e in receiver.events]
        # the model failed once (not every hour), recovered once; the channel (whose segment
        # "broken" never brought it up to date) went to error at its fourth tick (14:00, seen
        # at 14:05 while the receiver was down: sent at 14:33) and recovered once
        assert types == [
            ("model.failed", "broken"),
            ("freshness.error", "web"),
            ("freshness.ok", "web"),
            ("model.recovered", "broken"),
        ]
        assert [e["at"][11:16] for e in receiver.events] == ["10:00", "14:05", "14:40", "14:40"]
        assert receiver.refused > 0  # it was really down for some attempts
        assert all(e["project"] == "obs" and "at" in e for e in receiver.events)
    finally:
        receiver.close()


def test_metrics_file_parses(make_project, cli) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    root = make_project({"models/seg.sql": MODELS["models/seg.sql"]}, YML)
    assert cli(root, "run", "--due", "--at", "2026-12-06T10:00").exit_code == 0
    path = root / "target" / "metrics.prom"
    assert path.stat().st_mode & 0o077 == 0
    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    data = families["cadence_channel_data_timestamp_seconds"].samples[0]
    assert data.labels["channel"] == "web"
    assert data.value == t("2026-12-06T10:00").timestamp()
    assert families["cadence_channel_objective_error_seconds"].samples[0].value == 10800
    builds = {s.labels["model"]: s.value for s in families["cadence_model_builds"].samples}
    assert builds == {"seg": 1}
    assert families["cadence_run_duration_seconds"].samples[0].value > 0


def test_idle_run_does_no_observe_work(make_project, cli) -> None:
    root = make_project({"models/seg.sql": MODELS["models/seg.sql"]}, YML)
    cli(root, "run", "--due", "--at", "2026-12-06T10:00")
    path = root / "target" / "observe.json"
    before = path.read_bytes()
    cli(root, "run", "--due", "--at", "2026-12-06T10:05")  # idle, before any crossing
    assert path.read_bytes() == before
    data = json.loads(before)
    assert data["next_wake"] == t("2026-12-06T11:30").isoformat()


def test_serve_healthz_follows_the_objective_and_metrics_are_served(make_project, cli) -> None:
    import http.client

    from cadence import Project

    yml = YML.replace(
        'freshness: {warn_after: "90 minutes", error_after: "3 hours"}}',
        'freshness: {warn_after: "90 minutes", error_after: "3 hours"}, serve: true}',
    )
    root = make_project({"models/seg.sql": MODELS["models/seg.sql"]}, yml)
    assert cli(root, "run", "--due", "--at", "2026-12-06T10:00").exit_code == 0
    clock = {"now": t("2026-12-06T12:00")}  # warn: still healthy
    project = Project.load(root)
    srv = project.server(
        host="127.0.0.1", port=0, channels=(), token_env=None, env={}, clock=lambda: clock["now"]
    )
    stop = threading.Event()
    thread = threading.Thread(target=srv.run, args=(stop,))
    thread.start()
    try:

        def get(path: str) -> tuple[int, bytes]:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            return response.status, body

        status, body = get("/healthz")
        assert status == 200, body
        assert json.loads(body)["channels"]["web"]["freshness"]["state"] == "warn"
        clock["now"] = t("2026-12-06T13:01")  # lag 3 h 1 min > error_after 3 h
        status, body = get("/healthz")
        assert status == 503
        assert json.loads(body)["channels"]["web"]["freshness"]["state"] == "error"
        status, body = get("/metrics")
        assert status == 200
        assert b'cadence_channel_data_timestamp_seconds{channel="web",project="obs"}' in body
    finally:
        stop.set()
        thread.join(timeout=10)


STALE_YML = """\
name: stale
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: Europe/Berlin
channels:
  email: {cadence: "hourly", export: {format: csv}}
  ads: {cadence: "hourly", export: {format: csv}, on_stale_source: deliver}
"""
STALE_FILES = {
    "data/events.csv": "id,loaded_at\n1,2026-12-06 05:00:00\n",
    "models/sources.yml": """
        sources:
          - name: raw
            tables:
              - name: events
                external_location: data/events.csv
                loaded_at_field: loaded_at
                freshness: {warn_after: {count: 1, period: hour}, error_after: "2 hours"}
        """,
    "models/seg.sql": "{{ config(channels=['email', 'ads'], key='id') }}\n"
    "select id from {{ source('raw', 'events') }}",
}



def test_status_json_carries_models_channels_sources_and_deliveries(make_project, cli) -> None:
    """SPEC §11 "--json carries the same": one object with the per-model rows, per channel its
    lag, objective and state, per source its freshness (as ``--check --json``, which is that
    object without the models and deliveries) and the deliveries."""
    root = make_project(dict(STALE_FILES), STALE_YML)
    assert cli(root, "run", "--due", "--at", "2026-12-06T10:00").exit_code == 1  # email held
    at = "2026-12-06T10:01"
    full = cli(root, "status", "--json", "--at", at)
    assert full.exit_code == 0, full.output
    doc = json.loads(full.stdout)
    assert list(doc) == [
        "at",
        "state",
        "models",
        "channels",
        "sources",
        "deliveries",
        "observed_at",
        "alerts_pending",
    ]
    assert doc["at"] == "2026-12-06T10:01:00+01:00" and doc["state"] == "error"
    assert [(m["name"], m["last_status"]) for m in doc["models"]] == [("seg", "success")]
    channels = {c["channel"]: c for c in doc["channels"]}
    assert channels["ads"]["state"] == "error" and channels["ads"]["lag_s"] == 5 * 3600 + 60
    assert channels["email"]["data_at"] is None
    assert channels["ads"]["objective"]["declared"] is False
    (source,) = doc["sources"]
    assert source["source"] == "raw.events" and source["state"] == "error"
    assert source["loaded_at"] == "2026-12-06T05:00:00+01:00"
    assert source["objective"]["error_after_s"] == 7200
    deliveries = {(d["channel"], d["segment"]): d for d in doc["deliveries"]}
    assert deliveries["ads", "seg"]["last"]["status"] == "delivered"
    assert deliveries["ads", "seg"]["last"]["started_at"] == "2026-12-06T10:00:00+01:00"
    assert deliveries["email", "seg"]["last"] is None  # held back: nothing attempted
    assert deliveries["email", "seg"]["delivery"]["delivered"] is False
    # --check --json: the same object and figures, without models and deliveries
    check = cli(root, "status", "--check", "--json", "--at", at)
    assert check.exit_code == 1
    monitor = json.loads(check.stdout)
    assert monitor == {k: v for k, v in doc.items() if k not in ("models", "deliveries")}

def test_status_json_gives_every_time_in_the_project_timezone(make_project, cli) -> None:
    """docs/reference/cli.md: every time in ``status --json`` is ISO 8601 with its offset, as
    the example shows, in the project's: a delivered channel's ``data_at`` and a model's
    ``last_good_build`` came out in UTC beside the other times in +01:00."""
    root = make_project(dict(STALE_FILES), STALE_YML)
    assert cli(root, "run", "--due", "--at", "2026-12-06T10:00").exit_code == 1

    def times(value: object) -> list[str]:
        if isinstance(value, dict):
            return [t for v in value.values() for t in times(v)]
        if isinstance(value, list):
            return [t for v in value for t in times(v)]
        if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
            return [value]
        return []

    doc = json.loads(cli(root, "status", "--json", "--at", "2026-12-06T10:01").stdout)
    channels = {c["channel"]: c for c in doc["channels"]}
    assert channels["ads"]["data_at"] == "2026-12-06T05:00:00+01:00"
    assert doc["models"][0]["last_good_build"] == "2026-12-06T10:00:00+01:00"
    found = times(doc)
    assert len(found) >= 8 and all(t.endswith("+01:00") for t in found), found


def test_a_segment_behind_a_stale_source_is_built_not_delivered(make_project, cli) -> None:
    root = make_project(dict(STALE_FILES), STALE_YML)
    result = cli(root, "run", "--due", "--at", "2026-12-06T10:00")  # loaded 5 h ago
    assert "held back: source raw.events is 5 h old, error_after 2 h" in result.output
    assert result.exit_code == 1
    assert not list((root / "exports" / "email").rglob("*.csv"))
    assert list((root / "exports" / "ads").rglob("*.csv"))  # on_stale_source: deliver
    metrics = (root / "target" / "metrics.prom").read_text()
    assert 'cadence_channel_pending_changes{channel="ads",project="stale"} 0.0' in metrics
    assert 'cadence_channel_last_delivery_timestamp_seconds{channel="ads"' in metrics
    assert 'cadence_channel_last_delivery_timestamp_seconds{channel="email"' not in metrics
    check = cli(root, "status", "--check", "--at", "2026-12-06T10:01")
    assert check.exit_code == 1
    fresh = json.loads(cli(root, "status", "--check", "--json", "--at", "2026-12-06T10:01").output)
    by = {c["channel"]: c for c in fresh["channels"]}
    # ads got the version built at 10:00 from data loaded at 05:00: its lag is the data's age
    assert dt.datetime.fromisoformat(by["ads"]["data_at"]) == t("2026-12-06T05:00")
    assert by["ads"]["lag_s"] == 5 * 3600 + 60
    assert by["email"]["data_at"] is None  # held back: never brought up to date
    assert "source raw.events: error, 5 h 1 min old" in check.output
    (root / "data/events.csv").write_text("id,loaded_at\n1,2026-12-06 10:30:00\n")
    result = cli(root, "run", "--due", "--at", "2026-12-06T11:00")
    assert result.exit_code == 0, result.output
    assert list((root / "exports" / "email").rglob("*.csv"))
    assert cli(root, "status", "--check", "--at", "2026-12-06T11:01").exit_code == 0


def test_an_alert_that_cannot_be_sent_never_fails_the_run_and_is_kept(make_project, cli) -> None:
    yml = YML + "alerts: {webhook: {url: 'http://127.0.0.1:9/x', secret_env: CADENCE_T_UNSET}}\n"
    root = make_project(dict(MODELS), yml)
    result = cli(root, "run", "--due", "--at", "2026-12-06T10:00")
    assert result.exit_code == 1  # the broken model, not the alert
    assert "environment variable CADENCE_T_UNSET is not set" in result.output
    data = json.loads((root / "target" / "observe.json").read_text())
    assert [e["type"] for e in data["outbox"]] == ["model.failed"]
    # retried at the next invocation: the next look is the run's own time
    assert data["next_wake"] == t("2026-12-06T10:00").isoformat()
    assert not (root / "target" / "wake.json").exists()  # no idle shortcut meanwhile


def test_dbt_source_freshness_forms_are_read(make_project) -> None:
    from cadence import Project

    root = make_project(
        {
            "models/sources.yml": """
            sources:
              - name: raw
                freshness:
                  warn_after: {count: 12, period: hour}
                  error_after: {count: 1, period: day}
                loaded_at_field: _loaded
                tables:
                  - name: events
                  - name: users
                    freshness: null
                  - name: orders
                    freshness: {warn_after: {count: null, period: null}, error_after: 2 hours}
            """,
        },
        YML,
    )
    by = {s.table: (s.warn_after_s, s.error_after_s) for s in Project.load(root).parsed.sources}
    assert by == {"events": (43200, 86400), "users": (None, None), "orders": (None, 7200)}


def test_an_idle_run_observes_a_crossing_when_it_is_due(make_project, cli) -> None:
    yml = DAILY
    root = make_project({"models/seg.sql": MODELS["models/seg.sql"]}, yml)
    cli(root, "run", "--due", "--at", "2026-12-06T10:00")
    record = root / "target" / "observe.json"
    assert json.loads(record.read_text())["next_wake"] == t("2026-12-06T11:00").isoformat()
    result = cli(root, "run", "--due", "--at", "2026-12-06T11:01")  # nothing to build
    assert "seg" not in result.output
    data = json.loads(record.read_text())
    assert data["channels"]["web"]["state"] == "warn"
    assert data["next_wake"] == t("2026-12-06T13:00").isoformat()  # error_after 3 h


def test_a_run_exactly_at_a_crossing_leaves_the_worse_state_to_the_next_minute(
    make_project, cli
) -> None:
    """A run --due at the very instant warn_after is reached sees ok (the lag is not over it);
    the next minute's run must see warn, not sleep until error_after."""
    yml = DAILY
    root = make_project({"models/seg.sql": MODELS["models/seg.sql"]}, yml)
    cli(root, "run", "--due", "--at", "2026-12-06T10:00")
    record = root / "target" / "observe.json"
    cli(root, "run", "--due", "--at", "2026-12-06T11:00")  # exactly at the crossing
    data = json.loads(record.read_text())
    assert data["channels"]["web"]["state"] == "ok"
    assert data["next_wake"] == t("2026-12-06T11:00").isoformat()
    cli(root, "run", "--due", "--at", "2026-12-06T11:01")
    assert json.loads(record.read_text())["channels"]["web"]["state"] == "warn"


def test_a_pending_alert_is_retried_by_the_next_invocation_whenever_it_starts(
    make_project, cli, monkeypatch
) -> None:
    """An alert the receiver refused is sent by the next run --due, also one that starts
    earlier in its minute than the refused attempt did (cron starts are not to the second)."""
    monkeypatch.setenv("ALERT_SECRET", SECRET)
    receiver = Receiver(SECRET)
    try:
        yml = DAILY
        yml += f"alerts: {{webhook: {{url: '{receiver.url}', secret_env: ALERT_SECRET}}}}\n"
        root = make_project({"models/seg.sql": MODELS["models/seg.sql"]}, yml)
        assert cli(root, "run", "--due", "--at", "2026-12-06T10:00:00.900").exit_code == 0
        receiver.up = False
        cli(root, "run", "--due", "--at", "2026-12-06T11:00:01.900")  # warn: refused
        assert receiver.refused == 1 and receiver.events == []
        receiver.up = True
        cli(root, "run", "--due", "--at", "2026-12-06T11:01:00.300")
        assert [e["type"] for e in receiver.events] == ["freshness.warn"]
        data = json.loads((root / "target" / "observe.json").read_text())
        assert data["outbox"] == []
    finally:
        receiver.close()


def test_lag_counts_the_version_the_destination_acknowledged(make_project, cli) -> None:
    yml = """\
name: acked
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: Europe/Berlin
channels:
  email: {cadence: "hourly", export: {format: csv}}
  web: {cadence: "every 5 minutes"}
"""
    seg = "{{ config(channels=['email', 'web'], key='id') }}\n" + (
        "select id from {{ source('raw', 'ids') }}"
    )
    sources = """
        sources:
          - name: raw
            tables: [{name: ids, external_location: data/ids.csv}]
        """
    files = {"models/seg.sql": seg, "models/sources.yml": sources, "data/ids.csv": "id\n1\n"}
    root = make_project(files, yml)
    assert cli(root, "run", "--due", "--at", "2026-12-06T10:00").exit_code == 0
    (root / "exports").mkdir(exist_ok=True)
    blocker = root / "exports" / "email"
    shutil.rmtree(blocker)  # the first delivery's folder
    blocker.write_text("not a folder")  # email's 11:00 delivery fails
    (root / "data" / "ids.csv").write_text("id\n1\n2\n")
    for at in ("10:05", "10:55", "11:00"):
        cli(root, "run", "--due", "--at", f"2026-12-06T{at}")

    def data_at(at: str) -> dict[str, dt.datetime]:
        out = cli(root, "status", "--check", "--json", "--at", f"2026-12-06T{at}").output
        rows = json.loads(out)["channels"]
        return {r["channel"]: dt.datetime.fromisoformat(r["data_at"]) for r in rows}

    assert data_at("11:01") == {"email": t("2026-12-06T10:00"), "web": t("2026-12-06T11:00")}
    blocker.unlink()
    # 11:05: the segment is rebuilt for web; email's retry sends the range its 11:00 tick froze,
    # so email was brought up to date with the 11:00 version, not the 11:05 one
    assert cli(root, "run", "--due", "--at", "2026-12-06T11:05").exit_code == 0
    assert data_at("11:06") == {"email": t("2026-12-06T11:00"), "web": t("2026-12-06T11:05")}


# -- metrics.prom: the text prometheus_client's Gauges would write, without their cost --------
def _gauge_reference(project, data, standings, run_duration_s) -> bytes:
    """metrics.prom as prometheus_client's Gauge objects write it (the shape the file had)."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    from cadence.observe import record
    from cadence.observe.objectives import STATES

    reg = CollectorRegistry()

    def g(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
        return Gauge(name, doc, ("project", *labels), registry=reg)

    ch = [
        g("cadence_channel_data_timestamp_seconds", "Time of the data the channel was last "
          "brought up to date with", ("channel",)),
        g("cadence_channel_objective_warn_seconds", "Lag above which the channel is at warn",
          ("channel",)),
        g("cadence_channel_objective_error_seconds", "Lag above which the channel is at error",
          ("channel",)),
        g("cadence_channel_freshness_state", "Freshness state: 0 ok, 1 warn, 2 error",
          ("channel",)),
        g("cadence_channel_last_delivery_timestamp_seconds", "Time of the channel's last "
          "successful delivery", ("channel",)),
        g("cadence_channel_pending_changes", "Membership changes not yet delivered to the "
          "channel", ("channel",)),
    ]  # fmt: skip
    for s in standings:
        entry = data.get("channels", {}).get(s.name, {})
        if s.data_at is not None:
            ch[0].labels(project, s.name).set(s.data_at.timestamp())
        if s.warn_after_s is not None:
            ch[1].labels(project, s.name).set(s.warn_after_s)
        if s.error_after_s is not None:
            ch[2].labels(project, s.name).set(s.error_after_s)
        ch[3].labels(project, s.name).set(STATES.index(s.state))
        if (last := record.time(entry.get("last_delivery_at"))) is not None:
            ch[4].labels(project, s.name).set(last.timestamp())
        if isinstance(entry.get("pending"), int):
            ch[5].labels(project, s.name).set(entry["pending"])
    m = [
        g("cadence_model_last_success_timestamp_seconds", "Start of the model's last successful "
          "build", ("model",)),
        g("cadence_model_last_duration_seconds", "Duration of the model's last successful build",
          ("model",)),
        g("cadence_model_builds", "Builds of the model recorded", ("model",)),
        g("cadence_model_failures", "Failed builds of the model observed", ("model",)),
    ]  # fmt: skip
    for name, stats in sorted(data.get("stats", {}).items()):
        if (at := record.time(stats.get("last_success_at"))) is not None:
            m[0].labels(project, name).set(at.timestamp())
        if stats.get("last_duration_s") is not None:
            m[1].labels(project, name).set(stats["last_duration_s"])
        m[2].labels(project, name).set(stats.get("builds", 0))
        m[3].labels(project, name).set(stats.get("failures", 0))
    run = g("cadence_run_duration_seconds", "Seconds the last run that did work spent building, "
            "testing and publishing", ())  # fmt: skip
    run_at = g("cadence_run_timestamp_seconds", "When the last run that did work ran", ())
    if run_duration_s is not None:
        run.labels(project).set(run_duration_s)
    if (at := record.time(data.get("at"))) is not None:
        run_at.labels(project).set(at.timestamp())
    return bytes(generate_latest(reg))


def _standing(name: str, state: str, data_at: str | None, warn, error):
    from cadence.observe.objectives import Standing

    at = t(data_at) if data_at else None
    return Standing(name, at, None, warn, error, state, warn is not None, None)


METRICS_CASES = [
    ("nothing recorded", "p", {}, [], None),
    (
        "channels and models",
        "shop",
        {
            "at": "2026-12-06T10:00:00+01:00",
            "channels": {
                "web": {"last_delivery_at": "2026-12-06T09:59:30+01:00", "pending": 3},
                "email": {"pending": "not a number"},
            },
            "stats": {
                "seg_b": {"builds": 7, "failures": 2, "last_duration_s": 0.000123},
                "seg_a": {
                    "builds": 1,
                    "failures": 0,
                    "last_success_at": "2026-12-06T10:00:00.123456+01:00",
                    "last_duration_s": 12345678.5,
                },
                "never": {},
            },
        },
        [
            _standing("web", "warn", "2026-12-06T08:00", 5400.0, 10800),
            _standing("email", "ok", None, None, None),
        ],
        1.25,
    ),
    (
        "names a label must escape",
        'sh"op\\x',
        {"stats": {'we"ird\\name\nü': {"builds": 10**12, "failures": 1.5}}},
        [_standing('ch"an\\nel\nü', "error", "2026-01-01T00:00", 0.5, 1e-7)],
        0.0,
    ),
]


@pytest.mark.parametrize(
    ("project", "data", "standings", "duration"),
    [c[1:] for c in METRICS_CASES],
    ids=[c[0] for c in METRICS_CASES],
)
def test_metrics_text_is_what_prometheus_client_gauges_write(project, data, standings, duration):
    from cadence.observe import metrics

    expected = _gauge_reference(project, data, standings, duration)
    assert metrics.render(project, data, standings, duration) == expected


def test_metrics_never_write_into_prometheus_multiprocess_folders(tmp_path) -> None:
    """A shell exporting PROMETHEUS_MULTIPROC_DIR (set for some other Python service) changes
    nothing: cadence's metrics are its own file, no .db files appear there, and a folder that
    does not exist is no error."""
    out = {}
    for name, env_dir in (("plain", None), ("there", tmp_path / "mp"), ("missing", tmp_path / "x")):
        code = (
            "from cadence.observe import metrics\n"
            "data = {'at': '2026-12-06T10:00:00+00:00', 'stats': {'m': {'builds': 2}}}\n"
            "import sys; sys.stdout.write(metrics.render('p', data, [], 1.5).decode())\n"
        )
        env = {k: v for k, v in os.environ.items() if "multiproc_dir" not in k.lower()}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        if env_dir is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(env_dir)
        if name == "there":
            env_dir.mkdir()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        out[name] = done.stdout
    assert out["there"] == out["missing"] == out["plain"]
    assert 'cadence_model_builds{model="m",project="p"} 2.0' in out["plain"]
    assert list((tmp_path / "mp").iterdir()) == []


def test_observing_a_crossing_without_alerts_imports_no_http_client(make_project, cli) -> None:
    """An idle minute at an objective crossing records the new state; with no ``alerts:``
    there is nothing to send, so the connection machinery (http.client, ssl) stays unloaded."""
    yml = YML.replace('"hourly", freshness: {warn_after: "90 minutes"', '"daily at 10:00", '
                      'freshness: {warn_after: "1 hour"')  # fmt: skip
    root = make_project({"models/seg.sql": MODELS["models/seg.sql"]}, yml)
    cli(root, "run", "--due", "--at", "2026-12-06T10:00")
    code = (
        "import sys\n"
        "from cadence.cli import main\n"
        "try:\n"
        f"    main(['run', '--due', '--at', '2026-12-06T11:01', '--project-dir', {str(root)!r}])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(sorted(m for m in ('http.client', 'ssl') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert json.loads((root / "target" / "observe.json").read_text())["channels"]["web"][
        "state"
    ] == "warn"


class _Dag:
    """Parents by name; counts the walks upstream."""

    def __init__(self, parents: dict[str, tuple[str, ...]]) -> None:
        self.parents, self.walks = parents, 0

    def ancestors(self, name: str) -> set[str]:
        self.walks += 1
        out, todo = set(), list(self.parents.get(name, ()))
        while todo:
            n = todo.pop()
            if n not in out:
                out.add(n)
                todo.extend(self.parents.get(n, ()))
        return out


def _parsed(loaded_at: str | None):
    from types import SimpleNamespace as NS

    src = NS(source_name="app", table="events", loaded_at=loaded_at)
    other = NS(source_name="app", table="users", loaded_at=None)
    models = [
        NS(name="stg", sources=[("app", "events")]),
        NS(name="users", sources=[("app", "users")]),
        NS(name="seg_a", sources=[]),
        NS(name="seg_b", sources=[]),
    ]
    return NS(sources=[src, other], models=models)


@pytest.mark.parametrize(
    ("loaded_at", "walks", "seg_a"),
    [
        (None, 0, "2026-12-06T10:00:00+01:00"),  # nothing declares loaded_at: no walk at all
        ("event_at", 2, "2026-12-06T09:30:00+01:00"),  # seg_a reads events through stg
    ],
)
def test_segment_data_times_walk_the_graph_only_for_sources_with_loaded_at(
    monkeypatch, loaded_at, walks, seg_a
) -> None:
    from cadence.observe import watch

    monkeypatch.setattr(watch, "loaded_at", lambda engine, src, tz: t("2026-12-06T09:30"))
    dag = _Dag({"seg_a": ("stg",), "seg_b": ("users",)})
    times, read = watch._segment_times(
        _parsed(loaded_at), dag, None, ["seg_a", "seg_b"], t("2026-12-06T10:00"), BERLIN
    )
    assert dag.walks == walks
    assert times == {"seg_a": seg_a, "seg_b": "2026-12-06T10:00:00+01:00"}
    assert read == ({"app.events": "2026-12-06T09:30:00+01:00"} if loaded_at else {})


def test_a_lost_record_keeps_what_the_destinations_acknowledged(make_project, cli) -> None:
    """target/observe.json deleted: the full path writes it again from the state, with each
    exported channel's data time from the freeze its destination acknowledged (not 'never
    brought up to date' until the channel's next delivery, up to a day later)."""
    yml = """\
name: lost
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: Europe/Berlin
channels:
  email: {cadence: "daily at 05:00", export: {format: csv}}
"""
    seg = "{{ config(channels=['email'], key='id') }}\nselect 1 as id\n"
    root = make_project({"models/seg.sql": seg}, yml)
    assert cli(root, "run", "--due", "--at", "2026-12-06T05:00").exit_code == 0

    def email(at: str) -> dict:
        out = cli(root, "status", "--check", "--json", "--at", f"2026-12-06T{at}").output
        return next(r for r in json.loads(out)["channels"] if r["channel"] == "email")

    before = email("05:30")
    assert before["data_at"] is not None and before["state"] == "ok"
    (root / "target" / "observe.json").unlink()
    assert cli(root, "run", "--due", "--at", "2026-12-06T05:31").exit_code == 0
    after = email("05:32")
    assert after["data_at"] == before["data_at"] and after["state"] == "ok"
