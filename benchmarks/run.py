"""cadence benchmark: idle cost and build overhead, each measured beside its baseline (issues 4, 21).

    python benchmarks/run.py [--sizes 100,1000,10000] [--repeat 5] [--events 1000000]

After a warm-up on a 20-model project, for each size it generates a project
(benchmarks/generate.py) into a temporary folder and measures, every number the median of
--repeat whole-process runs (wall clock with time.perf_counter around the subprocess, peak RSS
from os.wait4 of that very process), each repeat running the subject and its baseline back to
back:

  floor        python -c "import duckdb; duckdb.connect(WAREHOUSE)"
  no-op        cadence run --due --at <1 minute after the build's tick>   (nothing is due)
  cold load    cadence ls after deleting target/ (manifest cache and all)
  warm load    cadence ls again
  full build   cadence run --at <the build's tick> into a fresh warehouse (the first one is the
               build the no-op follows), vs raw DuckDB running the same compiled SQL from
               target/compiled/ in one process, one connection, into another fresh warehouse
               (benchmarks/raw_duckdb.py); sizes from 5,000 models: --build-repeat-large pairs
  sequential   with --serial-build: cadence run --threads 1, raw DuckDB, DuckDB's own floor of
               the publish pattern (raw_duckdb.py --pattern: SPEC section 6) and of that pattern
               with the segments' membership rows (--membership: sections 6 and 7), in turn, the
               order rotating

Ratios are taken pair by pair (each subject beside its baseline, run in turn) and their median
reported; the no-op's too (issue 21). Every sample also records the process's CPU time.

With --against CADENCE (another cadence command, e.g. a wrapper that runs main's checkout), the
no-op run and the cold and warm loads of both are measured in turn in the same project, and the
table adds the ratios pair by pair (each side's no-op first runs once unmeasured, so it reads a
cache in its own format).

See docs/performance.md. It prints a table with the issue's targets and PASS/MISS, and writes
benchmarks/results/latest.json.
Run it with the interpreter cadence is installed in (e.g. /tmp/dev/bin/python).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHILD_ENV: dict[str, str] | None = None  # set in main(): how every measured process runs
LARGE = 5000  # sizes from here on use --events-large and --build-repeat-large

# (metric, size or sizes it applies at, limit, unit, what the issue says[, which runs: "small"
# events <= 10,000 a project, "scale" the full 1,000,000])
TARGETS = [
    ("noop_ratio", 1000, 2.5, "x", "no-op run --due <= 2.5x the floor at 1,000 models"),
    ("noop_s", 10000, 1.0, "s", "no-op run --due <= 1 s at 10,000 models"),
    ("cold_s", 1000, 0.7, "s", "cold load <= 0.7 s at 1,000 models"),
    ("cold_s", 10000, 7.0, "s", "cold load <= 7 s at 10,000 models"),
    ("warm_s", 1000, 0.25, "s", "warm load <= 0.25 s at 1,000 models"),
    (
        "build_ratio",
        (100, 1000, 10000),
        1.10,
        "x",
        "full build <= 1.10x raw DuckDB on the same SQL",
    ),
    (
        "peak_mb",
        10000,
        400.0,
        "MB",
        "peak memory <= 400 MB at 10,000 models (no-op run, cold load)",
    ),
    # issue 21, each a ratio taken pair by pair in the same run
    ("noop_ratio_paired", 10000, 0.8, "x", "idle run --due <= 0.8x import duckdb + connect"),
    ("noop_ratio_paired", 1000, 1.2, "x", "idle run --due <= 1.2x import duckdb + connect"),
    (
        "serial_build_ratio",
        1000,
        1.6,
        "x",
        "sequential build of small models <= 1.6x raw DuckDB",
        "small",
    ),
    (
        "serial_build_ratio",
        100,
        1.05,
        "x",
        "sequential build at scale 1.0 <= 1.05x raw DuckDB",
        "scale",
    ),
    (
        "build_vs_raw_paired",
        (100, 1000, 10000),
        0.9,
        "x",
        "parallel build (warehouse.threads) <= 0.9x raw DuckDB run sequentially",
    ),
]


@dataclass
class Sample:
    wall_s: float
    rss_mb: float
    rc: int
    stdout_bytes: int
    stderr_tail: str = ""
    cpu_s: float = 0.0  # user + system of the process (its threads included)


@dataclass
class Series:
    samples: list[Sample] = field(default_factory=list)

    def add(self, s: Sample) -> None:
        self.samples.append(s)

    @property
    def median(self) -> float:
        return statistics.median(s.wall_s for s in self.samples)

    @property
    def peak_mb(self) -> float:
        return max(s.rss_mb for s in self.samples)

    def summary(self) -> dict:
        walls = [s.wall_s for s in self.samples]
        return {
            "median_s": round(self.median, 4),
            "min_s": round(min(walls), 4),
            "max_s": round(max(walls), 4),
            "runs": len(walls),
            "peak_rss_mb": round(self.peak_mb, 1),
            "samples_s": [round(w, 4) for w in walls],
            "cpu_median_s": round(statistics.median(s.cpu_s for s in self.samples), 4),
            "rcs": sorted({s.rc for s in self.samples}),
            "stdout_bytes": max(s.stdout_bytes for s in self.samples),
        }


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure(cmd: list[str], cwd: Path, timeout: float, expect_rc: int | None = 0) -> Sample:
    """Run ``cmd`` as a whole process; wall time and the peak RSS of that process.

    The RSS is ru_maxrss from os.wait4 for this child alone. Linux counts the parent's RSS at
    fork/exec into a child's ru_maxrss, so this harness keeps itself small (it never imports
    duckdb; about 20 MB, recorded as harness_rss_mb) and every reading is the child's own peak.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=CHILD_ENV
        )
        timer = threading.Timer(timeout, proc.kill)  # a blocking wait: no polling on 2 cores
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        out.seek(0, os.SEEK_END)
        stdout_bytes = out.tell()
        err.seek(0)
        tail = err.read()[-2000:].decode("utf-8", "replace")
    cpu = usage.ru_utime + usage.ru_stime
    sample = Sample(wall, usage.ru_maxrss / 1024.0, rc, stdout_bytes, tail, cpu)
    if expect_rc is not None and rc != expect_rc:
        raise RuntimeError(f"{' '.join(cmd)} exited {rc} (expected {expect_rc}) in {cwd}:\n{tail}")
    return sample


def fresh(warehouse: Path) -> None:
    """Remove a warehouse file (and its WAL): the next build starts from nothing."""
    for suffix in ("", ".wal"):
        p = Path(str(warehouse) + suffix)
        if p.exists():
            p.unlink()


def fresh_target(project: Path) -> None:
    """What a run leaves beside the warehouse (members files, serve snapshots, the state
    snapshot, the wake file, run results): gone, so a build into a fresh warehouse starts from
    nothing (members files of another warehouse would not be written again)."""
    target = project / "target"
    for name in ("members", "serve"):
        shutil.rmtree(target / name, ignore_errors=True)
    for name in ("wake.json", "state_snapshot.json", "run_results.json"):
        (target / name).unlink(missing_ok=True)


def paired(mine: "Series", base: "Series") -> float:
    """The median of the ratios pair by pair (runs measured in turn, the same count)."""
    return statistics.median(a.wall_s / b.wall_s for a, b in zip(mine.samples, base.samples))


def run_results(project: Path) -> dict:
    path = project / "target" / "run_results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def status_counts(results: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results.get("results", []):
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return counts


def bench_size(n: int, args: argparse.Namespace, workdir: Path) -> dict:
    large = n >= LARGE
    events = args.events_large if large and args.events_large else args.events
    repeat = args.repeat
    build_repeat = args.build_repeat or (args.build_repeat_large if large else repeat)
    py, cadence, timeout = args.python, args.cadence, args.timeout
    project = workdir / f"project_{n}"
    t0 = time.perf_counter()
    log(f"\n== {n:,} models: generating ({events:,} events) in {project}")
    # in a child process: the harness never imports duckdb, so it stays small (see measure())
    measure(
        [
            py,
            str(HERE / "generate.py"),
            str(project),
            "--models",
            str(n),
            "--events",
            str(events),
            "--seed",
            str(args.seed),
            "--threads",
            str(args.threads),
            "--force",
        ],
        workdir,
        timeout,
    )
    manifest = json.loads((project / "benchmark.json").read_text())
    gen_s = time.perf_counter() - t0
    warehouse = project / "warehouse.duckdb"
    raw_wh = workdir / f"raw_{n}.duckdb"
    build_at, noop_at = manifest["build_at"], manifest["noop_at"]
    notes: list[str] = []
    floor, noop, cold, warm, build, raw = Series(), Series(), Series(), Series(), Series(), Series()
    serial = Series()  # cadence run --threads 1 (with --serial-build)
    # raw DuckDB and its publish pattern, without and with membership rows, in turn
    serial_raw, pattern, pattern_members = Series(), Series(), Series()
    against = args.against  # another cadence (main's checkout): idle and load beside this one
    base_noop, base_cold, base_warm = Series(), Series(), Series()

    def load_pair(i: int = 0) -> None:
        sides = [(cadence, cold, warm)] + ([(against, base_cold, base_warm)] if against else [])
        for cmd, cold_series, warm_series in sides if i % 2 == 0 else sides[::-1]:
            shutil.rmtree(project / "target", ignore_errors=True)  # the manifest cache and all
            cold_series.add(measure([cmd, "ls"], project, timeout))
            warm_series.add(measure([cmd, "ls"], project, timeout))

    # a full build = every model into a fresh warehouse (only the parquet sources and the seed
    # CSV exist), on both sides; the same --at, so per-run SQL (run_started_at) is identical
    build_cmd = [cadence, "run", "--at", build_at]
    plan_path = workdir / f"raw_plan_{n}.json"
    raw_cmd = [py, str(HERE / "raw_duckdb.py"), str(raw_wh), str(plan_path)]

    build_counts: list[dict[str, int]] = []

    def run_cadence() -> None:
        fresh(warehouse)
        fresh_target(project)
        build.add(measure(build_cmd, project, timeout, expect_rc=None))
        build_counts.append(status_counts(run_results(project)))

    def run_raw(series: Series = raw, mode: str = "") -> None:
        fresh(raw_wh)
        series.add(measure(raw_cmd + ([mode] if mode else []), project, timeout))

    def run_serial() -> None:
        fresh(warehouse)
        fresh_target(project)
        serial.add(measure(build_cmd + ["--threads", "1"], project, timeout, expect_rc=None))
        build_counts.append(status_counts(run_results(project)))

    log(f"   cold/warm load (cadence ls) 1/{repeat}")
    load_pair()  # also fills the cache, so the first build runs with a warm cache like the others
    log(f"   full build 1/{build_repeat} (cadence run --at {build_at})")
    run_cadence()
    counts = build_counts[-1]
    if build.samples[-1].rc != 0 or counts.get("success", 0) < n:
        raise RuntimeError(
            f"the first build failed (rc {build.samples[-1].rc}): {counts}\n"
            f"{build.samples[-1].stderr_tail}"
        )
    compiled = workdir / f"compiled_{n}"  # kept apart: the load runs delete target/
    if compiled.exists():
        shutil.rmtree(compiled)
    shutil.copytree(project / "target" / "compiled", compiled)
    missing = [m["name"] for m in manifest["models"] if not (compiled / m["path"]).exists()]
    if missing:
        raise RuntimeError(
            f"no compiled SQL under target/compiled/ for {len(missing)} models, e.g. {missing[:3]}"
        )
    plan_path.write_text(
        json.dumps(
            {
                "threads": args.threads,
                "seeds": [
                    [f'"main"."{s}"', str(project / "seeds" / f"{s}.csv")]
                    for s in manifest["seeds"]
                ],
                "models": [
                    [
                        m["materialized"],
                        f'"main"."{m["name"]}"',
                        str(compiled / m["path"]),
                        m.get("key"),
                    ]
                    for m in manifest["models"]
                ],
            }
        )
    )
    run_raw()
    log(f"     build {build.samples[-1].wall_s:.2f}s  raw {raw.samples[-1].wall_s:.2f}s")

    # -- no-op run --due right after that build, next to the floor ----------------------------
    floor_cmd = [py, "-c", f"import duckdb; duckdb.connect({str(warehouse)!r})"]
    noop_cmd = [cadence, "run", "--due", "--at", noop_at]
    log(f"   no-op run --due --at {noop_at} vs floor, {repeat}x")
    results_file = project / "target" / "run_results.json"
    last = results_file.read_bytes()
    warmup = measure(noop_cmd, project, timeout)
    # an idle run --due builds nothing and leaves the last run_results.json in place
    noop_counts = status_counts(run_results(project))
    if results_file.read_bytes() != last:
        notes.append(f"no-op run --due at {noop_at} wrote run results: {noop_counts}")
        noop_counts = {"rewritten": 1, **noop_counts}
    else:
        noop_counts = {"skipped": n}
    base_cmd = [against, *noop_cmd[1:]] if against else []
    if against:
        last = results_file.read_bytes()
        measure(base_cmd, project, timeout)
        base_counts = status_counts(run_results(project))
        rewritten = results_file.read_bytes() != last  # an older cadence rewrites it, idle too
        if rewritten and sum(v for k, v in base_counts.items() if k != "skipped"):
            notes.append(f"--against: no-op run --due built something: {base_counts}")
    for i in range(repeat):
        pair = [(floor, floor_cmd), (noop, noop_cmd)]
        if against:
            pair.append((base_noop, base_cmd))
        for series, cmd in pair if i % 2 == 0 else pair[::-1]:
            if against and series is not floor:
                # unmeasured, first: the cache as this side writes it (formats may differ)
                measure(cmd, project, timeout)
            series.add(measure(cmd, project, timeout))
    if max(s.stdout_bytes for s in noop.samples):
        notes.append("no-op run --due printed to stdout on a non-TTY (cron would send mail)")

    for i in range(1, repeat):
        log(f"   cold/warm load (cadence ls) {i + 1}/{repeat}")
        load_pair(i)

    for i in range(1, build_repeat):
        log(f"   full build {i + 1}/{build_repeat}")
        for step in (run_raw, run_cadence) if i % 2 else (run_cadence, run_raw):
            step()
        log(f"     build {build.samples[-1].wall_s:.2f}s  raw {raw.samples[-1].wall_s:.2f}s")
    if args.serial_build:
        steps = [
            run_serial,
            lambda: run_raw(serial_raw),
            lambda: run_raw(pattern, "--pattern"),
            lambda: run_raw(pattern_members, "--membership"),
        ]
        for i in range(build_repeat):
            log(
                "   sequential build --threads 1 / raw / publish pattern / with membership, "
                f"{i + 1}/{build_repeat}"
            )
            turn = i % len(steps)
            for step in steps[turn:] + steps[:turn]:  # each in turn, the order rotating
                step()
            log(
                f"     --threads 1 {serial.samples[-1].wall_s:.2f}s  raw "
                f"{serial_raw.samples[-1].wall_s:.2f}s  pattern {pattern.samples[-1].wall_s:.2f}s"
                f"  with membership {pattern_members.samples[-1].wall_s:.2f}s"
            )
    if any(s.rc != 0 for s in build.samples) or any(c.get("success", 0) < n for c in build_counts):
        notes.append(
            f"full build: rc {sorted({s.rc for s in build.samples})}, statuses {build_counts}"
        )
    fresh(raw_wh)

    m = {
        "floor_s": floor.median,
        "noop_s": noop.median,
        "noop_ratio": noop.median / floor.median,
        "cold_s": cold.median,
        "warm_s": warm.median,
        "build_s": build.median,
        "raw_s": raw.median,
        "build_ratio": build.median / raw.median,
        "noop_peak_mb": noop.peak_mb,
        "build_peak_mb": build.peak_mb,
        "cold_peak_mb": cold.peak_mb,
        "warm_peak_mb": warm.peak_mb,
        "floor_peak_mb": floor.peak_mb,
        "raw_peak_mb": raw.peak_mb,
    }
    if against:
        m["against_noop_s"] = base_noop.median
        m["against_noop_ratio"] = base_noop.median / floor.median
        m["against_cold_s"] = base_cold.median
        m["against_warm_s"] = base_warm.median
        # this cadence / the other, the median of the ratios pair by pair (same repeat)
        for key, mine, theirs in (
            ("vs_against_noop", noop, base_noop),
            ("vs_against_cold", cold, base_cold),
            ("vs_against_warm", warm, base_warm),
        ):
            m[key] = statistics.median(
                a.wall_s / b.wall_s for a, b in zip(mine.samples, theirs.samples)
            )
    m["noop_ratio_paired"] = paired(noop, floor)
    m["build_vs_raw_paired"] = paired(build, raw)
    if serial.samples:
        m["serial_build_s"] = serial.median
        m["serial_raw_s"] = serial_raw.median
        m["serial_build_ratio"] = paired(serial, serial_raw)
        m["pattern_s"] = pattern.median
        m["pattern_ratio"] = paired(pattern, serial_raw)
        m["pattern_members_s"] = pattern_members.median
        m["pattern_members_ratio"] = paired(pattern_members, serial_raw)
        m["serial_vs_pattern_members"] = paired(serial, pattern_members)
        m["serial_build_peak_mb"] = serial.peak_mb
        m["serial_build_cpu_ratio"] = statistics.median(
            a.cpu_s / b.cpu_s for a, b in zip(serial.samples, serial_raw.samples)
        )
    # cadence's own footprint; the full build's peak is mostly DuckDB's and is shown beside raw's
    m["peak_mb"] = max(m["noop_peak_mb"], m["cold_peak_mb"], m["warm_peak_mb"])
    log(
        f"   done in {time.perf_counter() - t0:.0f}s: no-op {m['noop_s']:.3f}s "
        f"({m['noop_ratio']:.2f}x floor), cold {m['cold_s']:.3f}s, warm {m['warm_s']:.3f}s, "
        f"build {m['build_ratio']:.2f}x raw"
    )
    for note in notes:
        log(f"   NOTE: {note}")
    return {
        "models": n,
        "events": events,
        "customers": manifest["customers"],
        "layers": manifest["counts"],
        "repeat": repeat,
        "build_repeat": build_repeat,
        "generate_s": round(gen_s, 2),
        "metrics": {k: round(v, 4) for k, v in m.items()},
        "series": {
            "floor": floor.summary(),
            "noop": noop.summary(),
            "noop_warmup_s": round(warmup.wall_s, 4),
            "cold_ls": cold.summary(),
            "warm_ls": warm.summary(),
            "full_build": build.summary(),
            "raw_duckdb": raw.summary(),
            **(
                {
                    "full_build_threads_1": serial.summary(),
                    "raw_duckdb_beside_threads_1": serial_raw.summary(),
                    "publish_pattern": pattern.summary(),
                    "publish_pattern_with_membership": pattern_members.summary(),
                }
                if serial.samples
                else {}
            ),
            **(
                {
                    "against_noop": base_noop.summary(),
                    "against_cold_ls": base_cold.summary(),
                    "against_warm_ls": base_warm.summary(),
                }
                if against
                else {}
            ),
        },
        "noop_statuses": noop_counts,
        "build_statuses": build_counts[-1],
        "seconds": round(time.perf_counter() - t0, 1),
        "notes": notes,
    }


def warm_up(args: argparse.Namespace, workdir: Path) -> None:
    """One pass over every command on a tiny project: fills the bytecode cache and the OS file
    cache, so the first measured process is not the one that pays for them."""
    log("warming up (20-model project)")
    project = workdir / "warmup"
    measure(
        [
            args.python,
            str(HERE / "generate.py"),
            str(project),
            "--models",
            "20",
            "--events",
            "1000",
            "--force",
        ],
        workdir,
        args.timeout,
    )
    for cadence in [args.cadence] + ([args.against] if args.against else []):
        shutil.rmtree(project / "target", ignore_errors=True)
        for cmd in (
            ["ls"],
            ["run", "--at", "2026-03-02T05:00:00"],
            ["run", "--due", "--at", "2026-03-02T05:01:00"],
        ):
            measure([cadence, *cmd], project, args.timeout)
    measure([args.python, "-c", "import duckdb; duckdb.connect(':memory:')"], project, args.timeout)
    shutil.rmtree(project, ignore_errors=True)


def evaluate(sizes: dict[int, dict]) -> list[dict]:
    out = []
    for metric, size, limit, unit, text, *which in TARGETS:
        for n, res in sorted(sizes.items()):
            if n not in (size if isinstance(size, tuple) else (size,)):
                continue
            if metric not in res["metrics"]:
                continue  # not measured in this run (--serial-build)
            if which and (res["events"] <= 10_000) != (which[0] == "small"):
                continue  # a target for the other data scale
            value = res["metrics"][metric]
            target = {
                "target": text,
                "metric": metric,
                "models": n,
                "limit": limit,
                "unit": unit,
                "value": round(value, 4),
                "pass": value <= limit,
            }
            floor = res["metrics"].get("pattern_members_ratio")
            if metric == "serial_build_ratio" and floor is not None:
                # what DuckDB alone needs to publish as SPEC sections 6 and 7 ask, same run
                target["floor"] = round(floor, 4)
            out.append(target)
    return out


def fmt_s(v: float) -> str:
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def _opt(m: dict, key: str, fmt) -> str:
    return fmt(m[key]) if key in m else "-"


def _x(v: float) -> str:
    return f"{v:.2f}x"


def render(result: dict) -> str:
    sizes = {r["models"]: r for r in result["sizes"]}
    ns = sorted(sizes)
    rows = [
        ("floor: import duckdb + connect (s)", lambda m: fmt_s(m["floor_s"])),
        ("no-op run --due (s)", lambda m: fmt_s(m["noop_s"])),
        ("  no-op / floor", lambda m: f"{m['noop_ratio']:.2f}x"),
        ("  no-op / floor, pair by pair", lambda m: _opt(m, "noop_ratio_paired", _x)),
        ("cold load, cadence ls (s)", lambda m: fmt_s(m["cold_s"])),
        ("warm load, cadence ls (s)", lambda m: fmt_s(m["warm_s"])),
        ("full build, cadence (s)", lambda m: fmt_s(m["build_s"])),
        ("full build, raw DuckDB (s)", lambda m: fmt_s(m["raw_s"])),
        ("  cadence / raw", lambda m: f"{m['build_ratio']:.2f}x"),
        ("  cadence / raw, pair by pair", lambda m: _opt(m, "build_vs_raw_paired", _x)),
        (
            "full build, cadence --threads 1 (s)",
            lambda m: fmt_s(m["serial_build_s"]) if "serial_build_s" in m else "-",
        ),
        ("  raw DuckDB beside it (s)", lambda m: _opt(m, "serial_raw_s", fmt_s)),
        ("  cadence --threads 1 / raw, pair by pair", lambda m: _opt(m, "serial_build_ratio", _x)),
        ("  (cpu time, pair by pair)", lambda m: _opt(m, "serial_build_cpu_ratio", _x)),
        ("  publish pattern in DuckDB / raw", lambda m: _opt(m, "pattern_ratio", _x)),
        (
            "  pattern with membership rows / raw",
            lambda m: _opt(m, "pattern_members_ratio", _x),
        ),
        (
            "  cadence --threads 1 / pattern with membership",
            lambda m: _opt(m, "serial_vs_pattern_members", _x),
        ),
        ("--against: no-op run --due (s)", lambda m: _opt(m, "against_noop_s", fmt_s)),
        ("  this / --against, pair by pair", lambda m: _opt(m, "vs_against_noop", _x)),
        ("--against: cold load (s)", lambda m: _opt(m, "against_cold_s", fmt_s)),
        ("  this / --against, pair by pair", lambda m: _opt(m, "vs_against_cold", _x)),
        ("--against: warm load (s)", lambda m: _opt(m, "against_warm_s", fmt_s)),
        ("  this / --against, pair by pair", lambda m: _opt(m, "vs_against_warm", _x)),
        ("peak RSS no-op (MB)", lambda m: f"{m['noop_peak_mb']:.0f}"),
        ("peak RSS full build (MB)", lambda m: f"{m['build_peak_mb']:.0f}"),
        (
            "peak RSS cold / warm ls (MB)",
            lambda m: f"{m['cold_peak_mb']:.0f} / {m['warm_peak_mb']:.0f}",
        ),
        (
            "peak RSS floor / raw (MB)",
            lambda m: f"{m['floor_peak_mb']:.0f} / {m['raw_peak_mb']:.0f}",
        ),
    ]
    head = ["metric"] + [f"{n:,} models" for n in ns]
    body = [[label] + [fn(sizes[n]["metrics"]) for n in ns] for label, fn in rows]
    body = [r for r in body if any(c != "-" for c in r[1:])]  # optional rows only when measured
    body.append(["events (rows)"] + [f"{sizes[n]['events']:,}" for n in ns])
    body.append(
        ["runs per median (build)"]
        + [f"{sizes[n]['repeat']} ({sizes[n]['build_repeat']})" for n in ns]
    )
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    lines = [
        " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in [head] + body
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    env = result["env"]
    dirty = " (dirty tree)" if env["dirty"] else ""
    out = [
        (
            f"cadence benchmark {result['date']} commit {env['commit']}{dirty}, {env['cpus']} CPUs, "
            f"Python {env['python']}, DuckDB {env['duckdb']}"
        )
    ]
    if env.get("commit_at_end"):
        out.append(f"WARNING: cadence changed during the run (at the end: {env['commit_at_end']})")
    out.append("")
    out += lines
    out += ["", "targets (issues 4 and 21):"]
    for t in result["targets"]:
        unit = "x" if t["unit"] == "x" else f" {t['unit']}"
        value = f"{t['value']:.2f}{unit}" if t["unit"] != "MB" else f"{t['value']:.0f}{unit}"
        out.append(
            f"  {'PASS' if t['pass'] else 'MISS'}  {t['target']}: measured {value}"
            f" at {t['models']:,} models"
            + (
                f" (DuckDB alone, publishing with the membership rows SPEC 6-7 ask: "
                f"{t['floor']:.2f}x)"
                if "floor" in t
                else ""
            )
        )
    if not result["targets"]:
        out.append(
            "  (none applies to the sizes measured: targets are set at 100, 1,000 and 10,000 models)"
        )
    notes = [f"{r['models']}: {n}" for r in result["sizes"] for n in r["notes"]]
    if notes:
        out += ["", "notes:"] + [f"  {n}" for n in notes]
    return "\n".join(out)


def environment(python: str) -> dict:
    def git(*a: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(REPO), *a], capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    code = (
        "import duckdb, sys; from importlib.metadata import version as v; "
        "print(duckdb.__version__); print(sys.version.split()[0]); print(v('cadence'))"
    )
    versions = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    duck, pyver, cad = (versions.stdout.split() + ["?", "?", "?"])[:3]
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "cadence")),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "system": platform.platform(),
        "python": pyver,
        "duckdb": duck,
        "cadence": cad,
    }


def main(argv: list[str] | None = None) -> int:
    bindir = Path(sys.executable).parent
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--sizes", default="100,1000,10000", help="model counts (default 100,1000,10000)"
    )
    p.add_argument("--repeat", type=int, default=5, help="runs per median (default 5)")
    p.add_argument(
        "--events", type=int, default=1_000_000, help="raw event rows (default 1,000,000)"
    )
    p.add_argument(
        "--events-large",
        type=int,
        default=100_000,
        help=f"event rows for sizes >= {LARGE:,} (default 100,000; 0 = --events)",
    )
    p.add_argument(
        "--build-repeat",
        type=int,
        default=0,
        help="full builds per median (default: --repeat; --build-repeat-large from "
        f"{LARGE:,} models)",
    )
    p.add_argument(
        "--build-repeat-large",
        type=int,
        default=1,
        help=f"full builds per median for sizes >= {LARGE:,} (default 1: one pair takes "
        "about 4 minutes at 10,000 models on 2 cores)",
    )
    p.add_argument(
        "--serial-build",
        action="store_true",
        help="also time cadence run --threads 1 (does parallel building help?)",
    )
    p.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run children with the environment as is (default: cached bytecode in a "
        "private PYTHONPYCACHEPREFIX, as an installed package has)",
    )
    p.add_argument(
        "--threads", type=int, default=4, help="warehouse.threads (default 4, as the template)"
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--python", default=sys.executable, help="interpreter for the floor and raw DuckDB"
    )
    p.add_argument(
        "--cadence",
        default=str(bindir / "cadence")
        if (bindir / "cadence").exists()
        else (shutil.which("cadence") or "cadence"),
        help="the cadence command",
    )
    p.add_argument(
        "--against",
        default=None,
        metavar="CADENCE",
        help="another cadence command (e.g. a wrapper running main's checkout): its no-op run "
        "and cold/warm load are measured beside this one's, in turn, in the same project",
    )
    p.add_argument("--timeout", type=float, default=1800, help="seconds per process (default 1800)")
    p.add_argument(
        "--workdir", type=Path, default=None, help="keep projects here (default: temp, removed)"
    )
    p.add_argument("--output", type=Path, default=HERE / "results" / "latest.json")
    args = p.parse_args(argv)
    check = subprocess.run([args.python, "-c", "import duckdb"], capture_output=True, check=False)
    if check.returncode != 0:
        p.error(
            f"duckdb is not importable by {args.python}: run with cadence's interpreter, "
            "e.g. /tmp/dev/bin/python benchmarks/run.py, or pass --python"
        )
    if not Path(args.cadence).exists() and not shutil.which(args.cadence):
        p.error(f"cannot find the cadence command ({args.cadence}); pass --cadence")
    if args.against and not Path(args.against).exists() and not shutil.which(args.against):
        p.error(f"cannot find the --against command ({args.against})")
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    started = time.perf_counter()
    env = environment(args.python)
    tmp = None
    if args.workdir:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="cadence-bench-")
        workdir = Path(tmp)
    global CHILD_ENV
    CHILD_ENV = dict(os.environ)
    if not args.no_bytecode_cache:
        # An installed cadence has .pyc files; PYTHONDONTWRITEBYTECODE (set here in some dev
        # shells) would make every measured process compile cadence from source again (~40 ms).
        # Cache bytecode in the work folder, so nothing is written into the source tree.
        CHILD_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        CHILD_ENV["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    env["bytecode"] = (
        "uncached (environment as is)" if args.no_bytecode_cache else "cached (PYTHONPYCACHEPREFIX)"
    )
    results = []
    try:
        warm_up(args, workdir)
        for n in sizes:
            results.append(bench_size(n, args, workdir))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    env_end = environment(args.python)
    if (env_end["commit"], env_end["dirty"]) != (env["commit"], env["dirty"]):
        env["commit_at_end"] = env_end["commit"] + (" (dirty tree)" if env_end["dirty"] else "")
    result = {
        "date": dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds"),
        "env": env,
        "command": " ".join(
            [Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])
        ),
        "cadence_cmd": args.cadence,
        "against_cmd": args.against,
        "sizes": results,
        "targets": evaluate({r["models"]: r for r in results}),
        "seconds": round(time.perf_counter() - started, 1),
        "harness_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(render(result))
    print(f"\n(results: {args.output}; {result['seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
