"""``plan.deliveries``: which channels deliver at T and why, a pure function of their ticks, their
delivery state and the command (SPEC §7 "When"), table-driven with fixed times; and
``next_delivery``, the next instant a channel can deliver."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from cadence.plan.deliveries import (
    FREEZE,
    HOLD,
    NOTHING,
    SEND_PENDING,
    ChannelState,
    decide_deliveries,
    next_delivery,
)
from cadence.plan.schedule import parse_cadence

TZ = ZoneInfo("Europe/Berlin")
SCHEDULES = {
    "email": parse_cadence("daily at 05:00"),
    "ads": parse_cadence("every 4 hours"),
    "adhoc": parse_cadence("on demand"),
}


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=TZ)


def served(text: str | None, **more: object) -> ChannelState:
    return ChannelState(True, t(text) if text else None, **more)  # type: ignore[arg-type]


CASES = [
    # (what, channel, state, now, mode, extra, action, serves)
    ("tick unserved", "email", served("2026-03-01T05:00"), "2026-03-02T05:00", "due", {},
     FREEZE, "2026-03-02T05:00"),
    ("a faster channel's tick is not this one's", "email", served("2026-03-02T05:00"),
     "2026-03-02T08:00", "due", {}, NOTHING, None),
    ("a late run still delivers", "email", served("2026-03-01T05:00"), "2026-03-02T05:40",
     "due", {}, FREEZE, "2026-03-02T05:00"),
    ("missed ticks collapse into one", "ads", served("2026-03-01T08:00"), "2026-03-02T09:30",
     "due", {}, FREEZE, "2026-03-02T08:00"),
    ("first delivery at once", "email", ChannelState(), "2026-03-02T03:00", "due", {},
     FREEZE, "2026-03-01T05:00"),
    ("first delivery waits for a segment", "email", ChannelState(), "2026-03-02T03:00", "due",
     {"ready": ()}, NOTHING, None),
    ("a failed delivery: exactly its range", "email",
     served("2026-03-02T05:00", pending=True), "2026-03-02T08:00", "due", {},
     SEND_PENDING, None),
    ("pending at its next tick: freeze and send all", "email",
     served("2026-03-01T05:00", pending=True), "2026-03-02T05:00", "due", {},
     FREEZE, "2026-03-02T05:00"),
    ("owed by a killed plain run", "email",
     served("2026-03-02T05:00", owed_at=t("2026-03-02T06:00")), "2026-03-02T06:30", "due", {},
     FREEZE, "2026-03-02T05:00"),
    ("owed, inputs not built since the tick: the tick stays", "email",
     served("2026-03-01T05:00", owed_at=t("2026-03-02T06:00")), "2026-03-02T06:30", "run",
     {"current": ()}, FREEZE, None),
    ("a selection that does not cover it", "email", served("2026-03-01T05:00"),
     "2026-03-02T05:00", "due", {"in_scope": ("ads",)}, NOTHING, None),
    ("a plain run that built its inputs", "email", served("2026-03-02T05:00"),
     "2026-03-02T08:00", "run", {"at_once": ("email",)}, FREEZE, "2026-03-02T05:00"),
    ("a plain run that did not build them", "email", served("2026-03-01T05:00"),
     "2026-03-02T08:00", "run", {}, NOTHING, None),
    ("export", "email", served("2026-03-02T05:00"), "2026-03-02T08:00", "export",
     {"at_once": ("email",)}, FREEZE, "2026-03-02T05:00"),
    ("a failing suppression list holds the tick", "email", served("2026-03-01T05:00"),
     "2026-03-02T05:00", "due", {"held": {"email": "unsub failed"}}, HOLD, None),
    ("and the retry of a frozen range", "email", served("2026-03-02T05:00", pending=True),
     "2026-03-02T08:00", "due", {"held": {"email": "unsub failed"}}, HOLD, None),
    ("a hold without anything to do is nothing", "email", served("2026-03-02T05:00"),
     "2026-03-02T08:00", "due", {"held": {"email": "unsub failed"}}, NOTHING, None),
    ("no ticks: only first deliveries and plain runs", "adhoc", served(None),
     "2026-03-02T08:00", "due", {}, NOTHING, None),
    ("DST: the spring-forward day's tick", "email", served("2026-03-28T05:00"),
     "2026-03-29T05:00", "due", {}, FREEZE, "2026-03-29T05:00"),
]


@pytest.mark.parametrize(
    "what, channel, state, now, mode, extra, action, serves", CASES, ids=[c[0] for c in CASES]
)
def test_which_channels_deliver_now(what, channel, state, now, mode, extra, action, serves):
    (decision,) = decide_deliveries(
        [channel], SCHEDULES, {channel: state}, t(now), TZ, mode=mode, **extra
    )
    assert decision.action == action, decision.reason
    assert decision.serves == (t(serves) if serves else None)
    assert decision.reason


def test_the_reasons_say_why():
    states = {"email": served("2026-03-01T05:00"), "ads": served("2026-03-02T08:00")}
    email, ads = decide_deliveries(
        ["email", "ads"], SCHEDULES, states, t("2026-03-02T09:00"), TZ, mode="due"
    )
    assert email.reason == (
        "tick 2026-03-02 05:00 CET; last delivery served 2026-03-01 05:00 CET"
    )
    assert ads.reason == "tick 2026-03-02 08:00 CET already served"


@pytest.mark.parametrize(
    "channel, state, now, ready, expected",
    [
        ("email", served("2026-03-02T05:00"), "2026-03-02T08:00", True, "2026-03-03T05:00"),
        ("email", served("2026-03-01T05:00"), "2026-03-02T08:00", True, "2026-03-02T08:00"),
        ("email", served("2026-03-02T05:00", pending=True), "2026-03-02T08:00", True,
         "2026-03-02T08:00"),
        ("email", ChannelState(), "2026-03-02T08:00", True, "2026-03-02T08:00"),
        ("email", ChannelState(), "2026-03-02T08:00", False, "2026-03-03T05:00"),
        ("ads", served("2026-03-02T08:00"), "2026-03-02T08:01", True, "2026-03-02T12:00"),
        ("adhoc", served(None), "2026-03-02T08:00", True, None),
    ],
)
def test_next_delivery(channel, state, now, ready, expected):
    got = next_delivery(SCHEDULES[channel], state, t(now), TZ, ready=ready)
    assert got == (t(expected) if expected else None)
