"""A model's live table is diffed against only if it was published as that segment
(``_cadence.segment_keys``): a table that becomes a segment records everyone entered (SPEC §7,
first publish), and a segment that was a plain table for a while, or changed its key, is diffed
against the members its history holds. Whatever the path, replaying the history gives the
live keys."""

from __future__ import annotations

import duckdb
import pytest
from activation_project import make_activation, query, set_people

PLAIN = "select id, email from {{ ref('people') }} where spend >= 100\n"
SEGMENT = "{{ config(channels=['web'], key='id') }}\n" + PLAIN
BY_EMAIL = "{{ config(channels=['web'], key='email') }}\n" + PLAIN
INCREMENTAL = (
    "{{ config(materialized='incremental', unique_key='id'%s) }}\n"
    "select id, email from {{ ref('people') }}\n"
)


def history(root, segment="fans"):
    return [
        (k, c)
        for k, c in query(
            root,
            "select key, change from _cadence.membership_changes "
            f"where segment = '{segment}' order by change_id",
        )
    ]


def replayed(root, segment="fans"):
    members: set[str] = set()
    for key, change in history(root, segment):
        (members.add if change == "entered" else members.discard)(key)
    return members


def live(root, column="id"):
    return {str(r[0]) for r in query(root, f"select {column} from main.fans")}


def registered(root):
    """What the runs read: each segment's newest row (by ``seq``), those with a key."""
    newest = {}
    for s, k, t, _seq in query(root, "select * from _cadence.segment_keys order by seq"):
        newest[s] = (k, t)
    return {s: kt for s, kt in newest.items() if kt[0] is not None}


def fans_is(root, sql):
    (root / "models" / "fans.sql").write_text(sql)


def project(make_project, sql, people=((1, 900), (2, 150), (3, 50))):
    return make_activation(make_project, list(people), extra={"models/fans.sql": sql})


def test_a_table_that_becomes_a_segment_records_every_member_entered(make_project, cli):
    root = project(make_project, PLAIN)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    assert history(root) == []
    fans_is(root, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code == 0
    assert sorted(history(root)) == [("1", "entered"), ("2", "entered")]
    members = cli(root, "members", "fans", "--changes")
    assert members.exit_code == 0 and "entered" in members.output
    # from then on, only what changed
    set_people(root, [(1, 900), (2, 20), (4, 300)])
    assert cli(root, "run", "--at", "2026-01-01T08:00").exit_code == 0
    assert sorted(history(root)[2:]) == [("2", "exited"), ("4", "entered")]
    assert replayed(root) == live(root) == {"1", "4"}
    assert registered(root)["fans"] == ("id", "main.fans")


def test_a_segment_that_was_a_plain_table_for_a_while_is_diffed_against_its_history(
    make_project, cli
):
    root = project(make_project, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    fans_is(root, PLAIN)
    assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code == 0
    assert "fans" not in registered(root)
    # members change while it is not a segment: nothing recorded then
    set_people(root, [(1, 900), (3, 500), (5, 200)])
    assert cli(root, "run", "--at", "2026-01-01T08:00").exit_code == 0
    assert sorted(history(root)) == [("1", "entered"), ("2", "entered")]
    fans_is(root, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T09:00").exit_code == 0
    assert sorted(history(root)[2:]) == [("2", "exited"), ("3", "entered"), ("5", "entered")]
    assert replayed(root) == live(root) == {"1", "3", "5"}


def test_a_segment_whose_key_changes_exits_the_old_keys_and_enters_the_new(make_project, cli):
    root = project(make_project, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    fans_is(root, BY_EMAIL)
    assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code == 0
    assert sorted(history(root)[2:]) == [
        ("1", "exited"),
        ("2", "exited"),
        ("u1@x.test", "entered"),
        ("u2@x.test", "entered"),
    ]
    assert replayed(root) == live(root, "email")
    # unchanged afterwards: nothing more
    assert cli(root, "run", "--at", "2026-01-01T08:00").exit_code == 0
    assert len(history(root)) == 6


def test_an_incremental_table_that_becomes_a_segment_enters_what_it_holds_and_what_arrives(
    make_project, cli
):
    root = project(make_project, INCREMENTAL % "", people=[(1, 900), (2, 900)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    fans_is(root, INCREMENTAL % ", channels=['web'], key='id'")
    set_people(root, [(2, 900), (3, 900)])
    assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code == 0
    # the merged table holds 1, 2 and 3: all entered, none exited
    assert sorted(history(root)) == [("1", "entered"), ("2", "entered"), ("3", "entered")]
    assert replayed(root) == live(root) == {"1", "2", "3"}
    set_people(root, [(4, 900)])
    assert cli(root, "run", "--at", "2026-01-01T08:00").exit_code == 0
    assert history(root)[3:] == [("4", "entered")]


def test_a_publish_whose_registration_was_lost_is_still_diffed_right(make_project, cli):
    """The row is written with the run's fold, after the publish committed: a run killed in
    between leaves a segment unregistered, and its next publish is diffed against its
    history (the same answer, not everyone entering again)."""
    root = project(make_project, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute("delete from _cadence.segment_keys")
    set_people(root, [(1, 900), (2, 10), (6, 400)])
    assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code == 0
    assert sorted(history(root)[2:]) == [("2", "exited"), ("6", "entered")]
    assert replayed(root) == live(root) == {"1", "6"}


def test_a_warehouse_from_before_segment_keys_keeps_diffing_its_segments(make_project, cli):
    """Made before the table existed: the next run creates it with the segments cadence
    published (their tables are what their history says), so nobody enters again."""
    root = project(make_project, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute("drop table _cadence.segment_keys")
    set_people(root, [(1, 900), (2, 150), (7, 100)])
    assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code == 0
    assert history(root)[2:] == [("7", "entered")]
    keys = registered(root)
    assert keys["fans"] == ("id", "main.fans") and keys["vip"] == ("id", "main.vip")


def test_a_key_change_whose_run_never_folded_leaves_no_row_to_trust(make_project, cli, monkeypatch):
    """The publish under the new key removes the old key's row in its own transaction: a run
    that dies before its fold (here: the fold's registration never happens) leaves no row
    saying the table holds the old keys, so going back to them diffs against the history."""
    from cadence.record import segmentkeys

    root = project(make_project, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    fans_is(root, BY_EMAIL)
    with monkeypatch.context() as patched:
        patched.setattr(segmentkeys, "register", lambda engine, rows, **kw: None)
        assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code == 0
    assert "fans" not in registered(root)
    assert replayed(root) == live(root, "email")
    fans_is(root, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T08:00").exit_code == 0
    assert replayed(root) == live(root) == {"1", "2"}


def test_an_incremental_segment_whose_key_changes_exits_the_old_keys(make_project, cli):
    root = project(make_project, INCREMENTAL % ", channels=['web'], key='id'", [(1, 900), (2, 900)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    fans_is(root, INCREMENTAL % ", channels=['web'], key='email'")
    set_people(root, [(3, 900)])
    assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code == 0
    assert sorted(history(root)[2:]) == [
        ("1", "exited"),
        ("2", "exited"),
        ("u1@x.test", "entered"),
        ("u2@x.test", "entered"),
        ("u3@x.test", "entered"),
    ]
    assert replayed(root) == live(root, "email")


def test_a_segment_that_moves_to_another_table_and_back_is_diffed_against_its_history(
    make_project, cli
):
    root = project(make_project, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    fans_is(root, SEGMENT.replace("key='id'", "key='id', alias='fans2'"))
    set_people(root, [(1, 900), (3, 500)])
    assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code == 0
    assert replayed(root) == {"1", "3"}
    fans_is(root, SEGMENT)  # back into main.fans, which still holds 1 and 2
    set_people(root, [(1, 900), (3, 500), (4, 400)])
    assert cli(root, "run", "--at", "2026-01-01T08:00").exit_code == 0
    assert history(root)[4:] == [("4", "entered")]  # not 3 again, nor 2 leaving twice
    assert replayed(root) == live(root) == {"1", "3", "4"}


def test_a_seed_that_takes_a_segments_table_makes_its_row_untrue(make_project, cli):
    root = project(make_project, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    (root / "models" / "fans.sql").unlink()
    (root / "seeds" / "fans.csv").write_text("id,email\n7,a@x.test\n8,b@x.test\n")
    assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code == 0
    assert "fans" not in registered(root)
    (root / "seeds" / "fans.csv").unlink()
    fans_is(root, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T08:00").exit_code == 0
    assert replayed(root) == live(root) == {"1", "2"}


def test_an_old_warehouse_registers_only_segments_whose_tables_match_their_history(
    make_project, cli
):
    """Upgraded in the same change that made a plain table a segment, or one that was a plain
    table for a while: neither table is what its history says, so neither is trusted."""
    root = make_activation(
        make_project,
        [(1, 900), (2, 150), (3, 50)],
        extra={
            "models/fans.sql": PLAIN,
            "models/club.sql": SEGMENT.replace("spend >= 100", "spend >= 40"),
        },
    )
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    (root / "models" / "club.sql").write_text(PLAIN.replace("spend >= 100", "spend >= 40"))
    set_people(root, [(1, 900), (2, 150), (5, 60)])
    assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code == 0
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute("drop table _cadence.segment_keys")  # as an older cadence left it
    fans_is(root, SEGMENT)
    (root / "models" / "club.sql").write_text(SEGMENT.replace("spend >= 100", "spend >= 40"))
    assert cli(root, "run", "--at", "2026-01-01T08:00").exit_code == 0
    assert sorted(history(root)) == [("1", "entered"), ("2", "entered")]
    assert replayed(root) == live(root)
    club = {str(r[0]) for r in query(root, "select id from main.club")}
    assert replayed(root, "club") == club == {"1", "2", "5"}
    assert sorted(history(root, "club"))[-1:] == [("5", "entered")]


def test_publishes_on_threads_that_unregister_one_segment_do_not_conflict(make_project, cli):
    """A segment and a plain model swap tables (aliases) in one deploy: both publishes make
    the segment's row untrue at once, on two threads; rows are only ever added while builds
    run (deleting one row twice would conflict), and the fold compacts them."""
    from activation_project import CADENCE_YML

    yml = CADENCE_YML.replace("threads: 1", "threads: 4")
    seg_a = "{{ config(channels=['web'], key='id'%s) }}\n" + PLAIN
    plain_b = "{{ config(materialized='table'%s) }}\n" + PLAIN.replace("100", "300")
    root = make_activation(
        make_project,
        [(1, 900), (2, 150), (3, 50)],
        cadence_yml=yml,
        extra={"models/a.sql": seg_a % "", "models/b.sql": plain_b % ""},
    )
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    (root / "models" / "a.sql").write_text(seg_a % ", alias='b'")
    (root / "models" / "b.sql").write_text(plain_b % ", alias='a'")
    set_people(root, [(1, 900), (7, 150), (5, 500)])
    result = cli(root, "run", "--at", "2026-01-01T09:00")
    assert result.exit_code == 0, result.output
    assert replayed(root, "a") == {str(r[0]) for r in query(root, "select id from main.b")}
    assert registered(root)["a"] == ("id", "main.b")
    # compacted: one row per registered segment
    assert query(root, "select count(*) from _cadence.segment_keys")[0][0] == len(registered(root))


def test_an_old_warehouse_never_trusts_a_view_with_a_key(make_project, cli):
    root = project(make_project, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    fans_is(root, SEGMENT.replace("key='id'", "key='id', materialized='view'"))
    assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code == 0
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute("drop table _cadence.segment_keys")  # as an older cadence left it
    fans_is(root, SEGMENT)
    set_people(root, [(1, 900), (4, 400)])
    assert cli(root, "run", "--at", "2026-01-01T08:00").exit_code == 0
    assert replayed(root) == live(root) == {"1", "4"}


def as_an_older_cadence_left_it(root):
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute("drop table _cadence.segment_keys")
        con.execute("drop sequence if exists _cadence.segment_key_seq")


@pytest.mark.parametrize("changed", [True, False], ids=["some-pruned", "all-pruned"])
def test_an_old_warehouse_with_pruned_history_keeps_its_long_standing_members(
    make_project, cli, changed
):
    """``history.keep_days`` pruned the entries of members who never changed (some, or all
    of the segment's history): the table still agrees with what the history knows, so it is
    trusted and they do not enter again."""
    from activation_project import CADENCE_YML

    root = make_activation(
        make_project,
        [(1, 900), (2, 150), (3, 50)],
        cadence_yml=CADENCE_YML + "history: {keep_days: 1}\n",
        extra={"models/fans.sql": SEGMENT},
    )
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    people = [(1, 900), (2, 150)] + ([(4, 400)] if changed else [])
    set_people(root, people)
    assert cli(root, "run", "--at", "2026-01-04T06:00").exit_code == 0
    before = [("4", "entered")] if changed else []
    assert history(root) == before  # 1 and 2 entered on 01-01: pruned
    as_an_older_cadence_left_it(root)
    set_people(root, [*people, (5, 500)])
    assert cli(root, "run", "--at", "2026-01-04T07:00").exit_code == 0
    assert history(root) == [*before, ("5", "entered")]


def test_an_old_warehouse_without_pruning_trusts_only_a_table_equal_to_its_history(
    make_project, cli
):
    """No ``keep_days``: the history is whole, so a key it does not know was never recorded
    (the model was a plain table meanwhile) and enters now."""
    root = project(make_project, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    fans_is(root, PLAIN.replace("100", "40"))
    assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code == 0
    as_an_older_cadence_left_it(root)
    fans_is(root, SEGMENT.replace("100", "40"))
    assert cli(root, "run", "--at", "2026-01-01T08:00").exit_code == 0
    assert history(root)[2:] == [("3", "entered")]
    assert replayed(root) == live(root) == {"1", "2", "3"}


def test_an_upgrade_interrupted_while_it_checks_makes_no_table_and_checks_again(
    make_project, cli, monkeypatch
):
    from cadence.record import segmentkeys

    root = project(make_project, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    as_an_older_cadence_left_it(root)

    def interrupted(engine, rows, **kw):
        raise KeyboardInterrupt

    set_people(root, [(1, 900), (2, 150), (6, 600)])
    with monkeypatch.context() as patched:
        patched.setattr(segmentkeys, "register", interrupted)
        assert cli(root, "run", "--at", "2026-01-01T07:00").exit_code != 0
    assert ("_cadence", "segment_keys") not in {
        tuple(r) for r in query(root, "select schema_name, table_name from duckdb_tables()")
    }
    assert cli(root, "run", "--at", "2026-01-01T08:00").exit_code == 0
    assert history(root)[2:] == [("6", "entered")]
    assert registered(root)["fans"] == ("id", "main.fans")


def test_a_segment_keys_table_of_other_columns_is_made_again(make_project, cli):
    """As a development version left it: replaced, its segments checked as in an upgrade."""
    root = project(make_project, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute("drop table _cadence.segment_keys")
        con.execute("create table _cadence.segment_keys (segment varchar, key varchar)")
    set_people(root, [(1, 900), (2, 150), (8, 800)])
    result = cli(root, "run", "--at", "2026-01-01T07:00")
    assert result.exit_code == 0, result.output
    assert history(root)[2:] == [("8", "entered")]
    assert registered(root)["fans"] == ("id", "main.fans")


KILLED_AT = """
import os, signal, sys
from cadence.cli import main
from cadence.record import segmentkeys
point = sys.argv[3]
original = getattr(segmentkeys, point)
def killed(engine, rows, *more, **kw):
    original(engine, rows, *more, **kw)
    if rows:  # its statements ran, its transaction not committed: kill -9 right there
        os.kill(os.getpid(), signal.SIGKILL)
setattr(segmentkeys, point, killed)
main(["run", "--project-dir", sys.argv[1], "--at", sys.argv[2]])
"""


@pytest.mark.parametrize("point", ["forget", "register"])
def test_a_kill_9_inside_the_transaction_that_writes_a_row_leaves_history_and_table_agreeing(
    make_project, cli, point
):
    """kill -9 after ``forget`` wrote its keyless row inside a publish (the publish is rolled
    back with it), or after the fold's ``register`` (the publish committed, its row not):
    the next runs record exactly what changed."""
    import subprocess
    import sys

    root = project(make_project, SEGMENT)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    fans_is(root, BY_EMAIL)  # the publish under the new key forgets the old row
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AT, str(root), "2026-01-01T07:00", point],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    if point == "forget":  # rolled back: still the segment by id, its row as it was
        assert replayed(root) == live(root) == {"1", "2"}
        assert registered(root)["fans"] == ("id", "main.fans")
    else:  # committed under email, no row to trust
        assert replayed(root) == live(root, "email")
        assert "fans" not in registered(root)
    fans_is(root, SEGMENT)
    set_people(root, [(1, 900), (2, 150), (9, 900)])
    assert cli(root, "run", "--at", "2026-01-01T08:00").exit_code == 0
    assert replayed(root) == live(root) == {"1", "2", "9"}
    assert cli(root, "run", "--at", "2026-01-01T09:00").exit_code == 0
    assert registered(root)["fans"] == ("id", "main.fans")
