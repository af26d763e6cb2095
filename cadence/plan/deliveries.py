"""When each channel delivers: a pure function of its ticks, its delivery state, ``now`` and the
command (SPEC §7 "When").

Input: the exported channels with their schedules (``Cadences.channels``), per channel a
``ChannelState`` (what ``_cadence.channel_ticks`` and the delivery cursors say: whether it was
ever delivered, the tick its last freeze served, a delivery a run owes it, changes frozen and
not delivered), ``now``, the mode, and what the run built -> output: one ``ChannelDecision`` per
channel, like ``due.Decision``: ``freeze`` (freeze new changes, then send everything pending),
``send_pending`` (send exactly the ranges earlier freezes left, freeze nothing), ``hold``
(nothing now: an input its delivery reads failed; retried at the next invocation) or
``nothing``, each with its reason. Rules:

- ``run --due``: a channel freezes when its latest tick <= now is later than the tick its last
  freeze served (missed ticks collapse into one; a late run still delivers), when it was never
  delivered and one of its segments exists (its first delivery is at once), or when a run that
  built its inputs stopped before delivering (it recorded that it owed the delivery). Otherwise,
  with changes frozen and not delivered (a failed or killed delivery), it sends exactly those;
  newer changes wait for its next tick. A channel the run's selection does not cover (``run
  --due --channel ads``) freezes nothing: its inputs were not built for its tick.
- A plain ``run``, ``seed`` and ``export`` freeze at once the channels they touch or choose.
- Everything a delivery reads besides its segments (suppression lists, priority segments) must
  be current: when one failed (in this run, or it is backing off) the channel is held.
- A ``run --due`` freeze serves the channel's latest tick. An at-once freeze serves it only when
  the inputs that tick rebuilds were built since it; otherwise the recorded tick stays, so the
  next ``run --due`` still builds for that tick and delivers it.

Nothing here reads the clock or the database. ``next_delivery`` answers when a channel can next
deliver (for an idle ``run --due`` and ``status``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from cadence.load.parser import ParsedProject
from cadence.plan.cadences import Cadences
from cadence.plan.due import fmt
from cadence.plan.history import StateSnapshot
from cadence.plan.schedule import Schedule

FREEZE = "freeze"
SEND_PENDING = "send_pending"
HOLD = "hold"
NOTHING = "nothing"

DUE = "due"  # run --due
RUN = "run"  # a plain run, or seed
EXPORT = "export"
FAILED = ("error", "upstream_failed")
TICKED = ("table", "incremental")


@dataclass(frozen=True)
class ChannelState:
    """What ``_cadence`` records of one channel's deliveries (``activation.ticks`` reads it)."""

    delivered: bool = False  # a freeze of it was recorded (its first delivery happened)
    served_tick: dt.datetime | None = None  # the tick its last freeze served
    owed_at: dt.datetime | None = None  # a run that built its inputs, before delivering it
    pending: bool = False  # changes frozen and not delivered yet (a failed or killed delivery)


@dataclass(frozen=True)
class ChannelDecision:
    channel: str
    action: str  # FREEZE | SEND_PENDING | HOLD | NOTHING
    reason: str
    # the tick a freeze records as served (None: the recorded one stays)
    serves: dt.datetime | None = None

    @property
    def freezes(self) -> bool:
        return self.action == FREEZE

    @property
    def acts(self) -> bool:
        return self.action != NOTHING


def decide_deliveries(
    channels: Sequence[str],
    schedules: Mapping[str, Schedule],
    states: Mapping[str, ChannelState],
    now: dt.datetime,
    tz: ZoneInfo,
    *,
    mode: str,
    at_once: Collection[str] = (),
    in_scope: Collection[str] | None = None,
    ready: Collection[str] | None = None,
    held: Mapping[str, str] | None = None,
    current: Collection[str] | None = None,
) -> tuple[ChannelDecision, ...]:
    """One decision per channel in ``channels`` (those with an export), in that order.

    ``at_once``: channels a plain run, seed or export delivers now (it built their inputs, or
    they were chosen). ``in_scope``: channels ``run --due`` may freeze (None: all; a selection
    covers only some). ``ready``: channels with a segment that exists (None: all). ``held``:
    channel -> why an input its delivery reads is not current. ``current``: channels whose
    inputs were built since their latest tick (None: all), for what an at-once freeze serves.
    """
    out = []
    for name in channels:
        state = states.get(name) or ChannelState()
        schedule = schedules.get(name)
        latest = schedule.latest_tick(now, tz) if schedule is not None else None
        is_ready = ready is None or name in ready
        is_current = current is None or name in current
        decision = _freeze_decision(
            name, state, latest, tz, mode, name in at_once, is_ready, is_current, in_scope
        )
        if decision is None and state.pending:
            decision = ChannelDecision(
                name,
                SEND_PENDING,
                "retry: changes frozen earlier are sent exactly as frozen; newer changes wait "
                f"for its next tick ({fmt(_next(schedule, now, tz), tz)})",
            )
        if decision is not None and held and name in held:
            decision = ChannelDecision(name, HOLD, held[name])
        out.append(decision or ChannelDecision(name, NOTHING, _idle_reason(state, latest, tz)))
    return tuple(out)


def _freeze_decision(
    name: str,
    state: ChannelState,
    latest: dt.datetime | None,
    tz: ZoneInfo,
    mode: str,
    at_once: bool,
    ready: bool,
    current: bool,
    in_scope: Collection[str] | None,
) -> ChannelDecision | None:
    at_once_serves = latest if current else None
    if at_once:
        why = "chosen by cadence export" if mode == EXPORT else "the run built its inputs"
        return ChannelDecision(name, FREEZE, f"at once: {why}", at_once_serves)
    if not ready:
        return None  # none of its segments exists: nothing to freeze yet
    if state.owed_at is not None:
        return ChannelDecision(
            name,
            FREEZE,
            f"owed: a run at {fmt(state.owed_at, tz)} built its inputs and stopped before "
            "delivering",
            at_once_serves,
        )
    if mode != DUE or (in_scope is not None and name not in in_scope):
        return None
    if not state.delivered:
        return ChannelDecision(name, FREEZE, "first delivery (at once)", latest)
    if latest is not None and (state.served_tick is None or latest > state.served_tick):
        return ChannelDecision(
            name,
            FREEZE,
            f"tick {fmt(latest, tz)}; last delivery served {fmt(state.served_tick, tz)}",
            latest,
        )
    return None


def _idle_reason(state: ChannelState, latest: dt.datetime | None, tz: ZoneInfo) -> str:
    if not state.delivered:
        return "not delivered yet"
    if latest is None:
        return "no ticks: delivered by a plain run or cadence export"
    return f"tick {fmt(latest, tz)} already served"


def _next(schedule: Schedule | None, now: dt.datetime, tz: ZoneInfo) -> dt.datetime | None:
    return schedule.next_tick(now, tz) if schedule is not None else None


def next_delivery(
    schedule: Schedule | None,
    state: ChannelState,
    now: dt.datetime,
    tz: ZoneInfo,
    *,
    ready: bool = True,
) -> dt.datetime | None:
    """The first instant at or after ``now`` when ``run --due`` can deliver the channel: ``now``
    when it has something to do already (its latest tick unserved, changes pending, a delivery
    owed, its first delivery with a segment ``ready``), else its next tick; None when it has no
    ticks and nothing to do. Pure; an idle ``run --due`` before this instant delivers nothing
    (a failing input may still hold it then)."""
    latest = schedule.latest_tick(now, tz) if schedule is not None else None
    if state.pending or (ready and state.owed_at is not None):
        return now
    if ready and not state.delivered:
        return now
    if (
        latest is not None
        and state.delivered
        and (state.served_tick is None or latest > state.served_tick)
    ):
        return now
    return _next(schedule, now, tz)


# -- what a channel's delivery reads --------------------------------------------------------------


@dataclass(frozen=True)
class ChannelInputs:
    """What a channel's audience is computed from: its segments (models with a key that feed
    it, not ephemeral), and what its delivery reads besides each segment: its suppression
    lists (models or seeds) and the segments of its priority list."""

    segments: tuple[str, ...] = ()
    suppress: tuple[str, ...] = ()
    priority: tuple[str, ...] = ()

    @property
    def reads(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.suppress, *self.priority)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.segments, *self.suppress, *self.priority)))


def channel_inputs(parsed: ParsedProject, channels: Iterable[str]) -> dict[str, ChannelInputs]:
    """Per channel its ``ChannelInputs`` (one pass over the models)."""
    wanted = list(channels)
    segments: dict[str, list[str]] = {c: [] for c in wanted}
    for m in parsed.models:
        if m.config.key and m.materialized != "ephemeral":
            for c in m.config.channels:
                if c in segments:
                    segments[c].append(m.name)
    out = {}
    for c in wanted:
        config = parsed.config.channel(c)
        suppress = config.suppress if config is not None else ()
        priority = config.priority if config is not None else ()
        out[c] = ChannelInputs(tuple(segments[c]), tuple(suppress), tuple(priority))
    return out


def touched(inputs: Mapping[str, ChannelInputs], built: Collection[str]) -> set[str]:
    """Channels whose audience may change because ``built`` were published: a segment, a
    suppression list or a priority segment of theirs."""
    names = set(built)
    return {c for c, i in inputs.items() if names.intersection(i.names)}


def covered(
    parsed: ParsedProject, inputs: Mapping[str, ChannelInputs], considered: Collection[str]
) -> set[str]:
    """Channels whose model inputs a ``run --due`` considered (all of them): the ones whose tick
    it can serve."""
    models = parsed.by_name
    names = set(considered)
    return {c for c, i in inputs.items() if all(n in names for n in i.names if n in models)}


def failing_reads(
    inputs: Mapping[str, ChannelInputs],
    state: StateSnapshot,
    outcomes: Mapping[str, tuple[str, str | None]],
) -> dict[str, str]:
    """Channel -> why its delivery is held: a suppression list or priority segment whose build
    failed in this run (``outcomes``: name -> (status, error)), or that is backing off after
    failures (its recorded last status is a failure and this run did not build it)."""
    out: dict[str, str] = {}
    for channel, i in inputs.items():
        for name in i.reads:
            status, error = outcomes.get(name, (None, None))
            if status == "success":
                continue
            if status not in FAILED:
                st = state.of(name)
                if st.last_status not in FAILED:
                    continue
                status, error = st.last_status, st.last_error
            role = "suppression list" if name in i.suppress else "priority segment"
            first = (error or status or "").strip().splitlines()[0]
            out[channel] = (
                f"{role} '{name}' is not current ({first}); nothing is sent against it: the "
                "delivery waits (its tick stays unserved) and is retried at the next run once "
                f"'{name}' builds (cadence run -s {name})"
            )
            break
    return out


def current_for_tick(
    parsed: ParsedProject,
    cadences: Cadences,
    inputs: Mapping[str, ChannelInputs],
    state: StateSnapshot,
    built: Collection[str],
    now: dt.datetime,
) -> set[str]:
    """Channels whose inputs that their ticks rebuild (tables and incrementals without an
    explicit cadence) were all built at or after the channel's latest tick: those in
    ``built`` (by this run, at ``now``) or recorded so in ``state``."""
    tz = parsed.config.tz
    models = parsed.by_name
    out = set()
    for channel, i in inputs.items():
        schedule = cadences.channels.get(channel)
        latest = schedule.latest_tick(now, tz) if schedule is not None else None
        ok = True
        for name in i.names if latest is not None else ():
            model = models.get(name)
            if model is None or model.materialized not in TICKED:
                continue
            if name in cadences.models and cadences.of(name).explicit:
                continue  # its own cadence decides; its current data is what the tick gets
            last = now if name in built else state.of(name).last_success_at
            if last is None or latest is None or last < latest:
                ok = False
                break
        if ok:
            out.add(channel)
    return out


__all__ = [
    "FREEZE",
    "HOLD",
    "NOTHING",
    "SEND_PENDING",
    "ChannelDecision",
    "ChannelInputs",
    "ChannelState",
    "channel_inputs",
    "decide_deliveries",
    "next_delivery",
]
