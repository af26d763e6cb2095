"""dbt's folder-scoped configs: the ``models:``/``seeds:``/``snapshots:``/``data_tests:`` trees of
dbt_project.yml (and cadence.yml's ``models:`` in a dbt project) as layers per resource.

Input: a config tree as written (package names, then folders, then resource names; ``+key`` or
a known key is a config value) -> output: ``PathLayer`` values, and for one resource (its package
and the path of its file inside its folder) the ``ConfigLayer`` list that applies to it, least
specific first, as dbt orders them: a package's own dbt_project.yml, then the root project's,
then cadence.yml; within each, longer paths win. A value holding Jinja (``"{{ var('x') }}"``)
is rendered for the resource's package (``render``) and read as a Python value where it is one
(``False``, ``3``), as dbt renders configs natively. A path that names no resource is reported
as a warning, as dbt does.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cadence.errors import CadenceError
from cadence.load.config import ConfigLayer
from cadence.load.yamlfile import LineDict, line_of

NO_PACKAGE = "\0"  # the scope of a top-level path that names no package: it applies to nothing
# config keys whose values are mappings: without "+" they are still config, not a folder
DICT_KEYS = frozenset(
    ("meta", "docs", "persist_docs", "grants", "contract", "column_types", "quoting", "holdout")
    + ("snapshot_meta_column_names", "freshness", "options", "indexes")
)


@dataclass(frozen=True)
class PathLayer:
    """Config values that apply below ``parts`` of ``package`` (None: every package)."""

    package: str | None
    parts: tuple[str, ...]
    values: dict[str, Any]
    file: str
    line: int | None
    key_lines: dict[str, int] = field(default_factory=dict)
    rank: int = 0  # 0: a package's own dbt_project.yml, 1: the root's, 2: cadence.yml

    def applies_to(self, package: str, path: tuple[str, ...]) -> bool:
        if self.package is not None and self.package != package:
            return False
        return path[: len(self.parts)] == self.parts


def flatten(
    tree: Any,
    file: str,
    known: Iterable[str],
    packages: Iterable[str],
    *,
    rank: int = 1,
    own_package: str | None = None,
    folders_of: str | None = None,
) -> list[PathLayer]:
    """The layers of a config tree. Top-level keys naming a package scope what is below them
    to it (in a package's own file, ``own_package`` is the only scope); below, mappings are
    folders (or resource names). A top-level mapping naming no package applies to nothing, as
    in dbt, unless ``folders_of`` names the package it is a folder of (cadence.yml's form)."""
    keys = frozenset(known)
    names = frozenset(packages)
    out: list[PathLayer] = []

    def visit(node: dict[str, Any], package: str | None, parts: tuple[str, ...]) -> None:
        values: dict[str, Any] = {}
        lines: dict[str, int] = {}
        for key, value in node.items():
            key = str(key)
            norm = key[1:] if key.startswith("+") else key
            is_config = key.startswith("+") or (
                norm in keys and (not isinstance(value, dict) or norm in DICT_KEYS)
            )
            if is_config:
                values[norm.replace("-", "_")] = value
                if line_of(node, key) is not None:
                    lines[norm.replace("-", "_")] = line_of(node, key) or 0
            elif isinstance(value, dict):
                if package is None and not parts and (key in names or key == own_package):
                    visit(value, key, ())
                elif package is None and not parts:
                    visit(value, own_package or folders_of or NO_PACKAGE + key, (key,))
                else:
                    visit(value, package, (*parts, key))
            else:
                values[norm] = value  # unknown: the config check names it
                lines[norm] = line_of(node, key) or 0
        if values:
            line = node.line if isinstance(node, LineDict) else None
            scope = package if package is not None else own_package
            out.append(PathLayer(scope, parts, values, file, line, lines, rank))

    if isinstance(tree, dict):
        visit(tree, None, ())
    return out


def layers_for(
    layers: list[PathLayer],
    package: str,
    path: tuple[str, ...],
    render: Callable[[str, str], Any] | None = None,
    used: set[int] | None = None,
) -> list[ConfigLayer]:
    """The config layers for a resource of ``package`` at ``path`` (folders, then its name),
    least specific first; Jinja values rendered with ``render(text, package)``."""
    found = [(i, layer) for i, layer in enumerate(layers) if layer.applies_to(package, path)]
    found.sort(key=lambda item: (item[1].rank, item[1].package is not None, len(item[1].parts)))
    out = []
    for i, layer in found:
        if used is not None:
            used.add(i)
        values = layer.values
        if render is not None and any(_templated(v) for v in values.values()):
            values = {k: _rendered_at(layer, k, v, package, render) for k, v in values.items()}
        out.append(ConfigLayer(dict(values), layer.file, layer.line, dict(layer.key_lines)))
    return out


def unused_paths(layers: list[PathLayer], used: set[int]) -> list[CadenceError]:
    """A warning per config path that applied to nothing (dbt warns about them too)."""
    out = []
    for i, layer in enumerate(layers):
        if i in used or not layer.parts:
            continue
        package = None if (layer.package or "").startswith(NO_PACKAGE) else layer.package
        where = ".".join(p for p in (package, *layer.parts) if p)
        out.append(
            CadenceError(
                f"the config path '{where}' applies to no resource",
                file=layer.file,
                line=layer.line,
                severity="warning",
                hint="check the folder and file names under it (paths are relative to the "
                "model, seed or snapshot folders)",
            )
        )
    return out


def _templated(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False


def _rendered(value: Any, package: str, render: Callable[[str, str], Any]) -> Any:
    if isinstance(value, str) and _templated(value):
        return native(render(value, package))
    if isinstance(value, dict):
        return {k: _rendered(v, package, render) for k, v in value.items()}
    if isinstance(value, list):
        return [_rendered(v, package, render) for v in value]
    return value


def _rendered_at(
    layer: PathLayer, key: str, value: Any, package: str, render: Callable[[str, str], Any]
) -> Any:
    """A value rendered; an error in it names the line of its key (the template's own line
    numbers count within the value)."""
    try:
        return _rendered(value, package, render)
    except CadenceError as exc:
        exc.file = layer.file
        exc.line = layer.key_lines.get(key) or layer.line
        raise


def native(text: str) -> Any:
    """A rendered value as dbt reads it: a Python literal when it is one ("False", "3",
    "['a']"), else the text."""
    stripped = text.strip()
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return text


def folder_defaults(
    tree: Any, file: str, project: str
) -> tuple[tuple[tuple[str, ...], ConfigLayer], ...]:
    """A config tree's layers for the root project's own resources, as (folders, layer),
    parents first: what a stage reading cadence-style folder defaults takes (snapshots)."""
    layers = [
        layer for layer in flatten(tree, file, (), (project,)) if layer.package in (None, project)
    ]
    layers.sort(key=lambda layer: len(layer.parts))
    return tuple(
        (
            layer.parts,
            ConfigLayer(dict(layer.values), layer.file, layer.line, dict(layer.key_lines)),
        )
        for layer in layers
    )
