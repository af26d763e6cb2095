"""The docs site's speed section (cadence/review/speed.py, assets/speed.js): per channel its
objective and lag, and the chart of cost per month against p90 reach delay across candidate
cadences with the current one marked: laid out in Python, drawn by the page, read back from
headless Chromium (SPEC §11)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadence.cli import main
from cadence.review.advise import Candidate, ChannelAdvice, Objective, Observed
from cadence.review.reach import Delays
from cadence.review.speed import _nice_top, chart
from tests.test_review_advise import DAY, morning  # noqa: F401 - the replayed morning fixture
from tests.test_review_site import data_of, dom, needs_chromium


def advice(candidates: list[tuple[str, float | None, float | None, bool]]) -> ChannelAdvice:
    return ChannelAdvice(
        channel="routing",
        cadence="every 15 minutes",
        objective=Objective(1800.0, 3600.0),
        observed=Observed(25, 3, 2, Delays(450.0, 840.0, 840.0, 20), 144.0, 192.0),
        candidates=tuple(
            Candidate(c, 0.0, None, cost, Delays(None, p90, p90, 1 if p90 else 0), 0, meets, False)
            for c, p90, cost, meets in candidates
        ),
        recommended="every 15 minutes",
        note=None,
        exported=True,
        event_time=True,
        current_builds_per_day=384.0,
        current_compute_s_per_day=672.0,
        current_cost_per_month=20.16,
    )


def test_the_chart_puts_slower_right_and_dearer_up_with_the_current_cadence_marked() -> None:
    laid = chart(
        advice(
            [
                ("every 5 minutes", 242.5, 25.92, True),
                ("every 15 minutes", 842.5, 20.16, True),
                ("hourly", 3542.5, 18.0, False),
                ("daily at 00:00", None, 17.31, False),  # no delay measured: not drawn
            ]
        ),
        priced=True,
    )
    assert laid is not None
    points = {p["label"]: p for p in laid["points"]}
    assert list(points) == ["every 5 minutes", "every 15 minutes", "hourly"]
    assert points["every 5 minutes"]["x"] < points["every 15 minutes"]["x"] < points["hourly"]["x"]
    assert points["every 5 minutes"]["y"] < points["every 15 minutes"]["y"] < points["hourly"]["y"]
    assert [p["label"] for p in laid["points"] if p["recommended"]] == ["every 15 minutes"]
    assert [p["meets"] for p in laid["points"]] == [True, True, False]
    # now: the observed p90 (840 s) at today's cost (20.16): left of 842.5 s, same height
    assert laid["current"]["label"] == "now: every 15 minutes"
    assert laid["current"]["y"] == points["every 15 minutes"]["y"]
    assert laid["current"]["x"] < points["every 15 minutes"]["x"]
    plot = laid["plot"]
    for p in (*laid["points"], laid["current"], laid["objective"]):
        assert plot["x0"] <= p["x"] <= plot["x1"]
    # the objective's warn_after (30 min) lies between 15 minutes and an hour
    assert points["every 15 minutes"]["x"] < laid["objective"]["x"] < points["hourly"]["x"]
    assert [t["label"] for t in laid["x_ticks"]] == ["5 min", "15 min", "1 h"]
    assert [t["label"] for t in laid["y_ticks"]] == ["0", "12.5", "25", "37.5", "50"]


def test_no_chart_without_a_measured_candidate() -> None:
    assert chart(advice([("hourly", None, 18.0, False)]), priced=True) is None
    assert chart(advice([("hourly", 3542.5, None, False)]), priced=True) is None


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (0.3, 0.5), (1, 1), (1.2, 2), (20.16, 25), (25.92, 50), (864, 1000)]
)
def test_the_cost_axis_ends_at_a_round_number(value: float, top: float) -> None:
    assert _nice_top(value) == pytest.approx(top)


@pytest.fixture(scope="module")
def site(morning: Path) -> Path:  # noqa: F811 - the fixture imported above
    out = morning / "site"
    args = ["docs", "--out", str(out), "--at", f"{DAY}T09:07", "--project-dir", str(morning)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out


def test_data_js_carries_each_channels_chart_and_lag(site: Path) -> None:
    speed = data_of(site)["speed"]
    assert speed["unit"] == "EUR per month"
    routing = next(c for c in speed["channels"] if c["name"] == "routing")
    objective = {"warn_after_s": 1800.0, "error_after_s": 3600.0, "declared": False}
    assert routing["objective"] == objective
    # the lag as cadence status shows it: data of the 09:00 version, 7 minutes old, within
    # the default objective
    assert (routing["lag_s"], routing["state"]) == (420.0, "ok")
    assert [c["cadence"] for c in routing["candidates"]] == [
        "every 5 minutes", "every 15 minutes", "hourly", "every 4 hours", "daily at 00:00",
    ]  # fmt: skip
    assert routing["chart"]["current"]["label"] == "now: every 15 minutes"


@needs_chromium
def test_the_speed_section_in_chromium(site: Path) -> None:
    """Each channel's chart is drawn from data.js, offline: a point per measured candidate with
    its cadence, filled when it meets the objective, the recommendation ringed, the current
    cadence marked, the objective a line; the table says the same."""
    html_text, console = dom(site / "index.html")
    assert console == []
    speed = data_of(site)["speed"]
    section = html_text[html_text.index('<section id="speed-section"') :]
    section = section[: section.index("</section>")]
    for channel in speed["channels"]:
        block = re.search(
            rf'<div class="speed-channel" data-channel="{channel["name"]}">(.*?)</table>',
            section,
            re.S,
        )
        assert block, channel["name"]
        drawn = block.group(1)
        laid = channel["chart"]
        if laid is None:
            assert "no chart" in drawn
            continue
        assert '<svg class="speed-chart"' in drawn
        groups = re.findall(r'<g class="candidate([^"]*)" data-cadence="([^"]+)"><circle', drawn)
        assert [name for _cls, name in groups] == [p["label"] for p in laid["points"]]
        for (cls, _name), point in zip(groups, laid["points"], strict=True):
            assert ("meets" in cls.split()) == point["meets"]
            assert ("recommended" in cls.split()) == point["recommended"]
        assert f'<g class="current" data-cadence="now: {channel["cadence"]}">' in drawn
        assert ('<line class="objective"' in drawn) == (laid["objective"] is not None)
        rows = re.findall(r'<tr data-cadence="([^"]+)">', drawn)
        assert rows == [c["cadence"] for c in channel["candidates"]]
    routing = re.search(r'data-channel="routing">.*?</div>', section, re.S)
    assert routing and "recommended: " in routing.group(0)
    assert "http://" not in section.replace("http://www.w3.org/2000/svg", "")
