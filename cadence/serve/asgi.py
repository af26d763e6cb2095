"""The ASGI front end: ``Service`` as an ASGI app run by uvicorn (extra ``cadence[serve]``).

Input: a ``Service`` and a bind address -> output: a running uvicorn server until ``stop`` is set.
``cadence serve`` uses it whenever uvicorn is installed: on the same service it costs about a
third of the standard-library front end's CPU a request (docs/performance.md, measured with
``benchmarks/serve.py --http uvicorn`` and ``--http stdlib``). Invariants: one process, on
httptools and uvloop when installed (``Server.run`` sets the loop up; ``asyncio.run`` would not),
every answer with a Content-Length. Same helper threads as ``http.Server``. Answers are JSON
whatever comes in: a request uvicorn cannot parse gets a JSON 400 (its own would be text), a
failure while answering a JSON 500 and one log line, never a traceback.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import socket
import threading
from typing import Any

from cadence.serve.http import Log, failure_line, helpers
from cadence.serve.service import Response, Service


def _failed(on_log: Log | None, exc: Exception) -> Response:
    if on_log is not None:
        on_log(failure_line(exc))
    body = json.dumps({"error": "internal error"}, separators=(",", ":")).encode()
    return Response(500, (("Content-Type", "application/json"),), body)


def asgi_app(service: Service, on_log: Log | None = None) -> Any:
    """An ASGI callable answering every HTTP request from ``service``."""
    wanted = {b"if-none-match", b"authorization"}  # the only request headers Service reads

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        raw = scope.get("raw_path") or scope["path"].encode()
        target = raw.decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in wanted}
        try:
            response = service.handle(scope["method"], target, headers)
        except Exception as exc:  # noqa: BLE001 - a bug answers 500, it does not end the server
            response = _failed(on_log, exc)
        body = response.body
        fields = [(k.encode(), v.encode()) for k, v in response.headers]
        # a length, not chunked transfer encoding (uvicorn's choice for a body of unknown size)
        fields.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": fields})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    return app


BAD_REQUEST = json.dumps({"error": "invalid HTTP request"}, separators=(",", ":")).encode()


def _json_400(protocol: Any, msg: str) -> None:
    """uvicorn's answer to bytes it cannot parse as a request, in JSON; then the connection
    closes (as uvicorn's own does)."""
    protocol.transport.write(
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(BAD_REQUEST)}\r\nconnection: close\r\n\r\n".encode()
        + BAD_REQUEST
    )
    protocol.transport.close()


def _protocol(http: str) -> Any:
    """uvicorn's protocol class for ``http`` (h11 or httptools), answering bad requests in JSON."""
    if http == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    else:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    return type(f"Json{Base.__name__}", (Base,), {"send_400_response": _json_400})


def _parts() -> tuple[str, str]:
    """uvicorn's fastest parts that are installed: httptools and uvloop (``cadence[serve]``)."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return http, loop


class AsgiServer:
    """Same interface as ``http.Server``: ``.port``, ``versions()``, ``run(stop)``."""

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
        import uvicorn

        self.service = service
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit it: without, a header write then a body write waits
        # for the client's delayed ACK (~40 ms a request)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind((host, port))
        self._sock.listen(1024)  # connections made before uvicorn starts wait, not fail
        self.port: int = self._sock.getsockname()[1]
        http, loop = _parts()
        config = uvicorn.Config(
            asgi_app(service, on_log),
            http=_protocol(http),
            loop=loop,
            workers=1,  # one process: the snapshot is mapped once, swaps are seen at once
            log_level="warning",
            access_log=False,
            server_header=False,
            proxy_headers=False,  # its middleware costs every request; no answer uses the peer
            backlog=1024,
            lifespan="on",
            timeout_keep_alive=60,
        )
        self._server = uvicorn.Server(config)
        self.poll_s, self.log_every_s, self.on_log = poll_s, log_every_s, on_log

    stack = "uvicorn"

    def versions(self) -> dict[str, str | None]:
        return self.service.versions()

    def run(self, stop: threading.Event) -> None:
        threads = helpers(self.service, stop, self.poll_s, self.log_every_s, self.on_log)

        def watch_stop() -> None:
            stop.wait()
            self._server.should_exit = True

        threads.append(threading.Thread(target=watch_stop, daemon=True))
        for thread in threads:
            thread.start()
        # what exists now (modules, the service) lives as long as the server: keep it out of
        # the collector's full passes, which otherwise stall answers now and then
        gc.freeze()
        try:
            # Server.run, not asyncio.run(serve()): it sets up the loop chosen (uvloop)
            self._server.run(sockets=[self._sock])
        finally:
            gc.unfreeze()  # a process that goes on (tests) collects them again
            stop.set()
            for thread in threads:
                thread.join()
            self._sock.close()
            self.service.close()
