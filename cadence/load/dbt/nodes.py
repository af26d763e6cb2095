"""Each model and seed of a dbt project, placed: its package, folders, config layers and names.

Input: ``ProjectFiles`` of a dbt project (its ``DbtRead``) and the model environment -> output:
per resource the package it belongs to, the path dbt's folder configs match (folders below its
model or seed folder, then its name), the config layers that apply (``configs``: the package's
own dbt_project.yml, the root's, then cadence.yml's ``models:``), what dbt's naming macros get
as ``node``, and its schema, alias and database (``naming``; the project's own
``generate_*_name`` macros when it has them). The parser asks this for every resource of a dbt
project; a cadence project has folder defaults instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from cadence.errors import CadenceError
from cadence.load.config import ALL_MODEL_KEYS, ConfigLayer
from cadence.load.dbt import configs
from cadence.load.dbt.naming import MACROS, Macro, Namer, node_info
from cadence.load.seedconfig import ALL_KEYS as SEED_KEYS

if TYPE_CHECKING:
    from cadence.load.loader import ProjectFiles
    from cadence.load.rendering import ModelEnvironment

CADENCE_FILE = "cadence.yml"
DBT_DEFAULTS = "dbt_project.yml"  # where dbt's own defaults are said to come from


@dataclass(frozen=True)
class Placed:
    """Where a resource sits: package (None: the root project), folders, name."""

    package: str | None
    package_name: str  # the root project's name for the root project
    folders: tuple[str, ...]
    name: str
    inner: str  # its path inside its model or seed folder

    @property
    def path(self) -> tuple[str, ...]:
        return (*self.folders, self.name)


class DbtNodes:
    """Resources of one dbt project, as dbt places, configures and names them."""

    def __init__(self, files: ProjectFiles, env: ModelEnvironment) -> None:
        read = files.dbt
        assert read is not None
        self.files = files
        self.env = env
        self.root = read.project.name
        self.layout = files.config.layout
        names = [p.name for p in read.packages]
        known_models = ALL_MODEL_KEYS
        self.model_layers: list[configs.PathLayer] = []
        self.seed_layers: list[configs.PathLayer] = []
        for package in read.packages:
            self.model_layers += configs.flatten(
                package.trees.get("models"),
                package.file,
                known_models,
                (),
                rank=0,
                own_package=package.name,
            )
            self.seed_layers += configs.flatten(
                package.trees.get("seeds"),
                package.file,
                SEED_KEYS,
                (),
                rank=0,
                own_package=package.name,
            )
        all_names = (self.root, *names)
        self.model_layers += configs.flatten(
            read.project.trees.get("models"), read.project.file, known_models, all_names
        )
        self.seed_layers += configs.flatten(
            read.project.trees.get("seeds"), read.project.file, SEED_KEYS, all_names
        )
        for parts, layer in files.config.folder_defaults:  # cadence.yml's models:
            self.model_layers.append(
                configs.PathLayer(
                    self.root, parts, layer.values, layer.file, layer.line, layer.key_lines, 2
                )
            )
        self.test_layers: list[configs.PathLayer] = []
        for package in read.packages:
            self.test_layers += configs.flatten(
                package.trees.get("data_tests"),
                package.file,
                (),
                (),
                rank=0,
                own_package=package.name,
            )
        self.test_layers += configs.flatten(
            read.project.trees.get("data_tests"), read.project.file, (), all_names
        )
        self.used_models: set[int] = set()
        self.used_seeds: set[int] = set()
        warehouse = files.config.warehouse
        found = env.env.globals
        own: dict[str, Macro] = {m: found[m] for m in MACROS if m in env.macro_names}  # type: ignore[misc]
        self.namer = Namer(warehouse.schema, warehouse.database or self.root, own)
        self.database = warehouse.database or self.root
        self._rendered: dict[tuple[str, str], Any] = {}

    # -- placing ----------------------------------------------------------------------------
    def place(self, path: str, kind: str) -> Placed:
        found = self.layout.locate(path, kind)
        if found is None:
            inner = PurePosixPath(path).name
            return Placed(None, self.root, (), PurePosixPath(path).stem, inner)
        package, inner = found
        root = package is self.layout.root
        parts = PurePosixPath(inner).parts
        return Placed(
            None if root else package.name,
            self.root if root else package.name,
            tuple(parts[:-1]),
            PurePosixPath(inner).stem,
            inner,
        )

    def model_layers_for(self, placed: Placed) -> list[ConfigLayer]:
        """The model's folder configs, over dbt's default materialization (a view: cadence's
        own default, a table, is for cadence projects)."""
        found = configs.layers_for(
            self.model_layers, placed.package_name, placed.path, self._render, self.used_models
        )
        return [ConfigLayer({"materialized": "view"}, DBT_DEFAULTS), *found]

    def test_defaults(self, path: str, kind: str = "model") -> dict[str, Any]:
        """dbt_project.yml's ``data_tests:`` configs for the tests of the model (or seed) at
        ``path``: the layers whose folders hold it, least specific first, merged."""
        placed = self.place(path, kind)
        merged: dict[str, Any] = {}
        for layer in configs.layers_for(
            self.test_layers, placed.package_name, placed.folders, self._render
        ):
            merged.update(layer.values)
        return merged

    def seed_layers_for(self, placed: Placed) -> list[ConfigLayer]:
        return configs.layers_for(
            self.seed_layers, placed.package_name, placed.path, self._render, self.used_seeds
        )

    def _render(self, text: str, package: str) -> Any:
        """A Jinja config value, rendered for ``package`` (once per value and package)."""
        from cadence.load.context import RenderState

        key = (text, package)
        if key not in self._rendered:
            state = RenderState(file="dbt_project.yml")
            state.package = None if package == self.root else package
            self._rendered[key] = self.env.render(text, state)
        return self._rendered[key]

    # -- naming -----------------------------------------------------------------------------
    def node(
        self, placed: Placed, resource_type: str, path: str, config: dict[str, Any]
    ) -> dict[str, Any]:
        return node_info(
            placed.name,
            resource_type,
            placed.package_name,
            placed.inner,
            placed.folders,
            config,
            path,
        )

    def names(
        self,
        schema: Any,
        alias: Any,
        database: Any,
        node: dict[str, Any],
        file: str,
    ) -> tuple[str, str]:
        """(schema, identifier) dbt gives the resource; a database other than the target's is
        an error (cadence builds into the one warehouse it opens)."""
        try:
            got_schema = self.namer.schema(schema, node)
            got_alias = self.namer.alias(alias, node)
            got_database = self.namer.database(database, node)
        except CadenceError as exc:
            if exc.file is None:
                exc.file = file
            raise
        if got_database != self.database:
            raise CadenceError(
                f"'{node['name']}' is configured for database '{got_database}', but the "
                f"warehouse is '{self.database}'",
                file=file,
                hint="cadence builds into the one DuckDB file of the profile: remove the "
                "database config (attached databases are not supported)",
            )
        return got_schema, got_alias

    def unapplied(self) -> list[CadenceError]:
        """dbt_project.yml's ``sources:`` and ``unit_tests:`` configs are not applied: a warning
        naming each, never a silent skip."""
        read = self.files.dbt
        assert read is not None
        out = []
        for project in (read.project, *read.packages):
            for tree in ("sources", "unit_tests"):
                layers = configs.flatten(project.trees.get(tree), project.file, (), ())
                for layer in layers:
                    out.append(
                        CadenceError(
                            f"{tree} config {', '.join(sorted(layer.values))} in "
                            f"{project.file} is not applied by cadence",
                            file=project.file,
                            line=layer.line,
                            severity="warning",
                            hint=f"set it on the {tree[:-1].replace('_', ' ')} itself in its "
                            "YAML file, or remove it",
                        )
                    )
        return out

    def warnings(
        self, models: list[str], seeds: list[str], snapshots: Sequence[tuple[str, ...]] = ()
    ) -> list[CadenceError]:
        """Config paths that apply to no model (of ``models``), seed or snapshot (cadence.yml's
        ``models:`` paths naming one, ``snapshots``: folders, then name): dbt warns too.
        Counted here, not while parsing (models may be parsed in forked workers)."""
        found = []
        for paths, kind, layers in (
            (models, "model", self.model_layers),
            (seeds, "seed", self.seed_layers),
        ):
            used: set[int] = set()
            for path in paths:
                placed = self.place(path, kind)
                used |= {
                    i
                    for i, layer in enumerate(layers)
                    if layer.applies_to(placed.package_name, placed.path)
                }
            if kind == "model":  # cadence.yml's models: paths naming a snapshot apply to it
                used |= {
                    i
                    for i, layer in enumerate(layers)
                    if layer.rank == 2 and layer.parts in set(snapshots)
                }
            found += configs.unused_paths(layers, used)
        return found + self.unapplied()


def base_values(layers: list[ConfigLayer]) -> dict[str, Any]:
    """What ``config.get`` reads before the model's own ``config()``: the layers merged."""
    out: dict[str, Any] = {}
    for layer in layers:
        out.update(layer.values)
    return out
