"""YAML with line numbers: every mapping remembers the line of each key.

Input: text of a YAML file -> output: plain Python values where mappings are ``LineDict``
(a dict with ``.line`` and ``.key_lines``). Syntax errors become ``CadenceError`` naming the
file, line and column.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from cadence.errors import CadenceError, ErrorCollector, unknown_key_error


class LineDict(dict):  # type: ignore[type-arg]
    """A mapping that knows where it and each of its keys stand in the file."""

    line: int | None = None
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int | None:
        return getattr(self, "key_lines", {}).get(key, self.line)


@lru_cache(maxsize=1)
def _loader() -> type:
    """The YAML loader, built on first use (PyYAML is not needed when the cache is warm)."""
    import yaml

    # libyaml's parser when PyYAML was built with it (10x faster); same results either way
    class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
        pass

    def construct_mapping(loader: Loader, node: yaml.MappingNode) -> LineDict:
        loader.flatten_mapping(node)
        result = LineDict()
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, "mapping keys must be plain values", key_node.start_mark
                )
            value = loader.construct_object(value_node, deep=True)
            skey = key if isinstance(key, str) else str(key)
            result[skey] = value
            result.key_lines[skey] = key_node.start_mark.line + 1
        return result

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return Loader


MAX_DEPTH = 64  # nesting deeper than any project needs; deeper, building the values would recurse


def load_yaml(text: str, file: str) -> Any:
    """Parse YAML text; errors name the file, line and column. Nesting deeper than
    ``MAX_DEPTH`` is an error (found on the parsed nodes, before any value is built)."""
    import yaml

    try:
        loader = _loader()(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_depth(node, file)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise CadenceError(
            f"invalid YAML: {problem}",
            file=file,
            line=line,
            column=column,
            hint="check indentation and quoting; strings containing ': ' or '{' need quotes",
        ) from None
    except yaml.YAMLError as exc:
        raise CadenceError(f"invalid YAML: {exc}", file=file, hint="fix the YAML syntax") from None


def _check_depth(root: Any, file: str) -> None:
    """Every node at most ``MAX_DEPTH`` collections deep (iteratively; a node reached twice
    through an alias is walked once)."""
    import yaml

    seen: set[int] = set()
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen or isinstance(node, yaml.ScalarNode):
            continue
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise CadenceError(
                f"YAML nested more than {MAX_DEPTH} levels deep",
                file=file,
                line=node.start_mark.line + 1,
                column=node.start_mark.column + 1,
                hint="flatten the structure; no cadence or dbt setting nests this deep",
            )
        children = node.value
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in children for n in pair]
        stack.extend((child, depth + 1) for child in children)


def line_of(mapping: Any, key: str | None = None) -> int | None:
    """Line of ``key`` in ``mapping`` (or of the mapping itself), when known."""
    if isinstance(mapping, LineDict):
        return mapping.line_of(key) if key is not None else mapping.line
    return None


def mapping_at(
    raw: dict[str, Any], key: str, errors: ErrorCollector, hint: str, file: str, what: str = ""
) -> Any:
    """``raw[key]`` when it is a mapping or absent (None); anything else is an error, collected
    with its line, and read as absent."""
    value = raw.get(key)
    if value is None or isinstance(value, dict):
        return value
    errors.add(
        CadenceError(
            f"'{key}' must be a mapping{what}", file=file, line=line_of(raw, key), hint=hint
        )
    )
    return None


def settings_mapping(
    raw: Any, file: str, what: str, keys: Iterable[str], errors: ErrorCollector, hint: str
) -> bool:
    """Whether a settings file's YAML (``what``: cadence.yml, dbt_project.yml) is a mapping,
    else an error at its line 1; each top-level key not in ``keys`` is an error at its line,
    naming the closest known key."""
    if not isinstance(raw, dict):
        errors.add(CadenceError(f"{what} must be a mapping", file=file, line=1, hint=hint))
        return False
    known = tuple(keys)
    for key in raw:
        if key not in known:
            errors.add(
                unknown_key_error(str(key), known, what=what, file=file, line=line_of(raw, key))
            )
    return True


def dump_yaml(value: Any) -> str:
    """A value as YAML text (dbt's ``toyaml``)."""
    import yaml

    return str(yaml.safe_dump(value, sort_keys=False, default_flow_style=False))


# -- the parsed tree as data (the load cache keeps cadence.yml's, so a cached load parses none) --
_PLAIN_TYPES = (str, int, float, bool, type(None))
_INF = float("inf")


def tree_to_data(value: Any) -> Any:
    """A parsed YAML tree as JSON data, line numbers kept: a mapping is ``["M", line, [[key,
    key line, value], ...]]``, a list ``["L", [...]]``, a plain value ``["S", value]``. Raises
    TypeError for anything else (a date, a set, binary): such a tree is not kept."""
    if isinstance(value, dict):
        lines = getattr(value, "key_lines", {})
        items = [[k, lines.get(k), tree_to_data(v)] for k, v in value.items()]
        return ["M", getattr(value, "line", None), items]
    if isinstance(value, list):
        return ["L", [tree_to_data(v) for v in value]]
    if type(value) in _PLAIN_TYPES and value == value and value not in (_INF, -_INF):
        return ["S", value]
    raise TypeError(f"not kept: {value!r}")


def tree_from_data(data: Any) -> Any:
    """The tree ``tree_to_data`` was given (raises on anything it did not write)."""
    tag, *rest = data
    if tag == "S" and type(rest[0]) in _PLAIN_TYPES:
        return rest[0]
    if tag == "L":
        return [tree_from_data(v) for v in rest[0]]
    if tag == "M":
        out = LineDict()
        out.line = rest[0]
        out.key_lines = {}
        for key, line, value in rest[1]:
            out[str(key)] = tree_from_data(value)
            if line is not None:
                out.key_lines[str(key)] = int(line)
        return out
    raise ValueError(f"not a tree: {tag!r}")
