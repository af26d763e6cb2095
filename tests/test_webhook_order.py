"""One key's webhook changes arrive in order, whatever batches are retried (issue 17 item 4).

A receiver that applies each batch the moment it arrives (no reordering, no buffering) must end
up holding exactly the audience, and never see a key's change before the change that preceded
it: ``exited`` before ``entered``, or an older change after a newer one. Batches are retried
(500 on a first attempt, answered late so later batches get going meanwhile) and cadence is
killed with SIGKILL; every request is checked with the Standard Webhooks reference verifier
(the ``standardwebhooks`` package).

``webhook-timestamp`` is the wall clock of each attempt (SPEC §7), and the reference verifier
checks it against its own clock, so these deliveries use the real clock for that header only.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from routing_project import SECRET, SECRET_ENV, Fault, Receiver, copy_routing

from cadence.activation import webhook
from cadence.activation.outbox import Change
from cadence.activation.webhook import cut_batches, deliver_webhook, webhook_id
from cadence.load.channelconfig import ExportConfig

standardwebhooks = pytest.importorskip("standardwebhooks")

T1 = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.timezone.utc)
T2 = dt.datetime(2026, 6, 1, 10, 30, tzinfo=dt.timezone.utc)
LATE_S = 0.4  # a refused attempt is answered (500, not applied) this late


class InOrderReceiver(Receiver):
    """Verifies every request with ``standardwebhooks``, then applies each new batch at once,
    in arrival order, to ``state`` (segment -> key -> its last change), noting in
    ``out_of_order`` every change that cannot follow what the key already had. A request for
    which ``refuse(webhook_id, batch)`` holds gets a late 500 instead (not applied)."""

    def __init__(
        self,
        secret: str,
        refuse: Callable[[str, dict[str, Any]], bool] | None = None,
        **kw: Any,
    ) -> None:
        kw.setdefault("idle_timeout_s", 60.0)
        super().__init__(secret, **kw)
        self.refuse = refuse
        self.reference = standardwebhooks.Webhook(secret)
        self.state: dict[str, dict[str, dict[str, Any]]] = {}
        self.last_at: dict[tuple[str, str], dt.datetime] = {}
        self.out_of_order: list[str] = []
        self.rejected: list[str] = []

    def _handle(self, number: int, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        try:
            batch = self.reference.verify(body, dict(headers.items()))
        except standardwebhooks.WebhookVerificationError as exc:
            with self.lock:
                self.rejected.append(str(exc))
            return self._answer("?", 401, b"rejected")
        if self.refuse is not None:
            with self.lock:
                fail = self.refuse(headers["webhook-id"], batch)
            if fail:
                time.sleep(LATE_S)  # answered once later batches got going
                return self._answer(headers["webhook-id"], 500, b"injected failure")
        return super()._handle(number, headers, body)

    def _apply(self, msg_id: str, body: bytes, batch: dict[str, Any]) -> None:
        with self.lock:
            if msg_id in self.bodies:  # a batch it already has, sent again with its id
                if self.bodies[msg_id] != body:
                    self.duplicates_differing.append(msg_id)
                return
            self.bodies[msg_id] = body
            segment = batch["segment"]
            held = self.state.setdefault(segment, {})
            if batch.get("replace"):
                held.clear()
            for change in batch["changes"]:
                key, what = change["key"], change["change"]
                at = dt.datetime.fromisoformat(change["at"])
                previous = self.last_at.get((segment, key))
                if (what == "entered") == (key in held) or (previous and at < previous):
                    self.out_of_order.append(f"{segment}/{key} {what} at {change['at']}")
                if what == "entered":
                    held[key] = change
                else:
                    held.pop(key, None)
                self.last_at[(segment, key)] = at
                self.applied.append({"segment": segment, "webhook_id": msg_id, **change})

    def members(self) -> dict[str, set[str]]:
        with self.lock:
            return {segment: set(keys) for segment, keys in self.state.items() if keys}


def _attempts_of(
    batch_ids: set[str] | None, failing: int = 1
) -> Callable[[str, dict[str, Any]], bool]:
    """The first ``failing`` attempts of each batch in ``batch_ids`` (every batch: None) fail."""
    seen: dict[str, int] = {}

    def fails(msg_id: str, batch: dict[str, Any]) -> bool:
        if batch_ids is not None and msg_id not in batch_ids:
            return False
        seen[msg_id] = seen.get(msg_id, 0) + 1
        return seen[msg_id] <= failing

    return fails


# -- one delivery ------------------------------------------------------------------------------


def _entered(keys: str, at: dt.datetime = T1) -> list[tuple[str, str, dt.datetime, bool]]:
    return [(k, "entered", at, False) for k in keys.split()]


def _exited(keys: str, at: dt.datetime = T2) -> list[tuple[str, str, dt.datetime, bool]]:
    return [(k, "exited", at, False) for k in keys.split()]


def _replace(keys: str, at: dt.datetime = T2) -> list[tuple[str, str, dt.datetime, bool]]:
    return [(k, "entered", at, i == 0) for i, k in enumerate(keys.split())]


# (name, changes in seq order, batch_size, the batches whose first attempt fails: None = all)
CASES = [
    # the case: b2 holds keys of b0 and b1; b0 retried must still come before b2
    ("exit overtakes its entry", _entered("a b c d") + _exited("a c"), 2, {0}),
    ("every first attempt fails", _entered("a b c d e f") + _exited("f a e b d c"), 2, None),
    (
        "a chain across three freezes",
        _entered("a b c d") + _exited("d a") + _entered("a d", T2 + dt.timedelta(minutes=5)),
        2,
        {0, 1},
    ),  # fmt: skip
    # a replacement wipes what the receiver holds: every earlier batch must be in before it
    ("a replacement after a retried batch", _entered("a b c d") + _replace("e f"), 2, {0}),
    (
        "larger batches, many keys",
        _entered(" ".join(f"k{i}" for i in range(30)))
        + _exited(" ".join(f"k{i}" for i in range(29, -1, -3))),
        4,
        {0, 2, 4},
    ),  # fmt: skip
]


@pytest.mark.parametrize(
    ("changes", "batch_size", "failing"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_receiver_applying_in_arrival_order_ends_with_the_audience(
    changes: list[tuple[str, str, dt.datetime, bool]], batch_size: int, failing: set[int] | None
) -> None:
    items = [
        Change(seq, key, what, at, {"n": seq}, replace)
        for seq, (key, what, at, replace) in enumerate(changes, start=1)
    ]
    expected: set[str] = set()  # the audience: the changes replayed in seq order
    for item in items:
        if item.starts_replace:
            expected.clear()
        (expected.add if item.change == "entered" else expected.discard)(item.key)
    batches = cut_batches("routing", "carts", items, batch_size)
    ids = None if failing is None else {batches[i].webhook_id for i in failing}
    with InOrderReceiver(SECRET, _attempts_of(ids)) as rx:
        config = ExportConfig(
            kind="webhook", url=rx.url, secret_env=SECRET_ENV, batch_size=batch_size,
            timeout_s=5.0, max_attempts=3,
        )  # fmt: skip
        outcome = deliver_webhook(
            config, "routing", "carts", items, {SECRET_ENV: SECRET}, sleep=lambda s: None
        )
    assert outcome == webhook.DeliveryOutcome(len(items), len(items), None)
    assert rx.rejected == [] and rx.duplicates_differing == []
    assert rx.out_of_order == []
    assert set(rx.state.get("carts", {})) == expected
    assert [s for _, s in rx.requests].count(500) == len(batches if ids is None else ids)


def test_a_batch_waits_for_the_latest_earlier_batch_of_each_of_its_keys() -> None:
    items = [
        Change(seq, key, what, at)
        for seq, (key, what, at, _) in enumerate(_entered("a b c d") + _exited("a c"), 1)
    ]
    batches = cut_batches("r", "s", items, 2)
    assert webhook._key_dependencies(items, batches) == [(), (), (0, 1)]


# -- through cadence: a run killed with SIGKILL, then runs with retried batches -----------------

CADENCE = [sys.executable, "-m", "cadence"]
REPO = Path(__file__).resolve().parents[1]


def _cadence(root: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CADENCE_TEST_FAULT"}
    env[SECRET_ENV] = SECRET
    if fault:
        env["CADENCE_TEST_FAULT"] = fault
    return subprocess.run(
        [*CADENCE, *args, "--project-dir", str(root)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def _audience(root: Path) -> dict[str, set[str]]:
    """Each segment's audience as cadence recorded it delivered."""
    import duckdb

    with duckdb.connect(str(root / "routing.duckdb"), read_only=True) as con:
        rows = con.execute("select segment, key from _cadence.delivered where not held_out")
        out: dict[str, set[str]] = {}
        for segment, key in rows.fetchall():
            out.setdefault(segment, set()).add(key)
    return out


SEGMENTS = ("high_value_carts", "cart_abandoners")
FIRST_BATCHES = {webhook_id("routing", segment, 1, 2) for segment in SEGMENTS}


def _check_out_every_other_cart(root: Path) -> None:
    """Half of the open carts get checked out: their customers leave the segments."""
    path = root / "seeds" / "carts.csv"
    header, *rows = path.read_text().splitlines()
    open_rows = [i for i, row in enumerate(rows) if row.endswith(",false")]
    for i in open_rows[::2]:
        rows[i] = rows[i][: -len("false")] + "true"
    path.write_text("\n".join([header, *rows]) + "\n")


def _spanning_keys(rx: InOrderReceiver) -> int:
    """How many keys had more than one change in one delivery the receiver got."""
    per_key = Counter((change["segment"], change["key"]) for change in rx.applied)
    return sum(1 for n in per_key.values() if n > 1)


def test_changes_frozen_by_a_killed_run_and_the_next_arrive_in_order(tmp_path: Path) -> None:
    """Run 1 freezes its changes and dies by SIGKILL before sending; half the carts are checked
    out, and run 2 freezes the exits of those keys on top and sends both, first attempts
    failing."""
    with InOrderReceiver(SECRET, _attempts_of(FIRST_BATCHES)) as rx:
        root = copy_routing(tmp_path / "routing", rx.url, batch_size=2)
        killed = _cadence(root, "run", "--at", "2026-06-01T10:00", fault="after_freeze")
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert rx.count == 0
        _check_out_every_other_cart(root)
        later = _cadence(root, "run", "--at", "2026-06-01T11:00")
        assert later.returncode == 0, later.stdout + later.stderr
    assert _spanning_keys(rx) > 0  # the case at hand: keys entered and exited in one delivery
    assert rx.rejected == [] and rx.duplicates_differing == []
    assert rx.out_of_order == []
    assert rx.members() == _audience(root)


def test_a_kill_mid_delivery_then_retried_batches_keep_each_key_in_order(
    tmp_path: Path,
) -> None:
    """As above, but run 2 dies by SIGKILL while its third request is at the receiver and its
    first batch is still being refused; the export after it sends that batch again, refused
    once more, while the batches after it are sent again and acknowledged at once."""
    process: list[subprocess.Popen[bytes]] = []
    killed_at: list[int] = []

    def fault(number: int, msg_id: str) -> Fault | None:
        # the first request from the third on that is not refused (which request arrives
        # third depends on thread timing, and a refused one never reaches this hook)
        if number >= 3 and process and not killed_at:
            killed_at.append(number)
            os.kill(process[0].pid, signal.SIGKILL)
            return Fault(status=200, apply=True)
        return None

    with InOrderReceiver(SECRET, _attempts_of(FIRST_BATCHES, 2), fault=fault) as rx:
        root = copy_routing(tmp_path / "routing", rx.url, batch_size=2)
        killed = _cadence(root, "run", "--at", "2026-06-01T10:00", fault="after_freeze")
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        _check_out_every_other_cart(root)
        env = {k: v for k, v in os.environ.items() if k != "CADENCE_TEST_FAULT"}
        env[SECRET_ENV] = SECRET
        process.append(subprocess.Popen(
            [*CADENCE, "run", "--at", "2026-06-01T11:00", "--project-dir", str(root)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        assert process[0].wait(timeout=180) == -signal.SIGKILL
        again = _cadence(root, "export", "--at", "2026-06-01T11:01")
        assert again.returncode == 0, again.stdout + again.stderr
    assert _spanning_keys(rx) > 0
    assert rx.rejected == [] and rx.duplicates_differing == []
    assert rx.out_of_order == []
    assert rx.members() == _audience(root)
