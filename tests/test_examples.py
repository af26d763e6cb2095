"""End to end: the template and every example project run as a user would run them."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import duckdb
import pytest
import routing_project
from click.testing import CliRunner
from routing_project import Receiver

from cadence.cli import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (REPO / "examples").iterdir() if (p / "cadence.yml").is_file())


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def results(root: Path) -> dict[str, dict]:
    from cadence.disk import artifacts

    data = json.loads((artifacts.target_dir(root) / "run_results.json").read_text())
    return {r["name"]: r for r in data["results"]}


def test_init_then_run_then_run_due(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    code, out = cli("init", str(project))
    assert code == 0, out
    code, out = cli("run", "--project-dir", str(project), "--at", "2026-06-01T05:00")
    assert code == 0, out
    built = results(project)
    segments = ["cart_abandoners", "browsing_now", "high_value", "lapsed"]
    for name in segments:
        assert built[name]["status"] == "success"
        assert built[name]["rows"] > 0, f"{name} is empty with the demo data"
    # one minute later only what is due: nothing (every cadence was served at 05:00)
    first = (project / "target" / "run_results.json").read_bytes()
    code, out = cli("run", "--due", "--project-dir", str(project), "--at", "2026-06-01T05:01")
    assert code == 0 and out == ""  # cron sends no mail
    assert (project / "target" / "run_results.json").read_bytes() == first  # left in place
    # at 05:05 the routing segment (every 5 minutes) and what it reads are due, email's are not
    code, out = cli("run", "--due", "--project-dir", str(project), "--at", "2026-06-01T05:05")
    assert code == 0, out
    now = results(project)
    assert now["cart_abandoners"]["status"] == "success"
    assert now["high_value"]["status"] == "skipped"
    assert now["lapsed"]["status"] == "skipped"
    code, out = cli("test", "--project-dir", str(project))
    assert code == 0, out


def test_template_activation_works_offline(tmp_path: Path) -> None:
    """The email channel exports its changes to parquet with manifests, honours the suppression
    seed and keeps the lapsed holdout out; the README says where the files are."""
    import duckdb

    from cadence.activation.audience import is_held_out

    project = tmp_path / "shop"
    assert cli("init", str(project))[0] == 0
    code, out = cli("run", "--project-dir", str(project), "--at", "2026-06-01T05:00")
    assert code == 0, out
    assert "delivered email/high_value" in out and "delivered email/lapsed" in out
    manifests = sorted((project / "exports" / "email").rglob("*.manifest.json"))
    assert {m.parent.name for m in manifests} == {"high_value", "lapsed"}
    unsubscribed = {
        line.split(",")[0]
        for line in (project / "seeds" / "email_unsubscribed.csv").read_text().splitlines()[1:]
    }
    con = duckdb.connect(str(project / "warehouse.duckdb"), read_only=True)
    lapsed = {str(r[0]) for r in con.execute("select customer_id from lapsed").fetchall()}
    con.close()
    held = {k for k in lapsed if is_held_out("winback_2026", k, 10)}
    assert held and unsubscribed & lapsed, "the demo data shows both rules at work"
    for manifest in manifests:
        body = json.loads(manifest.read_text())
        data = manifest.with_name(body["file"])
        assert manifest.stat().st_mode & 0o777 == 0o600 and data.stat().st_mode & 0o777 == 0o600
        keys = {str(r[0]) for r in duckdb.sql(f"select key from '{data}'").fetchall()}
        assert len(keys) == body["rows"] and not keys & unsubscribed
        if body["segment"] == "lapsed":
            assert keys == lapsed - unsubscribed - held
    readme = (project / "README.md").read_text()
    assert "exports/email/<segment>/" in readme and "manifest.json" in readme


def test_init_refuses_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "notes.txt").write_text("mine")
    code, out = cli("init", str(tmp_path / "shop"))
    assert code == 2 and "not empty" in out
    assert (tmp_path / "shop" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs_end_to_end(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / example
    with contextlib.ExitStack() as stack:
        if (REPO / "examples" / example / "receiver.py").is_file():  # its webhook has a receiver
            rx = stack.enter_context(Receiver(routing_project.SECRET))
            routing_project.copy_routing(root, rx.url)
            monkeypatch.setenv(routing_project.SECRET_ENV, routing_project.SECRET)
        else:
            shutil.copytree(REPO / "examples" / example, root,
                            ignore=shutil.ignore_patterns("target", "*.duckdb", "*.duckdb.wal", "logs"))
        code, out = cli("run", "--project-dir", str(root), "--at", "2025-03-14T09:00")
    assert code == 0, out
    statuses = {r["status"] for r in results(root).values()}
    assert statuses <= {"success", "skipped"}
    assert "success" in statuses
    code, out = cli("test", "--project-dir", str(root))
    assert code == 0, out
    code, out = cli("lint", "--project-dir", str(root))
    assert code == 0, out
    code, out = cli("plan", "--json", "--project-dir", str(root), "--at", "2025-03-14T09:01")
    assert code == 0
    plan = json.loads(out)
    assert {m["name"] for m in plan["models"]} >= {r for r in results(root) if r not in ()} - {
        s.stem for s in (root / "seeds").glob("*.csv")}


def test_jaffle_shop_matches_dbt_results(tmp_path: Path) -> None:
    """Row counts dbt produces for jaffle_shop on DuckDB (customers 100, orders 99)."""
    root = tmp_path / "jaffle_shop"
    shutil.copytree(REPO / "examples" / "jaffle_shop", root)
    code, out = cli("run", "--project-dir", str(root), "--at", "2025-03-14T09:00")
    assert code == 0, out
    built = results(root)
    assert built["customers"]["rows"] == 100
    assert built["orders"]["rows"] == 99
    assert "raw_payments" not in built  # seeds are not models: loaded, not listed
    import duckdb

    con = duckdb.connect(str(root / "jaffle_shop.duckdb"), read_only=True)
    try:
        # values dbt-duckdb produces for the same project
        assert con.execute("select first_name, number_of_orders, customer_lifetime_value "
                           "from customers where customer_id = 1").fetchone() == ("Michael", 2, 33.0)
        assert con.execute("select sum(customer_lifetime_value) from customers").fetchone()[0] == 1672
        assert con.execute("select count(*) from orders where status = 'completed'").fetchone()[0] == 67
    finally:
        con.close()


def _expected_routing_audience(root: Path) -> dict[str, set[str]]:
    """What the routing channel must have, computed here from the built segments: members minus
    do_not_call, high_value_carts first (priority), cart_abandoners' 10% holdout left out."""
    from cadence.activation.audience import is_held_out

    con = duckdb.connect(str(root / "routing.duckdb"), read_only=True)
    try:
        def keys(sql: str) -> set[str]:
            return {str(r[0]) for r in con.execute(sql).fetchall()}

        blocked = keys("select customer_id from do_not_call")
        high = keys("select customer_id from high_value_carts") - blocked
        rest = keys("select customer_id from cart_abandoners") - blocked - high
    finally:
        con.close()
    return {
        "high_value_carts": high,
        "cart_abandoners": {k for k in rest if not is_held_out("routing-holdout", k, 10)},
    }


def test_routing_example_delivers_every_change_once_to_its_receiver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five ticks of the routing example: after each, the receiver (replaying what it applied)
    holds exactly the channel's audience; every request was signed correctly."""
    monkeypatch.setenv(routing_project.SECRET_ENV, routing_project.SECRET)
    with Receiver(routing_project.SECRET) as rx:
        root = routing_project.copy_routing(tmp_path / "routing", rx.url, batch_size=4)
        code, out = cli("run", "--project-dir", str(root), "--at", "2026-06-01T10:00")
        assert code == 0, out
        assert "delivered routing/high_value_carts" in out
        con = duckdb.connect(str(root / "routing.duckdb"), read_only=True)
        members = {str(r[0]) for r in con.execute("select customer_id from cart_abandoners").fetchall()}
        con.close()
        assert {"1", "19", "29"} <= members
        seen_exit = False
        for minute in (5, 10, 15, 20, 25):
            expected = _expected_routing_audience(root)
            got = rx.members()
            assert {s: got.get(s, set()) for s in expected} == expected
            code, out = cli("run", "--due", "--project-dir", str(root),
                            "--at", f"2026-06-01T10:{minute:02d}")
            assert code == 0, out
            seen_exit |= any(c["change"] == "exited" for c in rx.applied)
        assert {s: rx.members().get(s, set()) for s in expected} == _expected_routing_audience(root)
    assert seen_exit, "the replay should see carts age out of the window"
    assert rx.requests and all(status == 200 for _, status in rx.requests)
    assert len(rx.bodies) == len(rx.requests)  # nothing sent twice without a failure
    sent = {c["key"] for c in rx.applied}
    assert "19" not in sent  # on do_not_call, though in cart_abandoners at 10:00
    # held out of cart_abandoners (they are in it at 10:00): never sent as its members (a cart
    # of theirs that ages into high_value_carts' window goes there, which holds no one out)
    sent_abandoners = {c["key"] for c in rx.applied if c["segment"] == "cart_abandoners"}
    assert not sent_abandoners & {"1", "29"}
