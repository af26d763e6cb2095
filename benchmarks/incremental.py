"""Incremental models (issue 8): a tick that adds --new rows to a --rows-row incremental model
against a full rebuild of the same model, measured in the same run:

    python benchmarks/incremental.py [--rows 10000000] [--new 10000] [--repeat 3] [--segment]
                                     [--output benchmarks/results/incremental.json]

The project has one source table (``raw.events``, loaded straight into the warehouse) and one
model ``materialized: incremental`` with ``unique_key`` and ``watermark``. Each repeat appends
--new rows to the source and runs the model through ``Project.run`` (the incremental tick: only
rows past the watermark are read, matching keys replaced), then times ``full_refresh=True``
(the whole table rebuilt, staged, tested and swapped). Both go through cadence end to end
(render, publish, state). Target: the incremental tick >= 20x faster than the full rebuild.
Beside them, in the same run: the raw DuckDB tick, the same merge written by hand on a twin
table and run as one process would (open, watermark, delete + insert in one transaction,
close): the floor under any tool's tick on this warehouse, so ``rebuild / raw tick`` is the
largest speedup an end-to-end tick can show here.
Also reported: the model's own build time (``ModelResult.duration_s``: stage, test, merge or
swap, state record; without opening the warehouse, planning, committing state and closing),
which shows what the per-invocation cost of ``cadence run`` leaves to the model.
``--segment``: the model is a segment (``key='event_id'``, watermark only, no ``unique_key``):
each tick also records membership entries and checks the key unique over the merged table.
Each measurement alternates tick and rebuild in the same run (a paired comparison); the peak
RSS of the process (DuckDB runs in it) and the load average at the start are reported too.
Prints a table with PASS/MISS and writes JSON (--output).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import duckdb  # noqa: E402

from cadence.project import Project  # noqa: E402

START = dt.datetime(2026, 6, 1, 5, 0, tzinfo=dt.timezone.utc)
TARGET = 20.0

MODEL = """\
{{ config(materialized='incremental', unique_key='event_id', watermark='loaded_at') }}
select event_id, customer_id, amount, loaded_at from {{ source('app', 'events') }}
"""
SEGMENT = """\
{{ config(materialized='incremental', key='event_id', watermark='loaded_at') }}
select event_id, customer_id, amount, loaded_at from {{ source('app', 'events') }}
"""
SOURCES = """\
sources:
  - name: app
    schema: raw
    tables: [{name: events}]
"""


def write_project(root: Path, segment: bool = False) -> None:
    (root / "models").mkdir(parents=True)
    (root / "cadence.yml").write_text(
        "name: incbench\nwarehouse: {engine: duckdb, path: warehouse.duckdb, threads: 2}\n"
        "timezone: UTC\n"
    )
    (root / "models" / "events_inc.sql").write_text(SEGMENT if segment else MODEL)
    (root / "models" / "_sources.yml").write_text(SOURCES)


def add_rows(root: Path, first: int, count: int, at: dt.datetime) -> None:
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    try:
        con.execute("create schema if not exists raw")
        con.execute(
            "create table if not exists raw.events (event_id bigint, customer_id bigint, "
            "amount double, loaded_at timestamp)"
        )
        stamp = at.replace(tzinfo=None)
        con.execute(
            "insert into raw.events select i, i % 100000, (i % 997) / 10.0, "
            "?::timestamp + to_microseconds(i - ?) from range(?, ?) t(i)",
            (stamp, first, first, first + count),
        )
    finally:
        con.close()


RAW_TWIN = "main.events_raw"  # the same model kept by hand: what any tool on DuckDB pays


def raw_twin(root: Path) -> None:
    """The twin table of the raw tick, built once from the source."""
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    try:
        con.execute(
            f"create table {RAW_TWIN} as select event_id, customer_id, amount, loaded_at "
            "from raw.events"
        )
    finally:
        con.close()


def raw_tick(root: Path) -> float:
    """The incremental tick written by hand against DuckDB, as one process would run it:
    open the warehouse, read the watermark, delete the rows the new ones replace and insert the
    new ones in one transaction, close (DuckDB checkpoints). No tests, no state, no lock."""
    started = time.perf_counter()
    con = duckdb.connect(str(root / "warehouse.duckdb"), config={"threads": 2})
    try:
        con.execute(f"set variable wm = (select max(loaded_at) from {RAW_TWIN})")
        con.execute("begin transaction")
        con.execute(
            "create temp table new_rows as select event_id, customer_id, amount, loaded_at "
            "from raw.events where loaded_at > getvariable('wm')"
        )
        con.execute(
            f"delete from {RAW_TWIN} as t where exists "
            "(select 1 from new_rows as s where s.event_id = t.event_id)"
        )
        con.execute(f"insert into {RAW_TWIN} select * from new_rows")
        con.execute("commit")
    finally:
        con.close()
    return time.perf_counter() - started


def build(root: Path, at: dt.datetime, full_refresh: bool) -> tuple[float, float]:
    """(seconds of the whole ``Project.run``, seconds of the model's own build)."""
    project = Project.load(root)
    started = time.perf_counter()
    result = project.run(at, full_refresh=full_refresh)
    elapsed = time.perf_counter() - started
    bad = [r for r in result.results if r.status != "success"]
    if bad:
        raise SystemExit(f"build failed: {bad}")
    return elapsed, sum(r.duration_s for r in result.results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--segment", action="store_true", help="a segment: key, no unique_key")
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cadence-incbench-") as tmp:
        root = Path(tmp) / "project"
        write_project(root, args.segment)
        add_rows(root, 0, args.rows, START)
        first, _ = build(root, START, full_refresh=False)  # the first build is a full one
        raw_twin(root)
        raw: list[float] = []
        incremental: list[float] = []
        full: list[float] = []
        inc_model: list[float] = []
        full_model: list[float] = []
        offset = args.rows
        for i in range(args.repeat):
            at = START + dt.timedelta(hours=i + 1)
            add_rows(root, offset, args.new, at)
            offset += args.new
            if i % 2:
                raw.append(raw_tick(root))
            run_s, model_s = build(root, at, full_refresh=False)
            incremental.append(run_s)
            inc_model.append(model_s)
            if not i % 2:
                raw.append(raw_tick(root))
            run_s, model_s = build(root, at + dt.timedelta(minutes=30), full_refresh=True)
            full.append(run_s)
            full_model.append(model_s)
        con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
        try:
            count = con.execute("select count(*) from main.events_inc").fetchone()
            twin = con.execute(f"select count(*) from {RAW_TWIN}").fetchone()
        finally:
            con.close()
    assert count is not None and count[0] == offset, (count, offset)
    assert twin is not None and twin[0] == offset, (twin, offset)
    raw_s = statistics.median(raw)
    inc_s, full_s = statistics.median(incremental), statistics.median(full)
    speedup = full_s / inc_s
    inc_m, full_m = statistics.median(inc_model), statistics.median(full_model)
    verdict = "PASS" if speedup >= TARGET else "MISS"
    kind = "segment (key, membership)" if args.segment else "model"
    print(f"incremental {kind} of {args.rows:,} rows, ticks adding {args.new:,} rows")
    print(f"  first build          {first:8.3f} s")
    print(f"  incremental tick     {inc_s:8.3f} s  (median of {args.repeat})")
    print(f"  full rebuild         {full_s:8.3f} s  (median of {args.repeat})")
    print(f"  speedup              {speedup:8.1f}x  target >= {TARGET:g}x  {verdict}")
    print(
        f"  model build alone    {inc_m:8.3f} s tick, {full_m:.3f} s rebuild: {full_m / inc_m:.1f}x"
    )
    print(
        f"  raw DuckDB tick      {raw_s:8.3f} s  (the same merge by hand, open to close): "
        f"cadence tick {inc_s / raw_s:.2f}x it; rebuild / raw tick {full_s / raw_s:.1f}x "
        "(the most any tool on DuckDB reaches here)"
    )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS             {peak_mib:8.0f} MiB  (load average at start {load[0]:.2f})")
    if args.output:
        args.output.write_text(
            json.dumps(
                {
                    "rows": args.rows,
                    "segment": args.segment,
                    "new": args.new,
                    "first_build_s": first,
                    "incremental_s": inc_s,
                    "full_rebuild_s": full_s,
                    "speedup": speedup,
                    "incremental_runs_s": incremental,
                    "model_build_incremental_s": inc_m,
                    "model_build_full_s": full_m,
                    "model_build_speedup": full_m / inc_m,
                    "full_rebuild_runs_s": full,
                    "raw_tick_s": raw_s,
                    "raw_tick_runs_s": raw,
                    "tick_vs_raw_tick": inc_s / raw_s,
                    "full_rebuild_vs_raw_tick": full_s / raw_s,
                    "peak_rss_mib": round(peak_mib),
                    "load_average_at_start": [round(x, 2) for x in load],
                    "date": dt.date.today().isoformat(),
                    "target": TARGET,
                    "pass": speedup >= TARGET,
                },
                indent=2,
            )
            + "\n"
        )
    return 0 if speedup >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
