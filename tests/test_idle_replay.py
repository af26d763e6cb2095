"""The idle shortcut never skips work (issue 21): a seeded, randomized differential replay.

Each scenario is a small project (models at different cadences, two exported channels -- files,
or by seed a webhook -- and a served one, a suppression model, a model that fails while the file
it reads is gone, freshness objectives, an alert webhook whose receiver goes down for minutes at
a time: a 127.0.0.1 port nothing listens on) replayed minute by minute with ``--at``, as cron
would run it. At each minute a random event may happen behind cadence's back (a table dropped,
rows appended to a source file or table, the file a model reads deleted or restored, a model
edited, an environment variable a model reads set, a members file, the state snapshot or
another file under target/ deleted, an older warehouse file put back with ``cp -p``, a run
killed with SIGKILL at a step boundary, cron minutes missed, a user's own command). Then the
shortcut (``build.idle.asleep``) is asked:

- not asleep: the minute's ``run --due`` takes the full path on the project (the CLI), as cron
  would;
- asleep: the full path is run on a copy of the project (``Project.run`` never asks the
  shortcut), and it must have done nothing: no model built or failed, nothing delivered, no
  snapshot written, no request to the receiver, no file under the project added, removed or
  changed (the load cache aside), and no row of the warehouse (``_cadence`` included) changed.
  The project itself is left as the shortcut left it.

A miss names the seed, the minute and the events so far, to replay it alone (REPLAY_SEEDS)."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import os
import random
import shutil
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import duckdb
import pytest
from activation_project import cadence as cadence_process
from conftest import invoke

from cadence.build import idle
from cadence.project import Project

UTC = dt.timezone.utc
WALL = dt.datetime(2030, 1, 1, tzinfo=UTC)  # never read: every call passes --at
START = dt.datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
CADENCES = ["every 5 minutes", "every 10 minutes", "every 15 minutes", "every 20 minutes"]
CADENCES += ["*/3 * * * *", "7,37 * * * *", "every 30 minutes", "hourly"]
ENV_VAR = "CADENCE_REPLAY_V"
SECRET_ENV = "CADENCE_REPLAY_SECRET"
# what a run rewrites without it being work (the load cache, the lock, the wake file itself)
NOT_WORK = {"target/wake.json", "target/cadence.lock", "target/cadence.lock.json"}
FAULTS = [
    "before_deliver",
    "after_tick",
    "after_freeze",
    "after_synced",
    "after_data",
    "after_manifest",
    "roster_after_part",
    "roster_after_members",
    "roster_after_merge",
]


def dead_port() -> int:
    """A 127.0.0.1 port nothing listens on (the alert receiver is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """The receiver of alerts (and webhook exports) on 127.0.0.1:``port``: down (nothing
    listens) until ``up``; it accepts every request while up, and counts them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: http.server.ThreadingHTTPServer | None = None
        self.requests = 0

    def up(self) -> None:
        outer = self

        class Accept(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                outer.requests += 1
                self.rfile.read(int(self.headers["content-length"]))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        if self.server is None:
            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Accept)
            threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def project_files(rng: random.Random, port: int) -> tuple[dict[str, str], str]:
    pick = rng.choice
    file_export = "{format: jsonl}"
    webhook_export = (  # to the same receiver: down during an outage
        f"{{kind: webhook, url: 'http://127.0.0.1:{port}/hook', secret_env: {SECRET_ENV}, "
        "timeout_s: 1, max_attempts: 1}"
    )
    yml = f"""\
name: replay
warehouse: {{engine: duckdb, path: warehouse.duckdb, threads: 1}}
timezone: {pick(["UTC", "Europe/Berlin"])}
alerts:
  webhook: {{url: "http://127.0.0.1:{port}/alerts", secret_env: {SECRET_ENV}, timeout_s: 1}}
channels:
  email:
    cadence: "{pick(CADENCES)}"
    suppress: [unsubscribed]
    export: {{format: csv, columns: [v]}}
    freshness: {{warn_after: {pick([10, 20, 40])}m, error_after: {pick([45, 60])}m}}
  routing:
    cadence: "{pick(CADENCES)}"
    export: {pick([file_export, webhook_export])}
  web: {{cadence: "{pick(CADENCES)}", serve: true}}
"""
    files = {
        "models/sources.yml": f"""\
sources:
  - name: raw
    tables:
      - name: events
        external_location: data/events.csv
        loaded_at: loaded_at
        freshness:  # at error, it holds email_seg's deliveries back (SPEC §11)
          warn_after: {{count: {pick([15, 30])}, period: minute}}
          error_after: {{count: 35, period: minute}}
      - name: flaky
        external_location: data/flaky.csv
  - name: app
    tables:
      - name: orders
        loaded_at: loaded_at
""",
        "models/staging/stg_events.sql": (
            "{{ config(materialized='view') }}\n"
            "select id, loaded_at from {{ source('raw', 'events') }}\n"
        ),
        "models/email_seg.sql": (
            "{{ config(channels=['email'], key='id') }}\n"
            f"select id, '{{{{ env_var('{ENV_VAR}', 'a') }}}}' as v "
            "from {{ ref('stg_events') }}\n"
        ),
        "models/unsubscribed.sql": (
            f"{{{{ config(cadence='{pick(CADENCES)}') }}}}\n"
            "select id from {{ source('app', 'orders') }} where id % 4 = 0\n"
        ),
        "models/routing_seg.sql": (
            "{{ config(channels=['routing'], key='id') }}\n"
            "select id from {{ source('raw', 'flaky') }}\n"
        ),
        "models/fresh_seg.sql": (
            "{{ config(channels=['routing'], key='id', refresh='"
            + pick(["on_new_data", "always"])
            + "') }}\n"
            "select id from {{ ref('stg_events') }} where id % 2 = 1\n"
        ),
        "models/web_seg.sql": (
            "{{ config(channels=['web'], key='id') }}\n"
            "select id, loaded_at from {{ source('app', 'orders') }}\n"
        ),
        "models/rollup.sql": (
            f"{{{{ config(cadence='{pick(CADENCES)}') }}}}\n"
            "select count(*) as n from {{ ref('email_seg') }}\n"
        ),
        "data/events.csv": "id,loaded_at\n"
        + "".join(f"{i},2026-03-02 04:5{i}:00+00\n" for i in range(5)),
        "data/flaky.csv": "id\n1\n2\n3\n",
    }
    return files, yml


@dataclass
class Replay:
    """One scenario: the project ``root``, its random source, what happened so far."""

    root: Path
    scratch: Path
    rng: random.Random
    monkeypatch: pytest.MonkeyPatch
    receiver: Receiver
    log: list[str] = field(default_factory=list)
    next_id: int = 100
    receiver_back: dt.datetime | None = None

    # -- events behind cadence's back ------------------------------------------------------
    def drop_table(self, now: dt.datetime) -> str:
        with duckdb.connect(str(self.root / "warehouse.duckdb")) as con:
            tables = con.sql(
                "select schema_name, table_name from duckdb_tables() "
                "where schema_name not in ('_cadence') order by 1, 2"
            ).fetchall()
            if not tables:
                return "no table to drop"
            schema, name = self.rng.choice(tables)
            con.execute(f'drop table "{schema}"."{name}"')
        return f"dropped {schema}.{name}"

    def append_file_rows(self, now: dt.datetime) -> str:
        self.next_id += 1
        with open(self.root / "data/events.csv", "a") as fh:
            fh.write(f"{self.next_id},{now.astimezone(UTC):%Y-%m-%d %H:%M:%S}+00\n")
        return f"appended event {self.next_id}"

    def append_table_rows(self, now: dt.datetime) -> str:
        self.next_id += 1
        with duckdb.connect(str(self.root / "warehouse.duckdb")) as con:
            con.execute("create table if not exists app.orders (id integer, loaded_at timestamptz)")
            con.execute("insert into app.orders values (?, ?)", [self.next_id, now])
        return f"inserted order {self.next_id}"

    def break_or_fix(self, now: dt.datetime) -> str:
        path, gone = self.root / "data/flaky.csv", self.root / "flaky.csv.away"
        if path.exists():
            path.rename(gone)
            return "broke routing_seg (its file is gone)"
        if gone.exists():
            gone.rename(path)
        return "fixed routing_seg"

    def edit_model(self, now: dt.datetime) -> str:
        models = sorted((self.root / "models").rglob("*.sql"))
        path = self.rng.choice(models)
        with open(path, "a") as fh:
            fh.write(f"-- edited at {now:%H:%M}\n")
        return f"edited {path.relative_to(self.root)}"

    def set_env(self, now: dt.datetime) -> str:
        value = self.rng.choice("abc")
        self.monkeypatch.setenv(ENV_VAR, value)
        return f"{ENV_VAR}={value}"

    def delete_target_file(self, now: dt.datetime) -> str:
        """One of the files a run leaves under target/ (by kind, then by name)."""
        target = self.root / "target"
        kinds = [
            ["observe.json"],
            ["run_results.json", "metrics.prom", "reserve", "manifest.json"],
            [str(p.relative_to(target)) for p in target.glob("serve/*.snap")],
            [str(p.relative_to(target)) for p in target.glob("members/*/changes/*")],
            [str(p.relative_to(target)) for p in target.glob("compiled/**/*.sql")],
        ]
        found = [p for p in self.rng.choice(kinds) if (target / p).is_file()]
        if not found:
            return "no such file under target/"
        path = target / self.rng.choice(sorted(found))
        path.unlink()
        return f"deleted {path.relative_to(self.root)}"

    def delete_members_file(self, now: dt.datetime) -> str:
        found = sorted((self.root / "target" / "members").rglob("*.parquet"))
        if not found:
            return "no members file"
        path = self.rng.choice(found)
        path.unlink()
        return f"deleted {path.relative_to(self.root)}"

    def delete_snapshot(self, now: dt.datetime) -> str:
        (self.root / "target" / "state_snapshot.json").unlink(missing_ok=True)
        return "deleted the state snapshot"

    def back_up_warehouse(self, now: dt.datetime) -> str:
        shutil.copy2(self.root / "warehouse.duckdb", self.scratch / "backup.duckdb")
        return "backed up the warehouse"

    def restore_warehouse(self, now: dt.datetime) -> str:
        backup = self.scratch / "backup.duckdb"
        if not backup.exists():
            return "no backup yet"
        shutil.copy2(backup, self.root / "warehouse.duckdb")  # cp -p
        return "restored an older warehouse with cp -p"

    def user_command(self, now: dt.datetime) -> str:
        """Someone runs a command of their own between two cron minutes."""
        args = self.rng.choice(
            [("run", "-s", "routing_seg"), ("run", "-s", "rollup+"), ("export",), ("seed",)]
        )
        at = (now - dt.timedelta(seconds=30)).isoformat()
        result = invoke(self.root, *args, "--at", at)
        assert result.exit_code in (0, 1), result.output
        return f"cadence {' '.join(args)}"

    def receiver_outage(self, now: dt.datetime) -> str:
        minutes = self.rng.randint(2, 8)
        self.receiver.down()
        self.receiver_back = now + dt.timedelta(minutes=minutes)
        return f"the alert receiver is down for {minutes} minutes"

    EVENTS: ClassVar[list[tuple[int, str]]] = [
        (80, ""),
        (3, "receiver_outage"),
        (4, "drop_table"),
        (6, "append_file_rows"),
        (5, "append_table_rows"),
        (4, "break_or_fix"),
        (2, "edit_model"),
        (2, "set_env"),
        (3, "delete_target_file"),
        (2, "delete_members_file"),
        (2, "delete_snapshot"),
        (3, "back_up_warehouse"),
        (2, "restore_warehouse"),
        (2, "kill"),
        (2, "cron_missed"),
        (2, "user_command"),
    ]

    def event(self) -> str:
        weights = [w for w, _ in self.EVENTS]
        return self.rng.choices([name for _, name in self.EVENTS], weights)[0]

    # -- one cron minute -------------------------------------------------------------------
    def cron(self, now: dt.datetime, fault: str | None) -> None:
        """The minute's ``run --due`` on the project itself (its shortcut said not asleep)."""
        if fault is None:
            result = invoke(self.root, "run", "--due", "--at", now.isoformat())
            assert result.exit_code in (0, 1), result.output
            return
        out = cadence_process(self.root, "run", "--due", "--at", now.isoformat(), fault=fault)
        assert out.returncode in (0, 1, -9), out.stderr  # -9: killed at the fault


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def files_of(root: Path) -> dict[str, str]:
    """Every file under the project but the warehouse and what is not work, by content."""
    out = {}
    for path in root.rglob("*"):
        rel = str(path.relative_to(root))
        if not path.is_file() or rel in NOT_WORK or rel.startswith("warehouse.duckdb"):
            continue
        if rel.startswith("target/manifest"):  # the load cache: a load, not work
            continue
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()  # a file, not a folder
    return out


def rows_of(root: Path) -> dict[str, str]:
    """Every table and view of the warehouse (``_cadence`` included), by content: its row
    count and the sum of its rows' hashes (the same rows in any order), or its definition."""
    path = root / "warehouse.duckdb"
    if not path.exists():
        return {}
    out = {}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.sql("select schema_name, table_name from duckdb_tables()").fetchall()
        for schema, name in tables:
            found = con.execute(f'select count(*), sum(hash(t)) from "{schema}"."{name}" as t')
            out[f"{schema}.{name}"] = repr(found.fetchall())
        for schema, name, sql in con.sql(
            "select schema_name, view_name, sql from duckdb_views() where not internal"
        ).fetchall():
            out[f"{schema}.{name} (view)"] = str(sql)
    return out


def differences(before: dict[str, str], after: dict[str, str]) -> list[str]:
    keys = sorted(set(before) | set(after))
    return [k for k in keys if before.get(k) != after.get(k)]


def full_path_on_a_copy(replay: Replay, now: dt.datetime) -> list[str]:
    """What the full path does at ``now`` on a copy of the project: each thing it built,
    delivered or wrote (empty: nothing, as the shortcut claimed). The copy takes the project's
    own path (paths a project makes absolute, such as a source's file, stay the same) while the
    project itself is kept aside, untouched, and put back after."""
    root, kept = replay.root, replay.scratch / "kept"
    root.rename(kept)
    try:
        shutil.copytree(kept, root, symlinks=True)
        files, warehouse = files_of(root), digest(root / "warehouse.duckdb")
        requests = replay.receiver.requests
        result = Project.load(root).run(now, due_only=True)
        work = [f"{r.name} {r.status}" for r in result.results if r.status != "skipped"]
        if replay.receiver.requests != requests:
            work.append(f"{replay.receiver.requests - requests} requests to the receiver")
        if result.deliveries is not None:
            work.append(f"deliveries: {result.deliveries}")
        if result.snapshots is not None:
            work.append(f"snapshots: {result.snapshots}")
        work += [f"file {f}" for f in differences(files, files_of(root))]
        if digest(root / "warehouse.duckdb") != warehouse:  # the same bytes: the same rows
            work += [f"rows of {t}" for t in differences(rows_of(kept), rows_of(root))]
    finally:
        shutil.rmtree(root)
        kept.rename(root)
    return work


def replay(seed: int, minutes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    receiver = Receiver(dead_port())
    files, yml = project_files(rng, receiver.port)
    root = tmp_path / "project"
    for rel, text in {**files, "cadence.yml": yml}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    monkeypatch.setenv(SECRET_ENV, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    monkeypatch.delenv(ENV_VAR, raising=False)
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:  # what a loader left
        con.execute("create schema app")
        con.execute(
            "create table app.orders as select range::integer as id, "
            "timestamptz '2026-03-02 04:00:00+00' as loaded_at from range(6)"
        )
    replayed = Replay(root, tmp_path, rng, monkeypatch, receiver)
    receiver.up()  # up at first; an event takes it down (and up again)
    try:
        replay_minutes(replayed, seed, minutes)
    finally:
        receiver.down()


def replay_minutes(replayed: Replay, seed: int, minutes: int) -> None:
    root, rng, log = replayed.root, replayed.rng, replayed.log
    assert invoke(root, "run", "--at", START.isoformat()).exit_code in (0, 1)
    asleep_minutes, minute = 0, 0
    while minute < minutes:
        minute += 1
        now = START + dt.timedelta(minutes=minute)
        if replayed.receiver_back is not None and now >= replayed.receiver_back:
            replayed.receiver.up()
            replayed.receiver_back = None
        name, fault = replayed.event(), None
        if name == "kill":
            fault = rng.choice(FAULTS)
            log.append(f"{minute:02d} kill -9 at {fault} (a run taking the full path)")
        elif name == "cron_missed":  # the machine was off: cron resumes minutes later
            minute += rng.randint(2, 12)
            now = START + dt.timedelta(minutes=minute)
            log.append(f"{minute:02d} cron resumed")
        elif name:
            log.append(f"{minute:02d} {getattr(replayed, name)(now)}")
        if idle.asleep(root, now.isoformat(), WALL):
            asleep_minutes += 1
            work = full_path_on_a_copy(replayed, now)
            assert not work, (
                f"seed {seed}, minute {minute} ({now:%H:%M}): the shortcut said asleep, "
                f"the full path did {work}; events: {log}"
            )
        else:
            replayed.cron(now, fault)
    assert asleep_minutes >= 5, log  # the shortcut was taken, and checked against the full path


# seeds chosen to cover each kind of event at least once (a table dropped, rows for a source
# file and table, the breakable model broken, kills at delivery and members steps, an older
# warehouse restored, observe.json deleted, a receiver outage, a user's command); more seeds:
# REPLAY_SEEDS=1,2,3 pytest tests/test_idle_replay.py
SEEDS = [int(s) for s in os.environ.get("REPLAY_SEEDS", "3,5,8").split(",")]


@pytest.mark.parametrize("seed", SEEDS)
def test_the_idle_shortcut_never_skips_work(seed, tmp_path, monkeypatch):
    replay(seed, 40, tmp_path, monkeypatch)
