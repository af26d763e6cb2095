"""The webhook destination (cadence/activation/webhook.py) against a real receiver on 127.0.0.1:
Standard Webhooks signing, stable batch ids, retries, contiguous acknowledgement, URL policy.

Time is passed in: ``clock`` (webhook-timestamp) is fixed and shared with the receiver's check,
``sleep`` records the waits instead of waiting.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from routing_project import SECRET as ROUTING_SECRET
from routing_project import SECRET_ENV, Fault, Receiver, copy_routing

from cadence.activation import webhook
from cadence.activation.outbox import Change
from cadence.activation.webhook import cut_batches, deliver_webhook, webhook_id
from cadence.load.channelconfig import ExportConfig
from cadence.outbound.retry import retry_after_s
from cadence.outbound.signing import sign, signing_key

SECRET = "whsec_" + base64.b64encode(b"cadence-test-secret-32-bytes-ok!").decode()
ENV = {"ROUTING_SECRET": SECRET}
NOW = 1_780_000_000.0  # the wall clock of every attempt in these tests
T1 = dt.datetime(2026, 6, 1, 5, 0, tzinfo=dt.timezone.utc)
T2 = dt.datetime(2026, 6, 1, 5, 5, tzinfo=dt.timezone.utc)


def Export(url: str, **kw: Any) -> ExportConfig:  # noqa: N802 (reads like the config it makes)
    values: dict[str, Any] = {
        "secret_env": "ROUTING_SECRET",
        "batch_size": 10,
        "timeout_s": 2.0,
        "max_attempts": 4,
        "line": 7,
    }
    values.update(kw)
    return ExportConfig(kind="webhook", url=url, **values)


def changes(n: int, *, start: int = 1, at: dt.datetime = T1) -> list[Change]:
    return [
        Change(seq, f"c{seq}", "entered", at, {"cart_value": seq * 1.5})
        for seq in range(start, start + n)
    ]


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def receiver(**kw: Any) -> Any:
    kw.setdefault("clock", lambda: NOW)
    kw.setdefault("idle_timeout_s", 20.0)
    return Receiver(SECRET, **kw)


def deliver(rx: Any, items: list[Change], sleeps: Sleeps | None = None, **kw: Any) -> Any:
    return deliver_webhook(
        Export(rx.url, **kw),
        "routing",
        "cart_abandoners",
        items,
        ENV,
        sleep=sleeps if sleeps is not None else Sleeps(),
        clock=lambda: NOW,
    )


# -- signing -----------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    got = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_requests_verify_with_the_reference_standardwebhooks_package() -> None:
    standardwebhooks = pytest.importorskip("standardwebhooks")
    with receiver() as rx:
        outcome = deliver(rx, changes(25))
    assert outcome.error is None
    reference = standardwebhooks.Webhook(SECRET)
    assert len(rx.signed) == 3
    for msg_id, timestamp, signature, body in rx.signed:
        when = dt.datetime.fromtimestamp(int(timestamp), tz=dt.timezone.utc)
        assert reference.sign(msg_id, when, body.decode()) == signature
        assert timestamp == str(int(NOW))


def test_secret_must_be_whsec_base64_and_never_shows_in_errors() -> None:
    assert signing_key(SECRET) == b"cadence-test-secret-32-bytes-ok!"
    assert signing_key(SECRET.rstrip("=")) == signing_key(SECRET)  # unpadded is accepted
    for bad in ("plain-secret-value", "whsec_", "whsec_!!not*base64!!"):
        with pytest.raises(ValueError) as info:
            signing_key(bad)
        assert bad not in str(info.value) or bad == "whsec_"
    url = "https://hooks.example.com/in"
    missing = deliver_webhook(Export(url), "routing", "s", changes(1), {}, sleep=Sleeps())
    assert missing.error and "ROUTING_SECRET" in missing.error and missing.delivered_through is None
    wrong = deliver_webhook(
        Export(url), "routing", "s", changes(1), {"ROUTING_SECRET": "hunter2-plain"}
    )
    assert wrong.error and "whsec_" in wrong.error and "hunter2" not in wrong.error


def test_webhook_id_is_derived_from_channel_segment_and_range_only() -> None:
    a = webhook_id("routing", "cart_abandoners", 1, 100)
    assert a == webhook_id("routing", "cart_abandoners", 1, 100)
    others = {
        webhook_id("routing", "cart_abandoners", 1, 99),
        webhook_id("routing", "cart_abandoners", 2, 100),
        webhook_id("routing", "browsing_now", 1, 100),
        webhook_id("web", "cart_abandoners", 1, 100),
    }
    assert a not in others and len(others) == 4
    assert a.startswith("msg_") and a.isascii()


# -- batches -----------------------------------------------------------------------------------


def test_payload_is_the_documented_json() -> None:
    item = Change(7, "c7", "exited", T1, {"cart_value": 12.5, "key": "spoof", "day": T1.date()})
    (batch,) = cut_batches("routing", "cart_abandoners", [item], 100)
    assert json.loads(batch.body) == {
        "type": "segment.changes",
        "channel": "routing",
        "segment": "cart_abandoners",
        "changes": [
            {
                "key": "c7",
                "change": "exited",
                "at": "2026-06-01T05:00:00+00:00",
                "cart_value": 12.5,
                "day": "2026-06-01",
            }
        ],
    }
    assert (batch.first, batch.last, batch.count) == (7, 7, 1)


def test_batches_are_cut_at_batch_size_and_never_span_two_freezes() -> None:
    items = changes(25) + changes(7, start=26, at=T2)
    ranges = [(b.first, b.last) for b in cut_batches("r", "s", items, 10)]
    assert ranges == [(1, 10), (11, 20), (21, 25), (26, 32)]
    with pytest.raises(ValueError):
        cut_batches("r", "s", list(reversed(items)), 10)


def test_a_retry_after_partial_delivery_cuts_the_same_batches_with_the_same_ids() -> None:
    first = cut_batches("r", "s", changes(25), 10)
    # batches 1-10 were acknowledged; 11-20 and 21-25 were sent but not acknowledged; a later
    # run froze 26-32 on top
    retry = cut_batches("r", "s", changes(15, start=11) + changes(7, start=26, at=T2), 10)
    assert [(b.webhook_id, b.body) for b in retry[:2]] == [
        (b.webhook_id, b.body) for b in first[1:]
    ]
    assert (retry[2].first, retry[2].last) == (26, 32)


# -- delivering to a real receiver ------------------------------------------------------------


def test_everything_acknowledged_is_delivered_once_and_in_order_per_key() -> None:
    with receiver() as rx:
        outcome = deliver(rx, changes(95))
    assert outcome == webhook.DeliveryOutcome(95, 95, None)
    assert sorted(rx.keys(), key=lambda kc: int(kc[0][1:])) == [
        (f"c{i}", "entered") for i in range(1, 96)
    ]
    assert len(rx.requests) == 10 and all(status == 200 for _, status in rx.requests)


def test_at_most_four_batches_are_in_flight() -> None:
    with receiver(fault=lambda n, i: Fault(status=200, apply=True, delay_s=0.15)) as rx:
        outcome = deliver(rx, changes(200))
    assert outcome.delivered_through == 200 and outcome.error is None
    assert rx.max_in_flight == webhook.MAX_IN_FLIGHT


def test_500_and_429_are_retried_with_backoff_and_retry_after() -> None:
    failed: set[str] = set()

    def fault(number: int, msg_id: str) -> Any:
        if msg_id in failed:
            return None
        failed.add(msg_id)
        return Fault(status=429, retry_after="3") if len(failed) % 2 else Fault(status=503)

    sleeps = Sleeps()
    with receiver(fault=fault) as rx:
        outcome = deliver(rx, changes(40), sleeps)
    assert outcome == webhook.DeliveryOutcome(40, 40, None)
    assert sorted(sleeps) == [0.5, 0.5, 3.0, 3.0]
    assert len(rx.keys()) == 40 and len(set(rx.keys())) == 40


def test_retry_after_http_date_and_cap() -> None:
    date = email.utils.formatdate(NOW + 42, usegmt=True)
    assert retry_after_s(date, NOW) == pytest.approx(42)
    assert retry_after_s("7", NOW) == 7.0
    assert retry_after_s("soon", NOW) is None
    with receiver(fault=lambda n, i: Fault(status=429, retry_after="3600")) as rx:
        outcome = deliver(rx, changes(5))
    assert outcome.delivered_through is None and outcome.sent == 0
    assert outcome.error and "3600" in outcome.error
    assert len(rx.requests) == 1  # not hammered


def test_a_receiver_that_applies_then_times_out_gets_the_same_id_again() -> None:
    slow: set[str] = set()

    def fault(number: int, msg_id: str) -> Any:
        if number == 2:
            slow.add(msg_id)
            return Fault(status=200, apply=True, delay_s=1.5)
        return None

    with receiver(fault=fault) as rx:
        outcome = deliver(rx, changes(30), timeout_s=0.5)
    assert outcome == webhook.DeliveryOutcome(30, 30, None)
    (msg_id,) = slow
    assert [s[0] for s in rx.signed].count(msg_id) >= 2  # sent again, same id
    assert len(rx.keys()) == 30 and len(set(rx.keys())) == 30  # applied once
    assert rx.duplicates_differing == []


def test_other_4xx_stop_the_delivery_with_status_and_excerpt() -> None:
    ids = [b.webhook_id for b in cut_batches("routing", "cart_abandoners", changes(50), 10)]

    def fault(number: int, msg_id: str) -> Any:
        return Fault(status=422) if msg_id == ids[2] else None

    sleeps = Sleeps()
    with receiver(fault=fault) as rx:
        outcome = deliver(rx, changes(50), sleeps)
    assert outcome.delivered_through == 20
    assert outcome.error and "HTTP 422" in outcome.error and "injected failure" in outcome.error
    assert "not retried" in outcome.error and SECRET not in outcome.error
    assert [i for i, _ in rx.requests].count(ids[2]) == 1 and sleeps == []


def test_state_advances_only_over_contiguously_acknowledged_batches() -> None:
    ids = [b.webhook_id for b in cut_batches("routing", "cart_abandoners", changes(40), 10)]

    def fault(number: int, msg_id: str) -> Any:
        return Fault(status=500) if msg_id == ids[1] else None

    with receiver(fault=fault) as rx:
        outcome = deliver(rx, changes(40), max_attempts=3)
    assert outcome.delivered_through == 10
    assert outcome.error and "gave up after 3 attempt(s)" in outcome.error
    acked = {i for i, s in rx.requests if s == 200}
    assert ids[0] in acked and ids[1] not in acked
    assert outcome.sent == 10 * len(acked)  # batches past the gap may be acked: sent again later


def test_a_key_changed_twice_reaches_the_receiver_in_order() -> None:
    items = changes(10) + [Change(11 + i, f"c{i + 1}", "exited", T2, {}) for i in range(10)]
    first_id = cut_batches("routing", "cart_abandoners", items, 10)[0].webhook_id

    def fault(number: int, msg_id: str) -> Any:
        return Fault(status=200, apply=True, delay_s=0.2) if msg_id == first_id else None

    with receiver(fault=fault) as rx:
        outcome = deliver(rx, items)
    assert outcome.delivered_through == 20
    applied = rx.keys()
    for i in range(1, 11):
        assert applied.index((f"c{i}", "entered")) < applied.index((f"c{i}", "exited"))


def test_a_receiver_that_is_down_fails_after_bounded_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    outcome = deliver_webhook(
        Export(f"http://127.0.0.1:{port}/hooks"),
        "routing",
        "cart_abandoners",
        changes(30),
        ENV,
        sleep=sleeps,
        clock=lambda: NOW,
    )
    assert outcome.delivered_through is None and outcome.sent == 0
    assert outcome.error and "connection refused" in outcome.error
    assert len(sleeps) <= 3 * 3 and set(sleeps) <= {0.5, 1.0, 2.0}


def test_an_interrupt_starts_no_new_request() -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with receiver(fault=lambda n, i: Fault(status=503)) as rx:
        with pytest.raises(KeyboardInterrupt):
            deliver(rx, changes(100), interrupted)  # type: ignore[arg-type]
    assert rx.count <= webhook.MAX_IN_FLIGHT  # one attempt of the batches in flight, no more


def test_nothing_to_deliver_sends_nothing() -> None:
    assert deliver_webhook(Export("https://x.example"), "r", "s", [], {}) == (
        webhook.DeliveryOutcome(None, 0, None)
    )


# -- URL policy --------------------------------------------------------------------------------


def test_a_name_resolving_to_a_private_address_needs_allow_private(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake_getaddrinfo(host: str, port: int, *args: Any, **kw: Any) -> list[Any]:
        assert host == "hooks.internal.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    outcome = deliver_webhook(
        Export("https://hooks.internal.example/in"), "routing", "s", changes(3), ENV
    )
    assert outcome.delivered_through is None
    assert outcome.error and outcome.error.startswith("cadence.yml:7: ")
    assert "10.1.2.3" in outcome.error and "allow_private" in outcome.error


def test_connections_go_to_the_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS is asked once; the connection uses that answer (no second lookup to rebind)."""
    real = socket.getaddrinfo
    calls: list[str] = []

    def counting(host: str, *args: Any, **kw: Any) -> Any:
        calls.append(host)
        return real("127.0.0.1" if host == "localhost" else host, *args, **kw)

    with receiver() as rx:
        monkeypatch.setattr(socket, "getaddrinfo", counting)
        url = rx.url.replace("127.0.0.1", "localhost")
        outcome = deliver_webhook(
            Export(url), "routing", "s", changes(40), ENV, sleep=Sleeps(), clock=lambda: NOW
        )
    assert outcome.error is None and outcome.delivered_through == 40
    assert calls.count("localhost") == 1


def test_https_checks_the_certificate_and_the_host_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    sleeps = Sleeps()
    with receiver(tls=tls) as rx:
        assert rx.url.startswith("https://localhost:")
        untrusted = deliver(rx, changes(5), sleeps)
        assert untrusted.delivered_through is None and rx.count == 0 and sleeps == []
        assert untrusted.error and "certificate" in untrusted.error
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now the test CA is trusted
        trusted = deliver(rx, changes(25))
    assert trusted == webhook.DeliveryOutcome(25, 25, None)
    assert len(rx.keys()) == 25


# -- end to end: the routing example through cadence, with failures ----------------------------

CADENCE = Path(sys.executable).parent / "cadence"
TICK = "2026-06-01T10:00"


def _audience(root: Path) -> dict[str, set[str]]:
    """What the receiver must hold: each segment's audience as cadence recorded it delivered."""
    import duckdb

    con = duckdb.connect(str(root / "routing.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "select segment, key from _cadence.delivered where not held_out"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, set[str]] = {}
    for segment, key in rows:
        out.setdefault(segment, set()).add(key)
    return out


def _applied_once(rx: Any) -> None:
    """Every change applied once; anything received twice came with the same id and body."""
    applied = [(c["segment"], c["key"], c["change"]) for c in rx.applied]
    assert len(applied) == len(set(applied))
    assert rx.duplicates_differing == []


def test_bad_webhook_config_is_a_project_error_naming_the_line(tmp_path: Path, cli: Any) -> None:
    for url, expected in [
        ("http://hooks.example.com/in", "http is only allowed to loopback"),
        ("https://10.1.2.3/in", "private"),
        ("https://169.254.169.254/latest", "private, link-local"),
    ]:
        root = copy_routing(tmp_path / f"p{len(list(tmp_path.iterdir()))}", url)
        result = cli(root, "run", "--at", TICK)
        assert result.exit_code == 2, result.output
        line = next(
            i
            for i, text in enumerate((root / "cadence.yml").read_text().splitlines(), 1)
            if "url:" in text
        )
        assert f"cadence.yml:{line}:" in result.output and expected in result.output
    root = copy_routing(tmp_path / "allowed", "https://10.1.2.3/in", allow_private="true")
    assert cli(root, "compile").exit_code == 0


def test_a_receiver_that_is_down_fails_the_run_and_the_next_export_sends_everything(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, ROUTING_SECRET)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hooks/cadence"
    root = copy_routing(tmp_path / "routing", url, batch_size=3, max_attempts=2)
    down = cli(root, "run", "--at", TICK)
    assert down.exit_code == 1, down.output
    assert "routing/high_value_carts" in down.output and "connection refused" in down.output
    assert ROUTING_SECRET not in down.output
    assert _audience(root) == {}  # nothing marked delivered
    with Receiver(ROUTING_SECRET, port=port) as rx:
        back = cli(root, "export", "--at", "2026-06-01T10:02")
        assert back.exit_code == 0, back.output
    assert rx.members() == _audience(root) and rx.members()["high_value_carts"]
    _applied_once(rx)


def test_500_429_and_an_applied_batch_that_times_out_are_retried_within_the_run(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, ROUTING_SECRET)
    plan = {1: Fault(status=500), 2: Fault(status=429, retry_after="1"),
            3: Fault(status=200, apply=True, delay_s=3.0)}  # fmt: skip
    with Receiver(ROUTING_SECRET, fault=lambda n, i: plan.get(n)) as rx:
        root = copy_routing(tmp_path / "routing", rx.url, batch_size=3, timeout_s=1.0)
        result = cli(root, "run", "--at", TICK)
        assert result.exit_code == 0, result.output
    assert rx.members() == _audience(root)
    _applied_once(rx)
    ids = [s[0] for s in rx.signed]
    assert len(ids) > len(set(ids))  # the timed-out batch came again, with its id


def _kill_and_recover(tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch, **how: Any) -> Any:
    """Run cadence as a process that dies by SIGKILL (at the receiver's request ``kill_at``, or
    at ``CADENCE_TEST_FAULT=fault_step``), then export again; returns the receiver."""
    monkeypatch.setenv(SECRET_ENV, ROUTING_SECRET)
    process: list[subprocess.Popen[bytes]] = []

    def fault(number: int, msg_id: str) -> Any:
        if number == how.get("kill_at"):
            os.kill(process[0].pid, signal.SIGKILL)  # mid-batch: received, not yet answered
            return Fault(status=200, apply=True)
        return None

    with Receiver(ROUTING_SECRET, fault=fault) as rx:
        root = copy_routing(tmp_path / "routing", rx.url, batch_size=2)
        env = {**os.environ, SECRET_ENV: ROUTING_SECRET}
        if how.get("fault_step"):
            env["CADENCE_TEST_FAULT"] = how["fault_step"]
        process.append(subprocess.Popen(
            [str(CADENCE), "run", "--at", TICK, "--project-dir", str(root)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        assert process[0].wait(timeout=120) == -signal.SIGKILL
        again = cli(root, "export", "--at", "2026-06-01T10:01")
        assert again.exit_code == 0, again.output
    assert rx.members() == _audience(root)
    assert set(rx.members()) == {"high_value_carts", "cart_abandoners"}
    _applied_once(rx)
    return rx


def test_kill_9_mid_batch_loses_nothing_and_repeats_only_with_the_same_id(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rx = _kill_and_recover(tmp_path, cli, monkeypatch, kill_at=2)
    ids = [s[0] for s in rx.signed]
    assert ids.count(ids[1]) == 2  # the batch in flight at the kill was sent again, same id


def test_kill_9_after_the_receiver_acknowledged_before_cadence_recorded_it(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rx = _kill_and_recover(tmp_path, cli, monkeypatch, fault_step="after_send")
    ids = [s[0] for s in rx.signed]
    repeated = {i for i in ids if ids.count(i) == 2}
    assert repeated and len(rx.bodies) == len(set(ids))  # acked, unrecorded: same ids again


def test_a_segments_timestamp_columns_are_sent_as_instants_with_offsets(
    make_project: Any, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC §7 "Times carry their zone": a naive TIMESTAMP column (read as the warehouse reads
    it, UTC) and a TIMESTAMPTZ column reach the receiver as ISO 8601 with offset, like ``at``."""
    monkeypatch.setenv(SECRET_ENV, ROUTING_SECRET)
    with Receiver(ROUTING_SECRET) as rx:
        root = make_project(
            {
                "models/vip.sql": "{{ config(channels=['routing'], key='id') }}\n"
                "select 7 as id, timestamp '2026-01-01 03:30:00' as seen_at,\n"
                "       timestamptz '2026-01-01 04:00:00.25+01' as signed_up_at\n"
            },
            cadence_yml=f"""\
                name: hooks
                warehouse: {{engine: duckdb, path: warehouse.duckdb}}
                timezone: Europe/Berlin
                channels:
                  routing:
                    cadence: "every 5 minutes"
                    export: {{kind: webhook, url: "{rx.url}", secret_env: {SECRET_ENV},
                              columns: [seen_at, signed_up_at]}}
                """,
        )
        result = cli(root, "run", "--at", "2026-01-01T06:00")
        assert result.exit_code == 0, result.output
    (change,) = rx.applied
    assert change["key"] == "7" and change["at"] == "2026-01-01T05:00:00+00:00"
    assert change["seen_at"] == "2026-01-01T03:30:00+00:00"
    assert change["signed_up_at"] == "2026-01-01T03:00:00.250000+00:00"
