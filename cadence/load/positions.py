"""Where a call sits in a model's text: the line of its ``config(`` and the (line, column) of
each ``ref()``, so errors point at the place (``models/x.sql:3:14``).

Input: a model's raw text -> output: line numbers and positions. Pure string work, no Jinja.
"""

from __future__ import annotations

import re


def first_line(text: str, pattern: str) -> int | None:
    m = re.search(pattern, text)
    return text.count("\n", 0, m.start()) + 1 if m else None


# where each ref('name') / ref('package', 'name') call starts; lookaheads, so calls that overlap
# are all seen, and the first of either form wins, as ref_position's search finds it
_REF_CALLS = (
    re.compile(r"(?=ref\(\s*['\"]([^'\"]*)['\"])"),
    re.compile(r"(?=ref\(\s*['\"][^'\"]*['\"]\s*,\s*['\"]([^'\"]*)['\"])"),
)


def ref_positions(text: str) -> dict[str, tuple[int, int]]:
    """(line, column) of the first ref() call naming each model, in one pass over the text
    (the search per name compiled a pattern per ref: 0.07 s at 1,000 models)."""
    first: dict[str, int] = {}
    for pattern in _REF_CALLS:
        for m in pattern.finditer(text):
            if m.start() < first.get(m.group(1), len(text)):
                first[m.group(1)] = m.start()
    return {
        name: (text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1)
        for name, at in first.items()
    }


def ref_position(text: str, name: str) -> tuple[int, int]:
    m = re.search(r"ref\(\s*(?:['\"][^'\"]*['\"]\s*,\s*)?['\"]" + re.escape(name) + r"['\"]", text)
    if not m:
        return (1, 1)
    line = text.count("\n", 0, m.start()) + 1
    column = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
    return (line, column)
