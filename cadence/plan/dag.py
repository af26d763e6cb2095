"""Build the dependency graph: the only module that uses networkx.

Input: ``ParsedProject`` -> output: ``Dag`` (a frozen value: deterministic topological order,
parents and children per node). Unknown refs are reported with the closest name, cycles with
their path, two models (or a model and a seed) built into one relation with both files; every
problem at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cadence.errors import CadenceError, ErrorCollector, did_you_mean
from cadence.load.cachefile import lazy_field
from cadence.load.parser import ParsedProject


@dataclass(frozen=True)
class Dag:
    order: tuple[str, ...]
    parents: dict[str, tuple[str, ...]]
    children: dict[str, tuple[str, ...]]
    kinds: dict[str, str]  # "model" | "seed"

    if not TYPE_CHECKING:
        __getattr__ = lazy_field  # fields a cached load decodes on first use (cachefile.py)

    def ancestors(self, name: str, depth: int | None = None) -> set[str]:
        return _walk(name, self.parents, depth)

    def descendants(self, name: str, depth: int | None = None) -> set[str]:
        return _walk(name, self.children, depth)

    def sort(self, names: Iterable[str]) -> list[str]:
        wanted = set(names)
        return [n for n in self.order if n in wanted]


def _walk(start: str, edges: dict[str, tuple[str, ...]], depth: int | None) -> set[str]:
    seen: set[str] = set()
    frontier = [start]
    level = 0
    while frontier and (depth is None or level < depth):
        nxt = []
        for node in frontier:
            for other in edges.get(node, ()):
                if other not in seen:
                    seen.add(other)
                    nxt.append(other)
        frontier = nxt
        level += 1
    return seen


def build_dag(project: ParsedProject, errors_out: list[CadenceError] | None = None) -> Dag:
    """Resolve refs into edges; raise ProjectErrors for unknown refs and cycles."""
    import networkx as nx

    errors = ErrorCollector()
    graph: nx.DiGraph = nx.DiGraph()
    kinds: dict[str, str] = {}
    paths: dict[str, str] = {}
    for seed in project.seeds:
        graph.add_node(seed.name)
        kinds[seed.name] = "seed"
        paths[seed.name] = seed.path
    for model in project.models:
        graph.add_node(model.name)
        kinds[model.name] = "model"
        paths[model.name] = model.path
    names = sorted(kinds)
    _check_relations(project, errors)
    disabled = dict(project.disabled)
    for model in project.models:
        for ref, line, column in model.ref_lines:
            if ref in disabled:
                errors.add(
                    CadenceError(
                        f"ref to disabled model '{ref}'",
                        file=model.path,
                        line=line,
                        column=column,
                        hint=f"{disabled[ref]} has enabled: false; enable it or remove this ref()",
                    )
                )
                continue
            if ref not in kinds:
                if ref not in project.broken:
                    errors.add(_unknown_ref(ref, names, paths, model.path, line, column))
                continue
            graph.add_edge(ref, model.name)
    # a source declared over a seed's or a snapshot's table (dbt projects do this) reads it:
    # load or build it first
    seed_by_relation = {seed.relation: seed.name for seed in project.seeds}
    seed_by_relation.update(
        {m.relation: m.name for m in project.models if m.materialized == "snapshot"}
    )
    source_relation = {(s.source_name, s.table): s.relation for s in project.sources}
    for model in project.models:
        for key in model.sources:
            seed_name = seed_by_relation.get(source_relation.get(key, ""))
            if seed_name is not None and seed_name != model.name:
                graph.add_edge(seed_name, model.name)
    broken = set(project.broken)  # failed to parse, its error reported: not unknown
    for test in project.tests:
        for ref in test.refs:
            if ref not in kinds and ref not in broken:
                errors.add(_unknown_ref(ref, names, paths, test.file, test.line, None))
        to = test.args.get("to") if test.kind == "relationships" and not test.custom else None
        if isinstance(to, str) and not to.lstrip().startswith("source("):
            target = _ref_target(to)
            if target not in kinds and target not in broken:
                errors.add(_unknown_ref(target, names, paths, test.file, test.line, None))
    if errors.errors and errors_out is None:
        errors.raise_if_any()
    for cycle in _cycles(graph):
        path = " -> ".join([*cycle, cycle[0]])
        first = cycle[0]
        errors.add(
            CadenceError(
                f"dependency cycle: {path}",
                file=paths.get(first),
                hint="models cannot depend on themselves; break the cycle by removing one ref()",
            )
        )
    errors.finish(errors_out)
    if errors.errors:
        return Dag(order=tuple(sorted(kinds)), parents={}, children={}, kinds=kinds)
    order = tuple(nx.lexicographical_topological_sort(graph))
    parents = {n: tuple(sorted(graph.predecessors(n))) for n in graph.nodes}
    children = {n: tuple(sorted(graph.successors(n))) for n in graph.nodes}
    return Dag(order=order, parents=parents, children=children, kinds=kinds)


def _cycles(graph: Any) -> list[list[str]]:
    import networkx as nx

    found = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1 or any(graph.has_edge(n, n) for n in component):
            sub = graph.subgraph(component)
            start = min(component)
            edges = nx.find_cycle(sub, source=start)
            found.append([u for u, _v in edges])
    return sorted(found)


def _ref_target(text: str) -> str:
    import re

    m = re.search(r"ref\(\s*['\"]([^'\"]+)['\"]\s*\)", text)
    return m.group(1) if m else text


def _unknown_ref(
    ref: str,
    names: list[str],
    paths: dict[str, str],
    file: str,
    line: int | None,
    column: int | None,
) -> CadenceError:
    guess = did_you_mean(ref, names)
    hint = (
        f"did you mean '{guess}'? ({paths[guess]})"
        if guess
        else "no model or seed has that name; model names are file stems under models/"
    )
    return CadenceError(f"unknown ref '{ref}'", file=file, line=line, column=column, hint=hint)


def ref_target(text: str) -> str:
    """The model named by a ``ref('x')`` string in YAML (relationships ``to:``)."""
    return _ref_target(text)


def _check_relations(project: ParsedProject, errors: ErrorCollector) -> None:
    """Two models (or seeds) named into one relation would overwrite each other: an error, as
    in dbt, naming both files."""
    owner: dict[tuple[str, str], str] = {}
    for s in project.seeds:
        owner[(s.schema, s.table.lower())] = s.path
    for m in project.models:
        if m.materialized == "ephemeral":
            continue
        key = (m.schema, m.identifier.lower())
        if key in owner:
            errors.add(
                CadenceError(
                    f"model '{m.name}' is built into {m.relation}, which {owner[key]} is built "
                    "into too",
                    file=m.path,
                    line=1,
                    hint="give one of them another alias or schema",
                )
            )
            continue
        owner[key] = m.path
