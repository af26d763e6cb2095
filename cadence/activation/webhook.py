"""Webhook destination: the ordered pending changes of one channel x segment -> signed JSON
batches POSTed to a receiver -> how far the receiver has them (SPEC §7 "Webhook destinations").

Input: a channel's webhook export config, the pending changes of one (channel, segment) in seq
order (seqs frozen in the outbox before anything is sent) and the environment holding the secret.
Output: ``DeliveryOutcome(delivered_through, sent, error)``. What is generic to calling out is
``cadence.outbound``'s (URL policy, signing, the retry policy, the connection pool); what is
here is the segment's: batches, their ids and payload, per-key order and the wait budgets.

Invariants:
- Batches are a function of the changes alone: up to ``batch_size`` consecutive changes with the
  same ``at``, cut from the first pending change. A retry starts where the last contiguously
  acknowledged batch ended, so it cuts the same batches, with the same body and the same
  ``webhook-id`` (derived from channel, segment, first and last seq; never from a batch's place in
  an attempt). Changes frozen by a later run carry a later ``at``, so they never extend a batch a
  receiver may already have applied.
- ``delivered_through`` is the last seq of the longest run of batches acknowledged with 2xx,
  contiguously from the first; nothing past a gap counts (those batches are sent again, with the
  same id, and receivers drop them).
- 408, 429, 5xx, timeouts and connection errors are retried with exponential backoff (bounded
  attempts and waiting; ``Retry-After`` seconds or HTTP-date honoured); any other status stops the
  delivery. At most ``MAX_IN_FLIGHT`` requests are open at once, and a batch holding keys of
  earlier batches is sent only once every one of those batches is acknowledged (one key's changes
  arrive in order, however the batches' retries interleave).
- Only https URLs, or http to loopback; an address that is not global (private, link-local, ...)
  after DNS resolution needs ``allow_private``; connections go to the addresses that were checked.
- The secret comes only from the environment and never appears in an error or a payload.
- ``webhook-timestamp`` is the wall-clock time of each attempt (``clock``, not ``--at``): receivers
  reject stale timestamps.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import http.client
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cadence.activation.outbox import Change, DeliveryOutcome
from cadence.load.channelconfig import ExportConfig
from cadence.outbound.connections import Connections, describe, excerpt
from cadence.outbound.retry import RETRY_AFTER_CAP_S, backoff_s, retriable, retry_after_s
from cadence.outbound.signing import message_id, sign, signing_key
from cadence.outbound.urlpolicy import PRIVATE_HINT, resolve, safe_url, url_problem

MAX_IN_FLIGHT = 4
BATCH_WAIT_BUDGET_S = 120.0  # sleeping between attempts of one batch, at most
DELIVERY_WAIT_BUDGET_S = 300.0  # sleeping between attempts, summed over a delivery's batches
PAYLOAD_TYPE = "segment.changes"
RESERVED_FIELDS = ("key", "change", "at")
USER_AGENT = "cadence-webhook/1"


@dataclass(frozen=True)
class Batch:
    first: int
    last: int
    count: int
    webhook_id: str
    body: bytes


# -- batches -----------------------------------------------------------------------------------


def webhook_id(channel: str, segment: str, first: int, last: int) -> str:
    """The id of the batch holding changes ``first..last``: the same on every retry and in every
    process, different for any other range."""
    return message_id(channel, segment, first, last)


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _item(change: Change) -> dict[str, Any]:
    item: dict[str, Any] = {"key": change.key, "change": change.change, "at": change.at}
    for name, value in change.columns.items():
        if name not in RESERVED_FIELDS:
            item[name] = value
    return item


def cut_batches(
    channel: str, segment: str, changes: Sequence[Change], batch_size: int
) -> tuple[Batch, ...]:
    """Split ``changes`` (strictly increasing seq) into the batches a delivery sends."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    for before, after in zip(changes, changes[1:]):
        if after.seq <= before.seq:
            raise ValueError(f"changes out of order: seq {after.seq} after {before.seq}")
    batches: list[Batch] = []
    start = 0
    while start < len(changes):
        end = start + 1
        while (
            end < len(changes)
            and end - start < batch_size
            and changes[end].at == changes[start].at
            and not changes[end].starts_replace  # a replacement starts a batch of its own
        ):
            end += 1
        part = changes[start:end]
        first, last = part[0].seq, part[-1].seq
        payload: dict[str, Any] = {"type": PAYLOAD_TYPE, "channel": channel, "segment": segment}
        if part[0].starts_replace:
            payload["replace"] = True  # drop what you hold of the segment, then apply this
        payload["changes"] = [_item(c) for c in part]
        body = json.dumps(
            payload, separators=(",", ":"), ensure_ascii=False, default=_json_default
        ).encode("utf-8")
        batches.append(
            Batch(first, last, len(part), webhook_id(channel, segment, first, last), body)
        )
        start = end
    return tuple(batches)


# -- sending -----------------------------------------------------------------------------------


@dataclass
class _Outcome:
    acked: bool = False
    error: str | None = None


class _Delivery:
    """One call of ``deliver_webhook``: the batches, the shared stop flag and wait budget."""

    def __init__(
        self,
        config: ExportConfig,
        key: bytes,
        secret: str,
        connections: Connections,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.key = key
        self.secret = secret
        self.connections = connections
        self.sleep = sleep
        self.clock = clock
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.waited = 0.0
        self.wait_for: list[tuple[int, ...]] = []
        self.done: list[threading.Event] = []
        self.acked: list[bool] = []

    def _reserve_wait(self, delay: float, batch_waited: float) -> bool:
        if batch_waited + delay > BATCH_WAIT_BUDGET_S:
            return False
        with self.lock:
            if self.waited + delay > DELIVERY_WAIT_BUDGET_S:
                return False
            self.waited += delay
        return True

    def send_in_order(self, index: int, batch: Batch) -> _Outcome:
        """Send batch ``index`` once every earlier batch it depends on (``wait_for``) is
        acknowledged, so a receiver gets the changes of one key in order. Those batches were
        queued first, so each is in flight or finished: waiting cannot deadlock."""
        try:
            for before in self.wait_for[index]:
                self.done[before].wait()
                if not self.acked[before]:
                    return _Outcome(error=None)
            outcome = self.send(batch)
            self.acked[index] = outcome.acked
            return outcome
        except BaseException:  # e.g. an interrupt while waiting to retry: stop every worker
            self.stop.set()
            raise
        finally:
            self.done[index].set()

    def send(self, batch: Batch) -> _Outcome:
        attempts = max(1, int(self.config.max_attempts))
        batch_waited = 0.0
        reason = "not sent"
        for attempt in range(1, attempts + 1):
            if self.stop.is_set():
                return _Outcome(error=None)
            timestamp = int(self.clock())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "webhook-id": batch.webhook_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(self.key, batch.webhook_id, timestamp, batch.body),
            }
            wait: float | None = None
            try:
                status, phrase, retry_after, data = self.connections.post(batch.body, headers)
            except (OSError, http.client.HTTPException) as exc:
                self.connections.reset()
                reason = describe(exc, self.config.timeout_s)
                if isinstance(exc, ssl.SSLCertVerificationError):  # retrying cannot fix it
                    self.stop.set()
                    return _Outcome(error=f"{_range(batch)}: {reason} (not retried)")
            else:
                if 200 <= status <= 299:
                    return _Outcome(acked=True)
                reason = f"HTTP {status} {phrase}: {excerpt(data, self.secret)}"
                if not retriable(status):
                    self.stop.set()
                    return _Outcome(error=f"{_range(batch)}: {reason} (not retried)")
                wait = retry_after_s(retry_after, self.clock())
                if wait is not None and wait > RETRY_AFTER_CAP_S:
                    self.stop.set()
                    return _Outcome(
                        error=f"{_range(batch)}: {reason}; the receiver asked to retry after "
                        f"{wait:.0f} s, longer than a run waits ({RETRY_AFTER_CAP_S:.0f} s)"
                    )
            if attempt == attempts:
                break
            delay = backoff_s(attempt) if wait is None else wait
            if not self._reserve_wait(delay, batch_waited):
                reason += "; retry time used up"
                break
            batch_waited += delay
            self.sleep(delay)
        self.stop.set()
        return _Outcome(error=f"{_range(batch)}: gave up after {attempt} attempt(s): {reason}")


def _key_dependencies(changes: Sequence[Change], batches: Sequence[Batch]) -> list[tuple[int, ...]]:
    """For each batch, the earlier batches it must wait for: for each of its keys, the latest
    earlier batch holding that key (not only the latest of them all: b2 holding keys of b0 and
    of b1 waits for both, or b2 overtakes b0 while b0 is retried). Each of those waited for the
    batch before it of the same key, so every earlier batch of the key is acknowledged first.
    A replacement waits for every earlier batch (the latest of each key, and the replacement
    before it), and every batch after it waits for it (a receiver applying it later would drop
    what they brought)."""
    last_batch_of: dict[str, int] = {}
    out: list[tuple[int, ...]] = []
    position = 0
    replacing: int | None = None
    for index, batch in enumerate(batches):
        part = changes[position : position + batch.count]
        position += batch.count
        if part[0].starts_replace:
            earlier = set(last_batch_of.values())
        else:
            earlier = {last_batch_of[c.key] for c in part if c.key in last_batch_of}
        if replacing is not None:
            earlier.add(replacing)
        if part[0].starts_replace:
            replacing = index
        out.append(tuple(sorted(earlier)))
        for c in part:
            last_batch_of[c.key] = index
    return out


def _range(batch: Batch) -> str:
    return f"changes {batch.first}-{batch.last} (webhook-id {batch.webhook_id})"


def _where(config: ExportConfig) -> str:
    line = getattr(config, "line", None)
    return f"cadence.yml:{line}: " if line else "cadence.yml: "


def deliver_webhook(
    config: ExportConfig,
    channel: str,
    segment: str,
    changes: Sequence[Change],
    env: Mapping[str, str],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> DeliveryOutcome:
    """POST ``changes`` (one channel x segment, seq order) in signed batches; report how far
    the receiver acknowledged them contiguously. Never raises for receiver or network trouble."""
    if not changes:
        return DeliveryOutcome(None, 0, None)
    if not config.url or not config.secret_env:
        return DeliveryOutcome(
            None, 0, f"{_where(config)}a webhook export needs url and secret_env"
        )
    problem = url_problem(config.url, config.allow_private)
    if problem is not None:
        return DeliveryOutcome(None, 0, f"{_where(config)}{problem[0]} (hint: {problem[1]})")
    secret = env.get(config.secret_env, "")
    if not secret:
        return DeliveryOutcome(
            None, 0, f"environment variable {config.secret_env} (secret_env) is not set"
        )
    try:
        key = signing_key(secret)
    except ValueError as exc:
        return DeliveryOutcome(None, 0, f"environment variable {config.secret_env} {exc}")
    try:
        addresses = resolve(config.url, config.allow_private)
    except ValueError as exc:
        hint = f" (hint: {PRIVATE_HINT})" if "private" in str(exc) else ""
        return DeliveryOutcome(None, 0, f"{_where(config)}webhook url: {exc}{hint}")
    batches = cut_batches(channel, segment, changes, config.batch_size)
    connections = Connections(config.url, addresses, config.timeout_s)
    delivery = _Delivery(config, key, secret, connections, sleep, clock)
    delivery.wait_for = _key_dependencies(changes, batches)
    delivery.done = [threading.Event() for _ in batches]
    delivery.acked = [False] * len(batches)
    try:
        with ThreadPoolExecutor(
            max_workers=min(MAX_IN_FLIGHT, len(batches)), thread_name_prefix="cadence-webhook"
        ) as pool:
            try:
                outcomes = list(pool.map(delivery.send_in_order, range(len(batches)), batches))
            except BaseException:  # an interrupt: start no new request, let open ones end
                delivery.stop.set()
                raise
    finally:
        connections.close_all()
    delivered_through: int | None = None
    for batch, outcome in zip(batches, outcomes):
        if not outcome.acked:
            break
        delivered_through = batch.last
    sent = sum(b.count for b, o in zip(batches, outcomes) if o.acked)
    errors = [o.error for o in outcomes if o.error]
    error = None
    if errors:
        error = f"POST {safe_url(config.url)}: {errors[0]}"
    elif delivered_through != batches[-1].last:
        error = f"POST {safe_url(config.url)}: delivery stopped before all batches were sent"
    return DeliveryOutcome(delivered_through, sent, error)
