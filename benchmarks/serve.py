"""cadence serve benchmark: lookups over keep-alive HTTP while snapshots are swapped (issue 9).

    python benchmarks/serve.py [--keys 1000000] [--segments 20] [--connections 16]
                               [--seconds 20] [--swaps 10] [--procs 4]

1. Builds --swaps + 1 snapshots of --keys keys x --segments segments (membership of key i in
   generation g is a fixed function of (i, g), so every answer can be checked) and times open
   and lookup on the first one, in this process, against a dict lookup baseline.
2. Starts the server in a child process (the same Service/Server ``cadence serve`` runs) on
   127.0.0.1, port 0; measures its memory (VmRSS / VmHWM from /proc).
3. Runs --connections keep-alive connections from --procs load processes for --seconds; each
   answer is checked against the membership of the version it names. Meanwhile the main process
   renames the prebuilt snapshots into place --swaps times and measures, on its own connection,
   how long until the new version is served.
4. Prints a table with the issue's targets and PASS/MISS, writes benchmarks/results/serve.json.

Every request loop is bounded (--seconds) and the server is stopped (SIGTERM) at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import multiprocessing as mp
import os
import signal
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
sys.path.insert(0, str(REPO))

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


def build(path: Path, keys: int, segments: int, generation: int) -> tuple[str, float]:
    seg = names(segments)
    cache: dict[int, tuple[str, ...]] = {}

    def decode(m: int) -> tuple[str, ...]:
        found = cache.get(m)
        if found is None:
            found = cache[m] = tuple(s for j, s in enumerate(seg) if m >> j & 1)
        return found

    members = (Member(f"cust_{i}", decode(mask_of(i, generation, segments))) for i in range(keys))
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

    from cadence.schedule import parse_cadence
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
def load_proc(
    port: int,
    conns: int,
    seconds: float,
    keys: int,
    segments: int,
    versions: dict[str, int],
    out: mp.Queue,
) -> None:
    seg = names(segments)
    results: list[tuple[list[float], int, int, list[str]]] = []
    lock = threading.Lock()
    start_at = time.monotonic()

    def one(n: int) -> None:
        import random

        rng = random.Random(n * 7919 + os.getpid())
        lat: list[float] = []
        failed = wrong = 0
        notes: list[str] = []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = start_at + seconds
        while time.monotonic() < deadline:
            i = rng.randrange(keys * 11 // 10)  # ~9% unknown keys
            t = time.perf_counter()
            try:
                conn.request("GET", f"/v1/channels/web/members/cust_{i}")
                response = conn.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                failed += 1
                notes.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            lat.append(time.perf_counter() - t)
            if response.status != 200:
                failed += 1
                notes.append(f"status {response.status}")
                continue
            body = json.loads(raw)
            generation = versions.get(body["version"])
            expected = (
                tuple(s for j, s in enumerate(seg) if mask_of(i, generation, segments) >> j & 1)
                if generation is not None and i < keys
                else ()
            )
            if generation is None or tuple(body["segments"]) != expected or body["holdout"]:
                wrong += 1
                notes.append(f"wrong answer for cust_{i} at {body['version']}")
        conn.close()
        with lock:
            results.append((lat, failed, wrong, notes[:5]))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = [x for r in results for x in r[0]]
    out.put(
        (
            lat,
            sum(r[1] for r in results),
            sum(r[2] for r in results),
            [n for r in results for n in r[3]][:10],
        )
    )


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--segments", type=int, default=20)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--swaps", type=int, default=10)
    ap.add_argument("--output", type=Path, default=HERE / "results" / "serve.json")
    ap.add_argument(
        "--http",
        choices=["stdlib", "uvicorn"],
        default="stdlib",
        help="front end of the server under test",
    )
    ap.add_argument("--serve-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_child:
        serve_child(*args.serve_child)
        return

    work = Path(tempfile.mkdtemp(prefix="cadence-serve-bench-"))
    live = work / "web.snap"
    load_before = os.getloadavg()
    print(f"building {args.swaps + 1} snapshots of {args.keys:,} keys x {args.segments} segments")
    versions: dict[str, int] = {}
    version, write_s = build(live, args.keys, args.segments, 0)
    versions[version] = 0
    prebuilt = []
    for g in range(1, args.swaps + 1):
        path = work / f"gen{g}.snap"
        v, _ = build(path, args.keys, args.segments, g)
        versions[v] = g
        prebuilt.append((path, v))
    figures: dict[str, float] = {"write_s": write_s, "file_mb": live.stat().st_size / 2**20}
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
