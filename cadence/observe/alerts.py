"""Alerts: transitions between two observations -> events, and their signed delivery.

Input: the previous and current states (channel and source freshness, model health, delivery
health) and ``now`` -> output: events ``{"id", "type", "body"}`` appended to an outbox; and
``send``: one bounded attempt per invocation to the ``alerts: {webhook}`` receiver.
Invariants: an event is made once per transition (a model that stays broken, or a channel that
stays late, makes no new event); its id (``webhook-id``) is a function of its type, subject and
the instant of the transition, the same on every retry, so a receiver drops duplicates; events
leave the outbox in order and only on a 2xx; sending never raises and never waits longer than
one short timeout per invocation (the first failure ends the attempt: the rest wait for the
next invocation). Signing, URL policy and connections are ``cadence.outbound``'s, the same as
webhook destinations; connections (http.client, ssl) are imported only when there is an
outbox to send, so a run with nothing to alert does not pay for them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cadence.load.freshness import AlertsConfig
from cadence.outbound.signing import message_id, sign, signing_key

MAX_OUTBOX = 1000  # a receiver down for weeks: the oldest events go first
FRESHNESS_TYPES = {"ok": "freshness.ok", "warn": "freshness.warn", "error": "freshness.error"}


def event(kind: str, subject: str, at: dt.datetime, project: str, **figures: Any) -> dict[str, Any]:
    """One alert: ``id`` stable for (type, subject, instant), body ``{"type", "at", "project",
    ...}``."""
    body = {"type": kind, "at": at.isoformat(), "project": project, **figures}
    return {"id": message_id("alert", kind, subject, at.isoformat()), "type": kind, "body": body}


def freshness_events(
    what: str,
    previous: Mapping[str, str],
    current: Mapping[str, dict[str, Any]],
    now: dt.datetime,
    project: str,
) -> list[dict[str, Any]]:
    """``freshness.warn|error|ok`` for each channel (``what`` = "channel") or source whose state
    changed (an unseen one counts as having been ok)."""
    out = []
    for name, figures in current.items():
        before, state = previous.get(name, "ok"), figures["state"]
        if state != before:
            out.append(
                event(
                    FRESHNESS_TYPES[state],
                    f"{what}:{name}",
                    now,
                    project,
                    **{what: name},
                    previous=before,
                    **{k: v for k, v in figures.items() if k != "state"},
                )
            )
    return out


def model_events(
    previous: Mapping[str, str],
    results: list[tuple[str, str, str | None]],
    now: dt.datetime,
    project: str,
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """From this run's (model, status, error): ``model.failed`` when a healthy model fails,
    ``model.recovered`` when a failed one succeeds; returns the new health per model."""
    health = dict(previous)
    out = []
    for name, status, error in results:
        if status == "error" and previous.get(name) != "failed":
            health[name] = "failed"
            out.append(
                event(
                    "model.failed",
                    f"model:{name}",
                    now,
                    project,
                    model=name,
                    error=(error or "")[:500],
                )
            )
        elif status == "success":
            if previous.get(name) == "failed":
                out.append(event("model.recovered", f"model:{name}", now, project, model=name))
            health[name] = "ok"
    return health, out


def delivery_events(
    previous: Mapping[str, str],
    deliveries: list[dict[str, Any]],
    now: dt.datetime,
    project: str,
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """``delivery.failed`` / ``delivery.held_back`` when a channel x segment starts failing (or
    being held); a later success clears it (the next failure alerts again)."""
    health = dict(previous)
    out = []
    for d in deliveries:
        key = f"{d['channel']}/{d['segment']}"
        status = d["status"]
        if status in ("failed", "held_back"):
            if previous.get(key) != status:
                kind = "delivery.failed" if status == "failed" else "delivery.held_back"
                out.append(
                    event(
                        kind,
                        f"delivery:{key}",
                        now,
                        project,
                        channel=d["channel"],
                        segment=d["segment"],
                        error=(d.get("error") or "")[:500],
                    )
                )
            health[key] = status
        elif status == "delivered" or status == "nothing":
            health.pop(key, None)
    return health, out


@dataclass(frozen=True)
class SendReport:
    sent: int
    pending: int
    error: str | None = None


def send(
    config: AlertsConfig,
    outbox: list[dict[str, Any]],
    env: Mapping[str, str],
    clock: Callable[[], float] = time.time,
) -> tuple[list[dict[str, Any]], SendReport]:
    """Post the outbox in order, one bounded attempt; returns what is still pending. The
    ``webhook-timestamp`` is the wall clock of the attempt (``clock``, not ``--at``): receivers
    reject stale timestamps, as for webhook destinations."""
    if not outbox:
        return [], SendReport(0, 0)
    secret = env.get(config.secret_env) or os.environ.get(config.secret_env, "")
    if not secret:
        why = f"alerts: environment variable {config.secret_env} is not set; kept for later"
        return outbox, SendReport(0, len(outbox), why)
    from cadence.outbound.connections import Connections, describe, excerpt
    from cadence.outbound.urlpolicy import resolve

    try:
        key = signing_key(secret)
    except ValueError as exc:  # its text never holds the secret
        return outbox, SendReport(0, len(outbox), f"alerts: {config.secret_env} {exc}")
    try:
        addresses = resolve(config.url, config.allow_private)
    except ValueError as exc:  # a URL that does not resolve (now): retry next time
        return outbox, SendReport(0, len(outbox), f"alerts: {exc}")
    connections = Connections(config.url, addresses, config.timeout_s)
    remaining = list(outbox)
    sent = 0
    error = None
    try:
        while remaining:
            item = remaining[0]
            body = json.dumps(item["body"], separators=(",", ":")).encode()
            stamp = int(clock())
            headers = {
                "content-type": "application/json",
                "webhook-id": item["id"],
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign(key, item["id"], stamp, body),
            }
            try:
                status, reason, _, data = connections.post(body, headers)
            except Exception as exc:  # noqa: BLE001 - never fail a run for an alert
                error = f"alerts: {describe(exc, config.timeout_s)}"
                break
            if not 200 <= status < 300:
                error = f"alerts: receiver answered {status} {reason}: {excerpt(data, secret)}"
                break
            remaining.pop(0)
            sent += 1
    finally:
        connections.close_all()
    return remaining, SendReport(sent, len(remaining), error)


def bounded(outbox: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return outbox[-MAX_OUTBOX:]
