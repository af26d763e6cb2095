"""The docs site's lineage graph: what it shows and where (SPEC §10).

Input: a loaded ``Project`` -> output: the graph the page draws, as plain JSON-ready values:
boxes for sources, seeds, models and channels (each channel a node of its own, fed by the
segments that name it and by its suppression lists), coloured by cadence and laid out by
``layout.layered_layout`` (sources and seeds first, the segments last before the channels); and
the same graph collapsed by folder, for an overview of a large project.

Invariants: positions are computed here, so the page only draws; ids are list indexes, never
names (a channel may share its name with a model); a label longer than ``MAX_CHARS`` is cut with
an ellipsis and its box is as wide as the label at ``CHAR_W`` pixels a character (the page draws
labels in a monospace font, fitted to that width).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from cadence.review.layout import (
    BOX_H,
    FIRST,
    GAP_BOX,
    GAP_LANE,
    GAP_TRUNK,
    LAST,
    LATE,
    Layout,
    layered_layout,
)

CHAR_W = 6.7  # px per character of the 11px monospace label
PAD_X = 6  # px left and right of a label in its box
MAX_CHARS = 36
MIN_WIDTH = 1360  # the drawing is spread to at least this width (a laptop screen)

# colour by the fastest tick interval (minutes): faster is warmer
BANDS: tuple[tuple[float, str, str], ...] = (
    (5, "#d7301f", "every 5 minutes or faster"),
    (15, "#fc8d59", "up to every 15 minutes"),
    (60, "#fdbb84", "up to hourly"),
    (240, "#74a9cf", "up to every 4 hours"),
    (1440, "#2b8cbe", "up to daily"),
    (float("inf"), "#045a8d", "slower than daily"),
)
ON_DEMAND = ("#bdbdbd", "on demand / no ticks")
NO_CADENCE = ("#ffffff", "source or seed (not built by cadence)")
LEGEND = tuple((c, label) for _, c, label in BANDS) + (ON_DEMAND, NO_CADENCE)


@dataclass(frozen=True)
class Node:
    key: str  # unique across kinds: "model:x", "channel:x", ...
    name: str
    kind: str  # source | seed | model | channel
    folder: str  # what the folder view groups it under
    band: int  # index into LEGEND


def band_of(interval: dt.timedelta | None) -> int:
    """The LEGEND index of a tick interval (None: on demand)."""
    if interval is None:
        return len(BANDS)
    minutes = interval.total_seconds() / 60
    for i, (limit, _, _) in enumerate(BANDS):
        if minutes <= limit:
            return i
    return len(BANDS) - 1  # pragma: no cover - the last band is unbounded


def model_band(project: Any, name: str) -> int:
    cad = project.cadences.of(name)
    return band_of(cad.ticks.nominal_interval() if cad.has_ticks else None)


def colour(project: Any, name: str) -> tuple[str, str]:
    """(colour, band label) of a model's cadence."""
    return LEGEND[model_band(project, name)]


def label_of(name: str) -> str:
    return name if len(name) <= MAX_CHARS else name[: MAX_CHARS - 1] + "\u2026"


def box_width(label: str) -> int:
    return round(len(label) * CHAR_W + 2 * PAD_X)


def graph_of(project: Any) -> tuple[list[Node], list[tuple[int, int, str]], dict[str, str]]:
    """Nodes (sources, seeds, models in DAG order, channels), edges (from, to, kind: "ref" or
    "suppress") and pins for the layout."""
    parsed, dag = project.parsed, project.dag
    nodes: list[Node] = []
    index: dict[str, int] = {}
    pins: dict[str, str] = {}

    def add(node: Node) -> None:
        index[node.key] = len(nodes)
        nodes.append(node)

    seed_relations = {s.relation for s in parsed.seeds}
    declared = {(s.source_name, s.table): s for s in parsed.sources}
    read = sorted({key for m in parsed.models for key in m.sources})
    for key in read:
        source = declared.get(key)
        if source is not None and source.relation in seed_relations:
            continue  # the DAG reads the seed itself
        add(Node(f"source:{key[0]}.{key[1]}", f"{key[0]}.{key[1]}", "source", "sources", -1))
    models = []
    for name in dag.order:
        model = parsed.model(name)
        if model is None:
            add(Node(f"model:{name}", name, "seed", "seeds", -1))
            continue
        models.append(model)
        folder = str(PurePosixPath(model.path).parent)
        add(Node(f"model:{name}", name, "model", folder, model_band(project, name)))
        if model.config.channels:
            pins[f"model:{name}"] = LATE
    for ch in parsed.config.channels:
        schedule = project.cadences.channels.get(ch.name)
        band = band_of(schedule.nominal_interval() if schedule is not None else None)
        add(Node(f"channel:{ch.name}", ch.name, "channel", f"channel:{ch.name}", band))
        pins[f"channel:{ch.name}"] = LAST
    for node in nodes:
        if node.kind in ("source", "seed"):
            pins[node.key] = FIRST
    edges: list[tuple[int, int, str]] = []
    seen: set[tuple[int, int]] = set()

    def link(a: str, b: str, kind: str) -> None:
        if a in index and b in index and (index[a], index[b]) not in seen:
            seen.add((index[a], index[b]))
            edges.append((index[a], index[b], kind))

    for model in models:
        for key in model.sources:
            link(f"source:{key[0]}.{key[1]}", f"model:{model.name}", "ref")
        for parent in dag.parents.get(model.name, ()):
            link(f"model:{parent}", f"model:{model.name}", "ref")
        for ch in model.config.channels:
            link(f"model:{model.name}", f"channel:{ch}", "ref")
    for ch in parsed.config.channels:
        for name in ch.suppress:
            link(f"model:{name}", f"channel:{ch.name}", "suppress")
    return nodes, edges, pins


def _drawn(
    labels: list[str], edges: list[tuple[int, int, str]], pins: dict[int, str]
) -> tuple[Layout, list[int]]:
    widths = [box_width(label) for label in labels]
    keys = [str(i) for i in range(len(labels))]
    layout = layered_layout(
        list(zip(keys, widths)),
        [(str(a), str(b)) for a, b, _ in edges],
        {str(i): pin for i, pin in pins.items()},
        min_width=MIN_WIDTH,
    )
    return layout, widths


def _view(layout: Layout, widths: list[int], edges: list[tuple[int, int, str]]) -> dict[str, Any]:
    """What the page needs to draw a laid-out graph (positions, routes, gaps to restack)."""
    return {
        "width": layout.width,
        "height": layout.height,
        "columns": [list(c) for c in layout.columns],
        "box_h": BOX_H,
        "gaps": [GAP_BOX, GAP_LANE, GAP_TRUNK],
        "pos": [list(layout.boxes[str(i)]) + [w] for i, w in enumerate(widths)],
        "edges": [
            [a, b, list(route), 1 if kind == "suppress" else 0]
            for (a, b, kind), route in zip(edges, layout.routes)
        ],
    }


def lineage(project: Any) -> dict[str, Any]:
    """The graph section of data.js: nodes with their facts, the full view and the folder view."""
    nodes, edges, pins = graph_of(project)
    index = {n.key: i for i, n in enumerate(nodes)}
    labels = [label_of(n.name) for n in nodes]
    layout, widths = _drawn(labels, edges, {index[k]: v for k, v in pins.items()})
    out_nodes = []
    for node, label in zip(nodes, labels):
        facts: dict[str, Any] = {"name": node.name, "kind": node.kind, "band": node.band}
        if label != node.name:
            facts["label"] = label
        if node.kind == "model":
            model = project.parsed.model(node.name)
            cad = project.cadences.of(node.name)
            facts |= {
                "materialized": model.materialized,
                "cadence": cad.describe(),
                "channels": list(cad.channels),
                "path": model.path,
                "folder": node.folder,
            }
        elif node.kind == "channel":
            ch = next(c for c in project.parsed.config.channels if c.name == node.name)
            facts |= {"cadence": ch.cadence, "channel_kind": ch.kind or ""}
        out_nodes.append(facts)
    return {
        "legend": [list(item) for item in LEGEND],
        "nodes": out_nodes,
        "full": _view(layout, widths, edges),
        "folders": _folders(nodes, edges, [layout.boxes[str(i)][0] for i in range(len(nodes))]),
    }


def _folders(
    nodes: list[Node], edges: list[tuple[int, int, str]], column: list[int]
) -> dict[str, Any]:
    """The graph collapsed by folder: one box per model folder (sources and seeds one each),
    channels as they are; an edge per pair of groups. Folders may read each other both ways:
    groups are ordered by the mean column of their members in the full drawing, and the edges
    against that order are left out (and counted)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, node in enumerate(nodes):
        groups[node.folder].append(i)
    names = sorted(groups, key=lambda g: (sum(column[i] for i in groups[g]) / len(groups[g]), g))
    rank = {g: r for r, g in enumerate(names)}
    of = {i: rank[n.folder] for i, n in enumerate(nodes)}
    pairs: dict[tuple[int, int], int] = defaultdict(int)
    left_out = 0
    for a, b, _ in edges:
        ga, gb = of[a], of[b]
        if ga < gb:
            pairs[(ga, gb)] += 1
        elif ga > gb:
            left_out += 1
    labels, pins, band = [], {}, []
    for r, g in enumerate(names):
        members = groups[g]
        first = nodes[members[0]]
        if first.kind == "channel":
            labels.append(label_of(first.name))
            pins[r] = LAST
        else:
            labels.append(label_of(f"{g} ({len(members)})"))
            if first.kind in ("source", "seed"):
                pins[r] = FIRST
        bands = [nodes[i].band for i in members if nodes[i].band >= 0]
        band.append(min(bands) if bands else -1)  # the fastest of its models
    group_edges = [(a, b, "ref") for (a, b) in sorted(pairs)]
    layout, widths = _drawn(labels, group_edges, pins)
    view = _view(layout, widths, group_edges)
    view |= {
        "groups": [
            {"name": g, "label": label, "band": b, "members": groups[g]}
            for g, label, b in zip(names, labels, band)
        ],
        "edge_counts": [pairs[(a, b)] for a, b, _ in group_edges],
        "left_out": left_out,
    }
    return view
