"""A layered (Sugiyama-style) drawing of a DAG, computed when the docs site is written.

Input: boxes (an id and a width each), edges between them, and for some boxes where they belong
(``FIRST``: the leftmost column; ``LAST``: one column right of everything else; ``LATE``: as far
right as what reads them allows) -> output: ``Layout`` (frozen): per box its column and top-left
corner, per column its x and width, and per edge the y at which it crosses each column between
its two ends.

Steps: columns (longest path from the roots, then the pins; a box with more edges out than in
moves right to shorten them); an edge that spans several columns gets one waypoint in each column
it crosses, shared with the other long edges of the same box while they run together (a trunk,
so a source read all over the graph costs one lane, not one per reader); the order in each column
comes from barycentre sweeps, keeping the order with the fewest crossings; then y: every item is
pulled towards its neighbours while its column keeps its order and a minimum gap.

Invariants the page and its test rely on: in a column, items never overlap (boxes are ``BOX_H``
tall and at least ``GAP_BOX`` apart; a waypoint is a horizontal line at least ``GAP_LANE`` from
any box); an edge crosses a column only along its waypoint's line (or along its own box's row
where it starts), and between columns there are no boxes, so an edge never passes through a box
other than its two ends. The page joins the points (see ``edge_points``) and draws; it may
restack a column for a subset of items keeping their order and these gaps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

FIRST, LAST, LATE = "first", "last", "late"
BOX_H = 20  # a box's height
GAP_BOX = 8  # between two boxes of a column
GAP_LANE = 6  # between a box and a waypoint
GAP_TRUNK = 4  # between two waypoints
PAD = 16  # around the drawing
MIN_GAP_X, MAX_GAP_X = 64, 200  # between columns
SWEEPS = 8  # ordering: barycentre sweeps (down and up) tried
ROUNDS = 6  # y: rounds of pulling towards neighbours


@dataclass(frozen=True)
class Layout:
    """Where everything goes, in pixels (y grows downwards)."""

    columns: tuple[tuple[int, int], ...]  # (x, width) per column, left to right
    boxes: dict[str, tuple[int, int, int]]  # id -> (column, x, y of its top edge)
    routes: tuple[tuple[int, ...], ...]  # per edge, in input order: y of each column between
    width: int
    height: int


def layered_layout(
    boxes: Sequence[tuple[str, int]],
    edges: Sequence[tuple[str, str]],
    pins: Mapping[str, str] | None = None,
    min_width: int = 0,
) -> Layout:
    """Lay out ``boxes`` (id, width), in the order given (it breaks ties), with ``edges``
    (from, to; a DAG, no duplicates); ``min_width`` spreads the columns to at least that width."""
    ids = [b for b, _ in boxes]
    width_of = dict(boxes)
    pins = pins or {}
    children: dict[str, list[str]] = defaultdict(list)
    parents: dict[str, list[str]] = defaultdict(list)
    for a, b in edges:
        children[a].append(b)
        parents[b].append(a)
    layer = _layers(ids, parents, children, pins)
    items = _Items(ids, layer)
    routes = [items.route(a, b) for a, b in edges]
    order = _order(items)
    ys = _place(items, order)
    # x: columns as wide as their widest box, spread out to min_width when there is room
    n_cols = len(order)
    col_w = [max((width_of[items.box[i]] for i in col if items.box[i]), default=0) for col in order]
    spare = min_width - 2 * PAD - sum(col_w)
    gap = MIN_GAP_X if n_cols < 2 else min(MAX_GAP_X, max(MIN_GAP_X, spare // (n_cols - 1)))
    xs, x = [], PAD
    for w in col_w:
        xs.append(x)
        x += w + gap
    top = min((ys[i] - _half(items, i) for col in order for i in col), default=0)
    shift = PAD - top
    placed = {
        items.box[i]: (items.layer[i], xs[items.layer[i]], round(ys[i] - BOX_H / 2 + shift))
        for col in order
        for i in col
        if items.box[i]
    }
    height = max((ys[i] + _half(items, i) + shift for col in order for i in col), default=0)
    return Layout(
        columns=tuple(zip(xs, col_w)),
        boxes=placed,
        routes=tuple(tuple(round(ys[i] + shift) for i in r) for r in routes),
        width=int(x - gap + PAD) if n_cols else 2 * PAD,
        height=int(height + PAD),
    )


def edge_points(
    layout: Layout, widths: Mapping[str, int], a: str, b: str, route: Sequence[int]
) -> list[tuple[float, float]]:
    """The points an edge joins, left to right: the right end of its box's row, then per column
    crossed the waypoint's left and right ends, then the left middle of the box it ends at (the
    page draws a line within a column, a curve between columns)."""
    ca, xa, ya = layout.boxes[a]
    cb, xb, yb = layout.boxes[b]
    mid = BOX_H // 2
    points: list[tuple[float, float]] = [
        (xa + widths[a], ya + mid),
        (xa + layout.columns[ca][1], ya + mid),
    ]
    for k, y in zip(range(ca + 1, cb), route):
        x, w = layout.columns[k]
        points += [(x, y), (x + w, y)]
    points.append((xb, yb + mid))
    return points


def _layers(
    ids: list[str],
    parents: Mapping[str, list[str]],
    children: Mapping[str, list[str]],
    pins: Mapping[str, str],
) -> dict[str, int]:
    """Column per box: longest path from the roots; LAST after all; then moves to the right."""
    topo = _topological(ids, parents, children)
    last = {b for b in ids if pins.get(b) == LAST and not children.get(b)}
    layer: dict[str, int] = {}
    for b in topo:
        if b in last:
            continue
        layer[b] = 1 + max((layer[p] for p in parents.get(b, ()) if p in layer), default=-1)
    end = max(layer.values(), default=-1) + 1
    for b in last:
        layer[b] = end
    for b in reversed(topo):
        kids = children.get(b, ())
        if b in last or pins.get(b) == FIRST and not parents.get(b):
            continue
        if kids:
            room = min(layer[c] for c in kids) - 1
        elif pins.get(b) == LATE:
            room = end - 1 if last else max(layer.values())
        else:
            continue
        if pins.get(b) == LATE or len(kids) > len(parents.get(b, ())):
            layer[b] = max(layer[b], room)
    used = sorted(set(layer.values()))  # moves may empty a column: close the gap
    rank = {v: i for i, v in enumerate(used)}
    return {b: rank[v] for b, v in layer.items()}


def _topological(
    ids: list[str], parents: Mapping[str, list[str]], children: Mapping[str, list[str]]
) -> list[str]:
    waiting = {b: len(parents.get(b, ())) for b in ids}
    ready = [b for b in ids if not waiting[b]]
    out: list[str] = []
    while ready:
        b = ready.pop()
        out.append(b)
        for c in children.get(b, ()):
            waiting[c] -= 1
            if not waiting[c]:
                ready.append(c)
    if len(out) != len(ids):
        raise ValueError("the graph has a cycle")
    return out


class _Items:
    """Boxes and waypoints, numbered: per item its column, its box ('' for a waypoint) and its
    neighbours in the columns left and right."""

    def __init__(self, ids: list[str], layer: Mapping[str, int]) -> None:
        self.box: list[str] = list(ids)
        self.layer: list[int] = [layer[b] for b in ids]
        self.index = {b: i for i, b in enumerate(ids)}
        self.left: list[list[int]] = [[] for _ in ids]
        self.right: list[list[int]] = [[] for _ in ids]
        self.trunk: dict[tuple[int, int], int] = {}  # (box item, column) -> waypoint item

    def _link(self, a: int, b: int) -> None:
        if b not in self.right[a]:
            self.right[a].append(b)
            self.left[b].append(a)

    def route(self, a: str, b: str) -> list[int]:
        """The waypoints of edge a -> b (linking items as it goes): the trunk of a."""
        start, end = self.index[a], self.index[b]
        prev, path = start, []
        for k in range(self.layer[start] + 1, self.layer[end]):
            lane = self.trunk.get((start, k))
            if lane is None:
                lane = len(self.box)
                self.box.append("")
                self.layer.append(k)
                self.left.append([])
                self.right.append([])
                self.trunk[(start, k)] = lane
            self._link(prev, lane)
            path.append(lane)
            prev = lane
        self._link(prev, end)
        return path


def _order(items: _Items) -> list[list[int]]:
    """Items per column, top to bottom: barycentre sweeps, the fewest crossings kept."""
    n_cols = max(items.layer, default=-1) + 1
    order: list[list[int]] = [[] for _ in range(n_cols)]
    for i, k in enumerate(items.layer):
        order[k].append(i)  # input order first: callers give a meaningful one (kind, folder)
    _sweep(items, order, range(1, n_cols), items.left)
    best, fewest = [list(c) for c in order], _crossings(items, order)
    for round_ in range(SWEEPS):
        if round_ % 2 == 0:
            _sweep(items, order, range(n_cols - 2, -1, -1), items.right)
        else:
            _sweep(items, order, range(1, n_cols), items.left)
        count = _crossings(items, order)
        if count < fewest:
            best, fewest = [list(c) for c in order], count
    return best


def _sweep(
    items: _Items, order: list[list[int]], columns: range, neighbours: list[list[int]]
) -> None:
    pos = [0.0] * len(items.box)
    for col in order:
        for p, i in enumerate(col):
            pos[i] = p
    for k in columns:
        col = order[k]
        ref = len(order[k - 1] if neighbours is items.left else order[k + 1]) or 1
        scale = ref / max(1, len(col))

        def key(i: int, scale: float = scale) -> tuple[float, float]:
            near = neighbours[i]
            bary = sum(pos[j] for j in near) / len(near) if near else pos[i] * scale
            return (bary, pos[i])

        col.sort(key=key)
        for p, i in enumerate(col):
            pos[i] = p


def _crossings(items: _Items, order: list[list[int]]) -> int:
    pos = [0] * len(items.box)
    for col in order:
        for p, i in enumerate(col):
            pos[i] = p
    total = 0
    for k in range(len(order) - 1):
        pairs = sorted((pos[a], pos[b]) for a in order[k] for b in items.right[a])
        total += _inversions([b for _, b in pairs], len(order[k + 1]))
    return total


def _inversions(values: list[int], size: int) -> int:
    """Pairs i < j with values[i] > values[j] (a Fenwick tree)."""
    tree = [0] * (size + 1)
    seen, count = 0, 0
    for v in values:
        i, below = v + 1, 0
        while i > 0:
            below += tree[i]
            i -= i & -i
        count += seen - below
        i = v + 1
        while i <= size:
            tree[i] += 1
            i += i & -i
        seen += 1
    return count


def _half(items: _Items, i: int) -> float:
    return BOX_H / 2 if items.box[i] else 0.0


def separation(upper_is_box: bool, lower_is_box: bool) -> float:
    """The least distance between the centres of two neighbours in a column."""
    if upper_is_box and lower_is_box:
        return BOX_H + GAP_BOX
    if upper_is_box or lower_is_box:
        return BOX_H / 2 + GAP_LANE
    return GAP_TRUNK


def _place(items: _Items, order: list[list[int]]) -> list[float]:
    """Centre y per item: stacked first, then pulled towards the neighbours' mean, round after
    round (down, up, both), each column keeping its order and gaps (isotonic regression)."""
    ys = [0.0] * len(items.box)
    for col in order:
        y = 0.0
        for p, i in enumerate(col):
            if p:
                y += separation(bool(items.box[col[p - 1]]), bool(items.box[i]))
            ys[i] = y
    n_cols = len(order)
    for round_ in range(ROUNDS):
        passes: list[tuple[range, tuple[list[list[int]], ...]]] = [
            (range(1, n_cols), (items.left,)),
            (range(n_cols - 2, -1, -1), (items.right,)),
        ]
        if round_ == ROUNDS - 1:
            passes = [(range(n_cols), (items.left, items.right))]
        for columns, sides in passes:
            for k in columns:
                wanted = []
                for i in order[k]:
                    near = [j for side in sides for j in side[i]]
                    if not items.box[i]:
                        # a trunk runs straight: a waypoint follows the waypoint or box it
                        # continues, and spreads only where it ends
                        trunk = [j for j in near if not items.box[j] or j in items.left[i]]
                        near = trunk or near
                    wanted.append(sum(ys[j] for j in near) / len(near) if near else ys[i])
                for i, y in zip(order[k], _fit(items, order[k], wanted)):
                    ys[i] = y
    return ys


def _fit(items: _Items, col: list[int], wanted: list[float]) -> list[float]:
    """The y's closest to ``wanted`` (least squares) keeping order and gaps: pool adjacent
    violators over z = y - offset, where offset is the stacked position."""
    offsets, acc = [], 0.0
    for p, i in enumerate(col):
        if p:
            acc += separation(bool(items.box[col[p - 1]]), bool(items.box[i]))
        offsets.append(acc)
    blocks: list[list[float]] = []  # [mean of z, count]
    for w, off in zip(wanted, offsets):
        blocks.append([w - off, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, n = blocks.pop()
            blocks[-1][0] = (blocks[-1][0] * blocks[-1][1] + mean * n) / (blocks[-1][1] + n)
            blocks[-1][1] += n
    out = []
    for mean, n in blocks:
        out += [mean] * int(n)
    return [z + off for z, off in zip(out, offsets)]
