"""The lookup service: HTTP requests (method, path, headers) -> responses, from snapshot files.

Input: the served channels (name, schedule, snapshot path) and a clock -> output: for each request
a ``Response`` (status, headers, JSON body). No HTTP parsing and no sockets here: the front end
(``cadence.serve.http``) hands over the parsed request line and headers.

Invariants:
- A request takes one snapshot for its whole answer (``Slot.acquire``/``release``), so the
  version it names is the version it answered from; a swap never mixes two.
- A swap opens the new file first and replaces the current one under a lock held for a pointer
  update only: no request waits for a file to be opened. An old snapshot is closed by the last
  request that used it (or at once when none does).
- Keys are never logged; the per-minute line names counts, p99 and versions.
- Only segment names and holdout flags are answered, plus the attributes a snapshot carries
  (written only for channels with ``serve: {columns: [...]}``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote  # the C one when available
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from cadence.plan.schedule import Schedule
from cadence.serve.snapshot import Snapshot, SnapshotError

Clock = Callable[[], dt.datetime]


class Observer(Protocol):
    """The observe wing's view for serve: freshness per channel and the metrics text."""

    def states(self, now: dt.datetime) -> dict[str, dict[str, Any]]: ...

    def metrics(self, now: dt.datetime) -> bytes: ...


JSON_HEADERS = (("Content-Type", "application/json"),)
# latency histogram bucket bounds (seconds), for the per-minute p99
BOUNDS = tuple(10 ** (e / 10) * 1e-5 for e in range(0, 51))  # 10 us .. 1 s, 26% apart


class Headers(Protocol):
    """Request headers, looked up without regard to case (``http.server``'s message, a dict)."""

    def get(self, name: str, /) -> str | None: ...


@dataclass(frozen=True)
class ServedChannel:
    name: str
    schedule: Schedule
    path: Path


@dataclass(frozen=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""


class _Held:
    """One open snapshot and what every answer from it repeats (ETag, freshness, the JSON of its
    segment names: per byte of a mask, the names of that byte's bits)."""

    __slots__ = ("snapshot", "users", "retired", "etag", "published", "stale_at", "names", "tail")

    def __init__(self, snapshot: Snapshot, stale_at: dt.datetime | None) -> None:
        self.snapshot = snapshot
        self.users = 0
        self.retired = False
        self.etag = f'"{snapshot.version}"'
        self.published = snapshot.published_at.isoformat()
        self.stale_at = stale_at
        quoted = [json.dumps(name) for name in snapshot.segments]
        self.names = [
            [
                ",".join(
                    quoted[8 * b + j] for j in range(8) if v >> j & 1 and 8 * b + j < len(quoted)
                )
                for v in range(256)
            ]
            for b in range((len(quoted) + 7) // 8)
        ]
        self.tail = (
            f',"version":{json.dumps(snapshot.version)},"published_at":{json.dumps(self.published)}'
        )

    def names_json(self, mask: int) -> str:
        """The JSON list of the segment names of ``mask``."""
        if not mask:
            return "[]"
        parts = []
        for table in self.names:
            if mask & 0xFF:
                parts.append(table[mask & 0xFF])
            mask >>= 8
            if not mask:
                break
        return "[" + ",".join(parts) + "]"


class Slot:
    """The current snapshot of one channel, swapped when its file is replaced."""

    def __init__(self, channel: ServedChannel, tz: ZoneInfo) -> None:
        self.channel = channel
        self.tz = tz
        self._lock = threading.Lock()
        self._current: _Held | None = None
        self._next_tick: dt.datetime | None = None
        self.error: str | None = None

    # -- swapping ------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Open the file if it changed since the current snapshot; True when swapped."""
        try:
            stat = os.stat(self.channel.path)
        except FileNotFoundError:
            return False
        current = self._current
        if current is not None and current.snapshot.same_file(stat):
            return False
        try:
            snapshot = Snapshot.open(self.channel.path)
        except (SnapshotError, OSError, ValueError) as exc:
            self.error = str(exc)
            return False
        self.error = None
        held = _Held(snapshot, self._stale_at(snapshot.published_at))
        with self._lock:
            old, self._current = self._current, held
            if old is not None:
                old.retired = True
                close = old.users == 0
        if old is not None and close:
            old.snapshot.close()
        return True

    def _stale_at(self, published: dt.datetime) -> dt.datetime | None:
        """Two ticks after the publish: by then two runs should have written a newer one."""
        first = self.channel.schedule.next_tick(published, self.tz)
        return None if first is None else self.channel.schedule.next_tick(first, self.tz)

    def acquire(self) -> _Held | None:
        with self._lock:
            held = self._current
            if held is not None:
                held.users += 1
            return held

    def release(self, held: _Held) -> None:
        with self._lock:
            held.users -= 1
            close = held.retired and held.users == 0
        if close:
            held.snapshot.close()

    def close(self) -> None:
        with self._lock:
            held, self._current = self._current, None
            if held is not None:
                held.retired = True
                close = held.users == 0
        if held is not None and close:
            held.snapshot.close()

    # -- caching -------------------------------------------------------------------------
    def max_age(self, now: dt.datetime) -> int:
        """Seconds to the channel's next tick: no newer answer can exist before it."""
        upcoming = self._next_tick
        if upcoming is None or upcoming <= now:
            upcoming = self._next_tick = self.channel.schedule.next_tick(now, self.tz)
            if upcoming is None:
                return 0
        return int((upcoming - now).total_seconds())


class Stats:
    """Requests and a latency histogram since the last per-minute line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.errors = 0
        self._hist = [0] * (len(BOUNDS) + 1)

    def record(self, seconds: float, status: int) -> None:
        at = bisect.bisect_left(BOUNDS, seconds)
        with self._lock:
            self.requests += 1
            self._hist[at] += 1
            if status >= 500:
                self.errors += 1

    def take(self) -> tuple[int, int, float | None]:
        """(requests, 5xx answers, p99 seconds) since the last call; resets the counters."""
        with self._lock:
            hist, self._hist = self._hist, [0] * (len(BOUNDS) + 1)
            requests, errors, self.requests, self.errors = self.requests, self.errors, 0, 0
        if not requests:
            return 0, errors, None
        wanted, seen = requests * 0.99, 0
        for at, count in enumerate(hist):
            seen += count
            if seen >= wanted:
                return requests, errors, BOUNDS[min(at, len(BOUNDS) - 1)]
        return requests, errors, BOUNDS[-1]


def _json(status: int, data: Any, extra: Sequence[tuple[str, str]] = ()) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(status, (*JSON_HEADERS, *extra), body)


def bearer_token(authorization: str | None) -> bytes:
    """The token of ``Authorization: Bearer <token>``, the scheme matched without regard to case
    (RFC 7235: ``bearer`` and ``BEARER`` too); b"" for no header or another scheme. The header
    comes as latin-1 text (both front ends): its bytes are the bytes the client sent."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return b""
    return credentials.lstrip(" ").encode("latin-1", "replace")


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


class Service:
    """Answers requests for the served channels. Call ``refresh()`` to pick up new files."""

    def __init__(
        self,
        channels: Sequence[ServedChannel],
        tz: ZoneInfo,
        clock: Clock,
        *,
        token: str | None = None,
        poll_s: float = 0.02,
        observer: Observer | None = None,
    ) -> None:
        self.slots = {c.name: Slot(c, tz) for c in channels}
        self.observer = observer
        self.clock = clock
        self.stats = Stats()
        self.poll_s = poll_s
        self._next_check = 0.0
        self._checking = threading.Lock()
        self._token = token.encode("utf-8", "surrogateescape") if token else None
        self.refresh()

    def refresh(self) -> list[str]:
        """Swap every channel whose file changed; returns the swapped channels."""
        return [name for name, slot in self.slots.items() if slot.refresh()]

    def close(self) -> None:
        for slot in self.slots.values():
            slot.close()

    def versions(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for name, slot in self.slots.items():
            held = slot.acquire()
            out[name] = None if held is None else held.snapshot.version
            if held is not None:
                slot.release(held)
        return out

    # -- requests ------------------------------------------------------------------------
    def poll(self) -> None:
        """``refresh()`` at most every ``poll_s``, by whichever thread comes first. Requests call
        it too: a busy server swaps on the next request after a rename, without waiting for the
        watcher thread to be scheduled."""
        now = time.monotonic()
        if now < self._next_check or not self._checking.acquire(blocking=False):
            return
        try:
            self._next_check = now + self.poll_s
            self.refresh()
        finally:
            self._checking.release()

    def handle(self, method: str, target: str, headers: Headers) -> Response:
        """One request: ``target`` is the raw request target (path and query, still quoted)."""
        started = time.perf_counter()
        self.poll()
        response = self._route(method, target, headers)
        self.stats.record(time.perf_counter() - started, response.status)
        return response

    def _route(self, method: str, target: str, headers: Headers) -> Response:
        if method not in ("GET", "HEAD"):
            return _json(405, {"error": "only GET is served"}, (("Allow", "GET, HEAD"),))
        path = target.split("?", 1)[0]
        if path == "/healthz":
            return self._health()
        if self._token is not None:
            given = bearer_token(headers.get("authorization"))
            if not hmac.compare_digest(given, self._token):
                return _json(
                    401,
                    {"error": "a bearer token is required"},
                    (("WWW-Authenticate", 'Bearer realm="cadence"'),),
                )
        if path == "/metrics" and self.observer is not None:
            body = self.observer.metrics(self.clock())
            content = "text/plain; version=0.0.4; charset=utf-8"
            return Response(200, (("Content-Type", content), ("Cache-Control", "no-store")), body)
        parts = path.split("/")
        # "", "v1", "channels", channel[, "members", key]
        if len(parts) < 4 or parts[1] != "v1" or parts[2] != "channels":
            return _json(404, {"error": "not found"})
        slot = self.slots.get(unquote(parts[3]))
        if slot is None:
            return _json(404, {"error": "unknown channel", "channels": sorted(self.slots)})
        if len(parts) == 4:
            return self._channel(slot, headers)
        if len(parts) == 6 and parts[4] == "members" and parts[5]:
            return self._member(slot, unquote(parts[5]), headers)
        return _json(404, {"error": "not found"})

    def _missing(self, slot: Slot) -> Response:
        detail = slot.error or "no run has published this channel yet"
        return _json(503, {"error": "no snapshot", "detail": detail}, (("Retry-After", "60"),))

    def _member(self, slot: Slot, key: str, headers: Headers) -> Response:
        held = slot.acquire()
        if held is None:
            return self._missing(slot)
        try:
            cache = (
                ("ETag", held.etag),
                ("Cache-Control", f"max-age={slot.max_age(self.clock())}"),
            )
            if _matches(headers.get("if-none-match"), held.etag):
                return Response(304, cache)
            # built by hand from cached pieces: json.dumps of the dict was half of this method
            snapshot = held.snapshot
            row = snapshot.find(key)
            member, holdout = snapshot.masks(row) if row >= 0 else (0, 0)
            body = (
                f'{{"key":{_quote(key)},"segments":{held.names_json(member)},'
                f'"holdout":{held.names_json(holdout)}{held.tail}'
            )
            if snapshot.meta["columns"]:
                attributes = snapshot.attributes(row) if row >= 0 else {}
                body += ',"attributes":' + json.dumps(dict(attributes), separators=(",", ":"))
            return Response(200, (*JSON_HEADERS, *cache), (body + "}").encode())
        finally:
            slot.release(held)

    def _freshness(self, slot: Slot, held: _Held, now: dt.datetime) -> dict[str, Any]:
        age = (now - held.snapshot.published_at).total_seconds()
        stale = held.stale_at is not None and now >= held.stale_at
        return {
            "version": held.snapshot.version,
            "published_at": held.published,
            "age_s": round(age, 3),
            "cadence": slot.channel.schedule.text,
            "stale": stale,
            "stale_at": None if held.stale_at is None else held.stale_at.isoformat(),
        }

    def _channel(self, slot: Slot, headers: Headers) -> Response:
        held = slot.acquire()
        if held is None:
            return self._missing(slot)
        try:
            now = self.clock()
            cache = (("ETag", held.etag), ("Cache-Control", f"max-age={slot.max_age(now)}"))
            if _matches(headers.get("if-none-match"), held.etag):
                return Response(304, cache)
            meta = held.snapshot.meta
            data = {
                "channel": slot.channel.name,
                **self._freshness(slot, held, now),
                "keys": held.snapshot.keys,
                "columns": meta["columns"],
                "segments": [
                    {"name": s, "members": meta["sizes"][s], "held_out": meta["held_out"][s]}
                    for s in held.snapshot.segments
                ],
            }
            return _json(200, data, cache)
        finally:
            slot.release(held)

    def _health(self) -> Response:
        now = self.clock()
        channels: dict[str, Any] = {}
        healthy = True
        # with the observe wing: healthy until a channel is at error by its objective (SPEC §11)
        states = self.observer.states(now) if self.observer is not None else None
        for name, slot in self.slots.items():
            held = slot.acquire()
            if held is None:
                channels[name] = {"stale": True, "error": slot.error or "no snapshot yet"}
                healthy = False
                continue
            try:
                channels[name] = self._freshness(slot, held, now)
                if states is None:
                    healthy = healthy and not channels[name]["stale"]
                else:
                    objective = states.get(name, {"state": "ok"})
                    channels[name]["freshness"] = objective
                    healthy = healthy and objective["state"] != "error"
            finally:
                slot.release(held)
        data = {"status": "ok" if healthy else "stale", "channels": channels}
        return _json(200 if healthy else 503, data, (("Cache-Control", "no-store"),))

    def log_line(self, interval_s: float) -> str:
        """The per-minute line: requests, rate, p99, 5xx, versions (never a key)."""
        requests, errors, p99 = self.stats.take()
        p99_text = "-" if p99 is None else f"{p99 * 1000:.2f} ms"
        versions = " ".join(f"{n}={v or 'none'}" for n, v in self.versions().items())
        return (
            f"serve: {requests} requests in {interval_s:.0f}s "
            f"({requests / interval_s:.0f}/s), p99 {p99_text}, {errors} errors, {versions}"
        )
