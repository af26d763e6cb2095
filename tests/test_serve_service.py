"""The lookup service, without sockets: routes, caching headers, freshness, tokens, swaps."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from cadence.plan.schedule import parse_cadence
from cadence.serve.service import ServedChannel, Service
from cadence.serve.snapshot import Member, write_snapshot

TZ = ZoneInfo("Europe/Berlin")
PUBLISHED = dt.datetime(2026, 3, 1, 9, 15, tzinfo=TZ)  # a tick of "every 15 minutes"
SEGMENTS = ("vip", "browsing")


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _write(path: Path, members: list[Member], at: dt.datetime = PUBLISHED) -> str:
    return write_snapshot(path, "web", SEGMENTS, members, at).version


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Service, Clock, Path, str]:
    path = tmp_path / "web.snap"
    version = _write(path, [Member("c1", ("vip", "browsing")), Member("c2", (), ("vip",))])
    clock = Clock(PUBLISHED + dt.timedelta(minutes=5))
    channel = ServedChannel("web", parse_cadence("every 15 minutes"), path)
    return Service([channel], TZ, clock), clock, path, version


def _get(service: Service, target: str, **headers: str) -> tuple[int, dict[str, str], dict]:
    r = service.handle("GET", target, {k.replace("_", "-"): v for k, v in headers.items()})
    return r.status, dict(r.headers), json.loads(r.body) if r.body else {}


def test_member_lookup(setup: tuple[Service, Clock, Path, str]) -> None:
    service, _, _, version = setup
    status, headers, body = _get(service, "/v1/channels/web/members/c1")
    assert status == 200
    assert body == {
        "key": "c1",
        "segments": ["vip", "browsing"],
        "holdout": [],
        "version": version,
        "published_at": PUBLISHED.isoformat(),
    }
    assert headers["ETag"] == f'"{version}"'
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "max-age=600"  # 09:20 -> next tick 09:30
    assert _get(service, "/v1/channels/web/members/c2")[2]["holdout"] == ["vip"]


def test_unknown_key_is_an_empty_answer(setup: tuple[Service, Clock, Path, str]) -> None:
    status, _, body = _get(setup[0], "/v1/channels/web/members/nobody%2Fhere?x=1")
    assert status == 200
    assert (body["key"], body["segments"], body["holdout"]) == ("nobody/here", [], [])


def test_if_none_match_gives_304(setup: tuple[Service, Clock, Path, str]) -> None:
    service, _, path, version = setup
    status, headers, body = _get(
        service, "/v1/channels/web/members/c1", if_none_match=f'W/"other", "{version}"'
    )
    assert (status, body, headers["ETag"]) == (304, {}, f'"{version}"')
    assert _get(service, "/v1/channels/web/members/c1", if_none_match='"other"')[0] == 200
    _write(path, [Member("c1", ("vip",))], PUBLISHED + dt.timedelta(minutes=15))
    service.refresh()
    assert _get(service, "/v1/channels/web/members/c1", if_none_match=f'"{version}"')[0] == 200


def test_channel_summary(setup: tuple[Service, Clock, Path, str]) -> None:
    status, _, body = _get(setup[0], "/v1/channels/web")
    assert status == 200
    assert body["segments"] == [
        {"name": "vip", "members": 1, "held_out": 1},
        {"name": "browsing", "members": 1, "held_out": 0},
    ]
    assert (body["keys"], body["age_s"], body["stale"], body["cadence"]) == (
        2,
        300.0,
        False,
        "every 15 minutes",
    )


def test_unknown_routes_and_channels(setup: tuple[Service, Clock, Path, str]) -> None:
    service = setup[0]
    assert _get(service, "/v1/channels/mail/members/c1")[0] == 404
    assert _get(service, "/v1/channels/web/other/c1")[0] == 404
    assert _get(service, "/")[0] == 404
    assert service.handle("DELETE", "/v1/channels/web", {}).status == 405


def test_healthz_turns_503_after_two_missed_ticks(setup: tuple[Service, Clock, Path, str]) -> None:
    service, clock, path, _ = setup
    status, _, body = _get(service, "/healthz")
    assert status == 200 and body["status"] == "ok"
    assert body["channels"]["web"]["age_s"] == 300.0
    clock.now = PUBLISHED + dt.timedelta(minutes=29, seconds=59)  # one tick (09:30) missed
    assert _get(service, "/healthz")[0] == 200
    clock.now = PUBLISHED + dt.timedelta(minutes=30)  # 09:45: the second tick since
    status, _, body = _get(service, "/healthz")
    assert (status, body["status"], body["channels"]["web"]["stale"]) == (503, "stale", True)
    _write(path, [Member("c1", ("vip",))], PUBLISHED + dt.timedelta(minutes=30))
    service.refresh()
    assert _get(service, "/healthz")[0] == 200


def test_missing_snapshot_is_503_until_one_is_written(tmp_path: Path) -> None:
    path = tmp_path / "web.snap"
    service = Service(
        [ServedChannel("web", parse_cadence("every 5 minutes"), path)], TZ, Clock(PUBLISHED)
    )
    assert _get(service, "/v1/channels/web/members/c1")[0] == 503
    assert _get(service, "/healthz")[0] == 503
    _write(path, [Member("c1", ("vip",))])
    assert service.refresh() == ["web"]
    assert _get(service, "/v1/channels/web/members/c1")[2]["segments"] == ["vip"]
    assert service.refresh() == []  # unchanged file: no swap


def test_token_is_required_when_set(tmp_path: Path) -> None:
    path = tmp_path / "web.snap"
    _write(path, [Member("c1", ("vip",))])
    channel = ServedChannel("web", parse_cadence("every 5 minutes"), path)
    service = Service([channel], TZ, Clock(PUBLISHED), token="s3cret")
    target = "/v1/channels/web/members/c1"
    status, headers, _ = _get(service, target)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert _get(service, target, authorization="Bearer wrong")[0] == 401
    assert _get(service, target, authorization="s3cret")[0] == 401
    assert _get(service, target, authorization="Bearer s3cret")[0] == 200
    assert _get(service, "/healthz")[0] == 200  # no personal data: load balancers may probe


def test_attributes_only_for_channels_with_columns(tmp_path: Path) -> None:
    path = tmp_path / "web.snap"
    write_snapshot(
        path,
        "web",
        ("vip",),
        [Member("c1", ("vip",), attributes={"tier": "gold"})],
        PUBLISHED,
        ["tier"],
    )
    service = Service(
        [ServedChannel("web", parse_cadence("every 5 minutes"), path)], TZ, Clock(PUBLISHED)
    )
    assert _get(service, "/v1/channels/web/members/c1")[2]["attributes"] == {"tier": "gold"}


def test_answers_are_the_json_of_what_the_snapshot_holds(tmp_path: Path) -> None:
    """The body is assembled from cached pieces: it must be exactly what json.dumps gives, for
    keys that need escaping, names past the first byte and word of a mask, and attributes."""
    names = tuple(f"s{i}" for i in range(70)) + ('odd "name"', "ünï")
    members = [
        Member('a"b\\c', ("s0", "s9", "s64", "ünï"), ("s1",), {"n": 1.5, "t": "x"}),
        Member("ü/ß\n", ('odd "name"',)),
        Member("held", (), ("s69",)),
        Member("plain", ("s7", "s8", "s15", "s16")),
    ]
    path = tmp_path / "web.snap"
    version = write_snapshot(path, "web", names, members, PUBLISHED, ["n", "t"]).version
    service = Service(
        [ServedChannel("web", parse_cadence("every 15 minutes"), path)], TZ, Clock(PUBLISHED)
    )
    for m in [*members, Member("nobody")]:
        r = service.handle("GET", "/v1/channels/web/members/" + quote(m.key, safe=""), {})
        expected = {
            "key": m.key,
            "segments": [n for n in names if n in m.segments],
            "holdout": [n for n in names if n in m.holdout],
            "version": version,
            "published_at": PUBLISHED.isoformat(),
            "attributes": dict(m.attributes or {}) if m.segments else {},
        }
        assert r.status == 200
        assert r.body == json.dumps(expected, separators=(",", ":")).encode()
    service.close()


def test_swap_closes_the_old_snapshot_when_its_last_request_ends(
    setup: tuple[Service, Clock, Path, str],
) -> None:
    service, _, path, version = setup
    slot = service.slots["web"]
    in_flight = slot.acquire()
    assert in_flight is not None
    new_version = _write(path, [Member("c1", ())], PUBLISHED + dt.timedelta(minutes=15))
    assert service.refresh() == ["web"]
    assert _get(service, "/v1/channels/web/members/c1")[2]["version"] == new_version
    assert in_flight.snapshot.lookup("c1").segments == ("vip", "browsing")  # still open
    assert not in_flight.snapshot._mm.closed
    slot.release(in_flight)
    assert in_flight.snapshot._mm.closed
    service.close()
    assert service.versions() == {"web": None}


def test_log_line_counts_requests_and_never_names_a_key(
    setup: tuple[Service, Clock, Path, str],
) -> None:
    service, _, _, version = setup
    for _ in range(3):
        _get(service, "/v1/channels/web/members/zed-private")
    line = service.log_line(60)
    assert line.startswith("serve: 3 requests in 60s") and f"web={version}" in line
    assert "zed" not in line and "p99" in line
    assert service.log_line(60).startswith("serve: 0 requests")


def test_requests_pick_up_a_renamed_file_without_the_watcher(tmp_path: Path) -> None:
    path = tmp_path / "web.snap"
    _write(path, [Member("c1", ("vip",))])
    channel = ServedChannel("web", parse_cadence("every 15 minutes"), path)
    service = Service([channel], TZ, Clock(PUBLISHED), poll_s=0.0)
    assert _get(service, "/v1/channels/web/members/c1")[2]["segments"] == ["vip"]
    new = _write(path, [Member("c1", ("browsing",))], PUBLISHED + dt.timedelta(minutes=15))
    body = _get(service, "/v1/channels/web/members/c1")[2]
    assert (body["version"], body["segments"]) == (new, ["browsing"])
    slow = Service([channel], TZ, Clock(PUBLISHED), poll_s=3600.0)
    _get(slow, "/healthz")  # the first request checks; the next check is an hour away
    _write(path, [Member("c1", ())], PUBLISHED + dt.timedelta(minutes=30))
    assert _get(slow, "/v1/channels/web/members/c1")[2]["version"] == new
