"""`cadence members` while a run holds the warehouse (SPEC §6): each publish of a segment leaves
its members and membership changes as parquet files beside the warehouse (target/members/), and
`members [--changes] [--since T] [--json]` answers from them, saying as of when; written only
when membership changed, owner-only, atomic across kill -9, pruned with history.keep_days."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from activation_project import CADENCE_YML, cadence, make_activation, query, set_people

from cadence.activation import roster, rosterkeep, rosterstage
from cadence.build.lock import RunLock

DAY1 = [(1, 900), (2, 50), (3, 700)]
DAY2 = [(1, 900), (3, 10), (4, 800)]


def held(cli, root: Path, *args: str):
    """``cadence <args>`` while another run holds the project (as the snapshot tests do)."""
    with RunLock(root, "2026-01-02T07:00:00+00:00").acquire():
        return cli(root, *args)


def live_members(root: Path, segment: str) -> list[str]:
    return [r[0] for r in query(root, f"select cast(id as varchar) from main.{segment} order by 1")]


def live_changes(root: Path, segment: str) -> list[tuple]:
    return query(
        root,
        "select change_id, key, change, run_id from _cadence.membership_changes "
        f"where segment = '{segment}' order by change_id",
    )


def two_days(make_project, cli, cadence_yml: str = CADENCE_YML) -> Path:
    root = make_activation(make_project, DAY1, cadence_yml=cadence_yml)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    set_people(root, DAY2)
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0
    return root


def test_members_during_a_run_answers_from_the_snapshot_as_of_the_publish(make_project, cli):
    root = two_days(make_project, cli)
    assert live_members(root, "vip") == ["1", "4"]
    result = held(cli, root, "members", "vip")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["1", "4"]
    assert "a cadence run is in progress" in result.stderr
    assert "showing members as of 2026-01-02 06:00 UTC (target/members/vip)" in result.stderr
    body = json.loads(held(cli, root, "members", "vip", "--json").stdout)
    assert body == {"segment": "vip", "as_of": "2026-01-02T06:00:00+00:00", "members": ["1", "4"]}
    # the other segment too, and an empty-history case reads the same as live
    assert held(cli, root, "members", "regular").stdout.split() == live_members(root, "regular")


def test_changes_and_since_during_a_run_match_the_warehouse(make_project, cli):
    root = two_days(make_project, cli)
    live = json.loads(cli(root, "members", "vip", "--changes", "--json").stdout)
    snap = json.loads(held(cli, root, "members", "vip", "--changes", "--json").stdout)
    assert live["as_of"] is None and snap["as_of"] == "2026-01-02T06:00:00+00:00"
    assert snap["changes"] == live["changes"]
    assert [(c["key"], c["change"]) for c in snap["changes"]] == [
        ("1", "entered"),
        ("3", "entered"),
        ("4", "entered"),
        ("3", "exited"),
    ]
    text = held(cli, root, "members", "vip", "--changes")
    assert text.exit_code == 0
    assert text.stdout == cli(root, "members", "vip", "--changes").stdout
    since = held(cli, root, "members", "vip", "--since", "2026-01-02T00:00", "--json")
    assert since.exit_code == 0
    assert [(c["key"], c["change"]) for c in json.loads(since.stdout)["changes"]] == [
        ("4", "entered"),
        ("3", "exited"),
    ]
    assert "as of 2026-01-02 06:00 UTC" in since.stderr


def test_no_snapshot_yet_is_a_clear_exit_2(make_project, cli):
    root = two_days(make_project, cli)
    for path in sorted((root / "target" / "members").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    result = held(cli, root, "members", "vip")
    assert result.exit_code == 2
    assert "no members snapshot of 'vip' has been written yet" in result.output
    assert "try again when it finishes" in result.output
    assert "Traceback" not in result.output
    # the next run that finds none writes it, even when nothing of it is due
    assert cli(root, "run", "--due", "--at", "2026-01-02T06:01").exit_code == 0
    assert held(cli, root, "members", "vip").stdout.split() == ["1", "4"]


def test_snapshot_files_are_owner_only_whatever_the_umask(make_project, cli):
    old = os.umask(0o022)
    try:
        root = two_days(make_project, cli)
    finally:
        os.umask(old)
    folder = root / "target" / "members"
    found = list(folder.rglob("*"))
    assert any(p.name == "members.parquet" for p in found)
    assert any(p.parent.name == "changes" for p in found)
    for path in [folder, *found]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
        assert not path.name.endswith(".tmp")


def test_written_only_when_membership_changed(make_project, cli):
    root = two_days(make_project, cli)
    members = root / "target" / "members" / "vip" / "members.parquet"
    os.utime(members, (1_000_000_000, 1_000_000_000))
    parts = sorted((members.parent / "changes").iterdir())
    assert len(parts) == 2  # one per publish that changed vip
    # rebuilt with the same members: nothing rewritten, no new part
    assert cli(root, "run", "-s", "vip", "--at", "2026-01-03T06:00").exit_code == 0
    assert members.stat().st_mtime == 1_000_000_000
    assert sorted((members.parent / "changes").iterdir()) == parts
    set_people(root, [(1, 900)])
    assert cli(root, "run", "-s", "vip", "--at", "2026-01-04T06:00").exit_code == 0
    # a small change writes only its part: the base stays, the answer applies the part to it
    assert members.stat().st_mtime == 1_000_000_000
    assert len(list((members.parent / "changes").iterdir())) == 3
    body = json.loads(held(cli, root, "members", "vip", "--json").stdout)
    assert body["members"] == ["1"] and body["as_of"].startswith("2026-01-04T06:00")


def test_the_base_is_rewritten_once_the_changes_after_it_are_many(
    make_project, cli, monkeypatch
):
    """Each publish writes its changes only; the base (members.parquet) is rewritten when the
    changes after it reach a quarter of its rows (REBASE_MIN lowered so a few keys count), and
    the answer is the warehouse's before and after."""
    monkeypatch.setattr(roster, "REBASE_MIN", 0)
    root = make_activation(make_project, [(k, 900) for k in range(1, 9)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    members = root / "target" / "members" / "vip" / "members.parquet"
    os.utime(members, (1_000_000_000, 1_000_000_000))
    set_people(root, [(k, 900) for k in range(1, 9)] + [(9, 900)])  # 1 change < 8 // 4
    assert cli(root, "run", "-s", "vip", "--at", "2026-01-02T06:00").exit_code == 0
    assert members.stat().st_mtime == 1_000_000_000
    assert held(cli, root, "members", "vip").stdout.split() == live_members(root, "vip")
    set_people(root, [(k, 900) for k in range(3, 12)])  # exits 1, 2; enters 10, 11
    assert cli(root, "run", "-s", "vip", "--at", "2026-01-03T06:00").exit_code == 0
    assert members.stat().st_mtime != 1_000_000_000
    with duckdb.connect() as con:
        base = sorted(r[0] for r in con.sql(f"select key from read_parquet('{members}')").fetchall())
    assert base == live_members(root, "vip")  # the rewritten base is the current membership
    assert held(cli, root, "members", "vip").stdout.split() == live_members(root, "vip")


def test_answers_from_the_base_and_parts_match_the_warehouse_at_every_publish(make_project, cli):
    """Enter, exit and enter again across publishes, with the base never rewritten."""
    days = [[(1, 900), (2, 900)], [(2, 900), (3, 900)], [(1, 900), (3, 900)], [(3, 10)], [(2, 900)]]
    root = make_activation(make_project, days[0])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    for day, people in enumerate(days[1:], start=2):
        set_people(root, people)
        assert cli(root, "run", "-s", "vip", "--at", f"2026-01-0{day}T06:00").exit_code == 0
        assert held(cli, root, "members", "vip").stdout.split() == live_members(root, "vip")


def test_history_keep_days_prunes_old_parts(make_project, cli):
    yml = CADENCE_YML + "history: {keep_days: 10}\n"
    root = two_days(make_project, cli, cadence_yml=yml)
    set_people(root, [(1, 900), (5, 900)])
    assert cli(root, "run", "--at", "2026-01-20T06:00").exit_code == 0
    parts = sorted(p.name for p in (root / "target/members/vip/changes").iterdir())
    assert len(parts) == 1 and parts[0].endswith("-20260120T060000Z.parquet")
    snap = json.loads(held(cli, root, "members", "vip", "--changes", "--json").stdout)
    assert [(c["key"], c["change"]) for c in snap["changes"]] == [("5", "entered"), ("4", "exited")]
    # the warehouse pruned the same history
    live = json.loads(cli(root, "members", "vip", "--changes", "--json").stdout)
    assert live["changes"] == snap["changes"]
    assert held(cli, root, "members", "vip").stdout.split() == ["1", "5"]
    # pruning the parts the base did not cover rewrote the base first
    with duckdb.connect() as con:
        path = root / "target/members/vip/members.parquet"
        base = sorted(r[0] for r in con.sql(f"select key from read_parquet('{path}')").fetchall())
    assert base == ["1", "5"]


def visible_files_are_complete(root: Path) -> None:
    """Every file a reader would pick up reads as parquet (a half file would not)."""
    for path in (root / "target" / "members").rglob("*.parquet"):
        if not path.name.startswith("."):
            with duckdb.connect() as con:
                con.sql(f"select count(*) from read_parquet('{path}')").fetchall()


@pytest.mark.parametrize(
    "step",
    [
        "roster_before_part_rename",
        "roster_after_part",
        "roster_before_members_rename",
        "roster_after_members",
    ],
)
def test_kill_9_at_every_step_leaves_no_half_file_and_the_next_run_catches_up(
    make_project, cli, step
):
    root = make_activation(make_project, DAY1)
    assert cadence(root, "run", "--at", "2026-01-01T06:00").returncode == 0
    before = held(cli, root, "members", "vip").stdout.split()
    # enough entries that the base is rewritten too (the members steps)
    set_people(root, DAY2 + [(k, 900) for k in range(100, 100 + roster.REBASE_MIN)])
    killed = cadence(root, "run", "-s", "vip", "--at", "2026-01-02T06:00", fault=step)
    assert killed.returncode == -9, killed.stderr
    visible_files_are_complete(root)
    # a reader sees the old members or the new ones, never a mix
    during = held(cli, root, "members", "vip")
    assert during.exit_code == 0, during.output
    assert during.stdout.split() in (before, live_members(root, "vip"))
    changes = json.loads(held(cli, root, "members", "vip", "--changes", "--json").stdout)
    ids = [c["change_id"] for c in changes["changes"]]
    assert ids == sorted(set(ids))
    assert set(ids) <= {r[0] for r in live_changes(root, "vip")}
    # the next run builds something else; the killed run's publish still reaches the snapshot
    assert cadence(root, "run", "-s", "regular", "--at", "2026-01-02T06:05").returncode == 0
    assert held(cli, root, "members", "vip").stdout.split() == live_members(root, "vip")
    snap = json.loads(held(cli, root, "members", "vip", "--changes", "--json").stdout)
    assert [(c["change_id"], c["key"], c["change"], c["run_id"]) for c in snap["changes"]] == [
        tuple(r) for r in live_changes(root, "vip")
    ]
    leftovers = [p for p in (root / "target" / "members").rglob(".*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_failed_snapshot_write_warns_and_the_publish_stands(make_project, cli):
    root = make_activation(make_project, DAY1)
    (root / "target" / "members").mkdir(parents=True)
    (root / "target" / "members" / "vip").write_text("in the way\n")  # a file, not a folder
    result = cli(root, "run", "--at", "2026-01-01T06:00")
    assert result.exit_code == 0, result.output
    assert "members snapshot of vip not written" in result.output
    assert live_members(root, "vip") == ["1", "3"]  # published all the same
    (root / "target" / "members" / "vip").unlink()
    set_people(root, DAY2)
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0
    assert held(cli, root, "members", "vip").stdout.split() == ["1", "4"]
    snap = json.loads(held(cli, root, "members", "vip", "--changes", "--json").stdout)
    assert [c["change_id"] for c in snap["changes"]] == [r[0] for r in live_changes(root, "vip")]


def test_members_while_another_process_has_the_warehouse_open(make_project, cli):
    root = two_days(make_project, cli)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            f"con = duckdb.connect({str(root / 'warehouse.duckdb')!r})\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        result = cli(root, "members", "vip", "--json")
    finally:
        holder.communicate("", timeout=30)  # closing stdin ends it
    assert result.exit_code == 0, result.output
    assert "the warehouse is open in" in result.stderr
    assert json.loads(result.stdout)["members"] == ["1", "4"]


def test_parallel_builds_each_leave_their_snapshot(make_project, cli):
    root = make_activation(make_project, DAY1)
    assert cli(root, "run", "--threads", "2", "--at", "2026-01-01T06:00").exit_code == 0
    set_people(root, DAY2)
    assert cli(root, "run", "--threads", "2", "--at", "2026-01-02T06:00").exit_code == 0
    for segment in ("vip", "regular"):
        assert held(cli, root, "members", segment).stdout.split() == live_members(root, segment)
        snap = json.loads(held(cli, root, "members", segment, "--changes", "--json").stdout)
        live = [r[0] for r in live_changes(root, segment)]
        assert [c["change_id"] for c in snap["changes"]] == live


def test_earlier_days_parts_are_merged_one_per_day(make_project, cli, monkeypatch):
    monkeypatch.setattr(roster, "COMPACT_AFTER", 2)
    root = make_activation(make_project, DAY1)
    changes = root / "target" / "members" / "vip" / "changes"
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    set_people(root, [(1, 900), (3, 700), (5, 900)])
    assert cli(root, "run", "--at", "2026-01-01T12:00").exit_code == 0
    assert len(list(changes.iterdir())) == 2  # not past the limit yet
    set_people(root, DAY2)
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0
    names = sorted(p.name for p in changes.iterdir())
    assert [n.rsplit("-", 1)[1] for n in names] == [
        "20260101T120000Z.parquet",
        "20260102T060000Z.parquet",
    ]
    snap = json.loads(held(cli, root, "members", "vip", "--changes", "--json").stdout)
    assert [(c["change_id"], c["key"], c["change"], c["run_id"]) for c in snap["changes"]] == [
        tuple(r) for r in live_changes(root, "vip")
    ]


def test_kill_9_during_a_merge_keeps_every_change_once(make_project, cli):
    root = make_activation(make_project, DAY1)
    compacting = (
        "import sys; from cadence.activation import roster; roster.COMPACT_AFTER = 2; "
        "from cadence.cli import main; sys.argv[0] = 'cadence'; main()"
    )

    def run(at: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != roster.FAULT_ENV}
        if fault:
            env[roster.FAULT_ENV] = fault
        return subprocess.run(
            [sys.executable, "-c", compacting, "run", "--at", at, "--project-dir", str(root)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    assert run("2026-01-01T06:00").returncode == 0
    set_people(root, [(1, 900), (3, 700), (5, 900)])
    assert run("2026-01-01T12:00").returncode == 0
    set_people(root, DAY2)
    killed = run("2026-01-02T06:00", fault="roster_after_merge")
    assert killed.returncode == -9, killed.stderr
    visible_files_are_complete(root)
    assert any(overlapping(root, s) for s in ("vip", "regular"))  # merged, originals still there
    for segment in ("vip", "regular"):
        assert snapshot_changes(cli, root, segment) == live_rows(root, segment)
    set_people(root, [(4, 800)])
    assert run("2026-01-03T06:00").returncode == 0  # merges again, under the same name
    for segment in ("vip", "regular"):
        assert snapshot_changes(cli, root, segment) == live_rows(root, segment)
        assert not overlapping(root, segment)
        names = [p.name for p in (root / "target/members" / segment / "changes").iterdir()]
        days = [n.rsplit("-", 1)[1][:8] for n in names]
        assert len(days) == len(set(days)), names  # one part per earlier day


def parts_of(root: Path, segment: str) -> list[tuple[int, int]]:
    folder = root / "target/members" / segment / "changes"
    return sorted(tuple(map(int, p.name.split("-")[:2])) for p in folder.glob("[0-9]*.parquet"))


def overlapping(root: Path, segment: str) -> bool:
    ranges = parts_of(root, segment)
    return any(b[0] <= a[1] for a, b in zip(ranges, ranges[1:]))


def live_rows(root: Path, segment: str) -> list[tuple]:
    return [tuple(r) for r in live_changes(root, segment)]


def snapshot_changes(cli, root: Path, segment: str) -> list[tuple]:
    snap = json.loads(held(cli, root, "members", segment, "--changes", "--json").stdout)
    return [(c["change_id"], c["key"], c["change"], c["run_id"]) for c in snap["changes"]]


def passes(monkeypatch) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """The segments of each ``roster.write_many`` pass from now on (sorted), as they are made."""
    calls: list[list[str]] = []
    original = roster.write_many

    def counted(engine, root, targets, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(sorted(t.segment for t in targets))
        return original(engine, root, targets, *args, **kwargs)

    monkeypatch.setattr(roster, "write_many", counted)
    return calls


def test_members_files_are_written_once_per_run_after_its_builds(make_project, cli, monkeypatch):
    """One pass for every segment the run published (issue 21), not one per publish: with
    fewer segments than a batch (``build.beside.BATCH``) the hook is called once, and each file
    is still the warehouse's."""
    calls = passes(monkeypatch)
    root = make_activation(make_project, DAY1)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    assert calls == [["regular", "vip"]]
    assert not (root / "target" / "members" / rosterkeep.BEHIND).exists()
    for segment in ("vip", "regular"):
        assert held(cli, root, "members", segment).stdout.split() == live_members(root, segment)


def test_a_run_killed_before_writing_members_files_is_caught_up_by_an_idle_run(
    make_project, cli
):
    """The files are marked behind before the first publish: a run killed after publishing
    but before writing them leaves the mark, and the next run -- even one with nothing due --
    writes every segment's files."""
    root = make_activation(make_project, DAY1)
    assert cadence(root, "run", "--at", "2026-01-01T06:00").returncode == 0
    set_people(root, DAY2)
    killed = cadence(root, "run", "-s", "vip", "--at", "2026-01-02T06:00",
                     fault="roster_before_part_rename")  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    assert (root / "target" / "members" / rosterkeep.BEHIND).exists()
    assert held(cli, root, "members", "vip").stdout.split() != live_members(root, "vip")
    idle = cadence(root, "run", "--due", "--at", "2026-01-02T06:01")  # nothing is due
    assert idle.returncode == 0, idle.stderr
    assert held(cli, root, "members", "vip").stdout.split() == live_members(root, "vip") == [
        "1",
        "4",
    ]
    assert not (root / "target" / "members" / rosterkeep.BEHIND).exists()


@pytest.mark.parametrize("rows, union", [(1, 1), (10**9, 200)], ids=["one-by-one", "together"])
def test_members_files_written_together_or_one_by_one_match_the_warehouse(
    make_project, cli, monkeypatch, rows, union
):
    """Parts come from one partitioned COPY per bounded number of changes, bases from one per
    200 segments, a segment with nothing to write in it alone: the same files either way."""
    monkeypatch.setattr(roster, "_CHUNK_ROWS", rows)
    monkeypatch.setattr(roster, "_UNION", union)
    root = make_activation(make_project, DAY1 + [(7, 10)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    set_people(root, [(1, 900), (4, 800)])  # regular is left empty: a base of no keys
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0
    for segment in ("vip", "regular"):
        assert held(cli, root, "members", segment).stdout.split() == live_members(root, segment)
        snap = json.loads(held(cli, root, "members", segment, "--changes", "--json").stdout)
        assert [c["change_id"] for c in snap["changes"]] == [
            r[0] for r in live_changes(root, segment)
        ]


@pytest.mark.parametrize(
    "alone_rows, groups",
    [(3, [["vip"], ["regular"]]), (10**9, [["regular", "vip"]])],
    ids=["big-segment-alone", "small-segments-together"],
)
def test_a_segment_with_many_changes_has_copies_of_its_own_and_the_same_files(
    make_project, cli, monkeypatch, alone_rows, groups
):
    """A segment with ``_ALONE_ROWS`` changes or more (tens of thousands of keys) is written by
    a COPY of its own, part and base, not inside the partitioned COPY of the others (cheaper
    per row, less memory); small ones still share one: the files read the same either way."""
    monkeypatch.setattr(roster, "_ALONE_ROWS", alone_rows, raising=False)
    seen: list[list[str]] = []
    stage_all = roster._stage_all

    def recorded(engine, root, finals, *args):
        seen.append(sorted(finals))
        return stage_all(engine, root, finals, *args)

    monkeypatch.setattr(roster, "_stage_all", recorded)
    root = make_activation(make_project, DAY1 + [(5, 600)])  # vip: 3 keys, regular: 1
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    assert sorted(seen) == sorted(groups * 2)  # the parts, then the bases
    set_people(root, DAY2)
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0
    for segment in ("vip", "regular"):
        assert held(cli, root, "members", segment).stdout.split() == live_members(root, segment)
        snap = json.loads(held(cli, root, "members", segment, "--changes", "--json").stdout)
        assert [(c["change_id"], c["key"], c["change"]) for c in snap["changes"]] == [
            r[:3] for r in live_changes(root, segment)
        ]


@pytest.mark.parametrize("older_duckdb", [False, True], ids=["side-by-side", "folder-each"])
def test_the_shared_copies_write_no_folder_per_segment_and_an_older_duckdb_still_gets_its_files(
    make_project, cli, monkeypatch, older_duckdb
):
    """The COPYs that write many segments' files at once put them side by side (a folder per
    segment to make and then remove was the costliest part of them on a busy disk), and find
    each segment's file by what it holds; a DuckDB without that option (an older one) gets a
    folder per segment as before. Either way the files read as the warehouse does and nothing
    is left behind."""
    monkeypatch.setattr(rosterstage, "_side_by_side", [True])
    if older_duckdb:  # an option this DuckDB refuses stands in for one an older DuckDB lacks
        monkeypatch.setattr(rosterstage, "_SIDE_BY_SIDE", ", no_such_copy_option false")
    copies: list[str] = []
    from cadence.engines.duckdb import DuckDBEngine

    real_query = DuckDBEngine.query

    def recorded(self, sql, *args, **kwargs):
        if sql.startswith("copy (") and "partition_by (segment)" in sql:
            copies.append(sql)
        return real_query(self, sql, *args, **kwargs)

    monkeypatch.setattr(DuckDBEngine, "query", recorded)
    root = make_activation(make_project, DAY1 + [(5, 600)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    set_people(root, DAY2)
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0
    assert copies  # the parts and the bases, written together
    side_by_side = [c for c in copies if "hive_file_pattern false" in c]
    assert (side_by_side == copies) if not older_duckdb else not side_by_side
    assert rosterstage._side_by_side == [not older_duckdb]
    members = root / "target" / "members"
    assert sorted(os.listdir(members)) == ["regular", "vip"]  # no batch folder left
    for segment in ("vip", "regular"):
        assert held(cli, root, "members", segment).stdout.split() == live_members(root, segment)
        snap = json.loads(held(cli, root, "members", segment, "--changes", "--json").stdout)
        assert [(c["change_id"], c["key"], c["change"]) for c in snap["changes"]] == [
            r[:3] for r in live_changes(root, segment)
        ]
        assert not [n for n in os.listdir(members / segment) if n.startswith(".")]
