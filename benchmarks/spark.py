"""Spark benchmarks (issue 11), each a ratio against a baseline measured in the same run.

    python benchmarks/spark.py --remote sc://127.0.0.1:15002 [--models 100] [--events 20000]

1. build: `cadence run` of the generated project on Spark (publish, tests, local state and the
   state mirror included) against executing the same SQL statements by hand, one after the other,
   through the same Spark Connect session (the statements cadence sent, recorded with their
   parameters and whether cadence read their rows, replayed with the run id replaced so they
   build new versions; a query is collected exactly where cadence collected it, since Spark
   Connect runs a query only when its rows are read). Target: <= 1.3x. The baseline leaves out
   what cadence does that is not Spark SQL (transpiling, the local state file, the mirror's
   uploads), so the ratio is cadence's whole overhead.
2. no-op: `cadence run --due` with nothing due, engine spark against the same project on engine
   duckdb, as whole processes (minimum of --repeat runs). Target: <= 1.2x (no JVM, no connection).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from generate import generate  # noqa: E402

from cadence.engines import spark as spark_engine  # noqa: E402
from cadence.engines import spark_session  # noqa: E402
from cadence.project import Project  # noqa: E402

AT = dt.datetime(2026, 3, 2, 5, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def set_warehouse(root: Path, line: str) -> None:
    yml = (root / "cadence.yml").read_text()
    yml = re.sub(r"^warehouse:.*$", line, yml, count=1, flags=re.M)
    (root / "cadence.yml").write_text(yml)


class Statement:
    """One statement cadence sent to Spark: its text, parameters, and whether it read rows."""

    def __init__(self, text: str, params: tuple[object, ...]) -> None:
        self.text, self.params, self.collected = text, params, False


def recorded_build(root: Path) -> tuple[float, list[Statement], str]:
    """One full `run`, timed, with every Spark statement it sent (text, parameters, and whether
    its rows were collected), so the baseline replays exactly that."""
    statements: list[Statement] = []
    sql, collect = spark_engine.SparkEngine._sql, spark_engine.SparkEngine._collect

    def record(self, statement, params=()):  # type: ignore[no-untyped-def]
        statements.append(Statement(statement, tuple(params)))
        return sql(self, statement, params)

    def record_collect(self, statement, params=()):  # type: ignore[no-untyped-def]
        rows = collect(self, statement, params)
        statements[-1].collected = True
        return rows

    spark_engine.SparkEngine._sql = record  # type: ignore[method-assign]
    spark_engine.SparkEngine._collect = record_collect  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        result = Project.load(root).run(AT)
        elapsed = time.perf_counter() - started
    finally:
        spark_engine.SparkEngine._sql = sql  # type: ignore[method-assign]
        spark_engine.SparkEngine._collect = collect  # type: ignore[method-assign]
    failed = [r.name for r in result.results if r.status not in ("success", "skipped")]  # type: ignore[union-attr]
    if failed:
        raise SystemExit(f"models failed on Spark: {failed[:5]}")
    return elapsed, statements, result.run_id  # type: ignore[union-attr]


def by_hand(spark, statements: list[Statement], run_id: str) -> float:  # type: ignore[no-untyped-def]
    """The same statements through the same kind of Connect session, one after the other, with
    the run id replaced (new versions are built, as cadence's were); rows read where cadence
    read them. Spark Connect runs commands (DDL, inserts) when sent, queries when collected."""
    old = run_id.lower().replace("-", "_")
    new = "29991231t000000_" + uuid.uuid4().hex[:8]
    started = time.perf_counter()
    for statement in statements:
        args = list(statement.params) if statement.params else None
        frame = spark.sql(statement.text.replace(old, new), args=args)
        if statement.collected:
            frame.collect()
    return time.perf_counter() - started


def process_min(cmd: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        best = min(best, time.perf_counter() - started)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {proc.stdout}{proc.stderr}")
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--remote", required=True, help="Spark Connect URL (sc://127.0.0.1:PORT)")
    p.add_argument("--models", type=int, default=100)
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=5, help="no-op runs per engine (minimum kept)")
    p.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cadence-spark-bench-"))
    try:
        sparked, duck = work / "spark", work / "duck"
        generate(sparked, args.models, args.events, threads=1)
        shutil.copytree(sparked, duck)
        schema = "bench_" + uuid.uuid4().hex[:8]
        set_warehouse(
            sparked,
            f'warehouse: {{engine: spark, remote: "{args.remote}", path: state.duckdb, '
            f"threads: 1, schema: {schema}}}",
        )
        set_warehouse(duck, "warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}")
        print(f"== {args.models} models, {args.events} events, Spark schema {schema}")
        first, _s, _r = recorded_build(sparked)  # creates versions, file copies; warms the JVM
        print(f"first build (cold): {first:.1f}s")
        cadence_s, statements, run_id = recorded_build(sparked)
        spark = spark_session.connect(Project.load(sparked).parsed.config.warehouse, sparked)
        hand_s = by_hand(spark, statements, run_id)
        build_ratio = cadence_s / hand_s
        print(f"build: cadence {cadence_s:.1f}s, the same {len(statements)} statements by hand "
              f"{hand_s:.1f}s -> {build_ratio:.2f}x (target <= 1.3x)")

        cadence = str(Path(sys.executable).parent / "cadence")
        assert Project.load(duck).run(AT) is not None
        later = (AT + dt.timedelta(minutes=1)).isoformat()
        noop = {}
        for name, root in (("spark", sparked), ("duckdb", duck)):
            cmd = [cadence, "run", "--due", "--at", later, "--project-dir", str(root)]
            noop[name] = process_min(cmd, args.repeat)
        noop_ratio = noop["spark"] / noop["duckdb"]
        print(f"no-op run --due: spark {noop['spark']:.3f}s, duckdb {noop['duckdb']:.3f}s -> "
              f"{noop_ratio:.2f}x (target <= 1.2x)")
        result = {
            "models": args.models,
            "events": args.events,
            "build": {"cadence_s": cadence_s, "by_hand_s": hand_s, "ratio": build_ratio,
                      "statements": len(statements), "first_s": first},
            "noop": {**{f"{k}_s": v for k, v in noop.items()}, "ratio": noop_ratio},
        }
        if args.output:
            args.output.write_text(json.dumps(result, indent=2) + "\n")
        spark.sql(f"drop schema if exists `{schema}` cascade")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
