"""Webhook delivery benchmark (issue 8): changes per second to a local receiver, beside a baseline.

    python benchmarks/webhook.py [--changes 10000] [--batch-size 100] [--repeat 5] [--output FILE]

Each repeat starts a fresh receiver on 127.0.0.1 (examples/routing/receiver.py: verifies every
signature, drops duplicates by webhook-id) and measures, back to back:

  baseline   raw http.client: the same signed bodies POSTed one after another on one keep-alive
             connection (what any sender pays for HTTP and the receiver alone)
  cadence    deliver_webhook() of the same changes (batching, signing, JSON, up to 4 in flight)

Every number is the median over --repeat. Then a fault run: 10% of the batches answered 500 once
(real backoff sleeps); it must still be exactly once: every change applied once, every duplicate
delivery carrying the id and body of the first. Target: cadence >= 20,000 changes/s.
Runs for any user from a checkout: python benchmarks/webhook.py (the interpreter cadence is
installed in).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from cadence.activation.webhook import Change, cut_batches, deliver_webhook  # noqa: E402
from cadence.outbound.signing import sign, signing_key  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "routing_receiver", REPO / "examples" / "routing" / "receiver.py"
)
assert _spec and _spec.loader
receiver_module = importlib.util.module_from_spec(_spec)
sys.modules["routing_receiver"] = receiver_module
_spec.loader.exec_module(receiver_module)

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
CHANNEL, SEGMENT = "routing", "cart_abandoners"
TARGET_PER_S = 20_000.0


class Export:
    def __init__(self, url: str, batch_size: int) -> None:
        self.url = url
        self.secret_env = "BENCH_WEBHOOK_SECRET"
        self.batch_size = batch_size
        self.allow_private = False
        self.timeout_s = 10.0
        self.max_attempts = 5


def make_changes(n: int) -> list[Change]:
    at = dt.datetime(2026, 6, 1, 5, 0, tzinfo=dt.timezone.utc)
    return [
        Change(
            seq,
            f"customer-{seq}",
            "entered" if seq % 7 else "exited",
            at,
            {"first_name": "Anna", "cart_value": seq * 0.25, "item_count": seq % 9},
        )
        for seq in range(1, n + 1)
    ]


def baseline(url: str, changes: list[Change], batch_size: int) -> float:
    """Raw http.client POSTs of the same signed bodies on one connection; seconds."""
    key = signing_key(SECRET)
    port = int(url.split(":")[2].split("/")[0])
    batches = cut_batches(CHANNEL, SEGMENT, changes, batch_size)  # bodies built beforehand
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for batch in batches:
            ts = int(time.time())
            conn.request(
                "POST",
                "/hooks/cadence",
                body=batch.body,
                headers={
                    "Content-Type": "application/json",
                    "webhook-id": batch.webhook_id,
                    "webhook-timestamp": str(ts),
                    "webhook-signature": sign(key, batch.webhook_id, ts, batch.body),
                },
            )
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
    finally:
        conn.close()
    return time.perf_counter() - started


def cadence_run(url: str, changes: list[Change], batch_size: int) -> tuple[float, Any]:
    env = {"BENCH_WEBHOOK_SECRET": SECRET}
    started = time.perf_counter()
    outcome = deliver_webhook(Export(url, batch_size), CHANNEL, SEGMENT, changes, env)
    return time.perf_counter() - started, outcome


def exactly_once(rx: Any, changes: list[Change]) -> bool:
    applied = rx.keys()
    wanted = sorted((c.key, c.change) for c in changes)
    return sorted(applied) == wanted and rx.duplicates_differing == []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    changes = make_changes(args.changes)
    Receiver, Fault = receiver_module.Receiver, receiver_module.Fault

    base_s: list[float] = []
    cad_s: list[float] = []
    clean_ok = True
    for _ in range(args.repeat):
        with Receiver(SECRET) as rx:
            base_s.append(baseline(rx.url, changes, args.batch_size))
        with Receiver(SECRET) as rx:
            seconds, outcome = cadence_run(rx.url, changes, args.batch_size)
            cad_s.append(seconds)
            clean_ok &= outcome.error is None and outcome.delivered_through == args.changes
            clean_ok &= exactly_once(rx, changes)

    batches = cut_batches(CHANNEL, SEGMENT, changes, args.batch_size)
    faulty = {b.webhook_id for i, b in enumerate(batches) if i % 10 == 3}
    answered: set[str] = set()

    def fault(number: int, msg_id: str) -> Any:
        if msg_id in faulty and msg_id not in answered:
            answered.add(msg_id)
            return Fault(status=500)
        return None

    with Receiver(SECRET, fault=fault) as rx:
        fault_s, fault_outcome = cadence_run(rx.url, changes, args.batch_size)
        fault_ok = (
            fault_outcome.error is None
            and fault_outcome.delivered_through == args.changes
            and exactly_once(rx, changes)
            and len(answered) == len(faulty)
        )
        fault_requests = rx.count

    base, cad = statistics.median(base_s), statistics.median(cad_s)
    rate = args.changes / cad
    result = {
        "changes": args.changes,
        "batch_size": args.batch_size,
        "repeat": args.repeat,
        "baseline_s": base,
        "cadence_s": cad,
        "ratio": cad / base,
        "changes_per_s": rate,
        "baseline_changes_per_s": args.changes / base,
        "exactly_once": clean_ok,
        "fault": {
            "batches_failed_once": len(faulty),
            "requests": fault_requests,
            "seconds": fault_s,
            "changes_per_s": args.changes / fault_s,
            "exactly_once": fault_ok,
        },
    }
    print(
        f"webhook delivery: {args.changes} changes in batches of {args.batch_size}, "
        f"median of {args.repeat}"
    )
    print(
        f"  baseline (raw http.client, 1 connection): {base * 1000:8.1f} ms  "
        f"{args.changes / base:10.0f} changes/s"
    )
    print(
        f"  cadence deliver_webhook:                 {cad * 1000:8.1f} ms  "
        f"{rate:10.0f} changes/s   ratio {cad / base:.2f}x baseline"
    )
    verdict = "PASS" if rate >= TARGET_PER_S else "MISS"
    print(f"  target >= {TARGET_PER_S:,.0f} changes/s: {verdict}; exactly once: {clean_ok}")
    print(
        f"  fault run ({len(faulty)} batches answered 500 once): {fault_requests} requests, "
        f"{fault_s:.2f} s, exactly once: {fault_ok}"
    )
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if clean_ok and fault_ok else 1


if __name__ == "__main__":
    sys.exit(main())
