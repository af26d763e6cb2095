"""Incremental models (issue 8): a tick that adds --new rows to a --rows-row incremental model
against a full rebuild of the same model, measured in the same run:

    python benchmarks/incremental.py [--rows 10000000] [--new 10000] [--repeat 3]
                                     [--output benchmarks/results/incremental.json]

The project has one source table (``raw.events``, loaded straight into the warehouse) and one
model ``materialized: incremental`` with ``unique_key`` and ``watermark``. Each repeat appends
--new rows to the source and runs the model through ``Project.run`` (the incremental tick: only
rows past the watermark are read, matching keys replaced), then times ``full_refresh=True``
(the whole table rebuilt, staged, tested and swapped). Both go through cadence end to end
(render, publish, state). Target: the incremental tick >= 20x faster than the full rebuild.
Prints a table with PASS/MISS and writes JSON (--output).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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
SOURCES = """\
sources:
  - name: app
    schema: raw
    tables: [{name: events}]
"""


def write_project(root: Path) -> None:
    (root / "models").mkdir(parents=True)
    (root / "cadence.yml").write_text(
        "name: incbench\nwarehouse: {engine: duckdb, path: warehouse.duckdb, threads: 2}\n"
        "timezone: UTC\n"
    )
    (root / "models" / "events_inc.sql").write_text(MODEL)
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


def build(root: Path, at: dt.datetime, full_refresh: bool) -> float:
    project = Project.load(root)
    started = time.perf_counter()
    result = project.run(at, full_refresh=full_refresh)
    elapsed = time.perf_counter() - started
    bad = [r for r in result.results if r.status != "success"]
    if bad:
        raise SystemExit(f"build failed: {bad}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cadence-incbench-") as tmp:
        root = Path(tmp) / "project"
        write_project(root)
        add_rows(root, 0, args.rows, START)
        first = build(root, START, full_refresh=False)  # the first build is a full one
        incremental: list[float] = []
        full: list[float] = []
        offset = args.rows
        for i in range(args.repeat):
            at = START + dt.timedelta(hours=i + 1)
            add_rows(root, offset, args.new, at)
            offset += args.new
            incremental.append(build(root, at, full_refresh=False))
            full.append(build(root, at + dt.timedelta(minutes=30), full_refresh=True))
        con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
        try:
            count = con.execute("select count(*) from main.events_inc").fetchone()
        finally:
            con.close()
    assert count is not None and count[0] == offset, (count, offset)
    inc_s, full_s = statistics.median(incremental), statistics.median(full)
    speedup = full_s / inc_s
    verdict = "PASS" if speedup >= TARGET else "MISS"
    print(f"incremental model of {args.rows:,} rows, ticks adding {args.new:,} rows")
    print(f"  first build          {first:8.3f} s")
    print(f"  incremental tick     {inc_s:8.3f} s  (median of {args.repeat})")
    print(f"  full rebuild         {full_s:8.3f} s  (median of {args.repeat})")
    print(f"  speedup              {speedup:8.1f}x  target >= {TARGET:g}x  {verdict}")
    if args.output:
        args.output.write_text(
            json.dumps(
                {
                    "rows": args.rows,
                    "new": args.new,
                    "first_build_s": first,
                    "incremental_s": inc_s,
                    "full_rebuild_s": full_s,
                    "speedup": speedup,
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
