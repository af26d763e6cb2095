"""``cadence advise`` (cadence/review/advise.py, reach.py): reach delays, missed and pending
members, candidate cadences and their cost, from recorded history only (SPEC §11).

The oracle: a replayed morning whose qualification times, exits and delivery ticks are known,
with every expected figure computed by hand in the comments below and asserted as a literal."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from cadence.errors import UsageError
from cadence.review.advise import parse_candidates
from cadence.review.reach import nearest_rank

UTC = dt.timezone.utc

# -- nearest-rank percentiles ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([], 50, None),
        ([7.0], 50, 7.0),
        ([7.0], 90, 7.0),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, 5),  # rank ceil(5) = 5
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9),  # rank ceil(9) = 9
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 91, 10),  # rank ceil(9.1) = 10
        ([1, 2, 3], 50, 2),  # rank ceil(1.5) = 2
        ([1, 2, 3], 90, 3),  # rank ceil(2.7) = 3 (interpolation would say 2.8)
        ([1, 2, 3, 4], 50, 2),  # rank 2: a value, never the mean of 2 and 3
        ([1, 2, 3, 4], 25, 1),
        ([1, 2, 3, 4], 100, 4),
        (list(range(1, 21)), 90, 18),  # rank ceil(18) = 18, not 19 (0.9 * 20 in floats)
        (list(range(1, 101)), 90, 90),
        (list(range(1, 101)), 99, 99),
    ],
)
def test_nearest_rank_percentiles(values: list[float], pct: int, expected: float | None) -> None:
    assert nearest_rank(values, pct) == expected


def test_the_sql_percentiles_rank_like_nearest_rank(tmp_path: Path) -> None:
    """advise ranks in SQL (DuckDB's quantile_disc): the same value as ``nearest_rank`` for
    every size 1..60."""
    from cadence.engines import connect
    from cadence.load.projectconfig import WarehouseConfig
    from cadence.review.reach import _delays, delays_sql

    engine = connect(WarehouseConfig(path=":memory:", threads=1), tmp_path)
    try:
        for n in range(1, 61):
            values = [float((i * 37) % 101) for i in range(n)]
            engine.execute("create or replace temp table d as select unnest(?) as x", (values,))
            found = _delays(engine.query(delays_sql("d", "x"))[0])
            ordered = sorted(values)
            assert (found.p50, found.p90, found.max) == (
                nearest_rank(ordered, 50),
                nearest_rank(ordered, 90),
                ordered[-1],
            ), n
    finally:
        engine.close()


# -- candidates separated by ';' -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("every 5 minutes; hourly", ("every 5 minutes", "hourly")),
        ("0,30 9-17 * * 1-5; every 15 minutes", ("0,30 9-17 * * 1-5", "every 15 minutes")),
        ("  Every 5 Minutes ;; hourly; every 5 minutes;", ("every 5 minutes", "hourly")),
        ("*/10 * * * *", ("*/10 * * * *",)),
        ("weekdays at 9:30; 0 5 * * 1,3,5", ("weekdays at 09:30", "0 5 * * 1,3,5")),
    ],
)
def test_candidates_are_separated_by_semicolons(text: str, expected: tuple[str, ...]) -> None:
    assert parse_candidates(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("every 5 minutes, hourly", "--cadences: unknown cadence 'every 5 minutes, hourly'"),
        ("hourly; evry 5 minutes", "--cadences: unknown cadence 'evry 5 minutes'"),
        ("on demand", "'on demand' never delivers"),
        (" ; ", "--cadences names no cadence"),
    ],
)
def test_a_bad_candidate_is_a_usage_error(text: str, message: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_candidates(text)
    assert message in exc.value.render()


# -- the oracle: a replayed morning ---------------------------------------------------------------

ORACLE_YML = """\
name: oracle
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: UTC
cost: {per_compute_hour: 3.6, currency: EUR}
channels:
  routing: {cadence: "every 15 minutes", export: {format: csv}}
  web: {cadence: "every 5 minutes"}
"""
# abandoners feeds routing (delivers at :00 :15 :30 :45) and web (no destination, every 5
# minutes), so it is built every 5 minutes and a member can come and go between two routing
# deliveries; big_carts feeds routing only (no members): its builds are what routing's cadence
# costs, since web already pays for every build of abandoners.
ORACLE_FILES = {
    "models/abandoners.sql": (
        "{{ config(channels=['routing', 'web'], key='id', event_time='qualified_at') }}\n"
        "select id, qualified_at from {{ ref('carts') }}\n"
        "where qualified_at <= timestamptz '{{ run_started_at }}'\n"
        "  and (left_at is null or left_at > timestamptz '{{ run_started_at }}')\n"
    ),
    "models/big_carts.sql": (
        "{{ config(channels=['routing'], key='id') }}\n"
        "select id from {{ ref('carts') }} where id > 1000\n"
    ),
}
# (id, qualified at, left at): the morning of 2026-06-01, UTC
CARTS = [
    (1, "07:01", None),
    (2, "07:03", None),
    (3, "07:10", None),
    (4, "07:14", None),
    (5, "07:16", "07:50"),  # reached at 07:30, leaves after
    (6, "07:29", None),
    (7, "07:31", None),
    (8, "07:40", None),
    (9, "07:44", None),
    (10, "07:50", None),
    (11, "07:58", None),
    (12, "08:01", None),
    (13, "08:03", None),
    (14, "08:20", None),
    (15, "08:21", None),
    (16, "08:33", None),
    (17, "08:46", None),
    (18, "08:59", None),
    (19, "07:00", None),
    (20, "07:22:30", None),
    (21, "07:02", "07:12"),  # in at 07:05 and 07:10, gone at 07:15: missed
    (22, "07:31", "07:41"),  # in at 07:35 and 07:40, gone at 07:45: missed
    (23, "08:05", "08:12"),  # in at 08:05 and 08:10, gone at 08:15: missed
    (24, "09:01", None),  # published 09:05, routing's next tick is 09:15: pending
    (25, "09:02", None),  # pending
    (26, "07:06", "07:08"),  # between two builds: never recorded (the lower bound)
]
# runs every 5 minutes 07:00..09:05, except that 08:00 is late (08:02)
RUNS = [
    f"{h:02d}:{m:02d}" for h in (7, 8) for m in range(0, 60, 5) if (h, m) != (8, 0)
] + ["08:02", "09:00", "09:05"]
DAY = "2026-06-01"


def carts_csv() -> str:
    rows = [
        f"{i},{DAY} {q if q.count(':') == 2 else q + ':00'},"
        + (f"{DAY} {left}:00" if left else "")
        for i, q, left in CARTS
    ]
    return "id,qualified_at,left_at\n" + "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def morning(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from click.testing import CliRunner
    from conftest import write_files

    from cadence.cli import main

    root = tmp_path_factory.mktemp("oracle")
    (root / "cadence.yml").write_text(ORACLE_YML)
    write_files(root, {**ORACLE_FILES, "seeds/carts.csv": carts_csv()})
    runner = CliRunner()
    for time in sorted(RUNS):
        args = ["run", "--due", "--at", f"{DAY}T{time}", "--project-dir", str(root)]
        result = runner.invoke(main, args)
        assert result.exit_code == 0, (time, result.output)
    # known build and delivery times: abandoners 2 s, big_carts 1 s, each delivery 0.5 s
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        for model, seconds in (("abandoners", 2.0), ("big_carts", 1.0)):
            con.execute(
                "update _cadence.model_builds set duration_s = ? where model = ?", (seconds, model)
            )
            con.execute(
                "update _cadence.model_state set avg_duration_s = ? where model = ?",
                (seconds, model),
            )
        con.execute("update _cadence.deliveries set duration_s = 0.5")
    return root


def advise_json(root: Path, *args: str) -> dict:
    from click.testing import CliRunner

    from cadence.cli import main

    result = CliRunner().invoke(
        main, ["advise", "--json", "--at", f"{DAY}T09:07", *args, "--project-dir", str(root)]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_replayed_morning_was_delivered_at_the_known_ticks(morning: Path) -> None:
    """The premises of the oracle: routing froze at its ticks (08:00 late, at 08:02)."""
    with duckdb.connect(str(morning / "warehouse.duckdb"), read_only=True) as con:
        freezes = con.execute(
            "select distinct strftime(\"at\", '%H:%M') from _cadence.freezes "
            "where channel = 'routing' order by 1"
        ).fetchall()
        reached = dict(
            con.execute(
                "select key, strftime(reached_at, '%H:%M') from _cadence.reached "
                "where segment = 'abandoners'"
            ).fetchall()
        )
    assert [f[0] for f in freezes] == [
        "07:00", "07:15", "07:30", "07:45", "08:02", "08:15", "08:30", "08:45", "09:00",
    ]  # fmt: skip
    assert reached["10"] == "08:02" and reached["13"] == "08:15" and "21" not in reached


def test_advise_equals_the_oracle(morning: Path) -> None:
    """Every figure below is worked out by hand from CARTS and RUNS.

    Observed (start = qualified_at, reach = the routing delivery that sent it):
      reached 20: delays 0 (19), 60 x5 (4, 6, 9, 12, 18), 240 (11), 300 x2 (3, 8), 450 (20),
      540 (15), 600 (14), 720 x4 (2, 10 late at 08:02, 13, 16), 840 x4 (1, 5, 7, 17);
      n = 20: p50 = rank 10 = 450, p90 = rank 18 = 840, max 840. missed 3 (21, 22, 23: no
      routing freeze between their publish and their exit), pending 2 (24, 25), entered 25
      (26 never recorded). builds/day as plan: big_carts 96 + half of abandoners' 96 builds at
      routing ticks (web causes them too) = 144; compute 96 x 1 s + 48 x 2 s = 192 s.

    Candidates (delivery = first tick at or after qualified_at + 2 s build + 0.5 s delivery;
    missed when that tick is not before the exit):
      every 5 minutes: 2.5 x6, 62.5 x4, 122.5 x4, 152.5, 182.5 x2, 242.5 x8 (n 25):
        p50 = rank 13 = 122.5, p90 = rank 23 = 242.5; none missed.
      every 15 minutes: 21, 22, 23 missed; n 22: 2.5, 62.5 x4, 122.5, 302.5 x2, 452.5, 542.5,
        602.5 x2, 722.5 x3, 782.5, 842.5 x6: p50 = rank 11 = 602.5, p90 = rank 20 = 842.5.
      hourly: 5 also missed (tick 08:00 after its exit at 07:50); n 21: p50 = rank 11 =
        2252.5 (20: 07:22:30 -> 08:00), p90 = rank 19 = 3542.5, max 3542.5 (1, 12, 24).
      every 4 hours: n 21, ticks 08:00 and 12:00: p50 = rank 11 = 3542.5 (1: 07:01 ->
        08:00), p90 = rank 19 = 13202.5 (14: 08:20 -> 12:00), max 14342.5 (12: 08:01).
      daily at 00:00 (routing has no fixed hour): every delivery next midnight; p50 = rank 11
        = 07:50 -> 24:00 = 58202.5, p90 = rank 19 = 07:03 -> 61022.5, max 07:00 -> 61202.5.
    Cost (the project's total, routing's cadence changed, web unchanged): abandoners 288
    builds a day whatever routing does (web every 5 minutes), big_carts as often as routing:
    builds 576 / 384 / 312 / 294 / 289, compute 2 x 288 + 1 x n = 864 / 672 / 600 / 582 /
    577 s a day, x 30 days / 3600 x 3.6 EUR = 25.92 / 20.16 / 18.0 / 17.46 / 17.31.
    Objective (default): two 15-minute ticks = 1800 s to warn, four = 3600 s to err: met by
    every 5 and every 15 minutes; the cheaper of them is recommended.
    """

    def candidate(cadence, builds, compute, cost, p50, p90, most, missed, meets):
        return {
            "cadence": cadence,
            "builds_per_day": builds,
            "compute_s_per_day": compute,
            "cost_per_month": cost,
            "delay_s": {"p50": p50, "p90": p90, "max": most},
            "missed_at_least": missed,
            "meets_objective": meets,
        }

    assert advise_json(morning, "--channel", "routing") == {
        "at": "2026-06-01T09:07:00+00:00",
        "since": "2026-05-02T09:07:00+00:00",
        "channels": [
            {
                "channel": "routing",
                "cadence": "every 15 minutes",
                "objective": {"warn_after_s": 1800.0, "error_after_s": 3600.0},
                "observed": {
                    "entered": 25,
                    "missed": 3,
                    "pending": 2,
                    "delay_s": {"p50": 450.0, "p90": 840.0, "max": 840.0},
                    "builds_per_day": 144.0,
                    "compute_s_per_day": 192.0,
                },
                "candidates": [
                    # cadence, builds, compute, EUR, p50, p90, max, missed, meets
                    candidate("every 5 minutes", 576.0, 864.0, 25.92,
                              122.5, 242.5, 242.5, 0, True),
                    candidate("every 15 minutes", 384.0, 672.0, 20.16,
                              602.5, 842.5, 842.5, 3, True),
                    candidate("hourly", 312.0, 600.0, 18.0,
                              2252.5, 3542.5, 3542.5, 4, False),
                    candidate("every 4 hours", 294.0, 582.0, 17.46,
                              3542.5, 13202.5, 14342.5, 4, False),
                    candidate("daily at 00:00", 289.0, 577.0, 17.31,
                              58202.5, 61022.5, 61202.5, 4, False),
                ],  # fmt: skip
                "recommended": "every 15 minutes",
                "note": None,
            }
        ],
    }


def test_the_text_says_the_lower_bound_and_the_price_of_each_faster_step(morning: Path) -> None:
    from click.testing import CliRunner

    from cadence.cli import main

    args = ["advise", "--at", f"{DAY}T09:07", "--channel", "routing"]
    result = CliRunner().invoke(main, [*args, "--project-dir", str(morning)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "observed: 25 entered, 3 missed, 2 pending" in text
    assert "missed>= for cadences faster than every 15 minutes is a lower bound" in text
    # every 15 minutes -> every 5 minutes: +5.76 EUR a month for 10 minutes less p90 delay
    step = "every 15 minutes -> every 5 minutes: +5.76 EUR/month for 10.0 min less p90 delay"
    assert step in text
    assert "(0.5760 EUR per minute saved)" in text
    assert "recommended: every 15 minutes" in text


def test_candidates_with_commas_are_replayed_as_given(morning: Path) -> None:
    data = advise_json(
        morning, "--channel", "routing", "--cadences", "0,30 * * * *; every 5 minutes"
    )
    (channel,) = data["channels"]
    assert [c["cadence"] for c in channel["candidates"]] == ["0,30 * * * *", "every 5 minutes"]
    half_hourly = channel["candidates"][0]
    # ticks :00 and :30: 5 (tick 07:30 before its exit) is reached, 21, 22 and 23 are missed
    assert half_hourly["missed_at_least"] == 3
    assert half_hourly["builds_per_day"] == 288 + 48


def test_too_little_history_is_said_in_the_note(morning: Path) -> None:
    data = advise_json(morning, "--channel", "routing", "--since", "30m")
    (channel,) = data["channels"]
    # since 08:37: 17, 18 (reached), 24, 25 (pending)
    assert channel["observed"]["entered"] == 4
    assert channel["note"].startswith("too little history: 4 entries since 2026-06-01T08:37:00")
    assert "fewer than 20" in channel["note"]


# -- who counts, and holding the warehouse ---------------------------------------------------------


def test_members_a_delivery_left_out_are_not_the_channels_and_pending_ones_wait(
    make_project, cli
):
    """email suppresses unsubscribed keys: one that enters vip while suppressed is frozen out
    (excluded, not counted); one entering after the last delivery is pending; web has no
    destination, so its members are reached by the publish (delay 0 without event_time)."""
    from activation_project import make_activation, set_people, set_unsubscribed

    root = make_activation(make_project, [(1, 900), (2, 900)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    set_unsubscribed(root, [3])
    set_people(root, [(1, 900), (2, 900), (3, 900)])
    assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 0  # 3 enters, suppressed
    set_people(root, [(1, 900), (2, 900), (3, 900), (4, 900)])
    assert cli(root, "run", "-s", "vip", "--at", "2026-01-02T07:00").exit_code == 0
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:  # 4 waits for email's next tick
        con.execute("delete from _cadence.reached where key = '4'")
        con.execute("delete from _cadence.freezes where \"at\" > '2026-01-02 06:30'")
    result = cli(root, "advise", "--json", "--at", "2026-01-02T08:00", "--channel", "email")
    assert result.exit_code == 0, result.output
    (email,) = json.loads(result.output)["channels"]
    observed = email["observed"]
    assert (observed["entered"], observed["missed"], observed["pending"]) == (3, 0, 1)
    # 1 and 2 published and delivered in the same run: 0 s from their publish
    assert observed["delay_s"] == {"p50": 0.0, "p90": 0.0, "max": 0.0}


def test_advise_says_so_while_a_run_holds_the_warehouse(make_project, cli):
    from activation_project import make_activation

    from cadence.build.lock import RunLock

    root = make_activation(make_project, [(1, 900)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    lock = RunLock(root, "2026-01-01T06:05:00+00:00").acquire()
    try:
        result = cli(root, "advise", "--at", "2026-01-01T06:10")
    finally:
        lock.release()
    assert result.exit_code == 2
    assert "a cadence run is in progress" in result.output
    assert "hint: try again when it finishes" in result.output


def test_the_warehouse_is_free_while_advise_computes(make_project, cli, monkeypatch):
    """advise copies what it reads and detaches before computing: a run could open the
    warehouse for writing while the figures are worked out."""
    from activation_project import make_activation

    import cadence.review.advise as module

    root = make_activation(make_project, [(1, 900), (2, 900)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    opened = []
    read_reach = module.read_reach

    def while_computing(*args, **kwargs):  # type: ignore[no-untyped-def]
        with duckdb.connect(str(root / "warehouse.duckdb")) as con:  # read-write: not held
            opened.append(con.execute("select count(*) from _cadence.reached").fetchone()[0])
        return read_reach(*args, **kwargs)

    monkeypatch.setattr(module, "read_reach", while_computing)
    result = cli(root, "advise", "--json", "--at", "2026-01-01T07:00", "--channel", "email")
    assert result.exit_code == 0, result.output
    assert opened == [2]
    assert json.loads(result.output)["channels"][0]["observed"]["entered"] == 2


def test_an_unknown_channel_or_since_is_a_usage_error(make_project, cli):
    root = make_project({"models/m.sql": "select 1 as id\n"})
    result = cli(root, "advise", "--channel", "emial")
    assert result.exit_code == 2 and "did you mean 'email'?" in result.output
    result = cli(root, "advise", "--since", "yesterday")
    assert result.exit_code == 2 and "--since: cannot read 'yesterday'" in result.output
    result = cli(root, "advise", "--since", "2099-01-01T00:00", "--at", "2026-01-01T00:00")
    assert result.exit_code == 2 and "is not before now" in result.output


def test_without_a_warehouse_every_channel_has_no_entries_and_says_so(make_project, cli):
    root = make_project({"models/m.sql": "select 1 as id\n"})
    result = cli(root, "advise", "--json", "--at", "2026-01-01T06:00")
    assert result.exit_code == 0, result.output
    channels = json.loads(result.output)["channels"]
    assert [c["channel"] for c in channels] == ["email", "ads", "web", "routing"]
    for c in channels:
        assert c["observed"]["entered"] == 0 and c["recommended"] is None
        assert c["note"].startswith("too little history: 0 entries")
        assert [k["cadence"] for k in c["candidates"]][:4] == [
            "every 5 minutes", "every 15 minutes", "hourly", "every 4 hours",
        ]  # fmt: skip
    email = channels[0]
    assert email["candidates"][-1]["cadence"] == "daily at 05:00"  # the channel's hour
    assert channels[1]["candidates"][-1]["cadence"] == "daily at 00:00"


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        (None, (1800.0, 3600.0, False)),  # the default: two and four 15-minute ticks
        ({"warn_after_s": 900, "error_after_s": 7200}, (900.0, 7200.0, True)),
        ({"warn_after_s": None, "error_after_s": 7200}, (7200.0, 7200.0, True)),  # warns at error
        ({"warn_after_s": 600, "error_after_s": None}, (600.0, None, True)),
    ],
)
def test_a_declared_freshness_objective_wins_over_the_default(declared, expected) -> None:
    """A channel's ``freshness: {warn_after, error_after}`` is the objective candidates are held
    to; without one, the default rule."""
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from cadence.plan.schedule import parse_cadence
    from cadence.review.advise import objective_of

    channel = SimpleNamespace(
        name="routing", freshness=None if declared is None else SimpleNamespace(**declared)
    )
    tz = ZoneInfo("Europe/Berlin")
    now = dt.datetime(2026, 6, 1, 9, 7, tzinfo=tz)
    found = objective_of(channel, parse_cadence("every 15 minutes"), tz, now)  # type: ignore[arg-type]
    assert (found.warn_after_s, found.error_after_s, found.declared) == expected


@pytest.mark.parametrize(
    ("cadence", "warn", "error"),
    [
        ("every 5 minutes", 600, 1200),
        ("hourly", 7200, 14400),
        ("daily at 05:00", 2 * 86400, 4 * 86400),
        ("weekdays at 09:00", 4 * 86400, 6 * 86400),  # Friday to Tuesday; Wednesday to Tuesday
        ("on demand", None, None),
    ],
)
def test_the_default_objective_is_the_longest_age_before_the_2nd_and_4th_tick(
    cadence, warn, error
) -> None:
    from zoneinfo import ZoneInfo

    from cadence.plan.schedule import parse_cadence
    from cadence.review.advise import default_objective

    tz = ZoneInfo("Europe/Berlin")
    found = default_objective(parse_cadence(cadence), tz, dt.datetime(2026, 6, 3, 12, tzinfo=tz))
    assert (found.warn_after_s, found.error_after_s) == (warn, error)
