"""Resolve each model's refresh ticks over the DAG, with provenance.

Input: ``ParsedProject`` + ``Dag`` -> output: ``Cadences``: per model its ``ModelCadence``
(ticks, whether they are explicit, which channels it serves, and a sentence saying where the
ticks come from). Rules (SPEC §4): own ticks = explicit ``cadence`` else the union of its
channels' ticks; a model without own ticks inherits the union of the ticks of every consumer
downstream, passing through models without an explicit cadence. What a channel's delivery reads
besides its segments (its ``suppress`` models, the segments of its ``priority`` list) is
upstream of the channel (SPEC §7 "When"): without an explicit cadence it takes the channel's
ticks, with the provenance "daily at 05:00, from channel email (suppression list)", so it is
rebuilt in the run that delivers the channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cadence.errors import CadenceError, ErrorCollector, did_you_mean
from cadence.load.cachefile import lazy_field
from cadence.load.parser import ParsedProject
from cadence.load.projectconfig import PROJECT_FILE
from cadence.plan.dag import Dag
from cadence.plan.schedule import (
    ACCEPTED_FORMS,
    CadenceSyntaxError,
    Schedule,
    TickSet,
    parse_cadence,
)


@dataclass(frozen=True)
class Origin:
    """Why a schedule applies: a channel, an explicit cadence, and the path of consumers."""

    schedule: Schedule
    channel: str | None
    via: tuple[str, ...]
    # what the first model of the path is to the channel when it does not feed it: what its
    # delivery reads ("suppression list", "priority segment"); None: a segment or explicit
    role: str | None = None

    if not TYPE_CHECKING:
        __getattr__ = lazy_field  # fields a cached load decodes on first use (cachefile.py)

    def describe(self) -> str:
        source = f"channel {self.channel}" if self.channel else "explicit cadence"
        text = f"{self.schedule.text}, from {source}"
        if self.via:
            text += " via " + " -> ".join(self.via)
        if self.role:
            text += f" ({self.role})"
        return text


@dataclass(frozen=True)
class ModelCadence:
    ticks: TickSet
    explicit: bool
    own: bool
    origins: tuple[Origin, ...]
    channels: tuple[str, ...]  # channels fed directly or through consumers

    if not TYPE_CHECKING:
        __getattr__ = lazy_field  # fields a cached load decodes on first use (cachefile.py)

    @property
    def has_ticks(self) -> bool:
        return any(not s.on_demand for s in self.ticks.schedules)

    def describe(self) -> str:
        if not self.origins:
            return "on demand (feeds no channel)"
        if not self.has_ticks:
            return "on demand"
        return self.ticks.describe()

    def provenance(self) -> str:
        """Where the ticks come from; ``on demand`` is never listed as a source of ticks."""
        if not self.origins:
            return "no cadence: not fed to any channel and no explicit cadence"
        ticking = [o for o in self.origins if not o.schedule.on_demand]
        if not ticking:
            via = next((o.via for o in self.origins if o.via), ())
            where = " of " + " -> ".join(via) if via else ""
            return f"no ticks: explicit cadence 'on demand'{where}"
        return "; ".join(o.describe() for o in ticking)


@dataclass(frozen=True)
class Cadences:
    models: dict[str, ModelCadence]
    channels: dict[str, Schedule]

    def of(self, name: str) -> ModelCadence:
        return self.models[name]


def _parse(
    text: str, file: str, line: int | None, what: str, errors: ErrorCollector
) -> Schedule | None:
    try:
        return parse_cadence(text)
    except CadenceSyntaxError as exc:
        hint = getattr(exc, "hint", None) or "accepted: " + "; ".join(ACCEPTED_FORMS)
        errors.add(CadenceError(f"{exc} (for {what})", file=file, line=line, hint=hint))
        return None


def resolve_cadences(
    project: ParsedProject, dag: Dag, errors_out: list[CadenceError] | None = None
) -> Cadences:
    errors = ErrorCollector()
    channels: dict[str, Schedule] = {}
    for channel in project.config.channels:
        schedule = _parse(
            channel.cadence, PROJECT_FILE, channel.line, f"channel {channel.name}", errors
        )
        if schedule is not None:
            channels[channel.name] = schedule
    channel_names = [c.name for c in project.config.channels]
    own: dict[str, tuple[Origin, ...]] = {}
    explicit: dict[str, bool] = {}
    reads = _delivery_reads(project)
    for model in project.models:
        origins: list[Origin] = []
        cfg = model.config
        for ch in cfg.channels:
            if ch not in channel_names:
                guess = did_you_mean(ch, channel_names)
                file, line = cfg.origins.get("channels", (model.path, None))
                errors.add(
                    CadenceError(
                        f"model '{model.name}' names unknown channel '{ch}'",
                        file=file,
                        line=line,
                        hint=(
                            f"did you mean '{guess}'?"
                            if guess
                            else "declare it under channels: in cadence.yml; channels: "
                            + ", ".join(channel_names)
                        ),
                    )
                )
        if cfg.cadence is not None:
            where, line = cfg.origins.get("cadence", (model.path, None))
            schedule = _parse(
                cfg.cadence,
                where,
                line,
                f"model {model.name}",
                errors,
            )
            explicit[model.name] = True
            if schedule is not None:
                origins.append(Origin(schedule, None, ()))
        else:
            explicit[model.name] = False
            for ch in cfg.channels:
                if ch in channels:
                    origins.append(Origin(channels[ch], ch, ()))
            for ch, role in reads.get(model.name, ()):
                if ch in channels and not any(o.channel == ch for o in origins):
                    origins.append(Origin(channels[ch], ch, (), role))
        own[model.name] = tuple(origins)
    errors.finish(errors_out)

    # propagate from consumers to producers (reverse topological order)
    demand: dict[str, tuple[Origin, ...]] = {}
    served: dict[str, tuple[str, ...]] = {}
    result: dict[str, ModelCadence] = {}
    models = {m.name: m for m in project.models}
    for name in reversed(dag.order):
        if name not in models:
            continue
        inherited: list[Origin] = []
        chans: list[str] = list(models[name].config.channels)
        chans += [ch for ch, _role in reads.get(name, ()) if ch not in chans]
        for child in dag.children.get(name, ()):
            if child not in models:
                continue
            for ch in served.get(child, ()):
                if ch not in chans:
                    chans.append(ch)
            for origin in demand.get(child, ()):
                extended = Origin(
                    origin.schedule, origin.channel, (child, *origin.via), origin.role
                )
                if not any(
                    o.schedule.text == extended.schedule.text and o.channel == extended.channel
                    for o in inherited
                ):
                    inherited.append(extended)
        mine = own[name]
        if explicit[name]:
            passed_up = mine
        else:
            passed_up = _dedupe(mine + tuple(inherited))
        demand[name] = passed_up
        served[name] = tuple(chans)
        effective = mine if mine or explicit[name] else tuple(inherited)
        result[name] = ModelCadence(
            ticks=TickSet(tuple(o.schedule for o in effective)),
            explicit=explicit[name],
            own=bool(mine) or explicit[name],
            origins=effective,
            channels=tuple(chans),
        )
    return Cadences(models=result, channels=channels)


def _delivery_reads(project: ParsedProject) -> dict[str, list[tuple[str, str]]]:
    """Model -> (channel, role) for each channel whose delivery reads it besides its segments:
    a ``suppress`` list or a ``priority`` segment."""
    out: dict[str, list[tuple[str, str]]] = {}
    for channel in project.config.channels:
        for names, role in (
            (channel.suppress, "suppression list"),
            (channel.priority, "priority segment"),
        ):
            for name in names:
                out.setdefault(name, []).append((channel.name, role))
    return out


def _dedupe(origins: tuple[Origin, ...]) -> tuple[Origin, ...]:
    out: list[Origin] = []
    for o in origins:
        if not any(x.schedule.text == o.schedule.text and x.channel == o.channel for x in out):
            out.append(o)
    return tuple(out)
