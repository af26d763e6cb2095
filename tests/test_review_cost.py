"""The cost model (cadence/review/cost.py): counted builds equal the builds ``run --due`` really
makes, pulled-in upstream refreshes included (SPEC §4, §10)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest

from cadence.project import Project
from cadence.review.cost import NO_CHANNEL, cost_report, count_builds
from tests.conftest import BERLIN, at, last_run_id, read_run_results

UTC = dt.timezone.utc

PULLS = """\
name: pulls
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: Europe/Berlin
channels:
  email:   {cadence: "daily at 05:00", kind: email}
  ads:     {cadence: "every 4 hours", kind: ads}
  routing: {cadence: "every 7 minutes", kind: routing}
"""

# daily_base feeds email (daily) and is read, through a view, by a 7-minute segment: pulled in at
# every 7-minute tick. eph_base: the same through an ephemeral. explicit_4h has an explicit
# cadence: never pulled, and neither is what sits behind it (behind_explicit inherits 4 hours).
PULL_FILES = {
    "models/daily_base.sql": "{{ config(channels=['email']) }}\nselect 1 as id\n",
    "models/base_view.sql": "{{ config(materialized='view') }}\nselect * from {{ ref('daily_base') }}\n",
    "models/eph_source.sql": "{{ config(channels=['email']) }}\nselect 2 as id\n",
    "models/eph.sql": "{{ config(materialized='ephemeral') }}\nselect * from {{ ref('eph_source') }}\n",
    "models/behind_explicit.sql": "select 3 as id\n",
    "models/explicit_4h.sql": (
        "{{ config(cadence='every 4 hours') }}\nselect * from {{ ref('behind_explicit') }}\n"
    ),
    "models/fast_seg.sql": (
        "{{ config(channels=['routing']) }}\n"
        "select b.id from {{ ref('base_view') }} b, {{ ref('eph') }} e, {{ ref('explicit_4h') }} x\n"
    ),
    "models/ads_seg.sql": "{{ config(channels=['ads']) }}\nselect * from {{ ref('daily_base') }}\n",
}


def minutes(start: dt.datetime, count: int) -> list[dt.datetime]:
    first = start.astimezone(UTC)
    return [(first + dt.timedelta(minutes=i)).astimezone(BERLIN) for i in range(count)]


def replay_counts(cli, root: Path, moments: list[dt.datetime]) -> Counter:
    built: Counter = Counter()
    for t in moments:
        before = last_run_id(root)
        result = cli(root, "run", "--due", "--at", t.isoformat())
        assert result.exit_code == 0, result.output
        if last_run_id(root) == before:
            continue  # an idle run leaves the last run_results.json in place
        built.update(
            r["name"] for r in read_run_results(root)["results"] if r["status"] == "success"
        )
    return built


def counted(root: Path, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    project = Project.load(root)
    counts = count_builds(project.parsed, project.dag, project.cadences, start, end, BERLIN)
    return {n: c for n, c in counts.builds.items() if c}


@pytest.mark.slow
def test_counted_builds_equal_a_replayed_day_of_run_due_every_minute(make_project, cli):
    root = make_project(PULL_FILES, PULLS)
    warm = at("2026-01-09T23:59")
    assert cli(root, "run", "--at", warm.isoformat()).exit_code == 0  # everything exists
    moments = minutes(at("2026-01-10T00:00"), 24 * 60)
    real = replay_counts(cli, root, moments)
    assert counted(root, warm, moments[-1]) == dict(real)
    # the point of the model: the daily upstream is built at every 7-minute tick
    assert real["fast_seg"] in (205, 206)  # 1440 / 7 on the continuous 7-minute grid
    assert real["daily_base"] >= real["fast_seg"] and real["eph_source"] >= real["fast_seg"]
    assert real["explicit_4h"] == real["behind_explicit"] == 6
    assert "base_view" not in real and "eph" not in real


def test_counted_builds_equal_replay_across_a_dst_night(make_project, cli):
    root = make_project(PULL_FILES, PULLS)
    warm = at("2026-10-25T00:59")
    assert cli(root, "run", "--at", warm.isoformat()).exit_code == 0
    moments = minutes(warm + dt.timedelta(minutes=1), 4 * 60)  # 01:00 CEST .. 04:00 CET
    real = replay_counts(cli, root, moments)
    assert counted(root, warm, moments[-1]) == dict(real)


def test_plan_shows_pulled_builds_and_channel_shares(make_project, cli):
    root = make_project(PULL_FILES, PULLS)
    result = cli(root, "plan", "--json", "--at", "2026-01-10T00:00")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    rows = {m["name"]: m for m in data["models"]}
    cost = {m["name"]: m for m in data["cost"]["models"]}
    assert rows["daily_base"]["builds_per_day"] == cost["daily_base"]["builds_per_day"] > 200
    assert cost["daily_base"]["pulled_by"] == ["ads_seg", "fast_seg"]
    # its own tick is email's 05:00; every other build is pulled in by ads_seg or fast_seg
    base = cost["daily_base"]
    assert base["own_builds_per_day"] == 1
    assert base["pulled_builds_per_day"] == base["builds_per_day"] - 1
    channels = {c["name"]: c for c in data["cost"]["channels"]}
    total = data["cost"]["total_builds_per_day"]
    assert sum(c["builds_per_day"] for c in channels.values()) == pytest.approx(total)
    assert channels["routing"]["builds_per_day"] > channels["email"]["builds_per_day"]
    # an explicit cadence counts for the channels the model serves (routing, through fast_seg)
    assert cost["explicit_4h"]["channels"] == {"routing": 6.0}
    assert NO_CHANNEL not in channels
    text = cli(root, "plan", "--at", "2026-01-10T00:00").output
    assert "pulled" in text and "daily_base" in text


def test_a_shared_build_is_split_among_the_channels_that_caused_it(make_project):
    root = make_project(
        {
            "models/base.sql": "{{ config(channels=['email']) }}\nselect 1 as id\n",
            "models/route.sql": (
                "{{ config(channels=['routing']) }}\nselect * from {{ ref('base') }}\n"
            ),
        }
    )  # email daily at 05:00, routing every 5 minutes
    project = Project.load(root)
    start = at("2026-01-10T00:00")
    counts = count_builds(
        project.parsed, project.dag, project.cadences, start, start + dt.timedelta(days=1), BERLIN
    )
    assert counts.builds == {"base": 288, "route": 288}
    assert counts.pulled == {"base": 287}  # every routing tick but 05:00, its own
    # at 05:00 both channels cause the build: half each
    assert counts.shares["base"] == {"email": 0.5, "routing": 287.5}
    assert counts.shares["route"] == {"routing": 288}


def test_a_build_no_channel_causes_is_counted_under_no_channel(make_project):
    root = make_project({"models/lonely.sql": "{{ config(cadence='hourly') }}\nselect 1 as id\n"})
    project = Project.load(root)
    start = at("2026-01-10T00:00")
    report = cost_report(
        project.parsed, project.dag, project.cadences, {}, start, dt.timedelta(days=1), "24h"
    )
    channels = {c.name: c for c in report.channels}
    assert channels[NO_CHANNEL].builds_per_day == 24
    assert channels["email"].builds_per_day == 0


def test_compute_uses_recorded_durations_and_says_no_history(make_project):
    root = make_project(PULL_FILES, PULLS)
    project = Project.load(root)
    start = at("2026-01-10T00:00")
    report = cost_report(
        project.parsed,
        project.dag,
        project.cadences,
        {"fast_seg": 2.0},
        start,
        dt.timedelta(days=1),
        "24h",
    )
    fast = report.model("fast_seg")
    assert fast is not None and fast.compute_s_per_day == pytest.approx(2.0 * fast.builds_per_day)
    base = report.model("daily_base")
    assert base is not None and base.compute_s_per_day is None
    assert "daily_base" in report.no_history and "fast_seg" not in report.no_history
    assert report.total_compute_s_per_day == pytest.approx(fast.compute_s_per_day)


def test_money_per_month_is_compute_times_price_over_30_days(make_project, cli):
    """``cost: {per_compute_hour, currency}`` turns compute s/day into money per month (30 days)
    per model, per channel and in total; without it every figure is null."""
    priced = PULLS + "cost: {per_compute_hour: 0.40, currency: EUR}\n"
    root = make_project(PULL_FILES, priced)
    assert cli(root, "run", "--at", "2026-01-09T23:00").exit_code == 0
    data = json.loads(cli(root, "plan", "--json", "--at", "2026-01-10T00:00").output)
    cost = data["cost"]
    assert cost["currency"] == "EUR"
    for row in (*cost["models"], *cost["channels"]):
        if row["compute_s_per_day"] is None:  # never built (an ephemeral): no figure at all
            assert row["cost_per_month"] is None
            continue
        expected = row["compute_s_per_day"] * 30 / 3600 * 0.40
        assert row["cost_per_month"] == pytest.approx(expected, abs=1e-4), row["name"]
    total = cost["total_compute_s_per_day"] * 30 / 3600 * 0.40
    assert cost["total_cost_per_month"] == pytest.approx(total, abs=1e-4) and total > 0
    plan_rows = {m["name"]: m for m in data["models"]}
    by_model = {m["name"]: m for m in cost["models"]}
    assert plan_rows["fast_seg"]["cost_per_month"] == by_model["fast_seg"]["cost_per_month"]
    text = cli(root, "plan", "--at", "2026-01-10T00:00").output
    assert "0.4 EUR per compute hour" in text and "per month" in text and "EUR/month" in text

    plain = make_project(PULL_FILES, PULLS)
    data = json.loads(cli(plain, "plan", "--json", "--at", "2026-01-10T00:00").output)
    assert data["cost"]["currency"] is None and data["cost"]["total_cost_per_month"] is None
    assert {m["cost_per_month"] for m in data["cost"]["models"]} == {None}
    assert "per month" not in cli(plain, "plan", "--at", "2026-01-10T00:00").output
def test_a_channel_receives_at_its_own_ticks_and_pays_for_its_suppression_list(make_project):
    """high_value feeds email (daily) and ads (every 4 hours): built 7 times a day, email receives
    it once and ads 6 times; the suppression model email reads is built at email's tick, for
    email (SPEC §7 "When")."""
    yml = (
        "name: p\ntimezone: Europe/Berlin\nchannels:\n  email:\n    cadence: daily at 05:00\n"
        "    suppress: [unsub]\n  ads: {cadence: every 4 hours}\n"
    )
    root = make_project(
        {
            "models/high_value.sql": "{{ config(channels=['email', 'ads'], key='id') }}\n"
            "select 1 as id\n",
            "models/unsub.sql": "select 1 as id\n",
        },
        yml,
    )
    project = Project.load(root)
    report = cost_report(
        project.parsed, project.dag, project.cadences, {}, at("2026-01-10T00:00"),
        dt.timedelta(days=1), "24h",
    )  # fmt: skip
    channels = {c.name: c for c in report.channels}
    assert report.model("high_value").builds_per_day == 7
    assert (channels["email"].deliveries_per_day, channels["ads"].deliveries_per_day) == (1, 6)
    assert report.model("unsub").channel_builds == (("email", 1.0),)
    assert "unsub" in channels["email"].models
