"""The cache file format (cadence/cachefile.py): frozen values as column tables, data only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from cadence.errors import CadenceError
from cadence.load.cachefile import Codec, lazy_field, with_fields


@dataclass(frozen=True)
class Leaf:
    name: str
    size: int | None = None


@dataclass(frozen=True)
class Node:
    title: str
    text: str
    leaves: tuple[Leaf, ...]
    pairs: tuple[tuple[str, int], ...]
    extra: dict[str, Any]
    index: dict[str, Leaf]
    warnings: tuple[CadenceError, ...] = ()

    if not TYPE_CHECKING:
        __getattr__ = lazy_field


@dataclass(frozen=True)
class Root:
    nodes: tuple[Node, ...]
    note: str | None = None


def codec(**kwargs: Any) -> Codec:
    return Codec(Root, [Node, Leaf], shared=[Leaf], **kwargs)


def sample(warnings: bool = False) -> Root:
    """Warnings are exceptions (equal only to themselves): only ``warnings=True`` has them."""
    big = Leaf("big", 1)
    nodes = tuple(
        Node(
            f"n{i}",
            "select 1 -- « text »\n" * 50,
            (big, Leaf("big", 1), Leaf(f"l{i}")),
            (("x", i),),
            {"tuple": (1, 2), "set": frozenset({"s"}), "(": "a key", "n": {3: "int", "(": 1}},
            {"k": big},
            (CadenceError("careful", file="f.sql", line=3, severity="warning"),)
            if warnings
            else (),
        )
        for i in range(400)
    )
    return Root(nodes, "note")


def roundtrip(c: Codec, value: Root) -> Root:
    document, later, blob = c.encode(value)
    return c.decode(document, lambda: (later, blob))


def test_values_round_trip_with_equal_rows_stored_once() -> None:
    c = codec()
    value = sample()
    document, later, blob = c.encode(value)
    tables = json.loads(document)["tables"]
    assert tables["Leaf"][0] == 1 + 400  # "big" once, then one per node
    back = c.decode(document, lambda: (later, blob))
    assert back == value
    assert type(back.nodes[0].pairs[0]) is tuple and back.nodes[0].extra["tuple"] == (1, 2)
    assert back.nodes[0].leaves[0] is back.nodes[1].leaves[0]  # shared


def test_warnings_round_trip() -> None:
    value = sample(warnings=True)
    back = roundtrip(codec(), value)
    assert [w.render() for n in back.nodes for w in n.warnings] == [
        w.render() for n in value.nodes for w in n.warnings
    ]


def test_lazy_fields_are_decoded_on_first_use_and_kept_out_of_the_first_document() -> None:
    c = codec(lazy=[(Node, "text"), (Node, "leaves")])
    value = sample()
    document, later, blob = c.encode(value)
    assert b"select 1" not in document and b"select 1" in blob
    calls: list[int] = []

    def rest() -> tuple[bytes, bytes]:
        calls.append(1)
        return later, blob

    back = c.decode(document, rest)
    assert back.nodes[0].title == "n0" and calls == []
    assert back.nodes[3].text == value.nodes[3].text and calls == [1]
    assert back == value and calls == [1]
    copy = with_fields(back.nodes[5], title="renamed")
    assert copy.title == "renamed" and copy.text == value.nodes[5].text


def test_a_field_with_a_default_cannot_be_lazy() -> None:
    with pytest.raises(TypeError, match="default"):
        codec(lazy=[(Node, "warnings")])


def test_a_lazy_field_needs_the_class_hook() -> None:
    with pytest.raises(TypeError, match="__getattr__"):
        codec(lazy=[(Leaf, "name")])


def test_a_missing_attribute_is_still_an_attribute_error() -> None:
    back = roundtrip(codec(lazy=[(Node, "text")]), sample())
    with pytest.raises(AttributeError):
        back.nodes[0].no_such_field  # noqa: B018


def test_values_of_unknown_types_are_not_cached() -> None:
    bad = Root((Node("t", "x", (), (), {"when": object()}, {}),))
    with pytest.raises(TypeError):
        codec().encode(bad)


def test_a_document_for_other_classes_or_with_unknown_tables_is_refused() -> None:
    c = codec()
    document, later, blob = c.encode(sample())
    doc = json.loads(document)
    other = codec(lazy=[(Node, "text")])  # another layout, another schema
    assert other.schema != c.schema
    with pytest.raises(ValueError):
        other.decode(document, lambda: (later, blob))
    doc["tables"]["Popen"] = [1, [["id"]]]
    with pytest.raises(ValueError):
        c.decode(json.dumps(doc).encode(), lambda: (later, blob))
