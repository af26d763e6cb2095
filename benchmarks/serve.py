"""cadence serve benchmark: lookups over keep-alive HTTP while snapshots are swapped (issue 9).

    python benchmarks/serve.py [--keys 1000000] [--segments 20] [--connections 16]
                               [--seconds 20] [--swaps 10] [--procs 1] [--http uvicorn|stdlib]

1. Builds --swaps + 1 snapshots of --keys keys x --segments segments (membership of key i in
   generation g is a fixed function of (i, g), so every answer can be checked) the way a run
   does (``cadence.serve.publish``: one query in DuckDB over a row per key and segment, then
   encode and write), times the first (``write_s``) and the same snapshot from ``Member``
   values (``write_python_s``: hashing and sorting in Python), and times open and lookup on it,
   in this process, against a dict lookup baseline.
2. Starts the server in a child process (the same Service/Server ``cadence serve`` runs) on
   127.0.0.1, port 0; measures its memory (VmRSS / VmHWM from /proc).
3. Runs --connections keep-alive connections for --seconds from --procs load processes, each one
   selector loop writing HTTP/1.1 requests and parsing answers with a real parser (httptools,
   else h11), one request in flight per connection; latency is from the send to the last byte
   of the answer, and each answer is checked against the membership of the version it names.
   Meanwhile the main process renames the prebuilt snapshots into place --swaps times and
   measures, on its own connection, how long until the new version is served.
4. Prints a table with the issue's targets and PASS/MISS, writes benchmarks/results/serve.json.

``--against DIR`` (another checkout of cadence, e.g. main's) measures instead this checkout's
server against DIR's, taking turns (--rounds each, --seconds in all) on one snapshot under the
same load, and prints the medians and their ratios: on a busy machine a comparison needs that.

Every request loop is bounded (--seconds, then 5 s for answers in flight) and the server is
stopped (SIGTERM) at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import multiprocessing as mp
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# the cadence to import: this checkout, or (server child of --against) the baseline's
sys.path.insert(0, os.environ.get("CADENCE_SERVE_TREE") or str(REPO))

from cadence.serve.snapshot import Member, Snapshot, write_snapshot  # noqa: E402

AT = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
MASK64 = (1 << 64) - 1


def mask_of(i: int, generation: int, segments: int) -> int:
    """Membership bits of key i in a generation: about half the segments, changing per swap."""
    x = (i * 0x9E3779B97F4A7C15 + generation * 0xBF58476D1CE4E5B9) & MASK64
    x ^= x >> 31
    x = (x * 0x94D049BB133111EB) & MASK64
    x ^= x >> 29
    return x & ((1 << segments) - 1)


def names(segments: int) -> tuple[str, ...]:
    return tuple(f"segment_{j:02d}" for j in range(segments))


def load_generation(engine: Any, work: Path, keys: int, segments: int, generation: int) -> None:
    """Table ``km`` (key, mask) of a generation, through a CSV file (setup, not timed)."""
    csv = work / "km.csv"
    with csv.open("w") as f:
        f.write("key,mask\n")
        f.writelines(f"cust_{i},{mask_of(i, generation, segments)}\n" for i in range(keys))
    engine.execute(
        "create or replace table km as select * from read_csv(?, header = true, "
        "columns = {'key': 'varchar', 'mask': 'bigint'})",
        [str(csv)],
    )
    csv.unlink()


def build(
    engine: Any, work: Path, path: Path, keys: int, segments: int, generation: int
) -> tuple[str, float]:
    """Write a generation's snapshot as a run does (``cadence.serve.publish``): one query over
    every segment's rows (here one row per key and segment it is in, ~10M at 1M keys x 20),
    grouped, hashed and sorted in DuckDB, then encoded and written (temp, fsync, rename).
    Returns the version and the seconds from the query to the rename."""
    from cadence.serve import publish

    seg = names(segments)
    load_generation(engine, work, keys, segments, generation)
    parts = [
        (j, f"select key, false as held_out from km where (mask >> {j}) & 1 = 1")
        for j in range(segments)
    ]
    at = AT + dt.timedelta(minutes=15 * generation)
    started = time.perf_counter()
    rows = engine.query(publish.audience_query(parts, 1, ()))
    audience = publish.read_audience(rows, 1, ())
    del rows
    written = write_snapshot(path, "web", seg, audience, at)
    return written.version, time.perf_counter() - started


def build_in_python(path: Path, keys: int, segments: int, generation: int) -> tuple[str, float]:
    """The same snapshot from ``Member`` values (the Python path: hashing and sorting in
    ``encode``), for comparison; returns the version (equal to ``build``'s) and seconds."""
    seg = names(segments)
    cache: dict[int, tuple[str, ...]] = {}

    def decode(m: int) -> tuple[str, ...]:
        found = cache.get(m)
        if found is None:
            found = cache[m] = tuple(s for j, s in enumerate(seg) if m >> j & 1)
        return found

    members = [
        Member(f"cust_{i}", decode(m))
        for i in range(keys)
        if (m := mask_of(i, generation, segments))
    ]
    started = time.perf_counter()
    written = write_snapshot(path, "web", seg, members, AT + dt.timedelta(minutes=15 * generation))
    return written.version, time.perf_counter() - started


def micro(path: Path, keys: int) -> dict[str, float]:
    """open and lookup times of the snapshot, beside a dict lookup of the same keys."""
    import random

    rng = random.Random(7)
    probe = [f"cust_{rng.randrange(keys * 2)}" for _ in range(100_000)]  # half are absent
    opens = []
    for _ in range(200):
        t = time.perf_counter()
        snap = Snapshot.open(path)
        opens.append(time.perf_counter() - t)
        snap.close()
    snap = Snapshot.open(path)
    t = time.perf_counter()
    for k in probe:
        snap.lookup(k)
    lookup = (time.perf_counter() - t) / len(probe)
    table = {f"cust_{i}": i for i in range(0, keys, max(1, keys // 100_000))}
    t = time.perf_counter()
    for k in probe:
        table.get(k)
    baseline = (time.perf_counter() - t) / len(probe)
    snap.close()
    return {
        "open_us": statistics.median(opens) * 1e6,
        "lookup_us": lookup * 1e6,
        "dict_get_us": baseline * 1e6,
        "lookup_vs_dict": lookup / baseline,
    }


# -- server child -----------------------------------------------------------------------------
def serve_child(path: str, port_file: str, stack: str) -> None:
    from zoneinfo import ZoneInfo

    from cadence.plan.schedule import parse_cadence
    from cadence.serve.http import Server
    from cadence.serve.service import ServedChannel, Service

    channel = ServedChannel("web", parse_cadence("every 15 minutes"), Path(path))
    service = Service([channel], ZoneInfo("UTC"), lambda: dt.datetime.now(dt.timezone.utc))
    if stack == "uvicorn":
        from cadence.serve.asgi import AsgiServer

        server: Any = AsgiServer(service, "127.0.0.1", 0)
    else:
        server = Server(service, "127.0.0.1", 0)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    Path(port_file).write_text(str(server.port))
    server.run(stop)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) / 1024
    return out


# -- load ---------------------------------------------------------------------------------------
class Parser:
    """Responses out of one connection's byte stream, by a real HTTP/1.1 parser: httptools (with
    ``cadence[serve]``) when installed, else h11 (a dependency of uvicorn itself)."""

    def __init__(self) -> None:
        self._done: list[tuple[int, bytes]] = []
        self._body: list[bytes] = []
        self._status = 0
        try:
            import httptools
        except ImportError:
            import h11

            self._h11: Any = h11.Connection(h11.CLIENT)
            self._httptools: Any = None
        else:
            self._h11 = None
            self._httptools = httptools.HttpResponseParser(self)

    def on_body(self, body: bytes) -> None:  # httptools callback
        self._body.append(body)

    def on_message_complete(self) -> None:  # httptools callback
        self._done.append((self._httptools.get_status_code(), b"".join(self._body)))
        self._body.clear()

    def request(self, target: str) -> bytes:
        """The bytes of one keep-alive GET of ``target``."""
        if self._h11 is None:
            return f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        import h11

        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        request = h11.Request(method="GET", target=target, headers=[("Host", "127.0.0.1")])
        return self._h11.send(request) + self._h11.send(h11.EndOfMessage())

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Every response that ``data`` completes, as (status, body)."""
        if self._h11 is None:
            self._httptools.feed_data(data)
        else:
            import h11

            self._h11.receive_data(data)
            while True:
                event = self._h11.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                if isinstance(event, h11.Response):
                    self._status = event.status_code
                elif isinstance(event, h11.Data):
                    self._body.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    self._done.append((self._status, b"".join(self._body)))
                    self._body.clear()
        done, self._done = self._done, []
        return done


class Conn:
    """One keep-alive connection of the load: at most one request in flight."""

    __slots__ = ("sock", "parser", "key", "sent")

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.parser = Parser()
        self.key = -1
        self.sent = 0.0


def load_proc(
    port: int,
    conns: int,
    seconds: float,
    keys: int,
    segments: int,
    versions: dict[str, int],
    out: mp.Queue,
) -> None:
    """``conns`` keep-alive connections driven by one selector loop in this process: each sends a
    lookup, waits for the whole answer (latency = send to last byte parsed), checks it against
    the membership of the version it names, sends the next. Bounded by ``seconds``; requests
    still in flight then get 5 s to finish, and count as failed if they do not."""
    import random

    seg = names(segments)
    rng = random.Random(os.getpid())
    lat: list[float] = []
    failed = wrong = 0
    notes: list[str] = []
    selector = selectors.DefaultSelector()
    clock = time.perf_counter
    deadline = clock() + seconds

    def send(c: Conn) -> None:
        c.key = rng.randrange(keys * 11 // 10)  # ~9% unknown keys
        request = c.parser.request(f"/v1/channels/web/members/cust_{c.key}")
        c.sent = clock()
        c.sock.sendall(request)  # a few dozen bytes: the socket buffer always takes them

    def reopen(c: Conn) -> Conn:
        selector.unregister(c.sock)
        c.sock.close()
        fresh = Conn(port)
        selector.register(fresh.sock, selectors.EVENT_READ, fresh)
        return fresh

    def check(c: Conn, status: int, raw: bytes) -> None:
        nonlocal failed, wrong
        if status != 200:
            failed += 1
            notes.append(f"status {status}")
            return
        body = json.loads(raw)
        generation = versions.get(body["version"])
        if generation is None:
            wrong += 1
            notes.append(f"unknown version {body['version']}")
            return
        mask = mask_of(c.key, generation, segments) if c.key < keys else 0
        expected = [s for j, s in enumerate(seg) if mask >> j & 1]
        if body["key"] != f"cust_{c.key}" or body["segments"] != expected or body["holdout"]:
            wrong += 1
            notes.append(f"wrong answer for cust_{c.key} at {body['version']}")

    live = [Conn(port) for _ in range(conns)]
    for c in live:
        selector.register(c.sock, selectors.EVENT_READ, c)
        send(c)
    waiting = len(live)
    drain_until = deadline + 5
    while waiting:
        now = clock()
        if now > drain_until:
            failed += waiting
            notes.append(f"{waiting} requests unanswered 5 s after the end")
            break
        for event, _ in selector.select(timeout=0.5):
            c = event.data
            try:
                data = c.sock.recv(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
                done = c.parser.feed(data)
            except Exception as exc:  # a reset, a parser error: the request failed
                failed += 1
                notes.append(repr(exc))
                waiting -= 1
                fresh = reopen(c)
                if clock() < deadline:
                    send(fresh)
                    waiting += 1
                continue
            if not done:
                continue
            finished = clock()
            lat.append(finished - c.sent)
            check(c, *done[0])
            if len(done) > 1:  # one request in flight: a second answer is not ours
                wrong += len(done) - 1
                notes.append("more answers than requests")
            waiting -= 1
            if finished < deadline:
                send(c)
                waiting += 1
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    selector.close()
    out.put((lat, failed, wrong, notes[:10], time.process_time()))


def swap_latency(port: int, live: Path, prebuilt: Path, version: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    os.replace(prebuilt, live)
    renamed = time.perf_counter()
    try:
        while True:
            conn.request("GET", "/v1/channels/web")
            body = json.loads(conn.getresponse().read())
            if body["version"] == version:
                return time.perf_counter() - renamed
            if time.perf_counter() - renamed > 5:
                return float("inf")
            time.sleep(0.001)
    finally:
        conn.close()


def start_server(path: Path, port_file: Path, stack: str, tree: Path | None = None) -> Any:
    """The server child (of this checkout, or of ``tree``) and its port, once it listens."""
    port_file.unlink(missing_ok=True)
    env = {**os.environ, "CADENCE_SERVE_TREE": str(tree)} if tree else None
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-child", str(path), str(port_file), stack], env=env
    )
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline or child.poll() is not None:
            child.kill()
            raise SystemExit("server did not start")
        time.sleep(0.05)
    return child, int(port_file.read_text())


def paired(args: argparse.Namespace) -> None:
    """--against DIR: this checkout's server and DIR's (another checkout of cadence, e.g. main)
    take turns, --rounds times each, on the same snapshot (format 1, which both read) under the
    same load (no swaps); per turn req/s, server CPU per request and p99, then the medians and
    their ratios. Alternating in one run keeps a busy machine's noise out of the comparison."""
    from cadence.serve import snapshot

    work = Path(tempfile.mkdtemp(prefix="cadence-serve-pair-"))
    path, port_file = work / "web.snap", work / "port"
    snapshot.FORMAT = 1  # what the baseline reads (this checkout reads it too)
    version, _ = build_in_python(path, args.keys, args.segments, 0)
    versions = {version: 0}
    turn_s = args.seconds / args.rounds
    turns: dict[str, list[dict[str, float]]] = {"subject": [], "baseline": []}
    print(f"{'turn':<10}{'req/s':>10}{'cpu us/req':>12}{'p99 ms':>9}{'failed':>8}{'wrong':>7}")
    try:
        for _ in range(args.rounds):
            for name, tree in (("baseline", args.against), ("subject", None)):
                child, port = start_server(path, port_file, args.http, tree)
                try:
                    queue: mp.Queue = mp.Queue()
                    proc = mp.Process(
                        target=load_proc,
                        args=(
                            port,
                            args.connections,
                            turn_s,
                            args.keys,
                            args.segments,
                            versions,
                            queue,
                        ),
                    )
                    cpu = cpu_seconds(child.pid)
                    started = time.perf_counter()
                    proc.start()
                    lat, failed, wrong, notes, _cpu = queue.get(timeout=turn_s + 60)
                    elapsed = time.perf_counter() - started
                    proc.join(timeout=30)
                    cpu = cpu_seconds(child.pid) - cpu
                finally:
                    child.send_signal(signal.SIGTERM)
                    child.wait(timeout=30)
                lat.sort()
                figure = {
                    "req_per_s": len(lat) / elapsed,
                    "server_cpu_us_per_req": cpu / max(1, len(lat)) * 1e6,
                    "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
                    "failed": failed,
                    "wrong": wrong,
                }
                turns[name].append(figure)
                print(
                    f"{name:<10}{figure['req_per_s']:>10.0f}"
                    f"{figure['server_cpu_us_per_req']:>12.1f}{figure['p99_ms']:>9.2f}"
                    f"{failed:>8}{wrong:>7}",
                    *notes[:3],
                )
    finally:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()
    medians = {
        name: {k: statistics.median(t[k] for t in ts) for k in ts[0]} for name, ts in turns.items()
    }
    for k in ("req_per_s", "server_cpu_us_per_req", "p99_ms"):
        ratio = medians["subject"][k] / medians["baseline"][k]
        print(
            f"median {k}: subject {medians['subject'][k]:.2f}, "
            f"baseline {medians['baseline'][k]:.2f}, subject/baseline {ratio:.2f}"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "turns": turns,
                "medians": medians,
                "load": os.getloadavg(),
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--segments", type=int, default=20)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--swaps", type=int, default=10)
    ap.add_argument("--output", type=Path, default=HERE / "results" / "serve.json")
    ap.add_argument(
        "--http",
        choices=["stdlib", "uvicorn"],
        default="stdlib",
        help="front end of the server under test",
    )
    ap.add_argument(
        "--against",
        type=Path,
        help="another checkout of cadence (e.g. main's): its server and this one's alternate",
    )
    ap.add_argument("--rounds", type=int, default=3, help="turns of each server with --against")
    ap.add_argument("--serve-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_child:
        serve_child(*args.serve_child)
        return
    if args.against:
        paired(args)
        return

    work = Path(tempfile.mkdtemp(prefix="cadence-serve-bench-"))
    live = work / "web.snap"
    load_before = os.getloadavg()
    print(f"building {args.swaps + 1} snapshots of {args.keys:,} keys x {args.segments} segments")
    import duckdb  # here, not at the top: the server child must not carry DuckDB in its memory

    from cadence.engines.duckdb import DuckDBEngine

    versions: dict[str, int] = {}
    engine = DuckDBEngine(duckdb.connect(config={"threads": 2}), ":memory:")
    version, write_s = build(engine, work, live, args.keys, args.segments, 0)
    versions[version] = 0
    prebuilt = []
    for g in range(1, args.swaps + 1):
        path = work / f"gen{g}.snap"
        v, _ = build(engine, work, path, args.keys, args.segments, g)
        versions[v] = g
        prebuilt.append((path, v))
    engine.close()
    python_version, write_python_s = build_in_python(
        work / "python.snap", args.keys, args.segments, 0
    )
    if python_version != version:
        raise SystemExit("the Python path wrote another snapshot than the warehouse path")
    (work / "python.snap").unlink()
    figures: dict[str, float] = {
        "write_s": write_s,
        "write_python_s": write_python_s,
        "file_mb": live.stat().st_size / 2**20,
    }
    figures.update(micro(live, args.keys))

    port_file = work / "port"
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-child", str(live), str(port_file), args.http]
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or child.poll() is not None:
                raise SystemExit("server did not start")
            time.sleep(0.05)
        port = int(port_file.read_text())
        figures["idle_rss_mb"] = memory(child.pid)["VmRSS"]
        queue: mp.Queue = mp.Queue()
        per = [
            args.connections // args.procs + (1 if n < args.connections % args.procs else 0)
            for n in range(args.procs)
        ]
        procs = [
            mp.Process(
                target=load_proc,
                args=(port, c, args.seconds, args.keys, args.segments, versions, queue),
            )
            for c in per
            if c
        ]
        cpu_before = cpu_seconds(child.pid)
        started = time.perf_counter()
        for p in procs:
            p.start()
        swaps = []
        gap = args.seconds / (args.swaps + 1)
        for path, v in prebuilt:
            time.sleep(gap * 0.9)
            swaps.append(swap_latency(port, live, path, v))
        results = [queue.get(timeout=args.seconds + 60) for _ in procs]
        elapsed = time.perf_counter() - started
        for p in procs:
            p.join(timeout=30)
        mem = memory(child.pid)
        server_cpu = cpu_seconds(child.pid) - cpu_before
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)
    lat = sorted(x for r in results for x in r[0])
    failed = sum(r[1] for r in results)
    wrong = sum(r[2] for r in results)
    notes = [n for r in results for n in r[3]]
    figures.update(
        {
            "requests": len(lat) + failed,
            "req_per_s": len(lat) / elapsed,
            "server_cpu_us_per_req": server_cpu / max(1, len(lat)) * 1e6,
            "server_cpu_share": server_cpu / elapsed,
            "client_cpu_us_per_req": sum(r[4] for r in results) / max(1, len(lat)) * 1e6,
            "p50_ms": lat[len(lat) // 2] * 1000,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
            "max_ms": lat[-1] * 1000,
            "failed": failed,
            "wrong": wrong,
            "rss_mb": mem["VmRSS"],
            "peak_rss_mb": mem["VmHWM"],
            "swap_max_ms": max(swaps) * 1000 if swaps else 0.0,
            "swap_median_ms": statistics.median(swaps) * 1000 if swaps else 0.0,
            "swaps": len(swaps),
            "load_before": load_before[0],
            "load_after": os.getloadavg()[0],
        }
    )
    targets = [
        ("p99_ms", "<=", 5.0, "p99 <= 5 ms"),
        ("req_per_s", ">=", 5000.0, ">= 5,000 requests/s over 16 keep-alive connections"),
        ("peak_rss_mb", "<=", 150.0, "server memory <= 150 MB"),
        ("swap_max_ms", "<=", 100.0, "new snapshot served within 100 ms of its rename"),
        ("failed", "<=", 0, "zero failed answers during swaps"),
        ("wrong", "<=", 0, "zero wrong answers during swaps"),
        ("lookup_us", "<=", 1.0, "lookup ~1 us (in process)"),
        ("open_us", "<=", 100.0, "open ~0.1 ms"),
    ]
    print(f"\n{'figure':<16}{'value':>12}  target")
    for name, value in figures.items():
        target = next((t for t in targets if t[0] == name), None)
        verdict = ""
        if target:
            ok = value <= target[2] if target[1] == "<=" else value >= target[2]
            verdict = f"  {'PASS' if ok else 'MISS'}  {target[3]}"
        print(f"{name:<16}{value:>12.3f}{verdict}")
    if notes:
        print("first problems:", *notes[:10], sep="\n  ")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "figures": figures,
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )
    for f in work.iterdir():
        f.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()
