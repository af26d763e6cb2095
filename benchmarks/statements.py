"""DuckDB's own cost of the statements a publish is made of (issue 21: why the build targets miss).

    python benchmarks/statements.py [--n 400] [--rounds 3] [--threads 4] [--output FILE]

Raw DuckDB (no cadence code), one process, a fresh on-disk warehouse per measurement, each
figure the median over --rounds of --n repetitions, in ms per repetition:

  select 1              a trivial statement: the floor of one round trip
  one-row insert        the 12-column build record, in autocommit, at --threads and at 1 thread
  create table as       a small model (1,000 source rows grouped), autocommit (what raw does)
  publish pattern       begin, create staging, drop, rename, build record, commit
  first version         begin, create live (in place), build record, commit
  + tests query         the first version plus a not_null and unique count on it (a segment's
                        key checks), as one query

and each figure's ratio to `create table as` measured in the same run (the baseline a raw
DuckDB build pays per model). Writes benchmarks/results/statements.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
BUILDS = """create table builds (run_id varchar, model varchar, kind varchar, tick timestamp,
    started_at timestamp, finished_at timestamp, status varchar, reason varchar, rows bigint,
    duration_s double, sql_hash varchar, error varchar)"""
RECORD = "insert into builds values (?, ?, 'model', null, now(), now(), 'success', 'due', ?, 0.0, ?, null)"
MODEL = "select customer_id, m, count(*) as n from src where m > 2 group by all"
TESTS = (
    "with counted as (select (select count(*) from (select customer_id from {t} "
    "where customer_id is null) s) as f0, (select count(*) from (select customer_id, count(*) "
    "from {t} where customer_id is not null group by customer_id having count(*) > 1) s) "
    "as f1) select f0, f0 != 0, f1, f1 != 0 from counted"
)

Step = Callable[[duckdb.DuckDBPyConnection, int], None]


def _select(con: duckdb.DuckDBPyConnection, i: int) -> None:
    con.execute("select 1").fetchall()


def _insert(con: duckdb.DuckDBPyConnection, i: int) -> None:
    con.execute(RECORD, ["run", f"t{i}", i, "h"])


def _create(con: duckdb.DuckDBPyConnection, i: int) -> None:
    con.execute(f"create table t{i} as ({MODEL})")


def _pattern(con: duckdb.DuckDBPyConnection, i: int) -> None:
    con.execute("begin transaction")
    rows = con.execute(f"create table t{i}__staging as ({MODEL})").fetchall()[0][0]
    con.execute(f"drop table if exists t{i}")
    con.execute(f"alter table t{i}__staging rename to t{i}")
    con.execute(RECORD, ["run", f"t{i}", rows, "h"])
    con.execute("commit")


def _first(con: duckdb.DuckDBPyConnection, i: int, tests: bool = False) -> None:
    con.execute("begin transaction")
    rows = con.execute(f"create table t{i} as ({MODEL})").fetchall()[0][0]
    if tests:
        con.execute(TESTS.format(t=f"t{i}")).fetchall()
    con.execute(RECORD, ["run", f"t{i}", rows, "h"])
    con.execute("commit")


def _tested(con: duckdb.DuckDBPyConnection, i: int) -> None:
    _first(con, i, tests=True)


def measure(step: Step, n: int, threads: int, folder: Path) -> float:
    """ms per repetition of ``step`` on a fresh warehouse."""
    path = folder / "w.duckdb"
    for leftover in (path, Path(str(path) + ".wal")):
        if leftover.exists():
            leftover.unlink()
    con = duckdb.connect(str(path), config={"threads": threads})
    con.execute("create table src as select range as customer_id, range % 7 as m from range(1000)")
    con.execute(BUILDS)
    started = time.perf_counter()
    for i in range(n):
        step(con, i)
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed / n * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--output", default=str(HERE / "results" / "statements.json"))
    args = parser.parse_args()
    cases: list[tuple[str, Step, int]] = [
        ("select 1", _select, args.threads),
        ("one-row insert", _insert, args.threads),
        ("one-row insert, 1 thread", _insert, 1),
        ("create table as", _create, args.threads),
        ("publish pattern", _pattern, args.threads),
        ("first version", _first, args.threads),
        ("first version + tests query", _tested, args.threads),
    ]
    samples: dict[str, list[float]] = {name: [] for name, _step, _t in cases}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):  # rounds interleave the cases: load hits them alike
            for name, step, threads in cases:
                samples[name].append(measure(step, args.n, threads, Path(tmp)))
    base = statistics.median(samples["create table as"])
    print(f"DuckDB {duckdb.__version__}, threads {args.threads}, load {os.getloadavg()[0]:.2f}")
    print(f"{'statement':32} {'ms each':>8} {'÷ create':>9}")
    result = {}
    for name, values in samples.items():
        median = statistics.median(values)
        result[name] = {"ms": round(median, 3), "ratio": round(median / base, 3), "samples": values}
        print(f"{name:32} {median:8.3f} {median / base:8.2f}x")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(
        json.dumps({"duckdb": duckdb.__version__, "threads": args.threads, "n": args.n,
                    "cases": result}, indent=1) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
