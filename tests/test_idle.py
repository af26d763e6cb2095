"""The idle ``run --due`` (issue 21): before the next instant anything can become due, on an
unchanged project and warehouse, it exits 0 silently without loading the project or opening
the warehouse -- and it never skips work the full path would have done.

Each wake reason of docs/performance.md is a row or a test here, with fixed ``--at`` times; a
``True`` (the shortcut holds) is always checked against the full path, which must then find
nothing to build, deliver or write."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from conftest import BERLIN, DEFAULT_CADENCE_YML, at, statuses

from cadence.build import idle
from cadence.build.lock import RunLock
from cadence.plan import wake
from cadence.plan.history import ModelState, StateSnapshot
from cadence.project import Project
from cadence.record import wakefile

UTC = dt.timezone.utc
WALL = dt.datetime(2030, 1, 1, tzinfo=UTC)  # never used when --at is given

FILES = {
    "models/staging/stg_people.sql": "select range as id from range(5)\n",
    "models/routing_seg.sql": (
        "{{ config(channels=['routing'], key='id') }}\nselect id from {{ ref('stg_people') }}\n"
    ),
    "models/email_seg.sql": (
        "{{ config(channels=['email'], key='id') }}\n"
        "select id, '{{ env_var('CADENCE_IDLE_TEST', 'a') }}' as v from {{ ref('stg_people') }}\n"
    ),
}
YML = DEFAULT_CADENCE_YML + "models:\n  staging: {materialized: view}\n"


def built(make_project: Callable[..., Path], cli: Callable[..., object]) -> Path:
    root = make_project(FILES, YML)
    result = cli(root, "run", "--at", "2026-01-10T05:00")
    assert result.exit_code == 0, result.output
    return root


def asleep(root: Path, when: str) -> bool:
    return idle.asleep(root, when, WALL)


def full_path_is_idle(root: Path, when: str) -> None:
    """What the shortcut claimed: the full path at that time builds, delivers and writes
    nothing."""
    result = Project.load(root).run(at(when), due_only=True)
    assert all(r.status == "skipped" for r in result.results), [
        (r.name, r.status, r.reason) for r in result.results if r.status != "skipped"
    ]
    assert result.deliveries is None and result.snapshots is None


def drop_table(root: Path) -> None:
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("drop table email_seg")
    con.close()


def edit_wake_file(root: Path) -> None:
    path = root / "target" / "wake.json"
    path.write_bytes(path.read_bytes().replace(b"05:05:00", b"06:05:00"))  # a later wake


def hold_lock(root: Path) -> Callable[[], None]:
    return RunLock(root, "2026-01-10T05:00:30+01:00").acquire().release


CASES = [
    # (id, change made after the 05:00 build, --at, the shortcut holds)
    ("a-minute-later", None, "2026-01-10T05:01", True),
    ("just-before-the-next-tick", None, "2026-01-10T05:04:59", True),
    ("with-an-offset", None, "2026-01-10T04:04:00+00:00", True),
    ("at-the-next-tick", None, "2026-01-10T05:05", False),
    ("clock-went-back", None, "2026-01-10T04:59", False),
    ("model-edited", lambda r: open(r / FILES_EMAIL, "a").write("-- x\n"), "05:01", False),
    ("model-added", lambda r: (r / "models/new.sql").write_text("select 1"), "05:01", False),
    ("env-var-changed", "env", "2026-01-10T05:01", False),
    ("table-dropped-behind-cadences-back", drop_table, "2026-01-10T05:01", False),
    (
        "wal-beside-the-warehouse",
        lambda r: (r / "warehouse.duckdb.wal").write_bytes(b"x"),
        "05:01",
        False,
    ),
    ("members-file-missing", lambda r: (r / MEMBERS).unlink(), "2026-01-10T05:01", False),
    (
        "state-snapshot-missing",
        lambda r: (r / "target/state_snapshot.json").unlink(),
        "05:01",
        False,
    ),
    ("observe-record-missing", lambda r: (r / OBSERVED).unlink(), "2026-01-10T05:01", False),
    ("observe-record-replaced", lambda r: replace_file(r / OBSERVED), "05:01", False),
    ("wake-file-edited", edit_wake_file, "2026-01-10T05:01", False),
    ("wake-file-missing", lambda r: (r / "target/wake.json").unlink(), "2026-01-10T05:01", False),
    ("another-run-holds-the-lock", hold_lock, "2026-01-10T05:01", False),
    ("bad-at", None, "not a time", False),
]
FILES_EMAIL = "models/email_seg.sql"
MEMBERS = "target/members/routing_seg/members.parquet"
OBSERVED = "target/observe.json"  # the observe wing's record: without it a run observes anew


def replace_file(path: Path) -> None:
    """The same bytes in a new file (an older copy put back, a restore from a backup)."""
    saved = path.read_bytes()
    path.unlink()
    path.write_bytes(saved)


@pytest.mark.parametrize(
    ("change", "when", "holds"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_wake_reasons(make_project, cli, monkeypatch, change, when, holds):
    root = built(make_project, cli)
    when = when if when[0] != "0" else f"2026-01-10T{when}"
    undo = None
    if change == "env":
        monkeypatch.setenv("CADENCE_IDLE_TEST", "b")
    elif change is not None:
        undo = change(root)
    try:
        assert asleep(root, when) is holds
    finally:
        if callable(undo):
            undo()
    if holds:
        full_path_is_idle(root, when)


def test_a_missing_observe_record_is_written_by_the_full_path(make_project, cli):
    """Found by tests/test_idle_replay.py: without target/observe.json the full path observes
    anew (and writes it, with any alert for what it now sees), so the shortcut must not hold;
    the run that writes it leaves a wake file that holds again."""
    root = built(make_project, cli)
    (root / OBSERVED).unlink()
    assert not asleep(root, "2026-01-10T05:01")
    assert cli(root, "run", "--due", "--at", "2026-01-10T05:01").exit_code == 0
    assert (root / OBSERVED).is_file()
    assert asleep(root, "2026-01-10T05:02")
    full_path_is_idle(root, "2026-01-10T05:02")


def test_a_restored_older_warehouse_file_is_a_change(make_project, cli, tmp_path):
    """``cp -p`` keeps size and mtime of the older copy: its inode and ctime still differ."""
    root = built(make_project, cli)
    backup = tmp_path / "backup.duckdb"
    shutil.copy2(root / "warehouse.duckdb", backup)
    assert cli(root, "run", "--due", "--at", "2026-01-10T05:05").exit_code == 0  # routing built
    assert asleep(root, "2026-01-10T05:06")
    shutil.copy2(backup, root / "warehouse.duckdb")  # the 05:00 file, as it was
    assert not asleep(root, "2026-01-10T05:06")
    result = Project.load(root).run(at("2026-01-10T05:06"), due_only=True)
    assert {r.name for r in result.results if r.status == "success"} == {"routing_seg"}


def test_the_idle_cli_run_loads_and_opens_nothing(make_project, cli, monkeypatch):
    root = built(make_project, cli)
    stamp = (root / "target/run_results.json").stat().st_mtime_ns

    def boom(*args, **kwargs):
        raise AssertionError("the idle run loaded the project or opened the warehouse")

    monkeypatch.setattr("cadence.plan.manifest.load_fingerprinted", boom)
    monkeypatch.setattr("cadence.engines.duckdb.DuckDBEngine.open", boom)
    result = cli(root, "run", "--due", "--at", "2026-01-10T05:01")
    assert result.exit_code == 0 and result.output == ""
    assert (root / "target/run_results.json").stat().st_mtime_ns == stamp
    # anything but a plain `run --due` takes the full path (and so meets the patched loader)
    for extra in (
        ["--json"],
        ["-s", "email_seg"],
        ["--channel", "email"],
        ["--exclude", "x"],
        ["--full-refresh"],
        ["--retry-failed"],
        ["--threads", "1"],
        ["--dry-run"],
    ):
        result = cli(root, "run", "--due", "--at", "2026-01-10T05:01", *extra)
        assert "loaded the project" in result.output, extra


def imported_by_run_due(root: Path, which: str) -> str:
    """``sorted(<which>)`` printed by a fresh Python that ran ``run --due`` at 05:01, as cron
    would (``which``: a generator expression over ``sys.modules``)."""
    code = (
        "import sys\n"
        "from cadence.cli import main\n"
        "try:\n"
        f"    main(['run', '--due', '--at', '2026-01-10T05:01', '--project-dir', {str(root)!r}])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"print(sorted({which}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_an_idle_run_imports_neither_duckdb_nor_jinja(make_project, cli):
    """As a cron process: nothing heavier than the files check is even imported."""
    root = built(make_project, cli)
    heavy = "m for m in ('duckdb', 'jinja2', 'yaml', 'networkx', 'croniter') if m in sys.modules"
    assert imported_by_run_due(root, heavy) == "[]"


def test_a_failed_model_wakes_the_run_at_its_retry(make_project, cli):
    """Backoff (SPEC §4): next invocation, then 2, 4... minutes; the wake file says when."""
    broken = "{{ config(channels=['web']) }}\nselect no_such_column from range(3)\n"
    root = make_project({"models/broken.sql": broken})
    assert cli(root, "run", "--due", "--at", "2026-01-10T10:00").exit_code == 1
    assert not asleep(root, "2026-01-10T10:00:30")  # first retry: the next invocation
    assert cli(root, "run", "--due", "--at", "2026-01-10T10:01").exit_code == 1
    record = wakefile.read(root)
    assert record is not None and record.wake_at == at("2026-01-10T10:03")
    assert "broken retries" in record.reason
    assert asleep(root, "2026-01-10T10:02")
    full_path_is_idle(root, "2026-01-10T10:02")
    assert not asleep(root, "2026-01-10T10:03")
    assert cli(root, "run", "--due", "--at", "2026-01-10T10:03").exit_code == 1  # retried


def test_new_rows_for_an_on_new_data_model(make_project, cli):
    """``refresh: on_new_data`` is checked at each tick; a tick skipped for lack of rows is
    built at the next invocation that sees rows, which may land in a file the warehouse does
    not hold: while such a model waits, every run takes the full path."""
    root = make_project(
        {
            "models/sources.yml": """
                sources:
                  - name: raw
                    tables:
                      - name: events
                        external_location: data/events.parquet
                        loaded_at: loaded_at
                """,
            "models/fresh_seg.sql": (
                "{{ config(channels=['routing'], refresh='on_new_data') }}\n"
                "select count(*) as n from {{ source('raw', 'events') }}\n"
            ),
        }
    )
    (root / "data").mkdir()

    def land(loaded: str) -> None:  # a new file of events, as a loader would write it
        con = duckdb.connect()
        path = root / "data" / "events.parquet"
        con.execute(
            f"copy (select timestamptz '{loaded}' as loaded_at) to '{path}' (format parquet)"
        )
        con.close()

    land("2026-01-10 04:59:00+01")
    assert cli(root, "run", "--due", "--at", "2026-01-10T05:00").exit_code == 0
    # built for 05:00: new rows before the next tick change nothing, the shortcut holds
    land("2026-01-10 05:01:00+01")
    assert asleep(root, "2026-01-10T05:02")
    full_path_is_idle(root, "2026-01-10T05:02")
    # the 05:05 tick sees the 05:01 rows and builds; at 05:10 no new rows: skipped and waiting
    assert cli(root, "run", "--due", "--at", "2026-01-10T05:05").exit_code == 0
    assert cli(root, "run", "--due", "--at", "2026-01-10T05:10").exit_code == 0
    assert not asleep(root, "2026-01-10T05:11")
    land("2026-01-10 05:11:00+01")
    result = Project.load(root).run(at("2026-01-10T05:12"), due_only=True)
    assert {r.name for r in result.results if r.status == "success"} == {"fresh_seg"}


def test_a_failed_delivery_wakes_the_next_run(make_project, cli):
    """A delivery that failed is retried at the next invocation (SPEC §7): no shortcut."""
    yml = DEFAULT_CADENCE_YML.replace(
        'email:   {cadence: "daily at 05:00", kind: email}',
        'email:   {cadence: "daily at 05:00", kind: email, export: {format: csv}}',
    )
    root = make_project(
        {
            "models/email_seg.sql": FILES["models/email_seg.sql"].replace(
                "{{ ref('stg_people') }}", "range(3) as t(id)"
            )
        },
        yml,
    )
    (root / "exports").write_text("a file where the export folder should be")
    assert cli(root, "run", "--at", "2026-01-10T05:00").exit_code == 1
    assert not asleep(root, "2026-01-10T05:01")
    (root / "exports").unlink()
    result = Project.load(root).run(at("2026-01-10T05:01"), due_only=True)
    assert result.deliveries is not None and result.deliveries.ok
    assert asleep(root, "2026-01-10T05:02")
    full_path_is_idle(root, "2026-01-10T05:02")


def test_a_served_channel_wakes_at_its_tick_and_watches_its_snapshot(make_project, cli):
    """A served channel's snapshot is rewritten at the first run after its tick (SPEC §9),
    even when its segment has a slower cadence of its own; a missing or replaced snapshot is
    rewritten by the next run."""
    yml = DEFAULT_CADENCE_YML.replace(
        'web:     {cadence: "every 15 minutes", kind: web}',
        'web:     {cadence: "every 15 minutes", kind: web, serve: true}',
    )
    seg = "{{ config(channels=['web'], key='id', cadence='daily at 05:00') }}\nselect 1 as id\n"
    root = make_project({"models/web_seg.sql": seg}, yml)
    assert cli(root, "run", "--at", "2026-01-10T05:00").exit_code == 0
    record = wakefile.read(root)
    assert record is not None and record.wake_at == at("2026-01-10T05:15")
    assert "channel web" in record.reason
    assert asleep(root, "2026-01-10T05:14")
    full_path_is_idle(root, "2026-01-10T05:14")
    assert not asleep(root, "2026-01-10T05:15")
    snap = root / "target" / "serve" / "web.snap"
    saved = snap.read_bytes()
    snap.unlink()
    assert not asleep(root, "2026-01-10T05:14")
    snap.write_bytes(saved)  # the same bytes, a new file
    assert not asleep(root, "2026-01-10T05:14")


def test_a_planted_wake_file_is_ignored(make_project, cli, monkeypatch, tmp_path):
    """The checksum is keyed per user, outside the project: a wake file copied in from
    elsewhere (or written under another key) never verifies."""
    root = built(make_project, cli)
    assert asleep(root, "2026-01-10T05:01")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-user"))
    assert not asleep(root, "2026-01-10T05:01")
    assert wakefile.read(root) is None


def test_a_copied_project_takes_the_full_path(make_project, cli, tmp_path):
    """``cp -a`` of a project copies a wake file naming the original's warehouse and files:
    it does not verify in the copy, whose next run --due repairs what was changed there."""
    root = built(make_project, cli)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True)
    assert asleep(root, "2026-01-10T05:01")
    con = duckdb.connect(str(copy / "warehouse.duckdb"))
    con.execute("drop table main.routing_seg")
    con.close()
    (copy / MEMBERS).unlink()
    assert wakefile.read(copy) is None
    assert not asleep(copy, "2026-01-10T05:01")
    result = cli(copy, "run", "--due", "--at", "2026-01-10T05:01")
    assert result.exit_code == 0, result.output
    assert (copy / MEMBERS).exists()
    assert statuses(copy)["routing_seg"] == "success"  # rebuilt: its relation was missing
    assert asleep(copy, "2026-01-10T05:02") and asleep(root, "2026-01-10T05:02")


def test_the_wake_file_is_data_only_and_owner_only(make_project, cli):
    root = built(make_project, cli)
    path = root / "target" / "wake.json"
    assert path.stat().st_mode & 0o777 == 0o600
    head, _, body = path.read_bytes().partition(b"\n")
    assert head.split(b" ")[0] == b"cadence-wake"
    data = json.loads(body)
    assert data["wake_at"] == "2026-01-10T05:05:00+01:00"
    assert data["env"] and all(v is None or len(v) == 24 for _, v in data["env"])  # digests


# -- the wake instant, brute-forced against the pure decision -----------------------------------

PURE = {
    "models/fast.sql": "{{ config(channels=['routing']) }}\nselect 1 as id\n",
    "models/quarter.sql": "{{ config(channels=['web']) }}\nselect 1 as id\n",
    "models/daily.sql": "{{ config(channels=['email']) }}\nselect 1 as id\n",
    "models/weekday.sql": "{{ config(cadence='weekdays at 09:00') }}\nselect 1 as id\n",
    "models/cron.sql": "{{ config(cadence='17 */3 * * *') }}\nselect 1 as id\n",
    "models/odd.sql": "{{ config(cadence='every 7 minutes') }}\nselect 1 as id\n",
    "models/never.sql": "{{ config(cadence='on demand') }}\nselect 1 as id\n",
}


def state_after_builds(
    project: Project, when: dt.datetime, failed: dict[str, int]
) -> StateSnapshot:
    models, relations = {}, {}
    for name in project.model_names():
        streak = failed.get(name, 0)
        models[name] = ModelState(
            name,
            last_success_at=(when - dt.timedelta(days=1)) if streak else when,
            last_status="error" if streak else "success",
            last_attempt_at=when,
            failure_streak=streak,
            builds=1,
        )
        relations[("main", name)] = "table"
    return StateSnapshot(models, relations)


@pytest.mark.parametrize(
    ("start", "failed"),
    [
        ("2026-01-10T05:00", {}),
        ("2026-01-09T23:58", {}),  # across midnight, on a Saturday (weekdays skip it)
        ("2026-03-29T01:52", {}),  # the spring-forward night in Berlin
        ("2026-10-25T02:40+02:00", {}),  # the first 02:40 of the fall-back night
        ("2026-01-10T05:00", {"fast": 3}),  # backing off: retry at +4 minutes
        ("2026-01-10T05:00", {"daily": 2}),  # retry at +2 minutes
    ],
)
def test_the_wake_is_never_after_the_first_build(make_project, start, failed):
    project = Project.load(make_project(PURE))
    begin = at(start)
    state = state_after_builds(project, begin, failed)
    plan = project.plan(begin, due_only=True, state=state)
    found = wake.next_wake(
        wake.Moment(project.parsed, project.dag, project.cadences, state, begin, plan)
    )
    assert found is not None
    t = begin.astimezone(UTC) + dt.timedelta(minutes=1)
    first = None
    while t <= begin + dt.timedelta(hours=26):
        if project.plan(t.astimezone(BERLIN), due_only=True, state=state).to_build():
            first = t
            break
        t += dt.timedelta(minutes=1)
    assert first is not None
    assert found.at <= first
    assert first - found.at < dt.timedelta(minutes=1)  # and not needlessly early


def test_the_full_path_imports_only_the_wings_a_project_uses(make_project, cli):
    """A project with segments but no export and no served channel: a run --due that cannot
    take the shortcut imports the members-file wing, never the delivery or serve wings."""
    root = built(make_project, cli)
    (root / "target" / "wake.json").unlink()
    wings = "m for m in sys.modules if m.startswith(('cadence.activation.', 'cadence.serve'))"
    assert imported_by_run_due(root, wings) == (
        "['cadence.activation.roster', 'cadence.activation.rosterkeep', "
        "'cadence.activation.rosterstage']"
    )


DBT_SHOP = Path(__file__).parent / "projects" / "dbt_shop"


@pytest.mark.parametrize(
    ("change", "holds"),
    [
        (None, True),
        (lambda r: open(r / "profiles.yml", "a").write("# edited\n"), False),
        (lambda r: open(r / "dbt_project.yml", "a").write("# edited\n"), False),
        (lambda r: open(r / "dbt_packages/minipkg/macros/label.sql", "a").write("\n"), False),
        ("DBT_TARGET", False),
    ],
    ids=["unchanged", "profile-edited", "dbt-project-edited", "package-edited", "dbt-target-set"],
)
def test_a_dbt_project_takes_the_shortcut_until_one_of_its_files_changes(
    tmp_path, cli, monkeypatch, change, holds
):
    """A dbt project's inputs are its layout's (dbt_project.yml, the profile, installed packages,
    its folders), and dbt's environment is part of the load options: each is watched."""
    root = tmp_path / "dbt_shop"
    shutil.copytree(DBT_SHOP, root)
    (root / "cadence.yml").write_text(
        "timezone: UTC\nchannels:\n  ads: {cadence: every 4 hours, kind: ads}\n"
        "models:\n  dbt_shop:\n    marts:\n      customer_totals:\n        +channels: [ads]\n"
    )
    assert cli(root, "run", "--due", "--at", "2026-03-02T00:00").exit_code == 0
    assert (root / "target" / "cadence" / "wake.json").is_file()  # beside dbt's own files
    if change == "DBT_TARGET":
        monkeypatch.setenv("DBT_TARGET", "other")
    elif change is not None:
        change(root)
    assert asleep(root, "2026-03-02T00:30") is holds
    if holds:
        full_path_is_idle(root, "2026-03-02T00:30")


def test_a_channel_delivers_at_its_own_ticks_and_wakes_the_run_for_them(make_project, cli):
    """SPEC §7: a channel receives at its own ticks, also when none of its segments is rebuilt
    (a daily segment feeding a 4-hourly export): the wake file wakes the run for that tick."""
    # only the ads channel: a channel nothing feeds is at error by its fourth tick (SPEC §11),
    # and that crossing would wake the run first (tests/test_observe.py covers it)
    yml = "\n".join(
        line for line in DEFAULT_CADENCE_YML.splitlines() if "cadence:" not in line or "ads" in line
    ).replace(
        'ads:     {cadence: "every 4 hours", kind: ads}',
        'ads:     {cadence: "every 4 hours", kind: ads, export: {format: csv}}',
    )
    seg = "{{ config(channels=['ads'], key='id', cadence='daily at 05:00') }}\nselect 1 as id\n"
    root = make_project({"models/ads_seg.sql": seg}, yml)
    assert cli(root, "run", "--due", "--at", "2026-01-10T05:00").exit_code == 0
    record = wakefile.read(root)
    assert record is not None and record.wake_at == at("2026-01-10T08:00")
    assert asleep(root, "2026-01-10T07:59")
    full_path_is_idle(root, "2026-01-10T07:59")
    assert not asleep(root, "2026-01-10T08:00")
    result = Project.load(root).run(at("2026-01-10T08:00"), due_only=True)
    assert all(r.status == "skipped" for r in result.results)  # nothing built...
    assert result.deliveries is not None and result.deliveries.deliveries  # ...but delivered
