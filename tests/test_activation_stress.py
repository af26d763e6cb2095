"""Bounded stress of activation (issue 8, "how we will check it"): seeds change between ticks,
keys are suppressed after they were delivered, a holdout, a priority list, two file channels
(csv changes, jsonl full) and a kill -9 at every delivery step boundary in turn; afterwards
every change reached each channel exactly once, manifests match their files and nothing is
readable by others. Deterministic: fixed times, fault steps instead of timers."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import duckdb
from activation_project import cadence

from cadence.activation.audience import is_held_out

YML = """\
name: stress
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: UTC
channels:
  email:
    cadence: "every 5 minutes"
    suppress: [unsubscribed]
    priority: [vip, regular]
    export:
      {format: csv, mode: changes, columns: [email],
       path: "out/{channel}/{segment}/{date}/{export_id}.{format}"}
  ads:
    cadence: "every 5 minutes"
    export:
      {format: jsonl, mode: full, columns: [email],
       path: "out/{channel}/{segment}/{run_at}-{export_id}.{format}"}
"""
MODELS = {
    "models/vip.sql": "{{ config(channels=['email', 'ads'], key='id') }}\n"
    "select id, email from {{ ref('people') }} where spend >= 500\n",
    "models/regular.sql": "{{ config(channels=['email', 'ads'], key='id', "
    "holdout={'percent': 30, 'salt': 's1'}) }}\n"
    "select id, email from {{ ref('people') }} where spend >= 100\n",
}
STEPS = (
    "before_deliver",
    "after_freeze",
    "after_plan",
    "after_synced",
    "after_data",
    "after_manifest",
    "after_send",
)


def _seeds(root: Path, tick: int) -> tuple[dict[str, int], set[str]]:
    """People and unsubscribed keys of a tick: spends drift, keys move between segments,
    some are suppressed after being delivered and some come back."""
    people = {str(i): (i * 37 + tick * 211) % 900 for i in range(1, 41)}
    unsub = {str(i) for i in range(1, 41) if (i + tick) % 7 == 0}
    (root / "seeds").mkdir(exist_ok=True)
    (root / "seeds" / "people.csv").write_text(
        "id,email,spend\n" + "".join(f"{k},u{k}@x.test,{v}\n" for k, v in people.items())
    )
    (root / "seeds" / "unsubscribed.csv").write_text(
        "id\n" + "".join(f"{k}\n" for k in sorted(unsub, key=int)) if unsub else "id\n0\n"
    )
    return people, unsub


def _expected(people: dict[str, int], unsub: set[str]) -> dict[tuple[str, str], set[str]]:
    vip = {k for k, v in people.items() if v >= 500}
    regular = {k for k, v in people.items() if v >= 100}
    kept = {k for k in regular if not is_held_out("s1", k, 30)}
    return {
        ("email", "vip"): vip - unsub,
        ("email", "regular"): (kept - unsub) - vip,  # priority first, then the holdout
        ("ads", "vip"): vip,
        ("ads", "regular"): kept,
    }


def _read(data: Path, fmt: str) -> tuple[list[str], list[tuple[object, ...]]]:
    reader = "read_csv" if fmt == "csv" else "read_json"
    with duckdb.connect() as con:
        rel = con.sql(f"select * from {reader}('{data}')")
        return rel.columns, rel.fetchall()


def _destination(root: Path) -> dict[tuple[str, str], set[str]]:
    """What each channel x segment holds, replaying its files; checks every invariant."""
    by_segment: dict[tuple[str, str], list[dict[str, object]]] = {}
    for path in (root / "out").rglob("*.manifest.json"):
        body = json.loads(path.read_text())
        data = path.with_name(body["file"])
        assert hashlib.sha256(data.read_bytes()).hexdigest() == body["sha256"], path
        cols, rows = _read(data, body["format"])
        assert len(rows) == body["rows"] and cols == [c["name"] for c in body["columns"]]
        by_segment.setdefault((body["channel"], body["segment"]), []).append(
            {**body, "_rows": [dict(zip(cols, r)) for r in rows]}
        )
    data_files = [p for p in (root / "out").rglob("*") if p.is_file()]
    assert not [p for p in data_files if p.name.startswith(".")], "a temporary file was left"
    assert len(data_files) == 2 * sum(len(v) for v in by_segment.values()), "file without manifest"
    held: dict[tuple[str, str], set[str]] = {}
    for where, items in by_segment.items():
        items.sort(key=lambda m: m["change_range"]["first_seq"])  # type: ignore[index]
        expect_first = 1
        for m in items:
            span = m["change_range"]
            assert span["first_seq"] == expect_first, (where, span)  # type: ignore[index]
            expect_first = span["last_seq"] + 1  # type: ignore[index]
        if where[0] == "ads":  # full mode: the newest file is the audience
            held[where] = {str(r["key"]) for r in items[-1]["_rows"]}  # type: ignore[union-attr]
            continue
        state: dict[str, bool] = {}
        seqs = []
        for m in items:
            for r in m["_rows"]:  # type: ignore[union-attr]
                key, change = str(r["key"]), r["change"]
                seqs.append(int(r["seq"]))
                assert state.get(key, False) == (change == "exited"), (where, key, change)
                state[key] = change == "entered"
                assert change == "exited" or r["email"] == f"u{key}@x.test"
        assert seqs == list(range(1, len(seqs) + 1)), where  # each change once, in order
        held[where] = {k for k, v in state.items() if v}
    return held


def test_seed_changes_and_a_kill_at_every_step_deliver_each_change_exactly_once(make_project):
    root = make_project(MODELS, cadence_yml=YML)
    people, unsub = _seeds(root, 0)
    assert cadence(root, "run", "--at", "2026-03-01T08:00").returncode == 0
    for tick, step in enumerate(STEPS, start=1):
        people, unsub = _seeds(root, tick)
        killed = cadence(root, "run", "--at", f"2026-03-01T08:{5 * tick:02d}", fault=step)
        assert killed.returncode == -9, (step, killed.stdout, killed.stderr)
    # a tick with nothing due (the minute after the last one): the catch-up needs no build
    settle = cadence(root, "run", "--due", "--at", "2026-03-01T08:36")
    assert settle.returncode == 0, settle.stdout + settle.stderr
    assert "Traceback" not in settle.stderr
    assert _destination(root) == _expected(people, unsub)
    status = cadence(root, "status", "--at", "2026-03-01T08:37")
    assert status.stdout.count("; 0 pending") == 4, status.stdout
    for path in [root / "out", *(root / "out").rglob("*")]:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
