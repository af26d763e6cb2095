"""Select models with dbt-compatible syntax.

Input: selector strings (``name``, ``+name``, ``name+``, ``2+name``, ``tag:x``, ``path:dir``,
``channel:x``, ``due:true``, ``config.materialized:table``, globs), the parsed project and DAG ->
output: the set of selected model and seed names. A space separates a union, a comma an
intersection. Unknown names are usage errors with a "did you mean". ``feeding`` narrows a
selection to the models of ``--channel`` channels.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import PurePosixPath

from cadence.errors import CadenceError, UsageError, did_you_mean
from cadence.load.parser import ParsedProject
from cadence.plan.cadences import Cadences
from cadence.plan.dag import Dag

ATOM = re.compile(r"^(?P<at>@)?(?:(?P<up>\d*)\+)?(?P<body>.+?)(?:\+(?P<down>\d*))?$")
METHODS = ("tag", "path", "channel", "due", "config", "source", "resource_type", "fqn")


def split_terms(values: Iterable[str]) -> list[str]:
    terms: list[str] = []
    for value in values:
        terms.extend(v for v in value.split() if v)
    return terms


def select(
    select_args: Iterable[str],
    exclude_args: Iterable[str],
    project: ParsedProject,
    dag: Dag,
    cadences: Cadences,
    due: Callable[[], set[str]] | None = None,
) -> set[str]:
    """Model (and seed) names matching ``select_args`` minus ``exclude_args``; all when empty."""
    universe = {m.name for m in project.models} | {s.name for s in project.seeds}
    terms = split_terms(select_args)
    chosen = set(universe) if not terms else set()
    for term in terms:
        chosen |= _term(term, project, dag, cadences, universe, due)
    for term in split_terms(exclude_args):
        chosen -= _term(term, project, dag, cadences, universe, due)
    return chosen


def unmatched_warnings(
    select_args: Iterable[str], project: ParsedProject, dag: Dag, cadences: Cadences
) -> list[CadenceError]:
    """A warning for each ``--select`` term that matches nothing (as dbt warns)."""
    return [
        CadenceError(
            f"the selection criterion '{term}' does not match any model or seed",
            severity="warning",
            hint="list what exists with 'cadence ls'",
        )
        for term in unmatched(select_args, project, dag, cadences)
    ]


def unmatched(
    select_args: Iterable[str], project: ParsedProject, dag: Dag, cadences: Cadences
) -> list[str]:
    """Selector terms that match no model or seed (``due:`` terms are left out: matching
    nothing is their normal answer when nothing is due)."""
    universe = {m.name for m in project.models} | {s.name for s in project.seeds}
    return [
        term
        for term in split_terms(select_args)
        if "due:" not in term and not _term(term, project, dag, cadences, universe, None)
    ]


def feeding(project: ParsedProject, channels: Sequence[str]) -> set[str]:
    """``--channel``: the models feeding any of ``channels``, with what their deliveries read
    (suppression lists and priority segments that are models); an unknown channel is a usage
    error (checked before any selector is read)."""
    wanted = set(channels)
    channel_names = [c.name for c in project.config.channels]
    for ch in channels:
        if ch not in channel_names:
            guess = did_you_mean(ch, channel_names)
            raise UsageError(
                f"unknown channel '{ch}'",
                hint=f"did you mean '{guess}'?"
                if guess
                else "channels: " + ", ".join(channel_names),
            )
    reads = {
        name
        for c in project.config.channels
        if c.name in wanted
        for name in (*c.suppress, *c.priority)
    }
    return {m.name for m in project.models if set(m.config.channels) & wanted or m.name in reads}


def _term(
    term: str,
    project: ParsedProject,
    dag: Dag,
    cadences: Cadences,
    universe: set[str],
    due: Callable[[], set[str]] | None,
) -> set[str]:
    result: set[str] | None = None
    for part in term.split(","):
        if not part:
            continue
        found = _atom(part, project, dag, cadences, universe, due)
        result = found if result is None else result & found
    return result or set()


def _atom(
    atom: str,
    project: ParsedProject,
    dag: Dag,
    cadences: Cadences,
    universe: set[str],
    due: Callable[[], set[str]] | None,
) -> set[str]:
    m = ATOM.match(atom)
    if not m:
        raise UsageError(
            f"cannot read selector '{atom}'", hint="examples: name, +name, name+, tag:x"
        )
    body = m.group("body")
    base = _method(body, project, cadences, universe, due)
    out = set(base)
    if m.group("up") is not None or m.group("at"):
        depth = int(m.group("up")) if m.group("up") else None
        for n in base:
            out |= dag.ancestors(n, depth)
    if m.group("down") is not None or m.group("at"):
        depth = int(m.group("down")) if m.group("down") else None
        for n in base:
            desc = dag.descendants(n, depth)
            out |= desc
            if m.group("at"):
                for d in desc:
                    out |= dag.ancestors(d)
    return out


def _method(
    body: str,
    project: ParsedProject,
    cadences: Cadences,
    universe: set[str],
    due: Callable[[], set[str]] | None,
) -> set[str]:
    if ":" in body:
        method, _, value = body.partition(":")
        if method == "tag":
            tagged = {x.name for x in project.models if _glob_any(value, x.config.tags)}
            return tagged | {s.name for s in project.seeds if _glob_any(value, s.tags)}
        if method in ("path", "file"):
            wanted = value.rstrip("/")
            hits = {x.name for x in project.models if _path_match(x.path, wanted)}
            hits |= {s.name for s in project.seeds if _path_match(s.path, wanted)}
            return hits
        if method == "channel":
            names = [c.name for c in project.config.channels]
            if value not in names and not any(ch for ch in names if fnmatch.fnmatch(ch, value)):
                guess = did_you_mean(value, names)
                raise UsageError(
                    f"unknown channel '{value}' in selector",
                    hint=f"did you mean '{guess}'?" if guess else "channels: " + ", ".join(names),
                )
            return {x.name for x in project.models if _glob_any(value, x.config.channels)}
        if method == "due":
            if due is None:
                raise UsageError(
                    "due: cannot be used with this command", hint="use it with run or ls"
                )
            is_due = value.lower() in ("true", "yes", "1")
            due_set = due()
            return {n for n in universe if (n in due_set) == is_due}
        if method.startswith("config."):
            key = method.split(".", 1)[1]
            return {
                x.name
                for x in project.models
                if str(getattr(x.config, key, x.config.extra.get(key))).lower() == value.lower()
            }
        if method == "source":
            parts = tuple(value.split("."))
            return {
                x.name for x in project.models if any(s[: len(parts)] == parts for s in x.sources)
            }
        if method == "resource_type":
            if value == "seed":
                return {s.name for s in project.seeds}
            return {x.name for x in project.models}
        if method == "fqn":
            return _method(value, project, cadences, universe, due)
        guess = did_you_mean(method, METHODS)
        raise UsageError(
            f"unknown selector method '{method}:'",
            hint=f"did you mean '{guess}:'?" if guess else "methods: " + ", ".join(METHODS),
        )
    if "/" in body or body.endswith(".sql"):
        return _method("path:" + body, project, cadences, universe, due)
    if any(ch in body for ch in "*?["):
        return {n for n in universe if fnmatch.fnmatch(n, body)}
    if body in universe:
        return {body}
    # dbt allows selecting a folder by its fqn part
    folder_hits = {x.name for x in project.models if body in x.folder}
    if folder_hits:
        return folder_hits
    guess = did_you_mean(body, universe)
    raise UsageError(
        f"no model or seed named '{body}'",
        hint=f"did you mean '{guess}'?" if guess else "list models with 'cadence ls'",
    )


def _glob_any(pattern: str, values: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(v, pattern) for v in values)


def _path_match(path: str, wanted: str) -> bool:
    p = PurePosixPath(path)
    candidates = {path, str(p.with_suffix(""))}
    if path.startswith("models/"):
        rest = path[len("models/") :]
        candidates |= {rest, str(PurePosixPath(rest).with_suffix(""))}
    for c in candidates:
        if c == wanted or c.startswith(wanted + "/") or fnmatch.fnmatch(c, wanted):
            return True
    return False
