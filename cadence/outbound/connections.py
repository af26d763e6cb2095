"""Outbound HTTP connections: POSTs to a receiver over keep-alive connections that go only to
the addresses ``urlpolicy`` checked, and one-line accounts of what went wrong.

Input: a URL, its checked addresses (``urlpolicy.resolve``) and a timeout -> output: per POST,
the status, reason, ``Retry-After`` header and at most ``MAX_RESPONSE_BYTES`` of the body.
Invariants: one connection per calling thread, reused while the receiver keeps it open (a body
larger than what is read closes it); DNS is never consulted again, so a connection cannot reach
an address that was not checked; https verifies certificates with the default context. A
failure or a response body reads as one line (``describe``, ``excerpt``), and an excerpt never
shows the secret it is given.
Used by the activation wing's webhook destination; alerts send through the same pool.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from cadence.outbound.signing import SECRET_PREFIX

EXCERPT_CHARS = 200
MAX_RESPONSE_BYTES = 64 * 1024


class Connections:
    """One keep-alive connection per worker thread, to the checked addresses only."""

    def __init__(self, url: str, addresses: tuple[str, ...], timeout_s: float) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.addresses = addresses
        self.timeout_s = timeout_s
        self.local = threading.local()
        self.opened: list[http.client.HTTPConnection] = []
        self.lock = threading.Lock()
        self.context = ssl.create_default_context() if self.https else None

    def _connect(
        self, address: tuple[str, int], timeout: float | None = None, source: Any = None
    ) -> socket.socket:
        last: OSError | None = None
        for ip in self.addresses:
            try:
                sock = socket.create_connection((ip, address[1]), timeout, source)
            except OSError as exc:
                last = exc
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        assert last is not None
        raise last

    def get(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self.local, "conn", None)
        if conn is None:
            if self.https:
                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout_s, context=self.context
                )
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            conn._create_connection = self._connect  # type: ignore[attr-defined]
            self.local.conn = conn
            with self.lock:
                self.opened.append(conn)
        return conn

    def reset(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()

    def close_all(self) -> None:
        with self.lock:
            for conn in self.opened:
                conn.close()

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, str | None, bytes]:
        conn = self.get()
        conn.request("POST", self.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read(MAX_RESPONSE_BYTES)
        if not response.isclosed():  # a body larger than we read: do not reuse the connection
            conn.close()
        return response.status, response.reason, response.getheader("Retry-After"), data


def excerpt(data: bytes, secret: str) -> str:
    """A response body as one line of at most ``EXCERPT_CHARS``, ``secret`` (a ``whsec_``
    secret, or its base64 part) replaced by ``[secret]``."""
    text = " ".join(data.decode("utf-8", errors="replace").split())
    if secret:
        text = text.replace(secret, "[secret]").replace(secret[len(SECRET_PREFIX) :], "[secret]")
    text = text[:EXCERPT_CHARS]
    return text or "(empty body)"


def describe(exc: BaseException, timeout_s: float) -> str:
    """What a failed request (timeout, refused, TLS, other ``OSError``) reads as."""
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (receiver down?)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    return f"{type(exc).__name__}: {exc}"


__all__ = ["EXCERPT_CHARS", "MAX_RESPONSE_BYTES", "Connections", "describe", "excerpt"]
