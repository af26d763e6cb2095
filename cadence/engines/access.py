"""What SQL run on an engine may touch: the folders DuckDB's external access is limited to.

Input: the project root, the warehouse config and what the project declares (``declared``: its
sources' external locations and ``export_root``) -> output: the folders and URL prefixes
(``s3://bucket/raw/``) a connection may read and write, each ending in ``/``. Everything else
is refused by DuckDB itself (``enable_external_access`` off, ``allowed_directories`` set, which
SQL cannot undo), for models, tests and cadence's own work alike: cadence writes only inside
the project folder (``target/``, exports), the warehouse's folder and ``export_root``.

A loader that declares more (a dbt profile's ``external_root``, attached databases) puts it in
``WarehouseConfig.allowed_paths`` (beside the user's ``warehouse.allowed_paths``), which every
connection allows. Pure path logic: no file is read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from cadence.load.access import URL_RE, absolute_location
from cadence.load.parser import ParsedProject
from cadence.load.projectconfig import WarehouseConfig

_WILDCARD = re.compile(r"[*?\[{]")


def declared(parsed: ParsedProject) -> tuple[str, ...]:
    """What the project itself says its SQL reads or writes outside its folder: the folder of
    each source's external location (up to its first wildcard), and ``export_root``."""
    out = [folder_of(s.location) for s in parsed.sources if s.location]
    if parsed.config.export_root:
        out.append(parsed.config.export_root)
    return tuple(out)


def folder_of(location: str) -> str:
    """The folder a file location (or glob) reads from: ``/data/raw/*.csv`` -> ``/data/raw``,
    ``s3://bucket/raw/events.parquet`` -> ``s3://bucket/raw``."""
    wild = _WILDCARD.search(location)
    fixed = location[: wild.start()] if wild else location
    cut = fixed.rfind("/")
    if cut < 0:
        return fixed
    scheme = URL_RE.match(fixed)
    if scheme and cut < scheme.end():  # s3://bucket with nothing after it
        return fixed
    return fixed[:cut] or "/"


def folders(
    root: Path, warehouse: WarehouseConfig, database: str, extra: Iterable[str] = ()
) -> tuple[str, ...]:
    """Every folder a connection to ``database`` may touch, in order, without repeats: the
    project folder, the database file's folder, ``warehouse.allowed_paths`` and ``extra``."""
    wanted = [str(root)]
    if database != ":memory:":
        wanted.append(os.path.dirname(absolute_location(database, root)))
    wanted += warehouse.allowed_paths
    wanted += (absolute_location(p, root) for p in extra)
    out: list[str] = []
    for path in wanted:
        folder = path if path.endswith("/") else path + "/"
        if folder not in out:
            out.append(folder)
    return tuple(out)
