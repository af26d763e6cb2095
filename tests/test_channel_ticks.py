"""Each channel receives at its own ticks (SPEC §7 "When", issue 17 items 1-2): a segment feeding
email (daily at 05:00) and ads (every 4 hours) replayed with ``run --due --at`` over two days,
with late runs and a tick that passes while the lock is held; a suppression model rebuilt before
the delivery that reads it, a failing one holding the delivery; a failed delivery retried with
exactly the range its tick froze; kill -9 around the freezes and the tick record
(``activation.timing``, ``activation.ticks``, ``_cadence.channel_ticks``)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from activation_project import cadence, query
from test_activation_files import check_manifests_match_files

from cadence.build.lock import RunLock

UTC = dt.timezone.utc
YML = """\
name: ticks
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: UTC
channels:
  email:
    cadence: "daily at 05:00"
    suppress: [unsub]
    export: {format: csv, columns: [email]}
  ads:
    cadence: "every 4 hours"
    export: {format: csv, columns: [email]}
"""
PLAIN_YML = YML.replace("    suppress: [unsub]\n", "")  # the shared segment alone
MODELS = {
    "models/buyers.sql": "{{ config(channels=['email', 'ads'], key='id') }}\n"
    "select id, email from {{ ref('people') }} where spend >= 500\n",
    "models/unsub.sql": "select id from {{ ref('optouts') }}\n",
    "seeds/optouts.csv": "id\n0\n",
}


def make(make_project: Any, people: list[int], yml: str = YML, **extra: str) -> Path:
    root = make_project({**MODELS, **extra}, cadence_yml=yml)
    set_people(root, people)
    return root


def set_people(root: Path, ids: list[int]) -> None:
    (root / "seeds" / "people.csv").write_text(
        "id,email,spend\n" + "".join(f"{i},u{i}@x.test,900\n" for i in ids)
    )


def set_optouts(root: Path, ids: list[int]) -> None:
    (root / "seeds" / "optouts.csv").write_text("id\n" + "".join(f"{i}\n" for i in ids or [0]))


def manifests(root: Path, channel: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted((root / "exports" / channel).rglob("*.manifest.json")):
        body = json.loads(path.read_text())
        body["_path"] = path
        out.append(body)
    return sorted(out, key=lambda m: m["change_range"]["first_seq"])


def changes(root: Path, channel: str, *, by_segment: bool = False) -> list[tuple[str, ...]]:
    """(key, change) in the order the channel received them (with the segment first)."""
    import csv

    out: list[tuple[str, ...]] = []
    for m in manifests(root, channel):
        with Path(m["_path"]).with_name(m["file"]).open() as fh:
            for row in csv.DictReader(fh):
                got = (row["key"], row["change"])
                out.append((m["segment"], *got) if by_segment else got)
    return out


def delivered_channels(result: Any) -> set[str]:
    """Channels that received changes in a ``run --json`` invocation."""
    doc = json.loads(result.stdout)
    return {d["channel"] for d in doc.get("deliveries", []) if d["status"] == "delivered"}


def latest(t: dt.datetime, hours: tuple[int, ...]) -> dt.datetime:
    """The latest tick at or before ``t`` among these hours of every (UTC) day."""
    for back in range(0, 2):
        day = (t - dt.timedelta(days=back)).date()
        ticks = [dt.datetime.combine(day, dt.time(h), tzinfo=UTC) for h in sorted(hours)]
        past = [x for x in ticks if x <= t]
        if past:
            return past[-1]
    raise AssertionError(t)


EMAIL_HOURS = (5,)
ADS_HOURS = (0, 4, 8, 12, 16, 20)


def replay_times() -> list[tuple[dt.datetime, bool]]:
    """(time, lock held by another run) every 30-60 minutes over two days: the lock is held
    across day 1's 05:00 tick, and day 2 has no run between 04:20 and 05:40 (a late run)."""
    start = dt.datetime(2026, 3, 2, 0, 10, tzinfo=UTC)
    out, t, step = [], start, 0
    while t < start + dt.timedelta(days=2):
        out.append((t, t == dt.datetime(2026, 3, 2, 5, 0, tzinfo=UTC)))
        step += 1
        t += dt.timedelta(minutes=(30, 45, 60, 50)[step % 4])
        if (
            dt.datetime(2026, 3, 2, 4, 40, tzinfo=UTC)
            < t
            < dt.datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
        ):
            t = dt.datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # the run that finds the lock held
        if (
            dt.datetime(2026, 3, 3, 4, 20, tzinfo=UTC)
            < t
            < dt.datetime(2026, 3, 3, 5, 40, tzinfo=UTC)
        ):
            t = dt.datetime(2026, 3, 3, 5, 40, tzinfo=UTC)  # none at 05:00: a late run
    return out


@pytest.mark.slow
def test_a_shared_segment_reaches_each_channel_only_at_that_channels_ticks(make_project, cli):
    root = make(make_project, [1], yml=PLAIN_YML)
    served = {"email": None, "ads": None}
    seen: dict[str, list[dt.datetime]] = {"email": [], "ads": []}
    n = 1
    for when, locked in replay_times():
        n += 1
        set_people(root, list(range(1, n + 1)))  # a new member every time: every build changes
        lock = RunLock(root, "2026-03-02T04:59:00+00:00").acquire() if locked else None
        try:
            result = cli(root, "run", "--due", "--json", "--at", when.isoformat())
        finally:
            if lock is not None:
                lock.release()
        if locked:
            assert result.exit_code == 0 and "holds the project lock" in result.output
            continue
        assert result.exit_code == 0, result.output
        got = delivered_channels(result)
        for channel, hours in (("email", EMAIL_HOURS), ("ads", ADS_HOURS)):
            tick = latest(when, hours)
            due = served[channel] is None or tick > served[channel]
            assert (channel in got) == due, (when, channel, served[channel], got)
            if due:
                served[channel] = tick
                seen[channel].append(when)
    # email: once per tick, the first run at or after it (day 1: the lock held at 05:00, so
    # 05:50; day 2: no run at 05:00, so the late 05:40), and its very first delivery at once
    assert [t.strftime("%d %H:%M") for t in seen["email"]] == ["02 00:10", "02 05:50", "03 05:40"]
    # ads: its first delivery, then each 4-hour tick once (day 2's 04:00 tick at 05:40)
    assert [t.strftime("%d %H:%M") for t in seen["ads"]] == [
        *("02 00:10", "02 04:00", "02 08:05", "02 12:00", "02 16:20", "02 20:25"),
        *("03 00:20", "03 05:40", "03 08:00", "03 12:50", "03 16:45", "03 20:20"),
    ]
    # the files say the same: each manifest was published by one of those runs
    for channel in ("email", "ads"):
        published = [m["published_at"] for m in manifests(root, channel)]
        assert published == [t.isoformat() for t in seen[channel]], channel
    # every change once, in order, and each channel ends with what buyers held at its last tick
    for channel in ("email", "ads"):
        got = changes(root, channel)
        assert len(got) == len(set(got)) and all(c == "entered" for _k, c in got)
    final = {
        str(r[0]) for r in query(root, "select key from _cadence.delivered where channel = 'email'")
    }
    assert final == {k for k, _c in changes(root, "email")}
    check_manifests_match_files(root)
    status = cli(root, "status", "--at", "2026-03-04T00:15")
    assert (
        "email (daily at 05:00): last delivery served tick 2026-03-03 05:00 UTC; "
        "next delivery 2026-03-04 05:00 UTC" in status.output
    )
    assert (
        "ads (every 4 hours): last delivery served tick 2026-03-03 20:00 UTC; behind: tick "
        "2026-03-04 00:00 UTC not delivered yet" in status.output
    )


def test_a_late_run_delivers_a_missed_tick_once_and_status_says_behind_until_then(
    make_project, cli
):
    root = make(make_project, [1])
    assert cli(root, "run", "--due", "--at", "2026-03-02T04:30").exit_code == 0
    set_people(root, [1, 2])
    # 05:00 passes with no run: status says the email tick waits
    status = cli(root, "status", "--at", "2026-03-02T05:20").output
    assert (
        "email (daily at 05:00): last delivery served tick 2026-03-01 05:00 UTC; behind: "
        "tick 2026-03-02 05:00 UTC not delivered yet" in status
    )
    assert "next delivery 2026-03-02 05:20 UTC" in status
    late = cli(root, "run", "--due", "--at", "2026-03-02T05:40")
    assert "delivered email/buyers: 1 entered, 0 exited" in late.output
    again = cli(root, "run", "--due", "--at", "2026-03-02T06:10")
    assert "email" not in again.output
    assert query(
        root, "select served_tick, owed_at from _cadence.channel_ticks where channel = 'email'"
    ) == [(dt.datetime(2026, 3, 2, 5, 0), None)]


def test_an_unsubscribe_between_ticks_is_sent_as_exited_at_the_next_email_tick(make_project, cli):
    root = make(make_project, [1, 2, 3])
    explain = cli(root, "explain", "unsub", "--at", "2026-03-02T05:10").output
    assert "daily at 05:00, from channel email (suppression list)" in explain
    assert cli(root, "run", "--due", "--at", "2026-03-02T05:10").exit_code == 0
    assert sorted(changes(root, "email")) == [("1", "entered"), ("2", "entered"), ("3", "entered")]
    # 1 unsubscribes; 4 joins and unsubscribes before the email tick
    set_optouts(root, [1, 4])
    set_people(root, [1, 2, 3, 4])
    ads = cli(root, "run", "--due", "--at", "2026-03-02T08:00")  # the ads tick only
    assert "delivered ads/buyers: 1 entered" in ads.output and "email" not in ads.output
    tick = cli(root, "run", "--due", "--at", "2026-03-03T05:00")
    assert tick.exit_code == 0, tick.output
    assert "OK    unsub" in tick.output  # rebuilt before the delivery that reads it
    assert changes(root, "email")[3:] == [("1", "exited")]
    assert ("4", "entered") not in changes(root, "email")
    assert query(
        root,
        "select count(*) from _cadence.delivered where channel = 'email' and key in ('1', '4')",
    ) == [(0,)]


def test_a_failing_suppression_model_holds_the_delivery_until_it_builds(make_project, cli):
    root = make(make_project, [1])
    assert cli(root, "run", "--due", "--at", "2026-03-02T04:00").exit_code == 0
    before = len(manifests(root, "email"))
    set_people(root, [1, 2])
    set_optouts(root, [1])
    (root / "models" / "unsub.sql").write_text("select nope from {{ ref('optouts') }}\n")
    held = cli(root, "run", "--due", "--at", "2026-03-03T05:00")
    assert held.exit_code == 1
    assert "error: delivery email/buyers held: suppression list 'unsub' is not current" in (
        held.output
    )
    assert "delivered ads/buyers: 1 entered" in held.output  # ads reads no suppression list
    assert len(manifests(root, "email")) == before
    served = "select served_tick from _cadence.channel_ticks where channel = 'email'"
    assert query(root, served) == [(dt.datetime(2026, 3, 1, 5, 0),)]  # the tick is not served
    # still failing (backing off): held again at the next invocation, nothing sent
    again = cli(root, "run", "--due", "--at", "2026-03-03T05:01")
    assert again.exit_code == 1 and "held" in again.output
    # backing off (not retried at 05:02): the hold was reported for this reason, so the run
    # says nothing and exits 0 (no cron mail every minute); --json still carries it
    waiting = cli(root, "run", "--due", "--at", "2026-03-03T05:02")
    assert waiting.exit_code == 0 and waiting.output == ""
    doc = json.loads(cli(root, "run", "--due", "--json", "--at", "2026-03-03T05:02").stdout)
    assert [(d["channel"], d["status"]) for d in doc["deliveries"]] == [("email", "held")]
    assert len(manifests(root, "email")) == before
    # status says why the tick waits, under the segment's delivery line (and in --json)
    status = cli(root, "status", "--at", "2026-03-03T05:02").output
    assert "\n    held at the last run (2026-03-03 05:02 UTC): suppression list 'unsub'" in status
    rows = json.loads(cli(root, "status", "--json", "--at", "2026-03-03T05:02").stdout)
    held = {d["channel"]: d["held"] for d in rows["deliveries"]}
    assert held["ads"] is None and held["email"].startswith("suppression list 'unsub'")
    # said again with the input's next failure (its backoff retry), which fails the run
    retried = cli(root, "run", "--due", "--at", "2026-03-03T05:03")
    assert retried.exit_code == 1 and "error: unsub" in retried.output
    assert "delivery email/buyers held: suppression list 'unsub' is not current" in retried.output
    # a new reason (the input fails differently) is news: reported when it first appears
    (root / "models" / "unsub.sql").write_text("select 1/0 as id, nah from {{ ref('optouts') }}\n")
    changed = cli(root, "run", "--due", "--at", "2026-03-03T05:07")
    assert changed.exit_code == 1 and '"nah" not found' in changed.output
    assert "email/buyers held" in changed.output
    assert cli(root, "run", "--due", "--at", "2026-03-03T05:08").output == ""
    (root / "models" / "unsub.sql").write_text("select id from {{ ref('optouts') }}\n")
    fixed = cli(root, "run", "--due", "--at", "2026-03-03T06:00")
    assert fixed.exit_code == 0, fixed.output
    assert changes(root, "email")[1:] == [("1", "exited"), ("2", "entered")]
    assert query(root, served) == [(dt.datetime(2026, 3, 3, 5, 0),)]
    assert "held at the last run" not in cli(root, "status", "--at", "2026-03-03T06:01").output


def test_a_failed_delivery_is_retried_with_exactly_the_range_its_tick_froze(make_project, cli):
    root = make(make_project, [1], yml=PLAIN_YML)
    assert cli(root, "run", "--due", "--at", "2026-03-02T04:00").exit_code == 0
    set_people(root, [1, 2])
    folder = root / "exports" / "email" / "buyers"
    aside = folder.with_name("aside")
    folder.rename(aside)
    folder.write_text("not a folder")  # the email destination fails
    tick = cli(root, "run", "--due", "--at", "2026-03-03T05:00")
    assert tick.exit_code == 1 and "delivery email/buyers failed" in tick.output
    retry = cli(root, "run", "--due", "--at", "2026-03-03T05:30")
    assert retry.exit_code == 1 and "delivery email/buyers failed" in retry.output
    folder.unlink()
    aside.rename(folder)
    set_people(root, [1, 2, 3])  # a newer change, published at the next ads tick
    retry = cli(root, "run", "--due", "--at", "2026-03-03T06:00")
    assert retry.exit_code == 0, retry.output
    assert "delivered email/buyers: 1 entered, 0 exited, changes 2-2" in retry.output
    ads = cli(root, "run", "--due", "--at", "2026-03-03T08:00")
    assert "delivered ads/buyers: 1 entered" in ads.output
    assert "email" not in ads.output  # 3 waits for email's next tick
    assert changes(root, "email") == [("1", "entered"), ("2", "entered")]
    nxt = cli(root, "run", "--due", "--at", "2026-03-04T05:00")
    assert "delivered email/buyers: 1 entered, 0 exited, changes 3-3" in nxt.output
    check_manifests_match_files(root)


KILL_YML = YML.replace(
    "    export: {format: csv, columns: [email]}\n  ads:",
    "    priority: [browsers, buyers]\n    export: {format: csv, columns: [email]}\n  ads:",
)
KILL_MODELS = {
    "models/browsers.sql": "{{ config(channels=['email'], key='id') }}\n"
    "select id, email from {{ ref('people') }} where id % 2 = 0\n",
}


@pytest.mark.parametrize(
    "step", ["before_deliver", "after_freeze", "after_tick", "after_plan", "after_send"]
)
def test_a_kill_around_the_freezes_and_the_tick_record_delivers_that_tick_once(make_project, step):
    root = make(make_project, [1, 2], yml=KILL_YML, **KILL_MODELS)
    assert cadence(root, "run", "--due", "--at", "2026-03-02T04:00").returncode == 0
    set_people(root, [1, 2, 3, 4])
    killed = cadence(root, "run", "--due", "--at", "2026-03-03T05:00", fault=step)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    # what the 05:00 tick owed is delivered by the next invocation, nothing is due then
    catch_up = cadence(root, "run", "--due", "--at", "2026-03-03T05:20")
    assert catch_up.returncode == 0, catch_up.stdout + catch_up.stderr
    assert {k for k, _c in changes(root, "email")} == {"1", "2", "3", "4"}
    email_files = len(manifests(root, "email"))
    set_people(root, [1, 2, 3, 4, 5, 6])  # rebuilt at the ads tick: email waits
    ads = cadence(root, "run", "--due", "--at", "2026-03-03T08:00")
    assert ads.returncode == 0 and "email" not in ads.stdout, ads.stdout
    assert len(manifests(root, "email")) == email_files
    assert cadence(root, "run", "--due", "--at", "2026-03-04T05:00").returncode == 0
    got = changes(root, "email", by_segment=True)
    assert len(got) == len(set(got)), got  # nothing sent twice
    # priority: browsers claims the even keys first, buyers gets the rest
    assert sorted(got) == sorted(
        [("browsers", k, "entered") for k in "246"] + [("buyers", k, "entered") for k in "135"]
    )
    assert query(root, "select count(*) from _cadence.deliveries where status = 'started'") == [
        (0,)
    ]
    check_manifests_match_files(root)


def test_a_webhook_answering_500_gets_exactly_the_frozen_batch_again_and_newer_changes_later(
    make_project, cli, monkeypatch
):
    from routing_project import SECRET, Fault, Receiver

    monkeypatch.setenv("HOOK_SECRET", SECRET)
    failing = {"on": False}
    with Receiver(SECRET, fault=lambda n, i: Fault(status=500) if failing["on"] else None) as rx:
        yml = PLAIN_YML.replace(
            '  email:\n    cadence: "daily at 05:00"\n    export: {format: csv, columns: [email]}',
            '  email:\n    cadence: "daily at 05:00"\n    export: {kind: webhook, url: '
            f'"{rx.url}", secret_env: HOOK_SECRET, max_attempts: 1, columns: [email]}}',
        )
        root = make(make_project, [1], yml=yml)
        assert cli(root, "run", "--due", "--at", "2026-03-02T05:10").exit_code == 0
        set_people(root, [1, 2])
        failing["on"] = True
        down = cli(root, "run", "--due", "--at", "2026-03-03T05:00")
        assert down.exit_code == 1 and "delivery email/buyers failed" in down.output
        retry = cli(root, "run", "--due", "--at", "2026-03-03T05:30")
        assert retry.exit_code == 1 and "delivery email/buyers failed" in retry.output
        failing["on"] = False
        set_people(root, [1, 2, 3])
        ads = cli(root, "run", "--due", "--at", "2026-03-03T08:00")  # 3 published for ads
        assert ads.exit_code == 0, ads.output
        assert "delivered email/buyers: 1 entered, 0 exited, changes 2-2" in ads.output
        tick = cli(root, "run", "--due", "--at", "2026-03-04T05:00")
        assert "delivered email/buyers: 1 entered, 0 exited, changes 3-3" in tick.output
    assert rx.keys() == [("1", "entered"), ("2", "entered"), ("3", "entered")]
    # the retried batch kept its id: two 500s and the 200 of one batch, then the next batch
    ids = [i for i, _status in rx.requests]
    assert [s for _i, s in rx.requests] == [200, 500, 500, 200, 200]
    assert ids[1] == ids[2] == ids[3] != ids[4]


def test_a_warehouse_from_before_channel_ticks_delivers_once_then_at_its_ticks(make_project, cli):
    import duckdb

    root = make(make_project, [1], yml=PLAIN_YML)
    assert cli(root, "run", "--due", "--at", "2026-03-02T05:10").exit_code == 0
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:  # as an older cadence left it
        con.execute("drop table _cadence.channel_ticks")
        con.execute("alter table _cadence.delivery_cursor add column inputs varchar")
        con.execute('update _cadence.delivery_cursor set inputs = \'{"buyers": "1/x"}\'')
    set_people(root, [1, 2])
    upgraded = cli(root, "run", "--due", "--at", "2026-03-02T08:00")  # the ads tick
    assert upgraded.exit_code == 0, upgraded.output
    assert "delivered ads/buyers: 1 entered" in upgraded.output
    assert "delivered email/buyers: 1 entered" in upgraded.output  # once, at the upgrade
    assert "email" not in cli(root, "run", "--due", "--at", "2026-03-02T12:00").output
    assert changes(root, "email") == [("1", "entered"), ("2", "entered")]
