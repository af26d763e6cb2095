"""Engines: where SQL runs. The boundary is narrow (connect, execute, publish, introspect) so a
project moves from embedded DuckDB to a distributed engine without touching the other stages."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cadence.engines.base import Engine
from cadence.load.projectconfig import WarehouseConfig


def connect(
    warehouse: WarehouseConfig,
    root: Path,
    *,
    read_only: bool = False,
    allowed: Sequence[str] = (),
) -> Engine:
    """Open the engine a project's warehouse config names. Files outside the project folder,
    the warehouse's folder, ``warehouse.allowed_paths`` and ``allowed`` (what the project
    declares: ``access.declared``) are out of reach of the SQL run on it."""
    if warehouse.engine == "duckdb":
        from cadence.engines.duckdb import DuckDBEngine

        return DuckDBEngine.open(warehouse, root, read_only=read_only, allowed=allowed)
    if warehouse.engine == "spark":
        from cadence.engines.spark import SparkEngine

        return SparkEngine.open(warehouse, root, read_only=read_only)
    from cadence.errors import CadenceError

    raise CadenceError(
        f"engine '{warehouse.engine}' is not available in this version",
        file="cadence.yml",
        hint="use engine: duckdb",
    )


def attach_state(warehouse: WarehouseConfig, root: Path) -> Engine:
    """An in-memory DuckDB engine with the project's state attached read-only, for reads that
    must not hold the warehouse while they compute (``cadence advise``): copy, ``detach()``,
    then query the copies. State is a DuckDB file with every engine (Spark keeps it beside the
    project at ``warehouse.path``)."""
    from cadence.engines.duckdb import DuckDBEngine

    return DuckDBEngine.attached(warehouse, root)


__all__ = ["Engine", "attach_state", "connect"]
