"""What ``cadence serve`` answers to hostile or sloppy requests, sent as raw bytes over a socket
to each front end (the standard library's and uvicorn's) on 127.0.0.1 (issue 17 item 10):
always an HTTP answer with a status line, JSON with an ``error``, never an HTML page and never a
traceback in the log; the bearer scheme matched without regard to case (RFC 7235).

Every server is stopped by its test; every read is bounded by a socket timeout.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cadence.plan.schedule import parse_cadence
from cadence.serve.http import Server
from cadence.serve.service import ServedChannel, Service
from cadence.serve.snapshot import Member, write_snapshot

TZ = ZoneInfo("Europe/Berlin")
AT = dt.datetime(2026, 3, 1, 9, 15, tzinfo=TZ)
TOKEN = "s3cret-Token_1"
MEMBER = b"GET /v1/channels/web/members/c1 HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture(params=["stdlib", "uvicorn"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, list[str]]]:
    """A server with a token on a free port; yields (port, the lines it logged)."""
    if request.param == "uvicorn":
        pytest.importorskip("uvicorn")
        from cadence.serve.asgi import AsgiServer as Front
    else:
        Front = Server  # type: ignore[assignment]  # noqa: N806
    path = tmp_path / "web.snap"
    write_snapshot(path, "web", ("vip",), [Member("c1", ("vip",))], AT)
    channel = ServedChannel("web", parse_cadence("every 15 minutes"), path)
    service = Service([channel], TZ, lambda: AT + dt.timedelta(minutes=1), token=TOKEN)
    logged: list[str] = []
    server = Front(service, "127.0.0.1", 0, poll_s=0.01, on_log=logged.append)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,))
    thread.start()
    try:
        yield server.port, logged
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "server did not stop"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes
    sock: socket.socket  # still open
    rest: bytes  # what came after the answer


def _exchange(port: int, data: bytes) -> Answer:
    """Send ``data`` on a new connection and read one answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(data)
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without an answer (got {raw!r})"
        raw += chunk
        assert len(raw) < 1_000_000
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    assert status_line.startswith("HTTP/1."), status_line
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body[:length], sock, body[length:])


def _no_more_answers(answer: Answer) -> bool:
    """Nothing else comes after ``answer`` (closed, or silent for 0.3 s)."""
    sock = answer.sock
    if answer.rest:
        sock.close()
        return False
    sock.settimeout(0.3)
    try:
        return sock.recv(65536) == b""
    except TimeoutError:
        return True
    finally:
        sock.close()


# (name, raw request, the statuses allowed: front ends differ only in which 4xx they choose)
REFUSED = [
    ("HTTP/0.9 request line", b"GET /\r\n\r\n", {400}),
    ("HTTP/0.9 with a member path", b"GET /v1/channels/web/members/c1\r\n\r\n", {400}),
    ("one word", b"hello\r\n\r\n", {400}),
    ("four words", b"GET / HTTP/1.1 extra\r\n\r\n", {400}),
    ("binary junk", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xff\r\n\r\n", {400}),
    ("a version that is not HTTP", b"GET / SPDY/3\r\n\r\n", {400}),
    # h11 (uvicorn) reads HTTP/2.0 as a later HTTP/1.x: then the request lacks its token
    ("HTTP/2 on a request line", b"GET / HTTP/2.0\r\n\r\n", {400, 401, 505}),
    # the standard library's parser skips the line: then the request lacks its token
    ("a header without a colon", b"GET / HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n", {400, 401}),
    ("a header line of 70 KB", b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", {400, 431}),
    ("a request line of 70 KB", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", {400, 414}),
    ("an unknown method", b"BREW /v1/channels/web HTTP/1.1\r\nHost: x\r\n\r\n", {405, 501}),
]


@pytest.mark.parametrize(
    ("request_bytes", "statuses"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_a_request_that_cannot_be_served_gets_a_json_error(
    served: tuple[int, list[str]],
    capfd: pytest.CaptureFixture[str],
    request_bytes: bytes,
    statuses: set[int],
) -> None:
    port, logged = served
    answer = _exchange(port, request_bytes)
    answer.sock.close()
    assert answer.status in statuses
    assert answer.headers["content-type"] == "application/json"
    assert set(json.loads(answer.body)) >= {"error"}
    assert b"<" not in answer.body  # no HTML page
    time.sleep(0.05)  # a traceback would be printed by the connection's thread after answering
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err + "\n".join(logged)


# (Authorization header, status): the scheme in any case, the token as given
AUTH = [
    (None, 401),
    ("Bearer " + TOKEN, 200),
    ("bearer " + TOKEN, 200),
    ("BEARER " + TOKEN, 200),
    ("BeArEr " + TOKEN, 200),
    ("Bearer   " + TOKEN, 200),  # 1*SP between scheme and token
    ("Bearer " + TOKEN.lower(), 401),  # the token is compared exactly
    ("Bearer " + TOKEN + "x", 401),
    ("Bearer", 401),
    ("Basic " + TOKEN, 401),
    ("Bearer" + TOKEN, 401),
    (TOKEN, 401),
]


@pytest.mark.parametrize(("authorization", "status"), AUTH)
def test_the_bearer_scheme_is_matched_without_regard_to_case(
    served: tuple[int, list[str]], authorization: str | None, status: int
) -> None:
    port, _ = served
    extra = b"" if authorization is None else f"Authorization: {authorization}\r\n".encode()
    answer = _exchange(port, MEMBER + extra + b"\r\n")
    answer.sock.close()
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    data: dict[str, Any] = json.loads(answer.body)
    if status == 200:
        assert data["segments"] == ["vip"]
    else:
        assert data["error"] == "a bearer token is required"
        assert answer.headers["www-authenticate"] == 'Bearer realm="cadence"'


def test_the_body_of_a_refused_post_is_never_taken_for_a_request(
    served: tuple[int, list[str]],
) -> None:
    """A POST is refused (405) without reading its body; the body, here a lookup, must not be
    answered as if it were the next request on the connection."""
    port, _ = served
    smuggled = MEMBER + f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
    post = b"POST /v1/channels/web HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(
        smuggled
    )
    answer = _exchange(port, post + smuggled)
    assert answer.status == 405 and json.loads(answer.body)["error"] == "only GET is served"
    assert _no_more_answers(answer)


def test_a_failure_while_answering_is_a_json_500_and_one_log_line(
    served: tuple[int, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    port, logged = served

    def broken(self: Service, *args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Service, "handle", broken)
    answer = _exchange(port, MEMBER + b"\r\n")
    answer.sock.close()
    assert (answer.status, answer.headers["content-type"]) == (500, "application/json")
    assert json.loads(answer.body) == {"error": "internal error"}
    time.sleep(0.05)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert logged == ["serve: error while answering a request: RuntimeError: a bug"]
