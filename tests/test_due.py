"""What is due (SPEC §4): ticks, collapse of missed ticks, inherited ticks, upstream refresh,
views, ephemerals, on demand, failure backoff and DST days. Times are always fixed."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from conftest import BERLIN, at, last_run_id, read_run_results, statuses

from cadence.plan.due import view_hash
from cadence.plan.history import ModelState, StateSnapshot
from cadence.project import Project, Selection

UTC = dt.timezone.utc


def times(start: dt.datetime, end: dt.datetime, minutes: int) -> list[dt.datetime]:
    """Every ``minutes`` of real time from ``start`` to ``end`` inclusive (steps in UTC)."""
    out, t = [], start.astimezone(UTC)
    while t <= end.astimezone(UTC):
        out.append(t.astimezone(BERLIN))
        t += dt.timedelta(minutes=minutes)
    return out


def iso(t: dt.datetime) -> str:
    return t.isoformat()


def replay(cli, root: Path, moments: list[dt.datetime], *args: str) -> tuple[Counter, list]:
    """``cadence run --due --at T`` for each T; counts successful builds from run_results.json
    (a run that built nothing leaves the last one in place: it counts as no results)."""
    built: Counter = Counter()
    runs = []
    for t in moments:
        before = last_run_id(root)
        result = cli(root, "run", "--due", "--at", iso(t), *args)
        assert result.exit_code in (0, 1), result.output
        assert "Traceback" not in result.output
        written = last_run_id(root) != before
        results = read_run_results(root)["results"] if written else []
        found: dict[str, str] = defaultdict(lambda: "skipped")  # an idle run: all skipped
        found.update({r["name"]: r["status"] for r in results})
        runs.append((t, found))
        built.update(r["name"] for r in results if r["status"] == "success")
    return built, runs


# --- table-driven: one decision from a given state --------------------------------------------

TABLE_PROJECT = {
    "models/ads_seg.sql": "{{ config(channels=['ads']) }}\nselect 1 as id\n",
    "models/email_seg.sql": "{{ config(channels=['email']) }}\nselect 1 as id\n",
    "models/mixed_seg.sql": "{{ config(channels=['email', 'ads']) }}\nselect 1 as id\n",
    "models/weekday_seg.sql": "{{ config(cadence='weekdays at 09:00') }}\nselect 1 as id\n",
}


def snapshot(built: dict[str, str | None], missing: tuple[str, ...] = ()) -> StateSnapshot:
    models = {}
    relations = {}
    for name, when in built.items():
        if when is None:
            continue
        t = at(when).astimezone(UTC)  # the state layer hands out UTC instants
        models[name] = ModelState(
            name, last_success_at=t, last_status="success", last_attempt_at=t, builds=1
        )
        if name not in missing:
            relations[("main", name)] = "table"
    return StateSnapshot(models, relations)


@pytest.mark.parametrize(
    ("model", "last_built", "now", "action", "tick", "reason"),
    [
        pytest.param(
            "ads_seg",
            None,
            "2026-01-10T09:07",
            "build",
            "2026-01-10T08:00",
            "never built",
            id="never-built-is-due",
        ),
        pytest.param(
            "ads_seg",
            "2026-01-10T08:00",
            "2026-01-10T09:07",
            "skip",
            None,
            "not due",
            id="built-at-the-tick",
        ),
        pytest.param(
            "ads_seg",
            "2026-01-10T08:30",
            "2026-01-10T11:59",
            "skip",
            None,
            "next tick 2026-01-10 12:00",
            id="built-after-latest-tick",
        ),
        pytest.param(
            "ads_seg",
            "2026-01-10T07:59",
            "2026-01-10T09:07",
            "build",
            "2026-01-10T08:00",
            "due",
            id="built-before-latest-tick",
        ),
        pytest.param(
            "ads_seg",
            "2026-01-10T05:00",
            "2026-01-10T12:00",
            "build",
            "2026-01-10T12:00",
            "due",
            id="missed-ticks-collapse-to-the-latest",
        ),
        pytest.param(
            "email_seg",
            "2026-01-09T05:03",
            "2026-01-10T04:59",
            "skip",
            None,
            "next tick 2026-01-10 05:00",
            id="daily-before-its-time",
        ),
        pytest.param(
            "email_seg",
            "2026-01-09T05:03",
            "2026-01-10T05:00",
            "build",
            "2026-01-10T05:00",
            "due",
            id="daily-tick-is-inclusive",
        ),
        pytest.param(
            "email_seg",
            "2026-01-07T05:00",
            "2026-01-10T04:00",
            "build",
            "2026-01-09T05:00",
            "due",
            id="days-missed-collapse",
        ),
        pytest.param(
            "mixed_seg",
            "2026-01-10T05:00",
            "2026-01-10T07:59",
            "skip",
            None,
            "not due",
            id="union-between-ticks",
        ),
        pytest.param(
            "mixed_seg",
            "2026-01-10T05:00",
            "2026-01-10T08:00",
            "build",
            "2026-01-10T08:00",
            "due",
            id="union-takes-the-other-channels-tick",
        ),
        pytest.param(
            "weekday_seg",
            "2026-01-09T09:00",
            "2026-01-11T12:00",
            "skip",
            None,
            "next tick 2026-01-12 09:00",
            id="explicit-cadence-skips-the-weekend",
        ),
    ],
)
def test_decision_from_state(make_project, model, last_built, now, action, tick, reason):
    project = Project.load(make_project(TABLE_PROJECT))
    plan = project.plan(at(now), Selection(select=(model,)), state=snapshot({model: last_built}))
    decision = plan.get(model)
    assert decision is not None
    assert decision.action == action, decision.reason
    assert reason in decision.reason
    if tick is not None:
        assert decision.tick == at(tick)


def test_a_missing_relation_is_rebuilt_even_when_state_says_it_is_fresh(make_project):
    project = Project.load(make_project(TABLE_PROJECT))
    state = snapshot({"ads_seg": "2026-01-10T08:30"}, missing=("ads_seg",))
    decision = project.plan(at("2026-01-10T09:00"), state=state).get("ads_seg")
    assert decision.action == "build"
    assert "missing" in decision.reason


def test_due_decisions_are_pure(make_project):
    """Deciding never writes: planning twice over the same state gives the same plan."""
    root = make_project(TABLE_PROJECT)
    project = Project.load(root)
    state = snapshot({"ads_seg": "2026-01-10T05:00"})
    first = project.plan(at("2026-01-10T09:07"), state=state)
    second = project.plan(at("2026-01-10T09:07"), state=state)
    assert first == second
    assert not (root / "warehouse.duckdb").exists()


# --- replays through the CLI ------------------------------------------------------------------


def test_missed_ticks_collapse_into_one_build_serving_the_latest(make_project, cli):
    root = make_project({"models/ads_seg.sql": "{{ config(channels=['ads']) }}\nselect 1 as id\n"})
    built, _ = replay(cli, root, [at("2026-01-10T05:00")])
    assert built == {"ads_seg": 1}
    plan = Project.load(root).plan(at("2026-01-10T09:07"))
    assert plan.get("ads_seg").tick == at("2026-01-10T08:00")  # 08:00 only, not 04:00 too
    built, _ = replay(
        cli, root, [at("2026-01-10T09:07"), at("2026-01-10T09:30"), at("2026-01-10T11:59")]
    )
    assert built == {"ads_seg": 1}


def test_staging_without_channel_inherits_the_union_of_its_consumers(copy_project):
    project = Project.load(copy_project("day"))
    events = project.cadences.of("stg_events")
    assert not events.explicit
    assert set(events.ticks.describe().split(" + ")) == {"every 5 minutes", "every 15 minutes"}
    assert "every 5 minutes, from channel routing via routing_seg" in events.provenance()
    assert "every 15 minutes, from channel web via web_seg" in events.provenance()
    customers = project.cadences.of("stg_customers")
    assert set(customers.ticks.describe().split(" + ")) == {"every 4 hours", "daily at 05:00"}
    assert set(customers.channels) == {"ads", "email"}


def test_inherited_ticks_pass_through_views_and_ephemerals(copy_project):
    project = Project.load(copy_project("shop"))
    provenance = project.cadences.of("stg_orders").provenance()
    assert "every 4 hours, from channel ads via customer_totals -> high_value" in provenance
    assert "daily at 05:00, from channel email via customer_totals -> high_value" in provenance
    assert project.cadences.of("survey_list").describe() == "on demand"


def test_what_a_channels_delivery_reads_takes_the_channels_ticks(make_project):
    """A suppression list that is a model (and what it reads) is upstream of its channel
    (SPEC §7 "When"): it takes the channel's ticks, unless it has its own cadence."""
    yml = (
        "name: p\ntimezone: Europe/Berlin\nchannels:\n  email:\n    cadence: daily at 05:00\n"
        "    suppress: [unsub, slow_unsub, optout_seed]\n  ads: {cadence: every 4 hours}\n"
    )
    project = Project.load(
        make_project(
            {
                "models/seg.sql": "{{ config(channels=['email', 'ads'], key='id') }}\n"
                "select 1 as id\n",
                "models/raw_optouts.sql": "select 1 as id\n",
                "models/unsub.sql": "select * from {{ ref('raw_optouts') }}\n",
                "models/slow_unsub.sql": "{{ config(cadence='weekly') }}\nselect 1 as id\n",
                "seeds/optout_seed.csv": "id\n1\n",
            },
            cadence_yml=yml,
        )
    )
    unsub = project.cadences.of("unsub")
    assert unsub.describe() == "daily at 05:00" and unsub.channels == ("email",)
    assert unsub.provenance() == "daily at 05:00, from channel email (suppression list)"
    assert project.cadences.of("raw_optouts").provenance() == (
        "daily at 05:00, from channel email via unsub (suppression list)"
    )
    assert project.cadences.of("slow_unsub").describe() == "weekly"
    plan = project.plan(at("2026-01-10T05:00"), state=StateSnapshot())
    assert plan.get("unsub").builds and plan.get("raw_optouts").builds


def test_only_ticks_make_a_model_due(copy_project, cli):
    root = copy_project("day")
    replay(cli, root, [at("2026-01-10T07:00")])
    # at 08:00 ads ticks: stg_customers is rebuilt for ads_seg, but email_seg (next tick tomorrow
    # 05:00) does not become due because its upstream changed
    built, runs = replay(cli, root, [at("2026-01-10T08:00")])
    assert built == {"stg_customers": 1, "ads_seg": 1, "web_seg": 1, "routing_seg": 1}
    assert runs[0][1]["email_seg"] == "skipped"
    decision = Project.load(root).plan(at("2026-01-10T08:01")).get("email_seg")
    assert decision.action == "skip"
    assert "next tick 2026-01-11 05:00" in decision.reason


UPSTREAM = {
    "models/staging/stg_customers.sql": "select 1 as customer_id\n",
    "models/staging/hourly_ref.sql": "{{ config(cadence='hourly') }}\nselect 1 as customer_id\n",
    "models/segments/email_seg.sql": "{{ config(channels=['email']) }}\nselect * from {{ ref('stg_customers') }}\n",
    "models/segments/routing_seg.sql": "{{ config(channels=['routing']) }}\n"
    "select * from {{ ref('stg_customers') }} join {{ ref('hourly_ref') }} using (customer_id)\n",
}


def test_run_due_for_a_channel_pulls_its_stale_upstream_into_the_same_run(make_project, cli):
    root = make_project(UPSTREAM)
    assert cli(root, "run", "--at", "2026-01-10T04:00").exit_code == 0
    plan = Project.load(root).plan(at("2026-01-10T05:02"), Selection(channels=("email",)))
    pulled = plan.get("stg_customers")
    assert (pulled.action, pulled.pulled_by, pulled.tick) == (
        "build",
        "email_seg",
        at("2026-01-10T05:00"),
    )

    result = cli(root, "run", "--due", "--channel", "email", "--at", "2026-01-10T05:02")
    assert result.exit_code == 0, result.output
    results = {r["name"]: r for r in read_run_results(root)["results"]}
    assert set(results) == {"stg_customers", "email_seg"}  # only what the run considered
    assert results["stg_customers"]["status"] == "success"
    assert "upstream of email_seg" in results["stg_customers"]["reason"]
    assert results["email_seg"]["status"] == "success"

    # stg_customers is now fresh for the 05:00 tick: routing_seg uses it without a rebuild
    cli(root, "run", "--due", "-s", "routing_seg", "--at", "2026-01-10T05:03")
    assert statuses(root) == {"routing_seg": "success"}


def test_an_upstream_with_its_own_cadence_is_not_rebuilt_for_a_consumer(make_project, cli):
    root = make_project(UPSTREAM)
    # never built: it must exist first, so the consumer's run builds it
    cli(root, "run", "--due", "-s", "routing_seg", "--at", "2026-01-10T10:00")
    assert statuses(root) == {
        "hourly_ref": "success",
        "stg_customers": "success",
        "routing_seg": "success",
    }
    # 11:05: hourly_ref's own tick (11:00) has passed, but routing_seg only reads its current data
    cli(root, "run", "--due", "-s", "routing_seg", "--at", "2026-01-10T11:05")
    assert statuses(root) == {"stg_customers": "success", "routing_seg": "success"}
    # selected itself, it is due by its own tick
    cli(root, "run", "--due", "--at", "2026-01-10T11:06")
    assert statuses(root)["hourly_ref"] == "success"


VIEWS = {
    "models/staging/stg_view.sql": "{{ config(materialized='view') }}\nselect 1 as id\n",
    "models/segments/web_seg.sql": "{{ config(channels=['web']) }}\nselect * from {{ ref('stg_view') }}\n",
}


def test_views_are_built_only_when_missing_or_their_sql_changed(make_project, cli):
    root = make_project(VIEWS)
    replay(cli, root, [at("2026-01-10T10:00")])
    assert statuses(root) == {"stg_view": "success", "web_seg": "success"}

    replay(cli, root, [at("2026-01-10T10:15")])
    results = {r["name"]: r for r in read_run_results(root)["results"]}
    assert results["stg_view"]["status"] == "skipped"
    assert "view is current" in results["stg_view"]["reason"]
    assert results["web_seg"]["status"] == "success"

    (root / "models/staging/stg_view.sql").write_text(
        "{{ config(materialized='view') }}\nselect 2 as id, 'changed' as note\n"
    )
    replay(cli, root, [at("2026-01-10T10:16")])
    results = {r["name"]: r for r in read_run_results(root)["results"]}
    assert results["stg_view"]["status"] == "success"
    assert "SQL changed" in results["stg_view"]["reason"]
    assert results["web_seg"]["status"] == "skipped"  # no tick: the view shows new data anyway

    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        assert con.sql("select id, note from stg_view").fetchall() == [(2, "changed")]
        con.execute("drop view stg_view")
    replay(cli, root, [at("2026-01-10T10:17")])
    assert statuses(root)["stg_view"] == "success"


def test_a_view_is_recreated_when_an_ephemeral_it_inlines_changes(make_project, cli):
    root = make_project(
        {
            "models/eph.sql": "{{ config(materialized='ephemeral') }}\nselect 1 as id\n",
            "models/v.sql": "{{ config(materialized='view') }}\nselect * from {{ ref('eph') }}\n",
        }
    )
    replay(cli, root, [at("2026-01-10T10:00")])
    (root / "models/eph.sql").write_text(
        "{{ config(materialized='ephemeral') }}\nselect 2 as id, 'new' as note\n"
    )
    replay(cli, root, [at("2026-01-10T10:01")])
    assert statuses(root)["v"] == "success"
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select id from v").fetchall() == [(2,)]


def test_ephemerals_are_never_built_and_are_inlined(copy_project, cli):
    root = copy_project("shop")
    for args in (("run",), ("run", "--due")):
        assert cli(root, *args, "--at", "2026-01-10T10:00").exit_code == 0
        results = {r["name"]: r for r in read_run_results(root)["results"]}
        assert results["customer_totals"]["status"] == "skipped"
        assert "ephemeral" in results["customer_totals"]["reason"]
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        names = {
            r[0] for r in con.sql("select table_name from information_schema.tables").fetchall()
        }
    assert "customer_totals" not in names
    compiled = (root / "target/compiled/models/segments/high_value.sql").read_text()
    assert "__cadence_ephemeral__customer_totals as (" in compiled


def test_on_demand_is_never_due_but_built_when_selected_without_due(copy_project, cli):
    root = copy_project("shop")
    for t in ("2026-01-10T05:00", "2026-01-10T10:00", "2026-01-11T00:00"):
        cli(root, "run", "--due", "--at", t)
        assert statuses(root)["survey_list"] == "skipped"
    cli(root, "run", "--due", "-s", "survey_list", "--at", "2026-01-11T00:05")
    assert statuses(root)["survey_list"] == "skipped"
    assert cli(root, "run", "-s", "survey_list", "--at", "2026-01-11T00:06").exit_code == 0
    assert statuses(root)["survey_list"] == "success"
    decision = Project.load(root).plan(at("2026-01-12T00:00")).get("survey_list")
    assert decision.action == "skip"
    assert "built only when selected" in decision.reason


def test_a_model_feeding_no_channel_is_on_demand(make_project, cli):
    root = make_project({"models/orphan.sql": "select 1 as id\n"})
    project = Project.load(root)
    assert project.cadences.of("orphan").describe() == "on demand (feeds no channel)"
    result = cli(root, "run", "--due", "--json", "--at", "2026-01-10T10:00")
    assert {r["name"]: r["status"] for r in json.loads(result.output)["results"]} == {
        "orphan": "skipped"
    }
    assert not (root / "target" / "run_results.json").exists()  # an idle run writes none


# --- failures back off --------------------------------------------------------------------------

BROKEN_SQL = "{{ config(channels=['%s']) }}\nselect no_such_column from range(3)\n"
FIXED_SQL = "{{ config(channels=['%s']) }}\nselect 1 as id, 'fixed' as note\n"


@pytest.mark.parametrize(
    ("channel", "until", "attempts", "next_attempt"),
    [
        # every 15 minutes: next invocation, then +2, +4, +8, then capped at 15
        pytest.param(
            "web",
            "10:46",
            ["10:00", "10:01", "10:03", "10:07", "10:15", "10:30", "10:45"],
            "11:00",
            id="web-capped-at-15",
        ),
        # every 5 minutes: next invocation, +2, +4, then capped at 5 (8 > 5)
        pytest.param(
            "routing",
            "10:28",
            ["10:00", "10:01", "10:03", "10:07", "10:12", "10:17", "10:22", "10:27"],
            "10:32",
            id="routing-capped-at-5",
        ),
    ],
)
def test_a_failed_model_is_retried_with_backoff_capped_by_its_interval(
    make_project, cli, channel, until, attempts, next_attempt
):
    root = make_project({"models/broken.sql": BROKEN_SQL % channel})
    moments = times(at("2026-01-10T10:00"), at(f"2026-01-10T{until}"), 1)
    _, runs = replay(cli, root, moments)
    tried = [t.strftime("%H:%M") for t, status in runs if status["broken"] == "error"]
    assert tried == attempts
    assert all(status["broken"] in ("error", "skipped") for _, status in runs)
    decision = Project.load(root).plan(at(f"2026-01-10T{until}")).get("broken")
    assert decision is not None and "backing off" in decision.reason

    (root / "models/broken.sql").write_text(FIXED_SQL % channel)
    moments = times(
        at(f"2026-01-10T{until}") + dt.timedelta(minutes=1), at(f"2026-01-10T{next_attempt}"), 1
    )
    _, runs = replay(cli, root, moments)
    assert [status["broken"] for _, status in runs] == ["skipped"] * (len(moments) - 1) + [
        "success"
    ]
    state = Project.load(root).read_state().of("broken")
    assert (state.last_status, state.failure_streak) == ("success", 0)


@pytest.mark.parametrize(
    ("attempts", "retry_at"),
    [
        # cron starts each minute's run a little later or earlier: a run at 10:03:05 is the
        # invocation 2 minutes after the one at 10:01:40, so the second retry is there
        pytest.param(["10:00:40", "10:01:40"], "10:03:05", id="second-retry-2-minutes-later"),
        # capped by the model's own interval (every 5 minutes): after the 10:07:50 attempt the
        # retry is the 10:12 invocation, 5 minutes later, not 10:13, 6 minutes later
        pytest.param(
            ["10:00:50", "10:01:50", "10:03:50", "10:07:50"],
            "10:12:02",
            id="capped-at-the-interval",
        ),
    ],
)
def test_a_retry_waits_whole_minutes_of_invocations_not_seconds(
    make_project, cli, attempts, retry_at
):
    """SPEC §4: retried at the next invocation, then 2, 4, 8 minutes, never more than its own
    interval. Invocations come from cron each minute, each starting a few tenths of a second
    apart: the wait counts minutes from the minute of the failed attempt, so a retry is never
    pushed one more minute because the earlier run happened to start later in its minute."""
    root = make_project({"models/broken.sql": BROKEN_SQL % "routing"})
    for t in attempts:
        assert cli(root, "run", "--due", "--at", f"2026-01-10T{t}").exit_code == 1
    # status names the same retry: the minute of the invocation that retries
    status = cli(root, "status", "--json", "--at", f"2026-01-10T{attempts[-1]}")
    rows = {r["name"]: r for r in json.loads(status.output)["models"]}
    expected = at(f"2026-01-10T{retry_at}").replace(second=0)
    assert dt.datetime.fromisoformat(rows["broken"]["next_retry"]) == expected
    decision = Project.load(root).plan(at(f"2026-01-10T{retry_at}")).get("broken")
    assert decision is not None and decision.builds, decision
    result = cli(root, "run", "--due", "--at", f"2026-01-10T{retry_at}")
    assert result.exit_code == 1, result.output
    state = Project.load(root).read_state().of("broken")
    assert (state.last_status, state.failure_streak) == ("error", len(attempts) + 1)


@pytest.mark.parametrize(
    ("streak", "interval", "wait"),
    [
        (1, 5, 0),
        (2, 5, 2),
        (3, 5, 4),
        (4, 5, 5),  # capped by the interval
        (42, 5, 5),  # 2**41 minutes is more than a timedelta holds: capped all the same
        (10_000, 5, 5),
        (2, None, 2),
        (11, None, 1024),
        (42, None, 2**30),  # no interval: the doubling stops at 2**30 minutes
        (10_000, None, 2**30),
    ],
)
def test_backoff_doubles_then_stops_at_the_interval_however_long_the_streak(
    streak, interval, wait
):
    from cadence.plan.due import backoff_wait, retry_time

    every = None if interval is None else dt.timedelta(minutes=interval)
    assert backoff_wait(streak, every) == dt.timedelta(minutes=wait)
    failed = at("2026-01-10T10:07:50")
    assert retry_time(failed, streak, every) == at("2026-01-10T10:07") + dt.timedelta(minutes=wait)


def test_a_model_failing_for_hours_keeps_being_retried_at_its_interval(make_project, cli):
    """A model that failed 60 times in a row (5 hours at every 5 minutes): run --due and status
    work as after the fourth failure (a streak of 42 once crashed every run, exit 3)."""
    root = make_project({"models/broken.sql": BROKEN_SQL % "routing"})
    assert cli(root, "run", "--due", "--at", "2026-01-10T10:00").exit_code == 1
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    try:
        con.execute("update _cadence.model_state set failure_streak = 60 where model = 'broken'")
    finally:
        con.close()
    (root / "target" / "state_snapshot.json").unlink()  # the snapshot follows the warehouse
    status = cli(root, "status", "--json", "--at", "2026-01-10T10:01")
    assert status.exit_code == 0, status.output
    rows = {r["name"]: r for r in json.loads(status.output)["models"]}
    assert rows["broken"]["next_retry"].startswith("2026-01-10T10:05")
    assert cli(root, "run", "--due", "--at", "2026-01-10T10:04").exit_code == 0  # backing off
    assert cli(root, "run", "--due", "--at", "2026-01-10T10:05").exit_code == 1  # retried
    state = Project.load(root).read_state().of("broken")
    assert (state.last_status, state.failure_streak) == ("error", 61)


def test_the_first_retry_is_at_the_next_invocation(copy_project, cli):
    root = copy_project("failing")
    first = cli(root, "run", "--due", "--at", "2026-01-10T10:00")
    assert first.exit_code == 1
    second = cli(root, "run", "--due", "--at", "2026-01-10T10:01")
    assert second.exit_code == 1
    assert statuses(root)["broken"] == "error"
    results = {r["name"]: r for r in read_run_results(root)["results"]}
    assert "retry" in results["broken"]["reason"] or "never built" in results["broken"]["reason"]


def test_descendants_of_a_backing_off_model_are_not_built_against_its_missing_relation(
    copy_project, cli
):
    root = copy_project("failing")
    _, runs = replay(cli, root, times(at("2026-01-10T10:00"), at("2026-01-10T10:06"), 1))
    child = [status["child"] for _, status in runs]
    assert "error" not in child, child


# --- DST days and a whole day, simulated over state (pure) ------------------------------------


def simulate(
    project: Project, start: dt.datetime, end: dt.datetime, step: int, warm_up: dt.datetime
) -> Counter:
    """Replay ``run --due`` decisions every ``step`` minutes over synthetic state: a build at T
    records a success at T. Everything is built once at ``warm_up`` first."""
    warm_up = warm_up.astimezone(UTC)
    models = {
        name: ModelState(
            name,
            last_success_at=warm_up,
            last_status="success",
            last_attempt_at=warm_up,
            builds=1,
            last_sql_hash=view_hash(project.parsed.model(name), project.parsed),
        )
        for name in project.model_names()
    }
    relations = {
        ("main", name): project.parsed.model(name).materialized for name in project.model_names()
    }
    state = StateSnapshot(models, relations)
    built: Counter = Counter()
    for t in times(start, end - dt.timedelta(seconds=1), step):
        plan = project.plan(t, state=state)
        for d in plan.to_build():
            built[d.name] += 1
            # stored as the state layer stores it: an instant in UTC
            done = t.astimezone(UTC)
            models[d.name] = replace(models[d.name], last_success_at=done, last_attempt_at=done)
        state = StateSnapshot(dict(models), relations)
    return built


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        pytest.param(
            "2026-01-10",
            {"routing_seg": 288, "web_seg": 96, "ads_seg": 6, "email_seg": 1, "stg_customers": 7},
            id="ordinary-day",
        ),
        # spring forward: 02:00-02:59 does not exist; its ticks collapse into 03:00
        pytest.param(
            "2026-03-29",
            {"routing_seg": 276, "web_seg": 92, "ads_seg": 6, "email_seg": 1, "stg_customers": 7},
            id="spring-forward",
        ),
        # fall back: 02:00-02:59 happens twice; interval cadences tick in both, daily ones once
        pytest.param(
            "2026-10-25",
            {"routing_seg": 300, "web_seg": 100, "ads_seg": 6, "email_seg": 1, "stg_customers": 7},
            id="fall-back",
        ),
    ],
)
def test_builds_per_day_including_dst_days(copy_project, day, expected):
    project = Project.load(copy_project("day"))
    start = dt.datetime.fromisoformat(day).replace(tzinfo=BERLIN)
    end = (start + dt.timedelta(days=1)).replace(tzinfo=BERLIN)  # next local midnight
    built = simulate(project, start, end, 5, warm_up=start - dt.timedelta(minutes=1))
    assert dict(built) == expected


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # 01:00 CET -> 04:00 CEST is two real hours: 01:00..01:45, then 03:00..04:00
        pytest.param(
            "2026-03-29T00:00:00+00:00", "2026-03-29T02:00:00+00:00", 9, id="spring-forward"
        ),
        # 01:00 CEST -> 04:00 CET is four real hours: 02:00..02:45 happen twice
        pytest.param("2026-10-24T23:00:00+00:00", "2026-10-25T03:00:00+00:00", 17, id="fall-back"),
    ],
)
def test_dst_night_replay_every_15_minutes_channel(make_project, cli, start, end, expected):
    root = make_project({"models/web_seg.sql": "{{ config(channels=['web']) }}\nselect 1 as id\n"})
    moments = times(dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end), 5)
    built, runs = replay(cli, root, moments)
    assert built == {"web_seg": expected}
    built_at = [t.astimezone(UTC) for t, status in runs if status["web_seg"] == "success"]
    gaps = {b - a for a, b in itertools.pairwise(built_at)}
    assert gaps == {dt.timedelta(minutes=15)}, "one build per tick, 15 real minutes apart"


@pytest.mark.slow
def test_a_replayed_day_builds_each_model_at_its_cadence(copy_project, cli):
    """SPEC §2 channels, ``cadence run --due`` every 5 minutes from 00:00 to 23:55."""
    root = copy_project("day")
    assert cli(root, "run", "--at", "2026-01-09T23:59").exit_code == 0  # everything exists
    moments = times(at("2026-01-10T00:00"), at("2026-01-10T23:55"), 5)
    assert len(moments) == 288
    built, runs = replay(cli, root, moments)
    # stg_customers: the union of email (05:00) and ads (00, 04, ... 20); stg_events is a view,
    # never rebuilt by ticks
    assert dict(built) == {
        "routing_seg": 288,
        "web_seg": 96,
        "ads_seg": 6,
        "email_seg": 1,
        "stg_customers": 7,
    }
    email_runs = [t.strftime("%H:%M") for t, status in runs if status["email_seg"] == "success"]
    assert email_runs == ["05:00"]
    ads_runs = [t.strftime("%H:%M") for t, status in runs if status["ads_seg"] == "success"]
    assert ads_runs == ["00:00", "04:00", "08:00", "12:00", "16:00", "20:00"]


def test_the_pure_simulation_agrees_with_a_real_replay(copy_project, cli):
    """Keeps ``simulate`` honest: an hour replayed through the CLI builds the same."""
    root = copy_project("day")
    cli(root, "run", "--at", "2026-01-10T03:59")
    real, _ = replay(cli, root, times(at("2026-01-10T04:00"), at("2026-01-10T05:55"), 5))
    project = Project.load(root)
    simulated = simulate(
        project, at("2026-01-10T04:00"), at("2026-01-10T06:00"), 5, warm_up=at("2026-01-10T03:59")
    )
    assert real == simulated
    assert real["email_seg"] == 1 and real["ads_seg"] == 1 and real["web_seg"] == 8


UTC = dt.timezone.utc


@pytest.mark.parametrize(
    "attempt, success, now, behind",
    [
        ("2026-01-02T06:00", "2026-01-02T06:00", "2026-01-02T06:01", False),  # normal
        ("2026-01-02T06:00", "2026-01-02T06:00", "2026-01-02T06:00", False),  # same instant
        ("2026-01-02T06:00", "2026-01-02T06:00", "2026-01-02T05:59", True),  # NTP step back
        ("2026-06-01T00:00", "2026-01-01T00:00", "2026-01-02T00:00", True),  # future --at, failed
        (None, None, "2026-01-02T00:00", False),  # never built
        ("2026-01-01T00:00", None, "2026-01-02T00:00", False),  # only failures, in the past
    ],
)
def test_clock_behind_recorded_state_is_found(attempt, success, now, behind) -> None:
    from cadence.plan.due import clock_behind, clock_warning
    from cadence.plan.history import ModelState, StateSnapshot

    def t(text):
        return dt.datetime.fromisoformat(text).replace(tzinfo=UTC) if text else None

    state = StateSnapshot(
        {"seg": ModelState("seg", last_attempt_at=t(attempt), last_success_at=t(success))}
    )
    found = clock_behind(state, t(now))
    assert bool(found) is behind
    warning = clock_warning(found, t(now), BERLIN)
    if behind:
        assert found[0][0] == "seg"
        assert "seg" in warning and "cadence run -s seg" in warning
    else:
        assert warning is None


# --- a view or ephemeral whose SQL depends on the run (SPEC §4) ------------------------------

RUN_DAY_MACRO = (
    "{% macro run_day() %}{{ return(run_started_at.strftime('%Y-%m-%d')) }}{% endmacro %}\n"
    "{% macro tick_day() %}{{ return(tick.strftime('%Y-%m-%d')) }}{% endmacro %}\n"
)
DAY_EVENTS = "key,day\na,2026-01-10\nb,2026-01-11\nc,2026-01-12\n"
ACTIVE = "{{ config(channels=['web']) }}\nselect key from {{ ref('recent') }}\n"
VIEW = "{{ config(materialized='view') }}\n"
EPHEMERAL = "{{ config(materialized='ephemeral') }}\n"
TODAY_FILTER = "select e.* from {{ ref('events') }} e join {{ ref('today') }} t using (day)\n"


@pytest.mark.parametrize(
    ("models", "view"),
    [
        (  # the view reads run_started_at itself
            {
                "recent.sql": VIEW
                + "select * from {{ ref('events') }} where day = "
                + "'{{ run_started_at.strftime(\"%Y-%m-%d\") }}'\n"
            },
            "recent",
        ),
        (
            {
                "recent.sql": VIEW
                + "select * from {{ ref('events') }} where day = '{{ run_day() }}'\n"
            },
            "recent",
        ),
        (  # the view inlines an ephemeral that reads the clock
            {
                "today.sql": EPHEMERAL
                + "select cast('{{ modules.datetime.date.today() }}' as date) as day\n",
                "recent.sql": VIEW + TODAY_FILTER,
            },
            "recent",
        ),
        (  # a view between the consumer and the view that reads the tick
            {
                "today.sql": VIEW + "select cast('{{ tick_day() }}' as date) as day\n",
                "recent.sql": VIEW + TODAY_FILTER,
            },
            "today",
        ),
        (  # the table inlines an ephemeral that reads the clock (the run's, in a replay)
            {
                "recent.sql": EPHEMERAL
                + "select * from {{ ref('events') }} where day = "
                + "'{{ modules.datetime.date.today() }}'\n"
            },
            None,
        ),
    ],
    ids=["view", "view-macro", "view-ephemeral-clock", "view-of-view-tick", "ephemeral-clock"],
)
def test_a_run_dependent_view_or_ephemeral_never_freezes_at_its_first_run(
    make_project, cli, models, view
):
    """examples/routing's open_carts: a view whose window is relative to the run was created
    once, and a day later its segments were empty. Whatever makes the SQL depend on the run,
    a model built for a tick reads it as of that run."""
    root = make_project(
        {
            "seeds/events.csv": DAY_EVENTS,
            "macros/days.sql": RUN_DAY_MACRO,
            "models/active.sql": ACTIVE,
            **{f"models/{name}": text for name, text in models.items()},
        }
    )

    def members() -> list[str]:
        with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
            return [r[0] for r in con.sql("select key from active order by key").fetchall()]

    replay(cli, root, [at("2026-01-10T10:00")])
    assert members() == ["a"]
    plan = json.loads(cli(root, "plan", "--json", "--at", "2026-01-11T10:00").output)
    rows = {m["name"]: m for m in plan["models"]}
    if view is not None:
        assert rows[view]["due"] is True
        assert rows[view]["reason"].startswith("view depends on the run (")
        assert "rebuilt for active's tick 2026-01-11 10:00 CET" in rows[view]["reason"]
    replay(cli, root, [at("2026-01-11T10:00")])  # a day later: the window moved with the run
    assert members() == ["b"]
    if view is not None:
        assert statuses(root)[view] == "success"
    # a plain `cadence run` of the consumer recreates the view too (it reads it)
    assert cli(root, "run", "-s", "active", "--at", "2026-01-12T10:00").exit_code == 0
    assert members() == ["c"]
    # nothing builds: the view is left alone, saying why (an idle run writes no results file:
    # its --json document says it)
    idle = cli(root, "run", "--due", "--json", "--at", "2026-01-12T10:01")
    assert idle.exit_code == 0
    if view is not None:
        results = {r["name"]: r for r in json.loads(idle.stdout)["results"]}
        assert results[view]["status"] == "skipped"
        assert "it depends on the run" in results[view]["reason"]


def test_a_view_that_does_not_depend_on_the_run_is_not_recreated_for_its_consumers(
    make_project, cli
):
    root = make_project(VIEWS)
    replay(cli, root, [at("2026-01-10T10:00"), at("2026-01-10T10:15")])
    assert statuses(root) == {"stg_view": "skipped", "web_seg": "success"}
