"""What changed in cadence.yml itself, for ``cadence diff``: a channel's cadence, export,
suppression lists, priority, serving; the timezone, vars, folder defaults and project settings.

Input: the project before (at the git ref) and after (the working tree) -> output:
``ConfigChange`` values, each with where it is written (cadence.yml line, after the change) and
the models and channels it reaches. Invariants: values are compared, never lines (moving a
setting within the file is no change); a channel's setting reaches the channel and the models
whose ticks come from it (a cadence, an added or removed channel) or that it delivers (export,
suppress, priority, serve: its segments and suppression lists); the timezone reaches every
model and channel; a var reaches the models whose SQL names it; folder defaults reach the
models in that folder. Pure: reads the two loaded projects only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# a channel's settings that are where it is written, not what it is
_PLACE = ("line", "key_lines", "columns_line")


@dataclass(frozen=True)
class ConfigChange:
    subject: str  # "channel web", "timezone", "vars", "models: staging", "warehouse", ...
    key: str | None  # the setting of the subject that changed; None: the subject was added/removed
    before: str  # shown values; "-" when absent
    after: str
    line: int | None  # in cadence.yml, where the change is (after it; before for a removal)
    models: tuple[str, ...]  # models it reaches
    channels: tuple[str, ...]  # channels it reaches

    def describe(self) -> str:
        """``channel web: cadence 'every 15 minutes' -> 'every 5 minutes'``."""
        if self.key is None:
            return f"{self.subject}: {'added' if self.before == '-' else 'removed'}"
        return f"{self.subject}: {self.key} {self.before} -> {self.after}"


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        value = list(value)
    return repr(value)


def _values(obj: Any) -> dict[str, Any]:
    """A config dataclass as plain values, without where it is written."""
    values = dataclasses.asdict(obj)
    for key in _PLACE:
        values.pop(key, None)
    if isinstance(values.get("export"), dict):
        for key in _PLACE:
            values["export"].pop(key, None)
    return values


def _feeding(project: Any, channel: str) -> set[str]:
    """Models whose ticks come from ``channel`` (its segments and everything upstream)."""
    if project is None:
        return set()
    return {n for n in project.model_names() if channel in project.cadences.of(n).channels}


def _delivered(project: Any, channel: str) -> set[str]:
    """What a channel's delivery reads: its segments and its suppression lists."""
    if project is None:
        return set()
    found = {m.name for m in project.parsed.models if channel in m.config.channels}
    config = project.parsed.config.channel(channel)
    if config is not None:
        found |= {n for n in config.suppress if project.parsed.model(n) is not None}
    return found


def _channel_changes(before: Any, after: Any) -> list[ConfigChange]:
    old = {c.name: c for c in before.parsed.config.channels}
    new = {c.name: c for c in after.parsed.config.channels}
    out = []
    for name in [*new, *(n for n in old if n not in new)]:
        o, n = old.get(name), new.get(name)
        subject = f"channel {name}"
        if o is None or n is None:
            reached = _feeding(before, name) | _feeding(after, name)
            line = n.line if n is not None else o.line if o is not None else None
            out.append(
                ConfigChange(
                    subject,
                    None,
                    "-" if o is None else "present",
                    "-" if n is None else "present",
                    line,
                    _ordered(after, before, reached),
                    (name,),
                )
            )
            continue
        a, b = _values(o), _values(n)
        for key in [k for k in b if a.get(k) != b.get(k)]:
            if key == "cadence":
                reached = _feeding(before, name) | _feeding(after, name)
            else:
                reached = _delivered(before, name) | _delivered(after, name)
            out.append(
                ConfigChange(
                    subject,
                    key,
                    _shown(a.get(key)),
                    _shown(b.get(key)),
                    n.line_of(key),
                    _ordered(after, before, reached),
                    (name,),
                )
            )
    return out


def _ordered(after: Any, before: Any, names: set[str]) -> tuple[str, ...]:
    """``names`` in the project's model order (after the change, then the ones it removed)."""
    now = list(after.model_names())
    order = now + [n for n in before.model_names() if n not in set(now)]
    return tuple(n for n in order if n in names)


def _line(project: Any, key: str, entry: str | None = None) -> int | None:
    """The line of top-level ``key:`` in cadence.yml (of ``entry:`` under it), when found."""
    import re

    try:
        text = (Path(project.root) / "cadence.yml").read_text(encoding="utf-8")
    except OSError:
        return None
    lines = text.splitlines()
    top = next((i for i, t in enumerate(lines) if re.match(rf"{re.escape(key)}\s*:", t)), None)
    if top is None or entry is None:
        return None if top is None else top + 1
    if re.search(rf"[{{,]\s*{re.escape(entry)}\s*:", lines[top]):
        return top + 1  # an inline mapping: vars: {a: 1, b: 2}
    for i in range(top + 1, len(lines)):
        if lines[i] and not lines[i][0].isspace() and not lines[i].startswith("#"):
            break  # the next top-level key
        if re.match(rf"\s+{re.escape(entry)}\s*:", lines[i]):
            return i + 1
    return top + 1


def _channels_of(project: Any, names: set[str]) -> set[str]:
    return {
        c
        for n in names
        if project.parsed.model(n) is not None
        for c in project.cadences.of(n).channels
    }


def config_changes(before: Any, after: Any) -> tuple[ConfigChange, ...]:
    """Every change of cadence.yml from ``before`` to ``after`` with what it reaches."""
    if before is None:
        return ()  # the project is new: every model is listed as added
    old, new = before.parsed.config, after.parsed.config
    out = _channel_changes(before, after)
    every = set(after.model_names()) | set(before.model_names())
    if old.timezone != new.timezone:
        out.append(
            ConfigChange(
                "timezone",
                "timezone",
                _shown(old.timezone),
                _shown(new.timezone),
                _line(after, "timezone"),
                _ordered(after, before, every),
                tuple(sorted({c.name for c in (*old.channels, *new.channels)})),
            )
        )
    for name in sorted(set(old.vars) | set(new.vars)):
        if old.vars.get(name) != new.vars.get(name):
            reached = {
                m.name
                for m in (*after.parsed.models, *before.parsed.models)
                if f"'{name}'" in m.raw_sql or f'"{name}"' in m.raw_sql
            }
            out.append(
                ConfigChange(
                    "vars",
                    name,
                    _shown(old.vars.get(name)),
                    _shown(new.vars.get(name)),
                    _line(after, "vars", name),
                    _ordered(after, before, reached),
                    tuple(sorted(_channels_of(after, reached))),
                )
            )
    old_folders = {parts: layer.values for parts, layer in old.folder_defaults}
    new_folders = {parts: layer.values for parts, layer in new.folder_defaults}
    for parts in sorted(set(old_folders) | set(new_folders)):
        if old_folders.get(parts) != new_folders.get(parts):
            reached = {
                m.name
                for m in (*after.parsed.models, *before.parsed.models)
                if m.folder[: len(parts)] == parts
            }
            out.append(
                ConfigChange(
                    "models: " + "/".join(parts),
                    "defaults",
                    _shown(old_folders.get(parts)),
                    _shown(new_folders.get(parts)),
                    _line(after, "models", parts[0]) if parts else _line(after, "models"),
                    _ordered(after, before, reached),
                    tuple(sorted(_channels_of(after, reached))),
                )
            )
    settings = (
        ("warehouse", _values(old.warehouse), _values(new.warehouse)),
        ("seeds", old.seed_config, new.seed_config),
        ("export_root", old.export_root, new.export_root),
        ("history", old.history_keep_days, new.history_keep_days),
        ("name", old.name, new.name),
    )
    for subject, a, b in settings:
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    out.append(
                        ConfigChange(
                            subject,
                            key,
                            _shown(a.get(key)),
                            _shown(b.get(key)),
                            _line(after, subject),
                            (),
                            (),
                        )
                    )
            continue
        out.append(
            ConfigChange(subject, subject, _shown(a), _shown(b), _line(after, subject), (), ())
        )
    return tuple(out)


__all__ = ["ConfigChange", "config_changes"]
