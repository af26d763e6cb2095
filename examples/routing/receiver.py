"""A tiny webhook receiver for the routing example: what a receiver of cadence must do.

1. Verify the Standard Webhooks signature (``webhook-signature`` over ``{id}.{timestamp}.{body}``
   with the ``whsec_`` secret) and reject stale timestamps.
2. Drop duplicates by ``webhook-id``: cadence sends a batch again, with the same id, whenever it
   is not sure the receiver has it (a timeout, a crash before it recorded the answer).
3. Answer 2xx only once the batch is applied (here: appended to a JSONL file and fsynced).
4. A batch with ``"replace": true`` (``cadence export --rebaseline``) replaces the segment: drop
   every key held for it, then apply the batch (and the batches after it) as usual.

    export ROUTING_WEBHOOK_SECRET=whsec_...    # the same value cadence reads
    python receiver.py --port 8788 --out received.jsonl

It binds 127.0.0.1 only and stops by itself after ``--max-requests`` requests or ``--idle-timeout``
seconds without one. Stdlib only; the tests import ``Receiver`` (with a ``fault`` hook to play a
receiver that fails).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Fault:
    """How to answer one request instead of normally (tests): apply the batch first or not,
    then wait ``delay_s``, then answer ``status`` (with ``Retry-After`` if given)."""

    status: int = 500
    apply: bool = False
    delay_s: float = 0.0
    retry_after: str | None = None


FaultHook = Callable[[int, str], Fault | None]  # (request number from 1, webhook-id) -> fault


def signing_key(secret: str) -> bytes:
    if not secret.startswith("whsec_"):
        raise ValueError("the secret must look like whsec_<base64>")
    encoded = secret[len("whsec_") :]
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4))


def verify(key: bytes, headers: Any, body: bytes, *, now: float, tolerance_s: float) -> str:
    """The webhook-id of a correctly signed, fresh request; ValueError otherwise."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        raise ValueError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_s:
        raise ValueError("timestamp missing or too far from now")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return msg_id
    raise ValueError("no matching signature")


class Receiver:
    """A bounded receiver on 127.0.0.1. ``applied`` holds every change applied, in order;
    ``requests`` every (webhook-id, status answered); ``bodies`` the first body per id."""

    def __init__(
        self,
        secret: str,
        *,
        port: int = 0,
        out: Path | None = None,
        fault: FaultHook | None = None,
        tolerance_s: float = 300.0,
        max_requests: int = 10_000,
        idle_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.key = signing_key(secret)
        self.tls = tls
        self.out = out
        self.fault = fault
        self.tolerance_s = tolerance_s
        self.max_requests = max_requests
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self.lock = threading.Lock()
        self.applied: list[dict[str, Any]] = []
        self.requests: list[tuple[str, int]] = []
        self.bodies: dict[str, bytes] = {}
        self.duplicates_differing: list[str] = []  # ids seen again with another body (a bug)
        self.signed: list[tuple[str, str, str, bytes]] = []  # (id, timestamp, signature, body)
        self.count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.last_request = time.monotonic()
        self.done = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.server.timeout = 0.05
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self._loop, name="receiver", daemon=True)

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        if self.tls is not None:
            return f"https://localhost:{port}/hooks/cadence"
        return f"http://127.0.0.1:{port}/hooks/cadence"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)
        self.server.server_close()

    def _loop(self) -> None:
        while not self.done.is_set():
            self.server.handle_request()
            with self.lock:
                idle = time.monotonic() - self.last_request
                if self.count >= self.max_requests or idle > self.idle_timeout_s:
                    self.done.set()

    def keys(self) -> list[tuple[str, str]]:
        """(key, change) of every change applied, in order."""
        with self.lock:
            return [(c["key"], c["change"]) for c in self.applied if c["change"] != "replace"]

    def members(self) -> dict[str, set[str]]:
        """segment -> keys in it, replaying every applied change in order."""
        out: dict[str, set[str]] = {}
        with self.lock:
            for c in self.applied:
                keys = out.setdefault(c["segment"], set())
                if c["change"] == "replace":
                    keys.clear()
                elif c["change"] == "entered":
                    keys.add(c["key"])
                else:
                    keys.discard(c["key"])
        return out

    def handle(self, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.count += 1
            number = self.count
            self.last_request = time.monotonic()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._handle(number, headers, body)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _handle(self, number: int, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            msg_id = verify(self.key, headers, body, now=self.clock(), tolerance_s=self.tolerance_s)
            batch = json.loads(body)
        except ValueError as exc:
            return self._answer("?", 401, f"rejected: {exc}".encode())
        with self.lock:
            self.signed.append(
                (msg_id, headers["webhook-timestamp"], headers["webhook-signature"], body)
            )
        fault = self.fault(number, msg_id) if self.fault else None
        if fault is None or fault.apply:
            self._apply(msg_id, body, batch)
        if fault is not None:
            time.sleep(fault.delay_s)
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return self._answer(msg_id, fault.status, b"injected failure", extra)
        return self._answer(msg_id, 200, b"ok")

    def _apply(self, msg_id: str, body: bytes, batch: dict[str, Any]) -> None:
        with self.lock:
            if msg_id in self.bodies:  # a retry of a batch we have: drop it, answer 2xx
                if self.bodies[msg_id] != body:
                    self.duplicates_differing.append(msg_id)
                return
            if self.out is not None:
                fd = os.open(self.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as f:
                    if batch.get("replace"):
                        f.write(json.dumps({"webhook_id": msg_id, "replace": batch["segment"]}))
                        f.write("\n")
                    for change in batch["changes"]:
                        f.write(json.dumps({"webhook_id": msg_id, **change}) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            self.bodies[msg_id] = body
            if batch.get("replace"):
                self.applied.append(
                    {"segment": batch["segment"], "webhook_id": msg_id, "change": "replace"}
                )
            self.applied.extend(
                {"segment": batch["segment"], "webhook_id": msg_id, **c} for c in batch["changes"]
            )

    def _answer(
        self, msg_id: str, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.requests.append((msg_id, status))
        return status, headers or {}, body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as cadence reuses connections
            timeout = 5  # an idle keep-alive connection closes by itself
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, headers, answer = receiver.handle(self.headers, body)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:  # the sender gave up waiting (a timeout test): nothing to do
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8788)
    parser.add_argument("--out", type=Path, default=Path("received.jsonl"))
    parser.add_argument("--secret-env", default="ROUTING_WEBHOOK_SECRET")
    parser.add_argument("--max-requests", type=int, default=10_000)
    parser.add_argument("--idle-timeout", type=float, default=600.0)
    args = parser.parse_args()
    secret = os.environ.get(args.secret_env, "")
    if not secret:
        parser.error(f"set {args.secret_env} to the whsec_ secret cadence signs with")
    receiver = Receiver(
        secret,
        port=args.port,
        out=args.out,
        max_requests=args.max_requests,
        idle_timeout_s=args.idle_timeout,
    )
    print(f"listening on {receiver.url}, appending to {args.out}", flush=True)
    with receiver:
        receiver.thread.join()
    print(f"stopped after {receiver.count} requests, {len(receiver.applied)} changes applied")


if __name__ == "__main__":
    main()
