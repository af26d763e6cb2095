"""The command line (SPEC §5): help, exit codes, --at, output for people and machines."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from conftest import read_run_results, statuses

from cadence import __version__
from cadence.build.lock import RunLock
from cadence.cli import main
from cadence.project import Project

COMMANDS = ["init", "run", "plan", "status", "explain", "ls", "compile", "test", "seed", "lint"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help(command):
    args = [command, "--help"] if command else ["--help"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage:")


def test_run_help_documents_the_run_flags():
    text = CliRunner().invoke(main, ["run", "--help"]).output
    for flag in (
        "--due",
        "--channel",
        "--select",
        "--exclude",
        "--at",
        "--threads",
        "--full-refresh",
        "--dry-run",
        "--wait",
        "--project-dir",
        "--json",
    ):
        assert flag in text


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_run_exits_0_and_prints_a_plain_line_per_model(copy_project, cli):
    root = copy_project("shop")
    result = cli(root, "run", "--at", "2026-01-10T10:00")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(
        re.fullmatch(r"\[\s*\d+/10\] OK\s+high_value \(\d+\.\d\ds 2 rows\)", line) for line in lines
    )
    assert "\x1b[" not in result.output, "no colour codes when piped"
    assert lines[-1].startswith("done in ")
    assert "10 built" in lines[-1]


def test_run_exits_1_when_a_model_fails(copy_project, cli):
    result = cli(copy_project("failing"), "run", "--at", "2026-01-10T10:00")
    assert result.exit_code == 1
    assert "ERROR broken" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("run", "--at", "yesterday"), "cannot read time 'yesterday'", id="bad-at"),
        pytest.param(
            ("run", "-s", "nope_nope", "--at", "2026-01-10T10:00"),
            "no model or seed named",
            id="unknown-selector",
        ),
        pytest.param(
            ("explain", "high_valu", "--at", "2026-01-10T10:00"),
            "did you mean 'high_value'?",
            id="explain-unknown-model",
        ),
        pytest.param(("run", "--no-such-flag"), "No such option", id="click-usage"),
    ],
)
def test_usage_errors_exit_2(copy_project, cli, args, message):
    result = cli(copy_project("shop"), *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_folder_without_a_project_exits_2(tmp_path, cli):
    result = cli(tmp_path, "run", "--at", "2026-01-10T10:00")
    assert result.exit_code == 2
    assert "no cadence.yml or dbt_project.yml found" in result.output
    assert "cadence init" in result.output


def test_project_dir_may_point_inside_the_project(copy_project, cli):
    root = copy_project("shop")
    result = cli(root / "models" / "segments", "run", "-s", "+lapsed", "--at", "2026-01-10T10:00")
    assert result.exit_code == 0, result.output
    assert statuses(root)["lapsed"] == "success"


@pytest.mark.parametrize(
    ("given", "recorded"),
    [
        pytest.param("2026-01-10T10:00", "2026-01-10T10:00:00+01:00", id="naive-is-project-time"),
        pytest.param("2026-07-10T10:00", "2026-07-10T10:00:00+02:00", id="naive-in-summer"),
        pytest.param("2026-01-10T09:00:00Z", "2026-01-10T10:00:00+01:00", id="utc"),
        pytest.param("2026-01-10T04:00:00-05:00", "2026-01-10T10:00:00+01:00", id="other-offset"),
    ],
)
def test_at_accepts_iso_8601_with_or_without_offset(make_project, cli, given, recorded):
    root = make_project({"models/m.sql": "select 1 as id\n"})
    assert cli(root, "run", "--at", given).exit_code == 0
    assert read_run_results(root)["at"] == recorded


def test_at_replaces_now_in_recorded_state(make_project, cli):
    root = make_project({"models/m.sql": "{{ config(channels=['web']) }}\nselect 1 as id\n"})
    cli(root, "run", "--due", "--at", "2026-01-10T10:07")
    state = Project.load(root).read_state().of("m")
    assert state.last_success_at.isoformat() == "2026-01-10T09:07:00+00:00"


def test_run_json_prints_the_run_results(copy_project, cli):
    root = copy_project("shop")
    result = cli(root, "run", "--json", "--at", "2026-01-10T10:00")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == read_run_results(root)


def test_an_idle_run_due_is_quiet_and_succeeds(copy_project, cli):
    root = copy_project("shop")
    cli(root, "run", "--at", "2026-01-10T10:00")
    result = cli(root, "run", "--due", "--at", "2026-01-10T10:01")
    assert result.exit_code == 0
    assert " OK " not in result.output and "ERROR" not in result.output


def test_plan_text_says_what_would_run_and_why(copy_project, cli):
    root = copy_project("shop")
    cli(root, "run", "--at", "2026-01-10T10:00")
    result = cli(root, "plan", "--at", "2026-01-10T10:05")
    assert result.exit_code == 0, result.output
    assert "at 2026-01-10 10:05 CET: 1 to build" in result.output
    assert re.search(r"build cart_abandoners: due: tick 2026-01-10 10:05 CET", result.output)
    assert "builds/day" in result.output  # the cost of every cadence, made visible


def test_explain_shows_ticks_builds_and_the_decision(copy_project, cli):
    root = copy_project("shop")
    cli(root, "run", "--at", "2026-01-10T10:00")
    result = cli(root, "explain", "high_value", "--at", "2026-01-10T12:01")
    assert result.exit_code == 0, result.output
    assert "latest tick <= now: 2026-01-10 12:00 CET" in result.output
    assert "last successful build started: 2026-01-10 10:00 CET" in result.output
    assert "decision: DUE" in result.output


def test_explain_does_not_repeat_the_verdict(copy_project, cli):
    root = copy_project("shop")
    cli(root, "run", "--at", "2026-01-10T10:00")
    result = cli(root, "explain", "high_value", "--at", "2026-01-10T10:01")
    assert "not due: not due" not in result.output


def test_ls_json_lists_models_with_their_effective_cadence(copy_project, cli):
    result = cli(copy_project("shop"), "ls", "--json", "-s", "tag:vip")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert (row["name"], row["materialized"], row["path"]) == (
        "high_value",
        "table",
        "models/segments/high_value.sql",
    )
    assert set(row["channels"]) == {"email", "ads"}


def test_status_lists_every_model_after_a_run(copy_project, cli):
    root = copy_project("failing")
    cli(root, "run", "--at", "2026-01-10T10:00")
    result = cli(root, "status", "--json", "--at", "2026-01-10T10:05")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)["models"]}
    assert set(rows) == {
        "base",
        "broken",
        "child",
        "grandchild",
        "flaky",
        "after_flaky",
        "unrelated",
    }
    assert rows["broken"]["last_status"] == "error"
    assert "no_such_column" in rows["broken"]["last_error"]
    assert rows["unrelated"]["last_status"] == "success"


def test_a_second_run_while_one_holds_the_lock_exits_0_naming_the_holder(make_project, cli):
    root = make_project({"models/m.sql": "select 1 as id\n"})
    lock = RunLock(root, "2026-01-10T10:00:00+01:00").acquire()
    try:
        result = cli(root, "run", "--due", "--at", "2026-01-10T10:01")
    finally:
        lock.release()
    assert result.exit_code == 0
    assert "another cadence run holds the project lock" in result.output
    assert "2026-01-10T10:00:00+01:00" in result.output
    assert not (root / "target" / "run_results.json").exists()
    assert cli(root, "run", "--due", "--at", "2026-01-10T10:02").exit_code == 0
    # orphan model: on demand, so nothing is due and the idle run writes no run_results.json
    assert not (root / "target" / "run_results.json").exists()


def test_clock_behind_state_is_reported_by_run_and_status(make_project, cli):
    root = make_project({"models/seg.sql": "{{ config(channels=['email']) }}\nselect 1 as id\n"})
    assert cli(root, "run", "--at", "2026-06-01T06:00").exit_code == 0  # a mistaken future --at
    result = cli(root, "run", "--due", "--at", "2026-01-02T06:00")
    assert result.exit_code == 0
    assert "clock is behind recorded state" in result.output and "seg" in result.output
    assert "cadence run -s seg" in result.output
    text = cli(root, "status", "--at", "2026-01-02T06:00")
    assert "clock is behind recorded state" in text.output
    rows = json.loads(cli(root, "status", "--json", "--at", "2026-01-02T06:00").stdout)["models"]
    assert rows[0]["recorded_after_now"].startswith("2026-06-01")
    # once rebuilt at the current time, the warning is gone
    assert cli(root, "run", "-s", "seg", "--at", "2026-01-02T06:00").exit_code == 0
    after = cli(root, "run", "--due", "--at", "2026-01-02T06:01")
    assert "clock is behind" not in after.output
    rows = json.loads(cli(root, "status", "--json", "--at", "2026-01-02T06:01").stdout)["models"]
    assert rows[0]["recorded_after_now"] is None


WALL = "2026-01-10T09:00:07+00:00"  # the stubbed clock: 10:00:07 in the project's Europe/Berlin


@pytest.fixture
def wall_clock(monkeypatch):
    import datetime as dt

    from cadence.cli import common

    monkeypatch.setattr(common, "_now", lambda: dt.datetime.fromisoformat(WALL))


def test_an_invocation_that_prints_starts_with_its_time_and_an_idle_one_is_silent(
    make_project, cli, wall_clock
):
    """A cron log can be read by date: the first line of every invocation that prints is its
    wall-clock time in the project timezone, ISO 8601 with offset (and the --at it replays)."""
    root = make_project(
        {"models/seg.sql": "{{ config(channels=['web'], key='id') }}\nselect 1 as id\n"}
    )
    first = cli(root, "run", "--due")
    assert first.exit_code == 0, first.output
    assert first.output.splitlines()[0] == "2026-01-10T10:00:07+01:00 cadence run --due"
    assert "OK    seg" in first.output.splitlines()[1]
    assert cli(root, "run", "--due").output == ""  # idle: nothing, so cron sends no mail
    replay = cli(root, "run", "--at", "2026-01-10T10:15")
    assert replay.output.splitlines()[0] == (
        "2026-01-10T10:00:07+01:00 cadence run (as if at 2026-01-10T10:15:00+01:00)"
    )
    as_json = cli(root, "run", "--json", "--at", "2026-01-10T10:30")
    assert json.loads(as_json.stdout)["at"] == "2026-01-10T10:30:00+01:00"  # stdout: one document
    exported = cli(root, "export")
    assert exported.output.splitlines()[0] == "2026-01-10T10:00:07+01:00 cadence export"
    seeded = cli(root, "seed")
    assert seeded.output.splitlines()[0] == "2026-01-10T10:00:07+01:00 cadence seed"
    # a project that does not load is dated too (in the machine's zone: cadence.yml is broken)
    (root / "cadence.yml").write_text("name: [broken\n")
    broken = cli(root, "run", "--due")
    assert broken.exit_code == 2
    stamp, error = broken.stderr.splitlines()[:2]
    assert re.fullmatch(r"2026-01-10T\d\d:00:07[+-]\d\d:\d\d cadence run --due", stamp), stamp
    assert "error" in error


def test_a_run_overlapping_another_is_a_note_not_an_error(make_project, cli, wall_clock):
    root = make_project({"models/m.sql": "select 1 as id\n"})
    lock = RunLock(root, "2026-01-10T10:00:00+01:00").acquire()
    try:
        result = cli(root, "run", "--due", "--at", "2026-01-10T10:01")
        exported = cli(root, "export", "--at", "2026-01-10T10:01")
    finally:
        lock.release()
    for res in (result, exported):
        assert res.exit_code == 0
        assert "error" not in res.output
        assert "note: another cadence run holds the project lock" in res.stdout
        assert res.stdout.startswith("2026-01-10T10:00:07+01:00 cadence ")


def test_a_failed_deliverys_error_and_hint_both_go_to_stderr(make_project, cli, wall_clock):
    root = make_project(
        {"models/seg.sql": "{{ config(channels=['email'], key='id') }}\nselect 1 as id\n"},
        cadence_yml="""\
            name: t
            warehouse: {engine: duckdb, path: warehouse.duckdb}
            timezone: Europe/Berlin
            channels:
              email: {cadence: "daily at 05:00", export: {format: csv}}
            """,
    )
    (root / "exports").write_text("a file where the export folder goes")
    result = cli(root, "run", "--at", "2026-01-10T06:00")
    assert result.exit_code == 1
    assert "error: delivery email/seg failed" in result.stderr
    assert "hint: nothing past the last acknowledged change" in result.stderr
    assert "hint:" not in result.stdout and "error:" not in result.stdout


HELD = "suppression list 'unsub' is not current (Binder Error); nothing is sent against it"


@pytest.mark.parametrize(
    ("reported", "deliveries", "model", "quiet"),
    [
        # the same hold, reported by an earlier run, in a run failing nothing else: not news
        ({"email/vip": HELD}, [("email", "vip", "held", HELD)], "skipped", {("email", "vip")}),
        # first seen: reported
        ({}, [("email", "vip", "held", HELD)], "skipped", set()),
        # its reason changed: reported
        ({"email/vip": "priority segment 'x'"}, [("email", "vip", "held", HELD)], "skipped", set()),
        # the run fails anyway (the input failed again): its output says why the channel waits
        ({"email/vip": HELD}, [("email", "vip", "held", HELD)], "error", set()),
        # another delivery failed in the same run: reported, exit 1
        (
            {"email/vip": HELD},
            [("email", "vip", "held", HELD), ("ads", "vip", "failed", "receiver down")],
            "skipped",
            set(),
        ),
        # a delivery that failed is never quiet, whatever was reported before
        (
            {"ads/vip": "receiver down"},
            [("ads", "vip", "failed", "receiver down")],
            "skipped",
            set(),
        ),
        # delivered beside the repeated hold: the hold alone is quiet
        (
            {"email/vip": HELD},
            [("email", "vip", "held", HELD), ("ads", "vip", "delivered", None)],
            "success",
            {("email", "vip")},
        ),
    ],
)
def test_a_hold_already_reported_for_the_same_reason_is_said_once(
    reported, deliveries, model, quiet
) -> None:
    import datetime as dt

    from cadence.activation.attempt import SegmentDelivery
    from cadence.activation.deliver import DeliveryReport
    from cadence.build.context import ModelResult
    from cadence.build.runner import RunResult
    from cadence.cli.common import repeated_holds

    result = RunResult(
        "r1",
        dt.datetime(2026, 3, 3, 5, 2, tzinfo=dt.timezone.utc),
        (ModelResult("unsub", model, "due"),),
        deliveries=DeliveryReport(
            tuple(SegmentDelivery(c, s, status, error=e) for c, s, status, e in deliveries)
        ),
    )
    assert repeated_holds(result, reported) == quiet
