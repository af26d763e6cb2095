"""The model environment of a project: the one factory every render of it goes through.

Input: the project's settings, its macro files, docs blocks and (a dbt project) dbt_project.yml's
``dispatch`` -> output: a ``rendering.ModelEnvironment`` with ``target`` as templates see it; a
dbt project's gets dbt's names (``load.dbt.context``, imported only then). Used at load
(``parser``, ``plan.manifest``) and during runs (``build.compiler``), so both render alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cadence.load.loader import ProjectFiles
from cadence.load.projectconfig import ProjectConfig

if TYPE_CHECKING:
    from cadence.load.rendering import ModelEnvironment


def target_info(config: ProjectConfig) -> dict[str, Any]:
    """``target`` as templates see it (dbt's: name, schema, database, type, threads, ...)."""
    warehouse = config.warehouse
    info: dict[str, Any] = {
        "name": config.target_name,
        "schema": warehouse.schema,
        "type": warehouse.engine,
        "threads": warehouse.threads,
        "database": warehouse.database or config.name,
        "profile_name": (config.dbt.profile_name if config.dbt else None) or config.name,
    }
    if warehouse.engine == "duckdb":
        info["path"] = warehouse.path
        info["external_root"] = warehouse.external_root or "."
        info["extensions"] = list(warehouse.extensions)
        info["settings"] = dict(warehouse.settings)
    return info


def environment(
    config: ProjectConfig,
    macro_files: tuple[tuple[str, str], ...],
    doc_blocks: dict[str, str],
    dispatch: tuple[tuple[str, tuple[str, ...]], ...] = (),
) -> ModelEnvironment:
    """The model environment of a project, at load and during runs alike: a dbt project's gets
    dbt's names (``load.dbt.context``)."""
    from cadence.load.rendering import ModelEnvironment

    dialect = None
    if config.is_dbt:
        from cadence.load.dbt.context import DbtDialect

        dialect = DbtDialect(config, dispatch)
    return ModelEnvironment(
        config.vars,
        macro_files,
        target_info(config),
        doc_blocks,
        dialect=dialect,
        cli_vars=config.cli_vars,
    )


def make_environment(files: ProjectFiles) -> ModelEnvironment:
    macros = tuple((f.path, f.text) for f in files.macros)
    dispatch = files.dbt.project.dispatch if files.dbt is not None else ()
    return environment(files.config, macros, files.doc_blocks(), dispatch)
