"""Activation benchmarks (issue 8), each subject beside its baseline in the same run:

    python benchmarks/activation.py [--members 1000000] [--churn 0.01] [--changes 10000]
                                    [--repeat 7] [--output benchmarks/results/activation.json]

1. Membership diff: ``membership.record_changes`` (EXCEPT both ways, cast, insert with change ids
   into ``_cadence.membership_changes``) on a segment of --members keys whose candidate differs
   by --churn (half leave, half join) vs raw DuckDB ``EXCEPT`` both ways over the same two tables,
   materialized as a table. Target: <= 1.5x.
2. File export: ``files.deliver_file`` of --changes frozen changes to parquet (COPY to a temp
   file, fsync, rename, manifest with sha256, fsync, rename) vs DuckDB's own ``COPY`` of the same
   rows to a parquet file. Target: <= 1.3x.

3. Members snapshot (``cadence members`` during a run): for a segment of --snapshot-members keys
   built by a real ``Project.run`` at 1% churn per run, the time ``roster.write_many`` takes after
   the publish commits (members.parquet of every key + the publish's change part, each COPY to a
   temp file, fdatasync, rename) vs the publish itself (the model's build duration: create the
   staging table, key checks, membership diff, swap, commit). Reported, no target; the first
   publish (everyone entered) is shown apart.

Each repeat runs subject and baseline back to back (order alternating) on a warm connection;
the numbers are medians. Prints a table with PASS/MISS and writes JSON (--output).
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

from cadence.activation import files, outbox  # noqa: E402
from cadence.engines.duckdb import DuckDBEngine  # noqa: E402
from cadence.load.channelconfig import ExportConfig  # noqa: E402
from cadence.load.projectconfig import WarehouseConfig  # noqa: E402
from cadence.record import membership  # noqa: E402

NOW = dt.datetime(2026, 6, 1, 5, 0, tzinfo=dt.timezone.utc)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_membership(engine: DuckDBEngine, members: int, churn: float, repeat: int) -> dict:
    moved = int(members * churn / 2)
    engine.execute("create schema if not exists seg")
    engine.execute(
        f"create or replace table seg.live as select range as id, 'user' || range || '@x.test' "
        f"as email from range({members})"
    )
    # half the churn leaves (the first ids), half joins (new ids past the end)
    engine.execute(
        f"create or replace table seg.candidate as select * from seg.live where id >= {moved} "
        f"union all select range as id, 'user' || range || '@x.test' as email "
        f"from range({members}, {members + moved})"
    )
    membership.ensure_tables(engine)
    subject, baseline = [], []
    rows = 0

    def run_subject() -> None:
        with engine.transaction():
            membership.record_changes(
                engine, segment="bench", key="id", candidate="seg.candidate", live="seg.live",
                run_id="bench", tick=NOW, at=NOW,
            )

    def run_baseline() -> None:
        engine.execute(
            "create or replace temp table raw_diff as "
            "(select id from seg.candidate except select id from seg.live) "
            "union all (select id from seg.live except select id from seg.candidate)"
        )

    run_subject(), run_baseline()  # warm-up
    rows = int(engine.query("select count(*) from raw_diff")[0][0])
    for i in range(repeat):
        engine.execute("delete from _cadence.membership_changes")  # the same size every repeat
        pair = [(subject, run_subject), (baseline, run_baseline)]
        for bucket, fn in pair if i % 2 == 0 else reversed(pair):
            bucket.append(timed(fn))
    s, b = statistics.median(subject), statistics.median(baseline)
    return {"members": members, "changes": rows, "subject_s": s, "baseline_s": b, "ratio": s / b}


def bench_export(engine: DuckDBEngine, changes: int, repeat: int, folder: Path) -> dict:
    outbox.ensure_tables(engine)
    engine.execute("delete from _cadence.outbox")
    engine.execute(
        "insert into _cadence.outbox select 'email', 'bench', range + 1, cast(range as varchar), "
        "case when range % 5 = 0 then 'exited' else 'entered' end, timestamp '2026-06-01 05:00', "
        "cast(to_json(struct_pack(email := 'user' || range || '@x.test', "
        "first_name := 'name' || range)) as varchar), null from range(?)",
        (changes,),
    )
    types = (("email", "VARCHAR"), ("first_name", "VARCHAR"))
    cursor = outbox.Cursor(changes, 0, 1, changes, NOW, types)
    counts = outbox.Counts(changes - changes // 5, changes // 5)
    config = ExportConfig(format="parquet", path="exports/{channel}/{segment}/{export_id}.parquet")
    sql = files.data_sql("email", "bench", "changes", 1, changes, types)
    subject, baseline = [], []
    target = folder / "exports" / "email" / "bench"

    def fresh() -> None:
        """Before each timed delivery (not timed): an existing manifest would short-cut it."""
        for p in target.glob("*"):
            p.unlink()

    def run_subject() -> None:
        result = files.deliver_file(
            engine, config, root=folder, export_root=None, channel="email", segment="bench",
            cursor=cursor, counts=counts, replace=False, published_at=NOW,
        )
        assert result.outcome.error is None, result.outcome.error

    def run_baseline() -> None:
        engine.execute(f"copy ({sql}) to '{folder / 'raw.parquet'}' (format parquet)")

    durable: list[float] = []

    def run_durable() -> None:
        """What durability alone costs: the same COPY, then fsync of the file and its folder."""
        import os

        path = folder / "durable.parquet"
        engine.execute(f"copy ({sql}) to '{path}' (format parquet)")
        for target_path in (path, folder):
            fd = os.open(target_path, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)

    run_subject(), run_baseline(), run_durable()
    for i in range(repeat):
        trio = [(subject, run_subject), (baseline, run_baseline), (durable, run_durable)]
        for bucket, fn in trio if i % 2 == 0 else reversed(trio):
            if fn is run_subject:
                fresh()
            bucket.append(timed(fn))
    s, b = statistics.median(subject), statistics.median(baseline)
    d = statistics.median(durable)
    return {
        "changes": changes, "subject_s": s, "baseline_s": b, "ratio": s / b,
        "copy_fsync_s": d, "ratio_vs_copy_fsync": s / d,
    }


def bench_snapshot(members: int, repeat: int, folder: Path) -> dict:
    from cadence.activation import roster
    from cadence.project import Project, Selection

    root = folder / "snapshot_project"
    (root / "models").mkdir(parents=True)
    (root / "models" / "seg.sql").write_text(
        "{{ config(channels=['web'], key='id') }}\n"
        "select range as id, 'user' || range || '@x.test' as email "
        f"from range({{{{ var('lo') }}}}, {{{{ var('lo') }}}} + {members})\n"
    )
    timings: list[float] = []
    original = roster.write_many

    def timed_write(*args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            timings.append(time.perf_counter() - start)

    roster.write_many = timed_write  # type: ignore[assignment]
    shift = members // 200  # half of 1% leaves, half joins
    publish, snapshot = [], []
    try:
        for i in range(repeat + 1):
            (root / "cadence.yml").write_text(
                "name: snap\nwarehouse: {path: w.duckdb, threads: 2}\ntimezone: UTC\n"
                f"channels:\n  web: {{cadence: every 15 minutes}}\nvars: {{lo: {i * shift}}}\n"
            )
            timings.clear()
            result = Project.load(root).run(NOW + dt.timedelta(minutes=15 * i), Selection())
            (built,) = [r for r in result.results if r.name == "seg"]
            assert built.status == "success" and len(timings) == 1, (built, timings)
            publish.append(built.duration_s or 0.0)
            snapshot.append(timings[0])
    finally:
        roster.write_many = original  # type: ignore[assignment]
    p, s = statistics.median(publish[1:]), statistics.median(snapshot[1:])
    return {
        "members": members, "changes_per_publish": 2 * shift, "publish_s": p, "snapshot_s": s,
        "ratio": s / p, "first_publish_s": publish[0], "first_snapshot_s": snapshot[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--snapshot-members", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "activation.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        engine = DuckDBEngine.open(WarehouseConfig(path="bench.duckdb", threads=2), folder)
        try:
            diff = bench_membership(engine, args.members, args.churn, args.repeat)
            export = bench_export(engine, args.changes, args.repeat, folder)
        finally:
            engine.close()
        snap = bench_snapshot(args.snapshot_members, args.repeat, folder)
    rows = [
        ("membership diff", f"{diff['members']:,} members, {diff['changes']:,} changes",
         diff, 1.5, "record_changes vs raw EXCEPT both ways"),
        ("changes export", f"{export['changes']:,} changes to parquet", export, 1.3,
         "deliver_file vs DuckDB COPY of the same rows"),
    ]
    print(f"{'benchmark':<17} {'size':<34} {'cadence':>9} {'baseline':>9} {'ratio':>6}  target")
    ok = True
    for name, size, m, limit, _what in rows:
        verdict = "PASS" if m["ratio"] <= limit else "MISS"
        ok = ok and verdict == "PASS"
        print(
            f"{name:<17} {size:<34} {m['subject_s'] * 1000:>7.1f}ms {m['baseline_s'] * 1000:>7.1f}ms "
            f"{m['ratio']:>5.2f}x  <= {limit}x {verdict}"
        )
    print(
        f"  (changes export vs COPY + fsync of file and folder: {export['copy_fsync_s'] * 1000:.1f}"
        f"ms, ratio {export['ratio_vs_copy_fsync']:.2f}x)"
    )
    print(
        f"members snapshot  {snap['members']:,} members, {snap['changes_per_publish']:,} changes/publish"
        f"   publish {snap['publish_s'] * 1000:.0f}ms, snapshot {snap['snapshot_s'] * 1000:.0f}ms "
        f"({snap['ratio']:.2f}x of the publish); first publish {snap['first_publish_s'] * 1000:.0f}ms,"
        f" its snapshot {snap['first_snapshot_s'] * 1000:.0f}ms"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps({"membership_diff": diff, "changes_export": export, "members_snapshot": snap,
                    "repeat": args.repeat}, indent=2) + "\n"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
