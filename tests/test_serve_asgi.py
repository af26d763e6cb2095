"""The uvicorn front end (extra ``cadence[serve]``): same answers as the standard library's."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cadence.plan.schedule import parse_cadence
from cadence.serve.service import ServedChannel, Service
from cadence.serve.snapshot import Member, write_snapshot

pytest.importorskip("uvicorn")
from cadence.serve import asgi  # noqa: E402
from cadence.serve.asgi import AsgiServer  # noqa: E402

TZ = ZoneInfo("Europe/Berlin")
AT = dt.datetime(2026, 3, 1, 9, 15, tzinfo=TZ)


@pytest.mark.parametrize("parts", ["installed", "plain"])
def test_uvicorn_serves_lookups_swaps_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: str
) -> None:
    if parts == "plain":  # uvicorn without its extras: h11 and asyncio's own loop
        monkeypatch.setattr(asgi, "_parts", lambda: ("h11", "asyncio"))
    path = tmp_path / "web.snap"
    first = write_snapshot(path, "web", ("vip",), [Member("c1", ("vip",))], AT).version
    service = Service(
        [ServedChannel("web", parse_cadence("every 15 minutes"), path)],
        TZ,
        lambda: AT + dt.timedelta(minutes=5),
    )
    server = AsgiServer(service, "127.0.0.1", 0, poll_s=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=server.run, args=(stop,))
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/v1/channels/web/members/c1")
        response = conn.getresponse()
        body = json.loads(response.read())
        assert (response.status, body["segments"], body["version"]) == (200, ["vip"], first)
        assert response.headers["ETag"] == f'"{first}"'
        assert response.headers["Cache-Control"] == "max-age=600"
        # a length, not chunked encoding; no Server header naming the stack
        assert response.headers["Content-Length"] == str(len(json.dumps(body).replace(" ", "")))
        assert "Transfer-Encoding" not in response.headers and "Server" not in response.headers
        conn.request("HEAD", "/v1/channels/web/members/c1")
        head = conn.getresponse()
        assert (head.status, head.read()) == (200, b"")
        conn.request("GET", "/v1/channels/web/members/c1", headers={"If-None-Match": f'"{first}"'})
        not_modified = conn.getresponse()
        assert (not_modified.status, not_modified.read()) == (304, b"")
        conn.request("GET", "/v1/channels/web/members/nobody%2F1")
        assert json.loads(conn.getresponse().read())["key"] == "nobody/1"
        second = write_snapshot(
            path, "web", ("vip",), [Member("c1", ())], AT + dt.timedelta(minutes=15)
        ).version
        deadline = time.monotonic() + 5
        while True:
            conn.request("GET", "/v1/channels/web/members/c1")
            body = json.loads(conn.getresponse().read())
            if body["version"] == second:
                break
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert body["segments"] == []
        conn.close()
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert service.versions() == {"web": None}
