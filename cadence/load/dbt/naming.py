"""Relation names as dbt gives them: schema, alias and database of each model, seed and snapshot.

Input: the target (schema, database), a resource's ``schema``/``alias``/``database`` configs and
what dbt passes its naming macros as ``node`` -> output: the names. dbt's defaults, computed here
without Jinja: ``generate_schema_name`` gives the target schema, or ``<target schema>_<custom>``
when a custom schema is set; ``generate_alias_name`` the custom alias, else the resource's name;
``generate_database_name`` the custom database, else the target's. When the root project defines
a macro of one of these names, that macro decides instead (called with dbt's arguments), as in
dbt; packages' definitions are not used, as in dbt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MACROS = ("generate_schema_name", "generate_alias_name", "generate_database_name")

Macro = Callable[..., Any]


def default_schema(target_schema: str, custom: Any) -> str:
    if custom is None:
        return target_schema
    return f"{target_schema}_{str(custom).strip()}"


def default_alias(name: str, custom: Any, version: Any = None) -> str:
    if custom is not None:
        return str(custom).strip()
    return f"{name}_v{version}" if version is not None else name


def default_database(target_database: str, custom: Any) -> str:
    return target_database if custom is None else str(custom).strip()


class Namer:
    """Names for one project: dbt's defaults, or the root project's own naming macros."""

    def __init__(
        self, target_schema: str, target_database: str, own: dict[str, Macro] | None = None
    ) -> None:
        self.schema_of = target_schema
        self.database_of = target_database
        self.own = own or {}

    def schema(self, custom: Any, node: dict[str, Any]) -> str:
        macro = self.own.get("generate_schema_name")
        if macro is None:
            return default_schema(self.schema_of, custom)
        return _text(macro(custom, node))

    def alias(self, custom: Any, node: dict[str, Any]) -> str:
        macro = self.own.get("generate_alias_name")
        if macro is None:
            return default_alias(str(node["name"]), custom, node.get("version"))
        return _text(macro(custom, node))

    def database(self, custom: Any, node: dict[str, Any]) -> str:
        macro = self.own.get("generate_database_name")
        if macro is None:
            return default_database(self.database_of, custom)
        return _text(macro(custom, node))


def _text(value: Any) -> str:
    return str(value).strip()


def node_info(
    name: str,
    resource_type: str,
    package: str,
    path: str,
    folders: tuple[str, ...],
    config: dict[str, Any],
    original_file_path: str,
) -> dict[str, Any]:
    """What dbt's naming macros read of ``node`` (a mapping: Jinja reads ``node.name`` too)."""
    return {
        "name": name,
        "resource_type": resource_type,
        "package_name": package,
        "path": path,
        "original_file_path": original_file_path,
        "fqn": [package, *folders, name],
        "unique_id": f"{resource_type}.{package}.{name}",
        "config": config,
        "tags": _tags(config.get("tags")),
        "version": None,
    }


def _tags(value: object) -> list[str]:
    """dbt's tags as the config merge reads them (``config._as_tuple``): a list, or one value."""
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
