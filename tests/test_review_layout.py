"""The docs site's graph layout (cadence/review/layout.py): columns, pins, waypoints that keep
edges off other boxes, crossing reduction, width; and its guarantees on random DAGs."""

from __future__ import annotations

import random

import pytest

from cadence.review.layout import (
    BOX_H,
    FIRST,
    GAP_BOX,
    GAP_LANE,
    LAST,
    LATE,
    MAX_GAP_X,
    Layout,
    edge_points,
    layered_layout,
)


def boxes_of(names: str, width: int = 60) -> list[tuple[str, int]]:
    return [(n, width) for n in names.split()]


def column(layout: Layout, name: str) -> int:
    return layout.boxes[name][0]


def centre(layout: Layout, name: str) -> float:
    return layout.boxes[name][2] + BOX_H / 2


def assert_clear(layout: Layout, widths: dict[str, int], edges: list[tuple[str, str]]) -> None:
    """No two boxes of a column overlap; every waypoint keeps its distance from the boxes of its
    column; an edge is horizontal inside a column and curves only across the gap between two."""
    by_col: dict[int, list[float]] = {}
    for name, (col, x, y) in layout.boxes.items():
        assert x == layout.columns[col][0] and widths[name] <= layout.columns[col][1]
        by_col.setdefault(col, []).append(y)
    for ys in by_col.values():
        ys.sort()
        assert all(b - a >= BOX_H + GAP_BOX for a, b in zip(ys, ys[1:]))
    for (a, b), route in zip(edges, layout.routes):
        ca, cb = column(layout, a), column(layout, b)
        assert ca < cb and len(route) == cb - ca - 1
        for k, y in zip(range(ca + 1, cb), route):
            assert all(abs(y - (top + BOX_H / 2)) >= BOX_H / 2 + GAP_LANE for top in by_col[k])
        pts = edge_points(layout, widths, a, b, route)
        # pairs alternate: along a row or lane inside a column, then across a gap
        for i, (p, q) in enumerate(zip(pts, pts[1:])):
            if i % 2 == 0:
                assert p[1] == q[1], "inside a column an edge runs level"
            else:
                k = ca + (i + 1) // 2 - 1
                x, w = layout.columns[k]
                assert p[0] == x + w and q[0] == layout.columns[k + 1][0], "curves between"


def test_columns_follow_the_edges_with_pins():
    edges = [("src", "stg"), ("stg", "mart"), ("mart", "seg"), ("seg", "ch"), ("seed", "seg")]
    layout = layered_layout(
        boxes_of("src seed stg mart seg ch"),
        edges,
        {"src": FIRST, "seed": FIRST, "seg": LATE, "ch": LAST},
    )
    assert {n: column(layout, n) for n in layout.boxes} == {
        "src": 0,
        "seed": 0,
        "stg": 1,
        "mart": 2,
        "seg": 3,
        "ch": 4,
    }
    assert len(layout.routes[-1]) == 2  # seed -> seg crosses two columns


def test_a_segment_sits_just_left_of_the_channels_and_channels_last():
    # seg reads a short chain, other reads a long one: seg still goes next to the channels
    edges = [("a", "seg"), ("a", "b"), ("b", "c"), ("c", "other"), ("seg", "ch"), ("other", "ch")]
    pins = {"seg": LATE, "other": LATE, "ch": LAST, "lonely": LAST}
    layout = layered_layout(boxes_of("a b c seg other ch lonely"), edges, pins)
    assert column(layout, "seg") == column(layout, "other") == column(layout, "ch") - 1
    assert column(layout, "lonely") == column(layout, "ch")  # a channel nothing feeds


def test_long_edges_of_one_box_share_their_waypoints():
    edges = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e"), ("a", "d"), ("a", "e")]
    layout = layered_layout(boxes_of("a b c d e"), edges)
    to_d, to_e = layout.routes[4], layout.routes[5]
    assert len(to_d) == 2 and len(to_e) == 3
    assert to_e[:2] == to_d  # one trunk while they run together


def test_crossings_are_undone():
    # in input order the two edges cross (a -> d, b -> c with c above d)
    layout = layered_layout(boxes_of("a b c d"), [("a", "d"), ("b", "c")])
    dy_left = centre(layout, "a") - centre(layout, "b")
    dy_right = centre(layout, "d") - centre(layout, "c")
    assert dy_left * dy_right > 0


def test_the_drawing_spreads_to_the_width_asked_and_no_further():
    edges = [("a", "b"), ("b", "c")]
    wide = layered_layout(boxes_of("a b c"), edges, min_width=500)
    assert wide.width == 500
    capped = layered_layout(boxes_of("a b c"), edges, min_width=100_000)
    assert capped.columns[1][0] - capped.columns[0][0] - capped.columns[0][1] == MAX_GAP_X


def test_a_cycle_is_refused():
    with pytest.raises(ValueError):
        layered_layout(boxes_of("a b"), [("a", "b"), ("b", "a")])


@pytest.mark.parametrize("seed", range(6))
def test_random_dags_keep_every_edge_off_other_boxes(seed):
    rng = random.Random(seed)
    n = rng.randint(20, 160)
    names = [f"n{i}" for i in range(n)]
    widths = {name: rng.randint(30, 220) for name in names}
    edges = sorted(
        {
            (names[rng.randrange(0, j)], names[j])
            for j in range(1, n)
            for _ in range(rng.randint(0, 3))
        }
    )
    channels = [f"ch{i}" for i in range(3)]
    widths |= {c: 50 for c in channels}
    sinks = [m for m in names if not any(a == m for a, _ in edges)]
    edges += [(m, rng.choice(channels)) for m in sinks]
    pins = {c: LAST for c in channels} | {m: LATE for m in sinks[::2]}
    layout = layered_layout(list(widths.items()), edges, pins, min_width=1200)
    assert set(layout.boxes) == set(widths)
    last = max(col for col, _, _ in layout.boxes.values())
    assert {c for c in channels if column(layout, c) == last} == set(channels)
    assert_clear(layout, widths, edges)
    assert layout.width >= 1200 - 2
    assert all(y >= 0 and y + BOX_H <= layout.height for _, _, y in layout.boxes.values())
