"""Changes against what was DELIVERED, with sequence numbers (SPEC §7, contract (c)): a member
who becomes suppressed or moves between priority segments is sent as exited; pending changes
keep their numbers across failures; delivered state advances only to what arrived."""

from __future__ import annotations

from activation_project import (
    make_activation,
    manifests,
    query,
    sent,
    set_people,
    set_unsubscribed,
)

from cadence.activation.outbox import Change, DeliveryOutcome


def delivered(root, segment):
    return sorted(
        r[0]
        for r in query(
            root,
            "select key from _cadence.delivered where channel = 'email' "
            f"and segment = '{segment}' and not held_out",
        )
    )


def seqs(root, segment):
    return [row for m in manifests(root, segment) for row in
            range(m["change_range"]["first_seq"], m["change_range"]["last_seq"] + 1)]


def test_suppressed_after_delivery_is_sent_as_exited(make_project, cli):
    root = make_activation(make_project, [(1, 900), (2, 900), (3, 10)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    assert sent(root, "vip") == [("1", "entered"), ("2", "entered")]
    set_unsubscribed(root, [2])  # only the seed changes: the segment itself is the same
    result = cli(root, "run", "--at", "2026-01-02T06:00")
    assert result.exit_code == 0, result.output
    assert sent(root, "vip")[2:] == [("2", "exited")]
    assert delivered(root, "vip") == ["1"]
    set_unsubscribed(root, [])
    cli(root, "run", "--at", "2026-01-03T06:00")
    assert sent(root, "vip")[3:] == [("2", "entered")]
    assert seqs(root, "vip") == [1, 2, 3, 4]  # one number per change, no gaps, no repeats


def test_moving_between_priority_segments_is_an_exit_and_an_enter(make_project, cli):
    root = make_activation(make_project, [(1, 900), (2, 10)])
    cli(root, "run", "--at", "2026-01-01T06:00")
    assert sent(root, "regular") == [("2", "entered")]
    set_people(root, [(1, 900), (2, 900)])  # 2 now qualifies for vip, which comes first
    result = cli(root, "run", "--at", "2026-01-02T06:00")
    assert result.exit_code == 0
    assert sent(root, "regular")[1:] == [("2", "exited")]
    assert sent(root, "vip")[1:] == [("2", "entered")]
    assert "delivered email/vip: 1 entered, 0 exited" in result.output
    assert "delivered email/regular: 0 entered, 1 exited" in result.output


def test_changes_carry_the_export_columns(make_project, cli):
    root = make_activation(make_project, [(1, 900)])
    cli(root, "run", "--at", "2026-01-01T06:00")
    (m,) = manifests(root, "vip")
    assert [c["name"] for c in m["columns"]] == ["seq", "key", "change", "at", "email"]
    set_people(root, [(1, 10)])
    cli(root, "run", "--at", "2026-01-02T06:00")
    exited = manifests(root, "vip")[1]
    from activation_project import rows_of

    (row,) = rows_of(exited)
    assert row[1:3] == (1, "exited") and row[4] == "u1@x.test"  # last delivered values


def test_held_out_keys_are_recorded_never_sent(make_project, cli):
    root = make_activation(
        make_project,
        [(i, 900) for i in range(1, 21)],
        extra={
            "models/vip.sql": "{{ config(channels=['email'], key='id', "
            "holdout={'percent': 50, 'salt': 'h'}) }}\n"
            "select id, email from {{ ref('people') }} where spend >= 500\n"
        },
    )
    cli(root, "run", "--at", "2026-01-01T06:00")
    from cadence.activation.audience import is_held_out

    held = sorted(str(i) for i in range(1, 21) if is_held_out("h", str(i), 50))
    assert held and len(held) < 20
    assert sorted(r[0] for r in query(
        root, "select key from _cadence.delivered where held_out and segment = 'vip'"
    )) == held
    assert sorted(k for k, _ in sent(root, "vip")) == sorted(
        str(i) for i in range(1, 21) if str(i) not in held
    )
    cli(root, "run", "--at", "2026-01-02T06:00")  # stable: the same group the next day
    assert len(manifests(root, "vip")) == 1


def test_pending_changes_keep_their_numbers_across_a_failure(make_project, cli):
    root = make_activation(make_project, [(1, 900)])
    cli(root, "run", "--at", "2026-01-01T06:00")
    (root / "exports" / "email" / "vip").rename(root / "moved")
    (root / "exports" / "email" / "vip").write_text("a file where a folder should be")
    set_people(root, [(1, 900), (2, 900)])
    result = cli(root, "run", "--at", "2026-01-02T06:00")
    assert result.exit_code == 1
    assert "error: delivery email/vip failed" in result.output and "is a file" in result.output
    assert "hint: nothing past the last acknowledged change was marked delivered" in result.output
    assert "'cadence export --channel email'" in result.output
    failed = query(root, "select export_id, first_seq, last_seq, status from _cadence.deliveries "
                   "where segment = 'vip' order by attempt_id")
    assert failed[-1] == ("email__vip__000000002-000000002", 2, 2, "failed")
    set_people(root, [(1, 900), (2, 900), (3, 900)])
    assert cli(root, "run", "--at", "2026-01-03T06:00").exit_code == 1  # still blocked
    (root / "exports" / "email" / "vip").unlink()
    (root / "moved").rename(root / "exports" / "email" / "vip")
    result = cli(root, "export", "--at", "2026-01-03T07:00")
    assert result.exit_code == 0, result.output
    # the attempt in flight is resent with the same range and id, then the rest, in one go
    ids = [m["export_id"] for m in manifests(root, "vip")]
    assert ids == [
        "email__vip__000000001-000000001",
        "email__vip__000000002-000000002",
        "email__vip__000000003-000000003",
    ]
    result = cli(root, "export", "--at", "2026-01-03T07:01")
    assert "delivered email/vip: no changes" in result.output
    assert sent(root, "vip") == [("1", "entered"), ("2", "entered"), ("3", "entered")]
    assert delivered(root, "vip") == ["1", "2", "3"]
    assert query(root, "select count(*) from _cadence.outbox") == [(0,)]


def test_contract_values_are_frozen():
    import dataclasses
    import datetime as dt

    change = Change(1, "k", "entered", dt.datetime(2026, 1, 1), {"a": 1})
    outcome = DeliveryOutcome(3, 3, None)
    for value in (change, outcome):
        assert dataclasses.is_dataclass(value)
        try:
            value.seq = 2  # type: ignore[misc,attr-defined]
        except dataclasses.FrozenInstanceError:
            pass
        else:
            raise AssertionError("not frozen")


def test_prune_keeps_the_newest_attempt_and_current_state(make_project, cli):
    import datetime as dt

    from cadence.activation import outbox
    from cadence.project import Project
    from cadence.record import membership

    root = make_activation(make_project, [(1, 900)])
    cli(root, "run", "--at", "2026-01-01T06:00")
    set_people(root, [(1, 900), (2, 900)])
    cli(root, "run", "--at", "2026-03-01T06:00")
    cli(root, "run", "-s", "vip", "--at", "2026-03-02T06:00")  # nothing changes: no attempt
    project = Project.load(root)
    engine = project.open_engine()
    try:
        cutoff = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)
        with engine.transaction():
            removed = outbox.prune(engine, cutoff) + membership.prune(engine, cutoff)
            # the newest attempt is kept even when it is older than the cutoff
            assert outbox.prune(engine, dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)) == 0
    finally:
        engine.close()
    assert removed == 2  # vip's January attempt and its January membership entry
    assert query(root, "select segment, first_seq from _cadence.deliveries") == [("vip", 2)]
    assert delivered(root, "vip") == ["1", "2"]  # current state untouched
    assert query(root, "select count(*) from _cadence.membership_changes "
                 "where \"at\" < '2026-02-01'") == [(0,)]


# -- reach history: when each entry was first acknowledged (SPEC §11) ---------------------------


def reached(root, segment):
    return query(
        root,
        "select key, frozen_at, reached_at, replace from _cadence.reached "
        f"where channel = 'email' and segment = '{segment}' order by seq",
    )


def test_each_entry_is_recorded_reached_when_the_destination_has_it(make_project, cli):
    """Outbox rows are deleted on delivery; the reach record keeps per channel x segment x key
    when each entry was frozen and when it was acknowledged, and exits record nothing."""
    import datetime as dt

    root = make_activation(make_project, [(1, 900), (2, 900)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    day1 = dt.datetime(2026, 1, 1, 6)
    assert reached(root, "vip") == [("1", day1, day1, False), ("2", day1, day1, False)]
    set_people(root, [(1, 900), (3, 900)])
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0
    day2 = dt.datetime(2026, 1, 2, 6)
    assert reached(root, "vip")[2:] == [("3", day2, day2, False)]  # 2's exit: no reach row
    freezes = query(
        root,
        "select \"at\", first_seq, last_seq from _cadence.freezes "
        "where channel = 'email' and segment = 'vip' order by \"at\"",
    )
    assert freezes == [(day1, 1, 2), (day2, 3, 4)]


def _day2_delivery_fails(root, cli) -> None:
    """Day 1 delivers 1; on day 2, 2 enters and email's delivery fails (a file where its
    folder was, the folder kept aside)."""
    cli(root, "run", "--at", "2026-01-01T06:00")
    (root / "exports" / "email" / "vip").rename(root / "moved")
    (root / "exports" / "email" / "vip").write_text("a file where a folder should be")
    set_people(root, [(1, 900), (2, 900)])
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 1


def _destination_back(root) -> None:
    (root / "exports" / "email" / "vip").unlink()
    (root / "moved").rename(root / "exports" / "email" / "vip")


def test_a_failed_delivery_reaches_its_entries_when_it_is_retried(make_project, cli):
    import datetime as dt

    root = make_activation(make_project, [(1, 900)])
    _day2_delivery_fails(root, cli)
    assert [r[0] for r in reached(root, "vip")] == ["1"]  # not acknowledged: not reached
    _destination_back(root)
    assert cli(root, "export", "--at", "2026-01-02T09:30").exit_code == 0
    assert reached(root, "vip")[1] == (
        "2", dt.datetime(2026, 1, 2, 6), dt.datetime(2026, 1, 2, 9, 30), False
    )


def test_a_rebaseline_reaches_only_members_the_destination_did_not_have(make_project, cli):
    import datetime as dt

    root = make_activation(make_project, [(1, 900)])
    _day2_delivery_fails(root, cli)
    _destination_back(root)
    result = cli(root, "export", "--rebaseline", "--channel", "email", "--at", "2026-01-02T08:00")
    assert result.exit_code == 0, result.output
    at8 = dt.datetime(2026, 1, 2, 8)
    # 1 was reached on day 1 (the rebaseline resends it: not a first reach); 2 now, by it
    assert [(k, r, rep) for k, _f, r, rep in reached(root, "vip")] == [
        ("1", dt.datetime(2026, 1, 1, 6), False),
        ("2", at8, True),
    ]


def test_keep_days_prunes_reach_history(make_project, cli):
    from activation_project import CADENCE_YML

    yml = CADENCE_YML + "history: {keep_days: 30}\n"
    root = make_activation(make_project, [(1, 900)], cadence_yml=yml)
    cli(root, "run", "--at", "2026-01-01T06:00")
    set_people(root, [(1, 900), (2, 900)])
    assert cli(root, "run", "--at", "2026-03-01T06:00").exit_code == 0
    assert [r[0] for r in reached(root, "vip")] == ["2"]
    assert query(root, "select count(*) from _cadence.freezes where \"at\" < '2026-02-01'") == [
        (0,)
    ]
