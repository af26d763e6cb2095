"""Delivery orchestration and `cadence export` (SPEC §7): when deliveries run, dry-run,
rebaseline, the max_change guard, `_cadence.deliveries` and `status`."""

from __future__ import annotations

import json

from activation_project import (
    CADENCE_YML,
    make_activation,
    manifests,
    query,
    rows_of,
    sent,
    set_people,
    set_unsubscribed,
)

from cadence.activation.deliver import channels_touched
from cadence.project import Project


def test_deliveries_follow_the_publish_of_a_channels_segments(make_project, cli):
    root = make_activation(
        make_project, [(1, 900)], extra={"models/web_seg.sql":
                                         "{{ config(channels=['web'], key='id') }}\nselect 1 as id"}
    )
    parsed = Project.load(root).parsed
    assert channels_touched(parsed, {"web_seg"}) == ()
    assert channels_touched(parsed, {"unsubscribed"}) == ("email",)
    result = cli(root, "run", "-s", "web_seg", "--at", "2026-01-01T06:00")
    assert result.exit_code == 0 and "delivered" not in result.output
    result = cli(root, "run", "--at", "2026-01-01T06:01")
    assert "delivered email/vip: 1 entered" in result.output
    # nothing due, nothing pending: the idle path delivers nothing and writes no attempt
    before = query(root, "select count(*) from _cadence.deliveries")
    result = cli(root, "run", "--due", "--at", "2026-01-01T06:02")
    assert result.exit_code == 0 and "delivered" not in result.output
    assert query(root, "select count(*) from _cadence.deliveries") == before


def test_export_dry_run_moves_nothing(make_project, cli):
    root = make_activation(
        make_project,
        [(1, 900), (2, 900), (3, 10)],
        extra={
            "models/regular.sql": "{{ config(channels=['email'], key='id', "
            "holdout={'percent': 50, 'salt': 'h'}) }}\n"
            "select id, email from {{ ref('people') }} where spend < 500\n"
        },
    )
    assert cli(root, "export", "--dry-run").output.startswith("nothing to deliver")
    cli(root, "run", "-s", "people unsubscribed", "--at", "2026-01-01T06:00")
    cli(root, "run", "--at", "2026-01-01T06:00")
    import duckdb

    with duckdb.connect(str(root / "warehouse.duckdb")) as con:  # changed outside cadence
        con.execute("insert into main.unsubscribed values (2)")
    snapshot = query(root, "select count(*) from _cadence.delivered")
    result = cli(root, "export", "--dry-run", "--json")
    preview = {p["segment"]: p for p in json.loads(result.output)["preview"]}
    assert (preview["vip"]["entered"], preview["vip"]["exited"]) == (0, 1)
    assert query(root, "select count(*) from _cadence.delivered") == snapshot
    text = cli(root, "export", "--dry-run").output
    assert text.startswith("dry run: nothing is moved")
    assert "email/vip: 0 entered, 1 exited, 1 suppressed, 0 held out" in text
    assert "  exited: 2" in text and "  suppressed: 2" in text
    assert not [m for m in manifests(root) if m["change_range"]["first_seq"] > 2]


def test_rebaseline_sends_the_full_audience_flagged_replace(make_project, cli):
    root = make_activation(make_project, [(1, 900), (2, 900)])
    cli(root, "run", "--at", "2026-01-01T06:00")
    result = cli(root, "export", "--rebaseline")
    assert result.exit_code == 2 and "--rebaseline needs --channel" in result.output
    result = cli(root, "export", "--rebaseline", "--channel", "email", "--at", "2026-01-01T08:00")
    assert result.exit_code == 0, result.output
    last = manifests(root, "vip")[-1]
    assert last["replace"] is True and last["counts"] == {"entered": 2, "exited": 0}
    assert last["change_range"] == {"first_seq": 3, "last_seq": 4}
    assert sorted(r[1] for r in rows_of(last)) == [1, 2]  # people.id: the key keeps its type
    assert "(replace)" in result.output
    # afterwards the diff continues from the replaced state
    set_people(root, [(1, 900)])
    cli(root, "run", "--at", "2026-01-02T06:00")
    assert sent(root, "vip")[-1] == ("2", "exited")
    assert sorted(r[0] for r in query(
        root, "select key from _cadence.delivered where segment = 'vip'"
    )) == ["1"]


def test_max_change_holds_back_mass_exits_until_force(make_project, cli):
    yml = CADENCE_YML.replace("    suppress: [unsubscribed]\n",
                              "    suppress: [unsubscribed]\n    max_change: 0.5\n")
    root = make_activation(make_project, [(i, 900) for i in range(1, 11)], cadence_yml=yml)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0  # first: no baseline
    set_unsubscribed(root, list(range(1, 8)))  # 7 of 10 exit at once
    result = cli(root, "run", "--at", "2026-01-02T06:00")
    assert result.exit_code == 1
    assert "held back: 0 entered and 7 exited of 10 delivered" in result.output
    assert len(manifests(root, "vip")) == 1
    assert query(root, "select status from _cadence.deliveries where segment = 'vip' "
                 "order by attempt_id desc limit 1") == [("held_back",)]
    status = cli(root, "status").output
    assert "email/vip: last held_back" in status and "7 pending" in status
    result = cli(root, "export", "--force", "--at", "2026-01-02T07:00")
    assert result.exit_code == 0, result.output
    assert sent(root, "vip")[-7:] == [(str(i), "exited") for i in range(1, 8)]
    assert "email/vip: last delivered" in cli(root, "status").output


def test_deliveries_table_has_one_row_per_attempt(make_project, cli):
    root = make_activation(make_project, [(1, 900), (2, 10)])
    cli(root, "run", "--at", "2026-01-01T06:00")
    rows = query(
        root,
        "select channel, segment, export_id, first_seq, last_seq, entered, exited, rows, status, "
        "error, duration_s >= 0, destination from _cadence.deliveries order by segment",
    )
    assert rows == [
        ("email", "regular", "email__regular__000000001-000000001", 1, 1, 1, 0, 1, "delivered",
         None, True, "file"),
        ("email", "vip", "email__vip__000000001-000000001", 1, 1, 1, 0, 1, "delivered", None,
         True, "file"),
    ]


def test_export_errors(make_project, cli):
    root = make_activation(make_project, [(1, 900)])
    result = cli(root, "export", "--channel", "web")
    assert result.exit_code == 2 and "channel 'web' has no export" in result.output
    result = cli(root, "export", "--channel", "emial")
    assert result.exit_code == 2 and "did you mean 'email'" in result.output


def test_webhook_channel_goes_through_the_webhook_destination(make_project, cli, monkeypatch):
    """The orchestration hands the webhook destination the pending changes in seq order and
    advances only to what it reports delivered."""
    import sys
    import types

    from cadence.activation.outbox import DeliveryOutcome

    calls = []

    def deliver_webhook(config, channel, segment, changes, env, **kw):
        calls.append((channel, segment, [(c.seq, c.key, c.change) for c in changes]))
        stop = 1 if len(calls) == 1 else None  # the first attempt gets only the first change
        through = changes[0].seq if stop else changes[-1].seq
        return DeliveryOutcome(through, len(changes), "receiver down" if stop else None)

    module = types.ModuleType("cadence.activation.webhook")
    module.deliver_webhook = deliver_webhook  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cadence.activation.webhook", module)
    yml = CADENCE_YML.replace(
        "export: {format: parquet, columns: [email]}",
        "export: {kind: webhook, url: 'http://127.0.0.1:9/h', secret_env: HOOK}",
    )
    root = make_activation(make_project, [(1, 900), (2, 900)], cadence_yml=yml)
    project = Project.load(root)
    from conftest import at

    result = project.run(at("2026-01-01T06:00"))
    assert not result.ok
    assert calls[0] == ("email", "vip", [(1, "1", "entered"), (2, "2", "entered")])
    report = project.export(at("2026-01-01T06:05"))
    assert report.ok
    assert calls[-1] == ("email", "vip", [(2, "2", "entered")])


def test_reloading_a_suppression_seed_delivers_the_exits(make_project, cli):
    root = make_activation(make_project, [(1, 900), (2, 900)])
    cli(root, "run", "--at", "2026-01-01T06:00")
    set_unsubscribed(root, [1])
    result = cli(root, "seed", "--at", "2026-01-01T07:00")
    assert result.exit_code == 0, result.output
    assert "delivered email/vip: 0 entered, 1 exited" in result.output
    assert sent(root, "vip")[-1] == ("1", "exited")


def test_keep_days_prunes_membership_and_delivery_history(make_project, cli):
    yml = CADENCE_YML + "history: {keep_days: 30}\n"
    root = make_activation(make_project, [(1, 900)], cadence_yml=yml)
    cli(root, "run", "--at", "2026-01-01T06:00")
    set_people(root, [(1, 900), (2, 900)])
    assert cli(root, "run", "--at", "2026-03-01T06:00").exit_code == 0
    assert query(root, "select count(*) from _cadence.membership_changes "
                 "where \"at\" < '2026-02-01'") == [(0,)]
    assert query(root, "select segment, first_seq from _cadence.deliveries") == [("vip", 2)]
    assert sorted(r[0] for r in query(
        root, "select key from _cadence.delivered where segment = 'vip'")) == ["1", "2"]


def test_json_output_is_one_document_with_the_deliveries(make_project, cli):
    root = make_activation(make_project, [(1, 900), (2, 950)])
    result = cli(root, "run", "--json", "--at", "2026-01-01T06:00")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # one document, parseable as a whole
    assert {r["name"] for r in doc["results"]} >= {"vip"}
    assert ("email", "vip") in [(d["channel"], d["segment"]) for d in doc["deliveries"]]
    result = cli(root, "export", "--json", "--at", "2026-01-01T06:01")
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)  # nothing pending: still one document
    assert {d["status"] for d in again["deliveries"]} == {"nothing"}


def test_export_dry_run_during_a_run_says_a_run_holds_it(make_project, cli):
    from cadence.build.lock import RunLock

    root = make_activation(make_project, [(1, 900)])
    cli(root, "run", "--at", "2026-01-01T06:00")
    lock = RunLock(root, "2026-01-01T06:05:00+00:00").acquire()
    try:
        result = cli(root, "export", "--dry-run")
    finally:
        lock.release()
    assert result.exit_code == 2
    assert "a cadence run is in progress" in result.output and "notebook" not in result.output
    assert "hint: try again when it finishes" in result.output
    assert cli(root, "export", "--dry-run").exit_code == 0


def test_a_failing_suppression_model_holds_a_plain_run_and_an_export(make_project, cli):
    """Nothing is sent against a stale suppression list (SPEC §7 "When"), whatever the
    command: the channel's delivery is held, with the reason, and the run exits 1."""
    yml = CADENCE_YML.replace("suppress: [unsubscribed]", "suppress: [unsub]")
    unsub = "models/unsub.sql"
    root = make_activation(
        make_project, [(1, 900)], cadence_yml=yml,
        extra={unsub: "select id from {{ ref('unsubscribed') }}\n"},
    )  # fmt: skip
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    set_people(root, [(1, 900), (2, 900)])
    set_unsubscribed(root, [1])
    (root / unsub).write_text("select nope from {{ ref('unsubscribed') }}\n")
    run = cli(root, "run", "--at", "2026-01-02T06:00")
    assert run.exit_code == 1
    assert "error: delivery email/vip held: suppression list 'unsub' is not current" in run.output
    export = cli(root, "export", "--at", "2026-01-02T06:05")
    assert export.exit_code == 1 and "delivery email/vip held" in export.output
    assert sent(root, "vip") == [("1", "entered")]
    (root / unsub).write_text("select id from {{ ref('unsubscribed') }}\n")
    fixed = cli(root, "run", "-s", "unsub", "--at", "2026-01-02T06:10")
    assert fixed.exit_code == 0, fixed.output
    assert sent(root, "vip") == [("1", "entered"), ("1", "exited"), ("2", "entered")]
