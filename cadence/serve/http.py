"""The HTTP front end: the standard library's threading server, tuned, around ``Service``.

Input: a ``Service`` and a bind address -> output: a running server until ``stop`` is set (the
CLI sets it on SIGTERM/Ctrl-C). HTTP parsing is ``http.server``'s; this module only tunes it:
HTTP/1.1 keep-alive, Nagle disabled (``TCP_NODELAY``), a listen backlog of 1024, no per-request
log lines. Two helper threads run beside it: a watcher that stats each snapshot file every
``poll_s`` and swaps to a replaced one, and a logger that emits one line per ``log_every_s``.

Invariants: on stop the listener closes first, then every open connection's read side is shut,
so each connection finishes the answer it is writing and ends; ``run`` returns only when every
connection thread has ended and every snapshot is closed. Every answer is JSON with a status
line and a Content-Length, ``http.server``'s own refusals included (a request line it cannot
parse, an HTTP/0.9 request, a header line too long, an unknown method: never its HTML page, and
the connection is closed after them); a failure while answering is a JSON 500 and one log line,
never a traceback.
"""

from __future__ import annotations

import gc
import json
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cadence.serve.service import Service

Log = Callable[[str], None]


def failure_line(exc: BaseException) -> str:
    """The one log line for a failure while answering a request (no traceback, no request)."""
    return f"serve: error while answering a request: {type(exc).__name__}: {exc}"


def helpers(
    service: Service, stop: threading.Event, poll_s: float, log_every_s: float, on_log: Log | None
) -> list[threading.Thread]:
    """The watcher (stat each snapshot every ``poll_s``, swap a replaced one) and the logger."""

    def watch() -> None:
        while not stop.wait(poll_s):
            service.poll()

    def log() -> None:
        while not stop.wait(log_every_s):
            if on_log is not None:
                on_log(service.log_line(log_every_s))

    return [
        threading.Thread(target=watch, name="serve-watch", daemon=True),
        threading.Thread(target=log, name="serve-log", daemon=True),
    ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection serves many lookups
    disable_nagle_algorithm = True  # small answers go out at once, not after a 40 ms ACK delay
    timeout = 60  # an idle keep-alive connection is closed after a minute
    server: _Server

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":  # "GET /": no version, no headers to answer with
            self.send_error(400, "an HTTP/1.0 or HTTP/1.1 request line is required")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """``http.server``'s own refusals, as JSON like every other answer, with a status line
        even when the request had no version; the connection is closed after it."""
        phrase = self.responses.get(code, ("Error",))[0]
        body = json.dumps({"error": (message or phrase)[:200]}, separators=(",", ":")).encode()
        head = (
            f"HTTP/1.1 {code} {phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        self.close_connection = True
        with_body = getattr(self, "command", None) != "HEAD"
        self.wfile.write(head.encode("latin-1") + (body if with_body else b""))

    def _answer(self, with_body: bool) -> None:
        if self.command not in ("GET", "HEAD"):
            self.close_connection = True  # its body, unread, must not be taken for a request
        try:
            response = self.server.service.handle(self.command, self.path, self.headers)
        except Exception as exc:  # noqa: BLE001 - a bug answers 500, it does not end the server
            self.server.report(exc)
            self.send_error(500, "internal error")
            return
        self.send_response_only(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.server.stopping.is_set() or self.close_connection:
            self.send_header("Connection", "close")
            self.close_connection = True
        # end_headers() would send the headers and then the body in a second write; one send
        # per answer is cheaper (the buffer is http.server's own, flushed by flush_headers)
        buffer: list[bytes] = self._headers_buffer  # type: ignore[attr-defined]
        buffer.append(b"\r\n")
        if with_body and response.body:
            buffer.append(response.body)
        self.flush_headers()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(False)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """No line per request (it would name keys); the server logs once a minute."""

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # listen backlog: bursts of new connections are queued, not reset
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], service: Service, on_log: Log | None) -> None:
        self.service = service
        self.on_log = on_log
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, opened: bool) -> None:
        with self._open_lock:
            if opened:
                self._open.add(connection)
            else:
                self._open.discard(connection)

    def report(self, exc: BaseException) -> None:
        """One log line for a failure while answering (no traceback, no request data)."""
        if self.on_log is not None:
            self.on_log(failure_line(exc))
        else:
            sys.stderr.write(failure_line(exc) + "\n")

    def handle_error(self, request: Any, client_address: Any) -> None:
        """socketserver prints a traceback here; a client that went away is not worth a line."""
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, (ConnectionError, TimeoutError)):
            self.report(exc)

    def wake_connections(self) -> None:
        """Shut the read side of every connection: idle ones end, busy ones finish first."""
        with self._open_lock:
            for connection in list(self._open):
                try:
                    connection.shutdown(socket.SHUT_RD)
                except OSError:
                    pass


class Server:
    """``Server(service, host, port)``; ``.port`` is the bound port; ``run(stop)`` serves."""

    def __init__(
        self,
        service: Service,
        host: str,
        port: int,
        *,
        poll_s: float = 0.02,
        log_every_s: float = 60.0,
        on_log: Log | None = None,
    ) -> None:
        self.service = service
        self._http = _Server((host, port), service, on_log)
        self.host = host
        self.port: int = self._http.server_address[1]
        self.poll_s = poll_s
        self.log_every_s = log_every_s
        self.on_log = on_log

    stack = "stdlib"

    def versions(self) -> dict[str, str | None]:
        return self.service.versions()

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set, then stop cleanly (see the module docstring)."""
        threads = helpers(self.service, stop, self.poll_s, self.log_every_s, self.on_log)
        accept = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.1}, name="serve-accept"
        )
        gc.freeze()  # long-lived objects out of the collector's full passes (see asgi.py)
        for thread in [*threads, accept]:
            thread.start()
        try:
            while not stop.wait(0.25):  # wakes now and then so signal handlers get to run
                pass
        finally:
            gc.unfreeze()  # a process that goes on (tests) collects them again
            stop.set()
            self._http.stopping.set()
            self._http.shutdown()  # no new connections
            accept.join()
            self._http.wake_connections()
            self._http.server_close()  # joins every connection thread
            for thread in threads:
                thread.join()
            self.service.close()
