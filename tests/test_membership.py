"""Membership history (SPEC §7): entered/exited recorded in the publish transaction of every
segment with a key; duplicate or null keys fail the build; `cadence members`."""

from __future__ import annotations

import datetime as dt
import json

from activation_project import make_activation, query, set_people

from cadence.record.membership import diff_sql


def history(root, segment):
    return query(
        root,
        "select key, change, run_id from _cadence.membership_changes "
        f"where segment = '{segment}' order by change_id",
    )


def test_first_publish_everyone_entered_then_only_changes(make_project, cli):
    root = make_activation(make_project, [(1, 900), (2, 50), (3, 700)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    assert [(k, c) for k, c, _ in history(root, "vip")] == [("1", "entered"), ("3", "entered")]
    set_people(root, [(1, 900), (2, 600), (3, 10)])
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0
    rows = history(root, "vip")
    assert sorted((k, c) for k, c, _ in rows[2:]) == [("2", "entered"), ("3", "exited")]
    ids = [r[0] for r in query(root, "select change_id from _cadence.membership_changes")]
    assert len(set(ids)) == len(ids)
    # the run that published is the run recorded
    runs = {r[0] for r in query(root, "select run_id from _cadence.runs")}
    assert {r[2] for r in rows} <= runs
    # no change: nothing recorded
    assert cli(root, "run", "--at", "2026-01-03T06:00").exit_code == 0
    assert len(history(root, "vip")) == 4


def test_a_segment_table_dropped_behind_cadences_back_is_diffed_against_its_history(
    make_project, cli
):
    """The rebuild of a vanished segment table is not a first publish: its members are who
    the history says, so only real changes are recorded (not everyone entering again), and
    replaying the history gives the live keys."""
    import duckdb

    root = make_activation(make_project, [(1, 900), (2, 50), (3, 700)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("drop table main.vip")
    con.close()
    set_people(root, [(1, 900), (2, 600), (3, 10)])
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0
    rows = [(k, c) for k, c, _ in history(root, "vip")]
    assert rows[:2] == [("1", "entered"), ("3", "entered")]
    assert sorted(rows[2:]) == [("2", "entered"), ("3", "exited")]
    members: set[str] = set()
    for key, change in rows:
        (members.add if change == "entered" else members.discard)(key)
    assert members == {str(r[0]) for r in query(root, "select id from main.vip")}
    # dropped again and rebuilt unchanged: nothing to record
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("drop table main.vip")
    con.close()
    assert cli(root, "run", "--at", "2026-01-03T06:00").exit_code == 0
    assert len(history(root, "vip")) == 4


def test_duplicate_or_null_keys_fail_the_build_and_record_nothing(make_project, cli):
    root = make_activation(make_project, [(1, 900), (3, 700)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    (root / "models" / "vip.sql").write_text(
        "{{ config(channels=['email'], key='id') }}\n"
        "select id, email from {{ ref('people') }} union all select null, 'x' "
        "union all select 1, 'dup'\n"
    )
    result = cli(root, "run", "--at", "2026-01-02T06:00")
    assert result.exit_code == 1
    assert "key not_null" in result.output or "not_null" in result.output
    assert len(history(root, "vip")) == 2  # rolled back with the publish
    assert query(root, "select count(*) from main.vip") == [(2,)]


def test_failed_test_rolls_back_membership(make_project, cli):
    root = make_activation(
        make_project,
        [(1, 900)],
        extra={"tests/vip_small.sql": "select * from {{ ref('vip') }} where id = 9"},
    )
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    set_people(root, [(1, 900), (9, 900)])
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 1
    assert [(k, c) for k, c, _ in history(root, "vip")] == [("1", "entered")]


def test_members_command(make_project, cli):
    root = make_activation(make_project, [(1, 900), (2, 50), (3, 700)])
    cli(root, "run", "--at", "2026-01-01T06:00")
    set_people(root, [(1, 900), (3, 10)])
    cli(root, "run", "--at", "2026-01-02T06:00")
    result = cli(root, "members", "vip")
    assert result.exit_code == 0 and result.output.split() == ["1"]
    result = cli(root, "members", "vip", "--changes", "--json")
    body = json.loads(result.output)
    assert body["segment"] == "vip" and body["as_of"] is None  # live: read from the warehouse
    changes = body["changes"]
    assert [(c["key"], c["change"]) for c in changes] == [
        ("1", "entered"), ("3", "entered"), ("3", "exited"),
    ]
    assert changes[0]["at"].startswith("2026-01-01T06:00")
    since = json.loads(cli(root, "members", "vip", "--since", "2026-01-02T00:00", "--json").output)
    assert [(c["key"], c["change"]) for c in since["changes"]] == [("3", "exited")]
    text = cli(root, "members", "vip", "--changes").output
    assert "exited" in text and "2026-01-02 06:00" in text
    assert json.loads(cli(root, "members", "vip", "--json").output) == {
        "segment": "vip", "as_of": None, "members": ["1"],
    }


def test_members_errors(make_project, cli):
    root = make_activation(make_project, [(1, 900)], extra={"models/plain.sql": "select 1 as a"})
    result = cli(root, "members", "vipp")
    assert result.exit_code == 2 and "did you mean 'vip'" in result.output
    result = cli(root, "members", "plain")
    assert result.exit_code == 2 and "no key" in result.output
    assert cli(root, "members", "vip").output == ""  # nothing built yet


def test_diff_sql_is_except_both_ways():
    sql = diff_sql('"s"."c"', '"s"."l"', "id")
    assert sql.count("except") == 2 and "union all" in sql
    assert "except" not in diff_sql('"s"."c"', None, "id")
    # an incremental merge only adds: new keys absent from live, hashed on the new rows
    merge = diff_sql('"s"."c"', '"s"."l"', "id", exits=False)
    assert "except" not in merge and "not exists" in merge and "exited" not in merge


def test_incremental_segment_records_only_entries(make_project, cli):
    root = make_activation(
        make_project,
        [(1, 900), (2, 900)],
        extra={
            "models/seen.sql": "{{ config(channels=['web'], key='id', materialized='incremental', "
            "unique_key='id') }}\nselect id, email from {{ ref('people') }}\n"
        },
    )
    cli(root, "run", "--at", "2026-01-01T06:00")
    set_people(root, [(2, 900), (3, 900)])
    cli(root, "run", "--at", "2026-01-02T06:00")
    assert [(k, c) for k, c, _ in history(root, "seen")] == [
        ("1", "entered"), ("2", "entered"), ("3", "entered"),
    ]


# -- event_time: when each member qualified (SPEC §11) -------------------------------------------

EVENT_YML = """\
name: ev
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: Europe/Berlin
channels:
  routing: {cadence: "every 5 minutes"}
models:
  +event_time: qualified_at
"""


def carts_csv(rows: list[tuple[int, str]]) -> str:
    return "id,qualified_at\n" + "".join(f"{i},{t}\n" for i, t in rows)


def event_times(root):
    return query(
        root,
        "select key, change, event_time from _cadence.membership_changes order by change_id",
    )


def test_event_time_is_recorded_with_each_entered_change_in_utc(make_project, cli):
    """A naive timestamp is read in the project timezone (Berlin, UTC+1 in January), an aware
    one keeps its instant; exits record null. ``+event_time`` comes from folder config."""
    root = make_project(
        {
            "models/abandoners.sql": "{{ config(channels=['routing'], key='id') }}\n"
            "select id, qualified_at from {{ ref('carts') }}\n",
            "models/aware.sql": "{{ config(channels=['routing'], key='id') }}\n"
            "select id, cast(qualified_at || '+00:00' as timestamptz) as qualified_at "
            "from {{ ref('carts') }}\n",
            "seeds/carts.csv": carts_csv([(1, "2026-01-05 09:02:30"), (2, "2026-01-05 09:04:00")]),
        },
        cadence_yml=EVENT_YML,
    )
    assert cli(root, "run", "--at", "2026-01-05T09:05").exit_code == 0
    rows = query(
        root,
        "select segment, key, change, event_time from _cadence.membership_changes "
        "order by segment, key",
    )
    assert rows == [
        ("abandoners", "1", "entered", dt.datetime(2026, 1, 5, 8, 2, 30)),
        ("abandoners", "2", "entered", dt.datetime(2026, 1, 5, 8, 4)),
        ("aware", "1", "entered", dt.datetime(2026, 1, 5, 9, 2, 30)),
        ("aware", "2", "entered", dt.datetime(2026, 1, 5, 9, 4)),
    ]
    later_carts = [(2, "2026-01-05 09:04:00"), (3, "2026-01-05 09:07:00")]
    (root / "seeds" / "carts.csv").write_text(carts_csv(later_carts))
    assert cli(root, "run", "--at", "2026-01-05T09:10").exit_code == 0
    later = query(
        root,
        "select key, change, event_time from _cadence.membership_changes "
        "where segment = 'abandoners' and change_id > 4 order by key",
    )
    assert later == [("1", "exited", None), ("3", "entered", dt.datetime(2026, 1, 5, 8, 7))]


def test_a_first_publish_with_event_time_reads_each_row_once(make_project, cli, monkeypatch):
    """Everyone entered at a first publish: the insert reads the candidate once, each row
    giving its own event_time (a join back by key costs a hash join of every member); a later
    publish joins the entered keys to their rows. Both record the same instants."""
    from cadence.engines.duckdb import DuckDBEngine

    inserts: list[str] = []
    execute = DuckDBEngine.execute

    def recorded(self, sql, params=()):
        if sql.startswith("insert into _cadence.membership_changes"):
            inserts.append(sql)
        return execute(self, sql, params)

    monkeypatch.setattr(DuckDBEngine, "execute", recorded)
    root = make_project(
        {
            "models/abandoners.sql": "{{ config(channels=['routing'], key='id') }}\n"
            "select id, qualified_at from {{ ref('carts') }}\n",
            "seeds/carts.csv": carts_csv([(1, "2026-01-05 09:02:30"), (2, "2026-01-05 09:04:00")]),
        },
        cadence_yml=EVENT_YML,
    )
    assert cli(root, "run", "--at", "2026-01-05T09:05").exit_code == 0
    assert len(inserts) == 1 and " join " not in inserts[0]
    later_carts = [(2, "2026-01-05 09:04:00"), (3, "2026-01-05 09:07:00")]
    (root / "seeds" / "carts.csv").write_text(carts_csv(later_carts))
    assert cli(root, "run", "--at", "2026-01-05T09:10").exit_code == 0
    assert len(inserts) == 2 and " join " in inserts[1]
    assert event_times(root) == [
        ("1", "entered", dt.datetime(2026, 1, 5, 8, 2, 30)),
        ("2", "entered", dt.datetime(2026, 1, 5, 8, 4)),
        ("3", "entered", dt.datetime(2026, 1, 5, 8, 7)),
        ("1", "exited", None),
    ]


def test_a_segment_without_event_time_records_null(make_project, cli):
    root = make_activation(make_project, [(1, 900)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    assert query(root, "select key, event_time from _cadence.membership_changes") == [
        ("1", None)
    ]


def test_an_event_time_that_is_not_a_timestamp_column_fails_the_build(make_project, cli):
    root = make_project(
        {
            "models/abandoners.sql": "{{ config(channels=['routing'], key='id', "
            "event_time='nope') }}\nselect id, qualified_at from {{ ref('carts') }}\n",
            "models/texty.sql": "{{ config(channels=['routing'], key='id', "
            "event_time='label') }}\nselect id, 'x' as label from {{ ref('carts') }}\n",
            "seeds/carts.csv": carts_csv([(1, "2026-01-05 09:02:30")]),
        },
        cadence_yml=EVENT_YML.replace("models:\n  +event_time: qualified_at\n", ""),
    )
    result = cli(root, "run", "--at", "2026-01-05T09:05")
    assert result.exit_code == 1
    assert "event_time column 'nope' is not a column of segment 'abandoners'" in result.output
    assert "event_time column 'label' of segment 'texty' is VARCHAR" in result.output
    assert query(root, "select count(*) from _cadence.membership_changes") == [(0,)]


def test_a_warehouse_from_before_event_time_gains_the_column(make_project, cli):
    """Made by an older cadence (no event_time column): the next run adds it, and history
    recorded before reads back with null event times."""
    import duckdb

    root = make_activation(make_project, [(1, 900)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute("alter table _cadence.membership_changes drop column event_time")
    assert cli(root, "members", "vip", "--changes").exit_code == 0
    set_people(root, [(1, 900), (2, 800)])
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0
    assert query(root, "select key, event_time from _cadence.membership_changes order by 1") == [
        ("1", None),
        ("2", None),
    ]
