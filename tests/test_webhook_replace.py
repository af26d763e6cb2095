"""A rebaseline (``cadence export --rebaseline``) over a webhook: the receiver must be able to
tell a replacement from ordinary entries, or keys it holds that left the audience (including an
exit the rebaseline superseded) stay there for good (the "full resync drops removals" bug)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from activation_project import CADENCE_YML, make_activation, set_people
from routing_project import SECRET, Fault, Receiver

from cadence.activation import webhook
from cadence.activation.outbox import Change

HOOK = "HOOK_SECRET"


def _yml(url: str) -> str:
    return CADENCE_YML.replace(
        "export: {format: parquet, columns: [email]}",
        f"export: {{kind: webhook, url: '{url}', secret_env: {HOOK}, batch_size: 2, "
        "max_attempts: 1}",
    )


def test_a_rebaseline_over_a_webhook_removes_what_left_the_audience(
    make_project: Any, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOOK, SECRET)
    refuse = {"on": False}
    with Receiver(SECRET, fault=lambda n, i: Fault(status=400) if refuse["on"] else None) as rx:
        people = [(i, 900) for i in range(1, 6)]
        root = make_activation(make_project, people, cadence_yml=_yml(rx.url))
        assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
        assert rx.members()["vip"] == {"1", "2", "3", "4", "5"}
        refuse["on"] = True  # the exits of 4 and 5 do not get through ...
        set_people(root, people[:3])
        assert cli(root, "run", "--at", "2026-01-02T06:00").exit_code == 1
        refuse["on"] = False  # ... and a rebaseline supersedes them
        result = cli(root, "export", "--rebaseline", "--channel", "email",
                     "--at", "2026-01-02T07:00")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert rx.members()["vip"] == {"1", "2", "3"}
    bodies = [json.loads(b) for b in rx.bodies.values()]
    flagged = [b for b in bodies if b.get("replace")]
    assert len(flagged) == 1 and [c["key"] for c in flagged[0]["changes"]] == ["1", "2"]
    assert all("replace" not in b for b in bodies if b is not flagged[0])


def test_a_replace_starts_its_own_batch_and_the_batches_after_it_wait_for_it() -> None:
    at = __import__("datetime").datetime(2026, 1, 1)
    changes = [Change(7, "a", "entered", at), Change(8, "b", "entered", at, starts_replace=True)]
    changes += [Change(9 + i, f"k{i}", "entered", at) for i in range(3)]
    batches = webhook.cut_batches("c", "s", changes, 2)
    assert [(b.first, b.last) for b in batches] == [(7, 7), (8, 9), (10, 11)]
    assert [json.loads(b.body).get("replace") for b in batches] == [None, True, None]
    # keys differ, yet the batch after the replace waits for it (it would be wiped otherwise)
    assert webhook._key_dependencies(changes, batches) == [(), (0,), (1,)]
