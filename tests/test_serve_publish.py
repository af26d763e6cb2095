"""The run hook: each run that publishes a served channel's segments writes its snapshot, with
the audience the channel's exports see (suppression, priority, holdout); a failed run keeps the
last one. Also the `cadence serve` command's checks and a real process stopped by SIGTERM."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cadence.activation.audience import is_held_out
from cadence.serve import publish
from cadence.serve.snapshot import Snapshot, snapshot_path

CADENCE_YML = """\
name: srv
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: UTC
channels:
  web:
    cadence: "every 15 minutes"
    suppress: [optout]
    priority: [vip, regular]
    serve: {columns: [tier]}
  email: {cadence: "daily at 05:00"}
"""

FILES = {
    "models/vip.sql": "{{ config(channels=['web'], key='id',"
    " holdout={'percent': 30, 'salt': 's'}) }}\n"
    "select id, 'gold' as tier from {{ ref('people') }} where spend >= 500\n",
    "models/regular.sql": "{{ config(channels=['web'], key='id') }}\n"
    "select id, 'basic' as tier from {{ ref('people') }} where spend >= 100\n",
    "models/mailing.sql": "{{ config(channels=['email'], key='id') }}\n"
    "select id from {{ ref('people') }}\n",
    "seeds/optout.csv": "id\n3\n",
}


def people(root: Path, rows: dict[int, int]) -> None:
    (root / "seeds" / "people.csv").write_text(
        "id,spend\n" + "".join(f"{i},{s}\n" for i, s in rows.items())
    )


def expected(rows: dict[int, int], optout: set[int]) -> dict[str, tuple[tuple, tuple]]:
    """The web audience by hand: priority vip > regular, suppression, holdout on vip."""
    out = {}
    for i, spend in rows.items():
        if i in optout or spend < 100:
            continue
        key = str(i)
        if spend >= 500:  # claimed by vip: held out of vip means nothing from web
            out[key] = ((), ("vip",)) if is_held_out("s", key, 30) else (("vip",), ())
        else:
            out[key] = (("regular",), ())
    return out


@pytest.fixture
def project(make_project: Any) -> Path:
    root = make_project(FILES, cadence_yml=CADENCE_YML)
    people(root, {i: (i * 37) % 900 for i in range(1, 60)})
    return root


def answers(root: Path) -> tuple[Snapshot, dict[str, tuple[tuple, tuple]]]:
    snap = Snapshot.open(snapshot_path(root, "web"))
    keys = [str(i) for i in range(0, 70)]
    got = {k: (a.segments, a.holdout) for k in keys if (a := snap.lookup(k))[1:3] != ((), ())}
    return snap, got


def test_a_run_writes_the_channel_audience(project: Path, cli: Any) -> None:
    result = cli(project, "run", "--at", "2026-03-01T09:00")
    assert result.exit_code == 0, result.output
    assert "serve web: snapshot" in result.output
    rows = {i: (i * 37) % 900 for i in range(1, 60)}
    snap, got = answers(project)
    want = expected(rows, {3})
    assert got == want
    assert any(h for _, h in want.values()) and any(s for s, _ in want.values())  # both kinds
    assert snap.segments == ("vip", "regular")
    vip = next(k for k, (s, _) in want.items() if s == ("vip",))
    assert dict(snap.lookup(vip).attributes) == {"tier": "gold"}
    assert snap.published_at.isoformat().startswith("2026-03-01T09:00")
    assert not snapshot_path(project, "email").exists()  # not served
    snap.close()


def test_a_run_that_changes_membership_writes_a_new_version(project: Path, cli: Any) -> None:
    assert cli(project, "run", "--at", "2026-03-01T09:00").exit_code == 0
    first = Snapshot.open(snapshot_path(project, "web"))
    rows = {i: (i * 53) % 900 for i in range(1, 80)}
    people(project, rows)
    (project / "seeds" / "optout.csv").write_text("id\n5\n7\n")
    assert cli(project, "run", "--at", "2026-03-01T09:15").exit_code == 0
    snap, got = answers(project)
    assert got == {k: v for k, v in expected(rows, {5, 7}).items() if int(k) < 70}
    assert snap.version != first.version
    assert first.lookup("3")[1:3] == ((), ())  # the open old file still answers as before
    first.close()
    snap.close()


def test_a_run_publishing_nothing_served_leaves_the_file(project: Path, cli: Any) -> None:
    assert cli(project, "run", "--at", "2026-03-01T09:00").exit_code == 0
    before = snapshot_path(project, "web").stat()
    result = cli(project, "run", "-s", "mailing", "--at", "2026-03-01T09:05")
    assert result.exit_code == 0 and "serve web" not in result.output
    after = snapshot_path(project, "web").stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_a_tick_without_builds_or_failures_refreshes_the_snapshot_time(
    project: Path, cli: Any
) -> None:
    """Segments skipped at a tick (on_new_data, an explicit slower cadence) are current: the
    snapshot is rewritten so its age (and /healthz) says so."""
    assert cli(project, "run", "--at", "2026-03-01T09:00").exit_code == 0
    first = Snapshot.open(snapshot_path(project, "web"))
    result = cli(project, "run", "-s", "mailing", "--at", "2026-03-01T09:20")  # after 09:15
    assert result.exit_code == 0 and "serve web: snapshot" in result.output
    snap, got = answers(project)
    assert snap.published_at.isoformat().startswith("2026-03-01T09:20")
    assert got == expected({i: (i * 37) % 900 for i in range(1, 60)}, {3})
    assert snap.version != first.version
    first.close()
    snap.close()


def test_a_failed_run_keeps_the_last_snapshot(project: Path, cli: Any) -> None:
    assert cli(project, "run", "--at", "2026-03-01T09:00").exit_code == 0
    version = Snapshot.open(snapshot_path(project, "web")).version
    (project / "models" / "vip.sql").write_text(
        "{{ config(channels=['web'], key='id') }}\nselect id, tier from nowhere\n"
    )
    (project / "models" / "regular.sql").write_text(
        "{{ config(channels=['web'], key='id') }}\nselect id, nope from {{ ref('people') }}\n"
    )
    result = cli(project, "run", "--at", "2026-03-01T09:15")
    assert result.exit_code == 1
    assert Snapshot.open(snapshot_path(project, "web")).version == version


def test_a_failed_snapshot_write_fails_the_run_and_keeps_the_file(
    project: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli(project, "run", "--at", "2026-03-01T09:00").exit_code == 0
    version = Snapshot.open(snapshot_path(project, "web")).version

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(publish, "write_snapshot", disk_full)
    people(project, {1: 900})
    result = cli(project, "run", "--at", "2026-03-01T09:15")
    assert result.exit_code == 1
    assert "serve web: snapshot not written" in result.output
    assert "No space left on device" in result.output
    assert Snapshot.open(snapshot_path(project, "web")).version == version


def test_a_run_killed_before_its_snapshot_is_caught_up_by_the_next_run(
    project: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli(project, "run", "--at", "2026-03-01T09:00").exit_code == 0
    version = Snapshot.open(snapshot_path(project, "web")).version
    rows = {i: 900 for i in range(1, 10)}
    people(project, rows)

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM after the segments were published

    with monkeypatch.context() as patch:
        patch.setattr(publish, "write_channel_snapshots", killed)
        assert cli(project, "run", "--due", "--at", "2026-03-01T09:15").exit_code == 130
    assert Snapshot.open(snapshot_path(project, "web")).version == version  # not written
    result = cli(project, "run", "--due", "--at", "2026-03-01T09:20")  # nothing is due
    assert result.exit_code == 0 and "serve web: snapshot" in result.output
    snap, got = answers(project)
    assert got == expected(rows, {3}) and snap.version != version
    snap.close()
    result = cli(project, "run", "--due", "--at", "2026-03-01T09:25")  # caught up: left alone
    assert result.exit_code == 0 and "serve web" not in result.output


def test_serve_refuses_a_public_bind_without_a_token(project: Path, cli: Any) -> None:
    result = cli(project, "serve", "--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 2 and "needs a bearer token" in result.output
    result = cli(project, "serve", "--host", "0.0.0.0", "--token-env", "CADENCE_NO_SUCH_VAR")
    assert result.exit_code == 2 and "not set" in result.output


def test_serve_checks_channels(project: Path, cli: Any) -> None:
    result = cli(project, "serve", "--channel", "wbe")
    assert result.exit_code == 2 and "did you mean 'web'" in result.output
    result = cli(project, "serve", "--channel", "email")
    assert result.exit_code == 2 and "is not served" in result.output


def test_cadence_serve_answers_and_stops_on_sigterm(project: Path, cli: Any) -> None:
    assert cli(project, "run", "--at", "2026-03-01T09:00").exit_code == 0
    env = {**os.environ, "SRV_TOKEN": "t0ken"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cadence",
            "serve",
            "--port",
            "0",
            "--token-env",
            "SRV_TOKEN",
            "--project-dir",
            str(project),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving web" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        snap = Snapshot.open(snapshot_path(project, "web"))
        key = next(str(i) for i in range(1, 60) if snap.lookup(str(i)).segments)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/channels/web/members/{key}",
            headers={"Authorization": "Bearer t0ken"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            body = json.loads(response.read())
        assert body["segments"] == list(snap.lookup(key).segments)
        assert body["version"] == snap.version and "attributes" in body
        snap.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = proc.wait(timeout=15)
    assert code == 0 and time.monotonic() - started < 10
    assert "stopped" in proc.stderr.read()


def test_the_warehouse_query_gives_the_file_the_python_path_gives() -> None:
    """``audience_query`` (grouping, bit sets, md5, sort in DuckDB) + ``read_audience`` encode
    to the very bytes of the same audience given as ``Member`` values: past 64 segments (two
    mask words, bit 63 the sign bit of a BIGINT), held-out keys, attributes from the first
    segment, in the channel's order, that delivers the key, a column named like the query's
    own columns, and an empty audience."""
    import duckdb

    from cadence.engines.duckdb import DuckDBEngine
    from cadence.serve.snapshot import Audience, Member, encode

    names = tuple(f"s{i}" for i in range(70))
    rows = []  # (segment index, key, held out, attribute "i", attribute "key")
    for k in range(300):
        for i in (k % 70, (k * 7) % 70, 63, 64):
            if (k + i) % 3:
                rows.append((i, f"k{k}", (k + i) % 5 == 0, i * 1000 + k, f"v{i}"))
    engine = DuckDBEngine(duckdb.connect(), ":memory:")
    engine.execute('create table r (i int, key varchar, held boolean, "i_" int, "key_" varchar)')
    engine.con.executemany("insert into r values (?, ?, ?, ?, ?)", rows)
    columns = ("i", "held")  # named like the query's own columns
    parts = [
        (i, f'select key, held as held_out, "i_" as i, "key_" as held from r where i = {i}')
        for i in range(70)
    ]
    got = publish.read_audience(engine.query(publish.audience_query(parts, 2, columns)), 2, columns)
    members: dict[str, Member] = {}
    for i, key, held, attr_i, attr_key in sorted(rows):
        m = members.get(key, Member(key))
        if held:
            m = Member(key, m.segments, (*m.holdout, names[i]), m.attributes)
        else:
            first = m.attributes or {"i": attr_i, "held": attr_key}
            m = Member(key, (*m.segments, names[i]), m.holdout, first)
        members[key] = m
    at = dt.datetime(2026, 3, 1, 9, tzinfo=dt.timezone.utc)
    assert got.hashes is not None and len(got.keys) == len(members)
    assert any(m.holdout for m in members.values()) and any(
        {"s63", "s64"} <= set(m.segments) for m in members.values()
    )
    want = encode("web", names, members.values(), at, columns)
    assert encode("web", names, got, at, columns) == want
    empty = publish.read_audience(engine.query(publish.audience_query([], 2, columns)), 2, columns)
    assert encode("web", names, empty, at, columns) == encode("web", names, [], at, columns)
    assert isinstance(empty, Audience)
    engine.close()
