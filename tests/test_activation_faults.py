"""Faults a new user's project met in a trial of activation (issue 8): a blocked export folder,
a FIFO where a manifest goes, a symlink where a data file goes, a retried range followed by
more changes, and a kill between a segment's publish and its channel's delivery. Each must fail
clearly (exit 1, never 3, never a hang) and lose or duplicate nothing once the fault is gone."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from activation_project import (
    CADENCE_YML,
    FAULT_ENV,
    REPO,
    make_activation,
    manifests,
    sent,
    set_people,
)
from test_activation_files import check_manifests_match_files


def _without_privileges() -> list[str] | None:
    """A command prefix under which permission bits are enforced (root ignores them): none
    for an ordinary user, ``setpriv`` dropping the override capabilities for root."""
    if os.geteuid() != 0:
        return []
    tool = shutil.which("setpriv")
    if tool is None:
        return None
    return [tool, "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]


def run_cli(
    root: Path,
    *args: str,
    prefix: list[str] | None = None,
    fault: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "cadence", *args, "--project-dir", str(root)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_an_unreadable_export_folder_fails_that_delivery_clearly(make_project):
    prefix = _without_privileges()
    if prefix is None:
        pytest.skip("running as root without setpriv: permission bits cannot be enforced")
    root = make_activation(make_project, [(1, 900), (2, 10)])
    assert run_cli(root, "run", "--at", "2026-01-01T06:00").returncode == 0
    set_people(root, [(1, 900), (2, 900), (3, 10)])
    vip_folder = root / "exports" / "email" / "vip"
    vip_folder.chmod(0)
    try:
        blocked = run_cli(root, "run", "--at", "2026-01-02T06:00", prefix=prefix)
    finally:
        vip_folder.chmod(0o700)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "internal error" not in blocked.stderr and "Traceback" not in blocked.stderr
    assert "delivery email/vip failed: permission denied" in blocked.stderr
    # the other segment of the channel is still delivered in the same run
    assert "delivered email/regular: 1 entered, 1 exited" in blocked.stdout
    again = run_cli(root, "export", "--at", "2026-01-02T06:05")
    assert again.returncode == 0, again.stdout + again.stderr
    assert sent(root, "vip") == [("1", "entered"), ("2", "entered")]
    assert sent(root, "regular") == [("2", "entered"), ("2", "exited"), ("3", "entered")]
    check_manifests_match_files(root)


def _in_flight_vip(make_project) -> tuple[Path, Path]:
    """A project whose vip delivery was killed after its range was fixed: (root, data path)."""
    root = make_activation(make_project, [(1, 900)])
    assert run_cli(root, "run", "--at", "2026-01-01T06:00").returncode == 0
    set_people(root, [(1, 900), (2, 900)])
    killed = run_cli(root, "run", "--at", "2026-01-02T06:00", fault="after_plan")
    assert killed.returncode == -9, killed.stderr
    data = root / "exports" / "email" / "vip" / "email__vip__000000002-000000002.parquet"
    assert not data.exists()
    return root, data


@pytest.mark.parametrize("fifo_at", ["manifest", "data"])
def test_a_fifo_where_an_export_file_goes_is_replaced_not_waited_on(make_project, fifo_at):
    root, data = _in_flight_vip(make_project)
    manifest = data.with_name("email__vip__000000002-000000002.manifest.json")
    other = data if fifo_at == "manifest" else manifest
    other.write_text("{}" if other == manifest else "not the export")
    os.mkfifo(manifest if fifo_at == "manifest" else data, 0o600)
    # a reader waiting on a FIFO would hang the delivery (and the run lock) for good
    again = run_cli(root, "export", "--at", "2026-01-02T06:05", timeout=30)
    assert again.returncode == 0, again.stdout + again.stderr
    assert stat.S_ISREG(os.lstat(manifest).st_mode) and stat.S_ISREG(os.lstat(data).st_mode)
    assert sent(root, "vip") == [("1", "entered"), ("2", "entered")]
    check_manifests_match_files(root)


def test_a_retried_range_is_followed_by_the_changes_frozen_after_it(make_project):
    root, _data = _in_flight_vip(make_project)  # range 2-2 fixed, then killed
    set_people(root, [(1, 900), (2, 900), (3, 900)])  # more changes before the retry
    again = run_cli(root, "run", "--at", "2026-01-03T06:00")
    assert again.returncode == 0, again.stdout + again.stderr
    # the fixed range goes first, with its own id, then what was frozen after it
    assert "delivered email/vip: 1 entered, 0 exited, changes 2-2" in again.stdout
    assert "delivered email/vip: 1 entered, 0 exited, changes 3-3" in again.stdout
    assert sent(root, "vip") == [("1", "entered"), ("2", "entered"), ("3", "entered")]
    status = run_cli(root, "status", "--at", "2026-01-03T06:01")
    assert "email/vip: last delivered" in status.stdout and "; 0 pending" in status.stdout
    assert " 1 pending" not in status.stdout, status.stdout
    check_manifests_match_files(root)


def test_a_symlink_where_an_export_file_goes_is_replaced_not_followed(make_project):
    root, data = _in_flight_vip(make_project)
    victim = root / "seeds" / "people.csv"
    before = victim.read_bytes()
    data.parent.mkdir(parents=True, exist_ok=True)
    data.symlink_to(victim)
    again = run_cli(root, "export", "--at", "2026-01-02T06:05")
    assert again.returncode == 0, again.stdout + again.stderr
    assert victim.read_bytes() == before  # the file the link pointed at is untouched
    assert not data.is_symlink() and stat.S_ISREG(os.lstat(data).st_mode)
    assert not list(root.glob("*.manifest.json")) and not list(victim.parent.glob("*.manifest*"))
    assert sent(root, "vip") == [("1", "entered"), ("2", "entered")]
    check_manifests_match_files(root)


def test_a_kill_between_publish_and_delivery_is_delivered_by_the_next_idle_run(make_project):
    root = make_activation(make_project, [(1, 900), (2, 10)])
    assert run_cli(root, "run", "--at", "2026-01-01T06:00").returncode == 0
    set_people(root, [(1, 900), (2, 900), (3, 10)])
    # segments published (and the run recorded), then killed before any change was frozen
    killed = run_cli(root, "run", "--at", "2026-01-02T06:00", fault="before_deliver")
    assert killed.returncode == -9, killed.stderr
    status = run_cli(root, "status", "--at", "2026-01-02T06:10")
    assert "email/vip: last delivered" in status.stdout
    assert "published since it was last frozen" in status.stdout  # behind, though 0 pending
    # nothing is due until tomorrow 05:00: the idle run from cron still delivers the channel
    idle = run_cli(root, "run", "--due", "--at", "2026-01-02T06:30")
    assert idle.returncode == 0, idle.stdout + idle.stderr
    assert sent(root, "vip") == [("1", "entered"), ("2", "entered")]
    assert sent(root, "regular") == [("2", "entered"), ("2", "exited"), ("3", "entered")]
    # and once delivered, idle runs stay idle (no attempt is recorded)
    before = len(manifests_of(root))
    again = run_cli(root, "run", "--due", "--at", "2026-01-02T06:45")
    assert again.returncode == 0 and "delivered" not in again.stdout
    assert len(manifests_of(root)) == before
    assert "published since" not in run_cli(root, "status", "--at", "2026-01-02T06:50").stdout
    check_manifests_match_files(root)


def manifests_of(root: Path) -> list[Path]:
    return sorted((root / "exports").rglob("*.manifest.json"))


def test_an_export_column_the_segment_lacks_is_named_with_its_line(make_project, cli):
    yml = CADENCE_YML.replace("columns: [email]", "columns: [email, phone]")
    root = make_activation(make_project, [(1, 900)], cadence_yml=yml)
    result = cli(root, "run", "--at", "2026-01-01T06:00")
    assert result.exit_code == 1
    line = (
        yml.splitlines().index(next(x for x in yml.splitlines() if "columns: [email, phone]" in x))
        + 1
    )
    assert (
        f"error: delivery email/vip failed: cadence.yml:{line}: channel 'email' export: column "
        "'phone' is not a column of segment 'vip'" in result.output
    )
    assert "its columns: id, email" in result.output and "Binder Error" not in result.output


def test_a_rebaseline_is_not_held_back_as_a_mass_enter(make_project, cli):
    yml = CADENCE_YML.replace(
        "    suppress: [unsubscribed]\n", "    suppress: [unsubscribed]\n    max_change: 0.3\n"
    )
    root = make_activation(make_project, [(i, 900) for i in range(1, 11)], cadence_yml=yml)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    result = cli(root, "export", "--rebaseline", "--channel", "email", "--at", "2026-01-01T07:00")
    assert result.exit_code == 0, result.output
    assert "delivered email/vip: 10 entered, 0 exited, changes 11-20 (replace)" in result.output
    (replaced,) = [m for m in manifests(root, "vip") if m["replace"]]
    assert replaced["rows"] == 10
    # the guard still holds back a real mass change after it
    set_people(root, [(1, 900)])
    held = cli(root, "run", "--at", "2026-01-02T06:00")
    assert held.exit_code == 1 and "held back: 0 entered and 9 exited of 10" in held.output


def test_a_mistyped_suppression_list_names_the_line_and_a_guess(make_project, cli):
    yml = CADENCE_YML.replace("suppress: [unsubscribed]", "suppress: [unsubscribd]")
    root = make_activation(make_project, [(1, 900)], cadence_yml=yml)
    result = cli(root, "run", "--at", "2026-01-01T06:00")
    assert result.exit_code == 1
    line = 1 + next(i for i, x in enumerate(yml.splitlines()) if "unsubscribd" in x)
    assert (
        f"error: delivery email/vip failed: cadence.yml:{line}: channel 'email': suppress names "
        "'unsubscribd', which is no model or seed (hint: did you mean 'unsubscribed'?)"
    ) in result.output


def test_a_segment_taken_off_a_channel_is_sent_as_exits(make_project, cli):
    root = make_activation(make_project, [(1, 900), (2, 10), (3, 10)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    assert sent(root, "regular") == [("2", "entered"), ("3", "entered")]
    # the channel no longer receives this segment: what it has of it must go
    (root / "models" / "regular.sql").write_text(
        "{{ config(channels=['web'], key='id') }}\n"
        "select id, email from {{ ref('people') }} where spend < 500\n"
    )
    yml = root / "cadence.yml"
    yml.write_text(yml.read_text().replace("priority: [vip, regular]", "priority: [vip]"))
    result = cli(root, "run", "--at", "2026-01-02T06:00")
    assert result.exit_code == 0, result.output
    assert "delivered email/regular: 0 entered, 2 exited, changes 3-4" in result.output
    assert sent(root, "regular")[2:] == [("2", "exited"), ("3", "exited")]
    again = cli(root, "export", "--at", "2026-01-02T06:05")
    assert "email/regular" not in again.output  # nothing left of it: no more lines
    # later publishes of the channel's segments leave idle runs idle
    set_people(root, [(1, 900), (4, 900)])
    assert "delivered email/vip: 1 entered" in cli(root, "run", "--at", "2026-01-03T06:00").output
    idle = cli(root, "run", "--due", "--at", "2026-01-03T06:30")
    assert idle.exit_code == 0 and "delivered" not in idle.output, idle.output
    check_manifests_match_files(root)


def test_a_channel_left_with_no_segment_sends_the_exits_at_its_next_tick(make_project, cli):
    """Both segments taken off the email channel, their models now plain tables the channel
    does not read (and nothing else builds them under --due): at its next tick it still
    retracts everyone it has, once."""
    root = make_activation(make_project, [(1, 900), (2, 10)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    assert sent(root, "vip") == [("1", "entered")] and sent(root, "regular") == [("2", "entered")]
    for name, where in (("vip", ">= 500"), ("regular", "< 500")):
        (root / "models" / f"{name}.sql").write_text(
            f"select id, email from {{{{ ref('people') }}}} where spend {where}\n"
        )
    yml = root / "cadence.yml"
    yml.write_text(yml.read_text().replace("    priority: [vip, regular]\n", ""))
    result = cli(root, "run", "--due", "--at", "2026-01-02T05:00")
    assert result.exit_code == 0, result.output
    assert sent(root, "vip")[1:] == [("1", "exited")]
    assert sent(root, "regular")[1:] == [("2", "exited")]
    later = cli(root, "run", "--due", "--at", "2026-01-03T05:00")
    assert later.exit_code == 0 and "delivered" not in later.output, later.output
    check_manifests_match_files(root)


def test_a_held_back_delivery_says_held_back_once(make_project, cli):
    yml = CADENCE_YML.replace(
        "    suppress: [unsubscribed]\n", "    suppress: [unsubscribed]\n    max_change: 0.3\n"
    )
    root = make_activation(make_project, [(i, 900) for i in range(1, 11)], cadence_yml=yml)
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    set_people(root, [(1, 900)])
    held = cli(root, "run", "--at", "2026-01-02T06:00")
    assert "error: delivery email/vip held back: 0 entered and 9 exited of 10" in held.output
    assert "held back: held back" not in held.output


def test_an_export_path_outside_the_project_names_the_line(make_project, cli, tmp_path):
    outside = tmp_path / "elsewhere"
    yml = CADENCE_YML.replace(
        "export: {format: parquet, columns: [email]}",
        f'export: {{format: parquet, path: "{outside}/{{export_id}}.parquet"}}',
    )
    root = make_activation(make_project, [(1, 900)], cadence_yml=yml)
    result = cli(root, "run", "--at", "2026-01-01T06:00")
    assert result.exit_code == 1
    line = 1 + next(i for i, x in enumerate(yml.splitlines()) if "elsewhere" in x)
    assert f"error: delivery email/vip failed: cadence.yml:{line}: channel 'email' export: " in (
        result.output
    )
    assert "resolves outside the project folder" in result.output and not outside.exists()
