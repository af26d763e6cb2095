"""What cadence.yml lets models touch beyond the project folder (SPEC §6).

Input: the ``warehouse`` mapping of cadence.yml and the project root -> output: the absolute
folders and URL prefixes of ``warehouse.allowed_paths``, and the DuckDB ``settings`` left once
those that would undo the limits (``enable_external_access``, ``allowed_directories``, ...) are
refused. Every problem goes to the ``ErrorCollector`` with cadence.yml's line and a hint.

``engines.access`` turns these, with what the project declares (sources' external locations,
``export_root``), into the folders DuckDB's external access is limited to.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from cadence.errors import CadenceError, ErrorCollector
from cadence.load.yamlfile import line_of

FILE = "cadence.yml"
URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# DuckDB settings that would undo the limits on what models may read and write, or install
# code at run time
ACCESS_SETTINGS = (
    "enable_external_access",
    "allowed_directories",
    "allowed_paths",
    "disabled_filesystems",
    "allow_community_extensions",
    "allow_unsigned_extensions",
    "autoinstall_known_extensions",
    "extension_directory",
    "lock_configuration",
)
HINT = "write allowed_paths: [/srv/data, ../shared, 's3://bucket/raw/']"


def absolute_location(location: str, root: Path | str) -> str:
    """A path as DuckDB should see it: URLs (``s3://...``) as written, relative paths against
    the project folder (DuckDB itself would read them against the working directory)."""
    if URL_RE.match(location) or os.path.isabs(location):
        return location
    return os.path.normpath(os.path.join(root, location))


def parse_allowed_paths(raw: dict[str, Any], root: Path, errors: ErrorCollector) -> tuple[str, ...]:
    """``warehouse.allowed_paths``: folders (relative to the project, or absolute) and URL
    prefixes (``s3://bucket/data/``) models may read and write besides the project folder."""
    value = raw.get("allowed_paths")
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    line = line_of(raw, "allowed_paths")
    if not isinstance(value, list):
        message = "'allowed_paths' must be a list of folders"
        errors.add(CadenceError(message, file=FILE, line=line, hint=HINT))
        return ()
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or "\0" in item:
            shown = repr(item) if len(repr(item)) <= 60 else repr(item)[:57] + "..."
            message = f"allowed_paths: {shown} is not a folder path"
            errors.add(CadenceError(message, file=FILE, line=line, hint=HINT))
            continue
        out.append(absolute_location(item, root))
    return tuple(out)


def without_access_settings(
    settings: dict[str, Any], written: Any, errors: ErrorCollector
) -> dict[str, Any]:
    """DuckDB ``settings`` less those that would widen what models may touch (each an error;
    ``written``: the mapping as read from cadence.yml, which knows each key's line)."""
    kept = {}
    for key, value in settings.items():
        if str(key).lower() not in ACCESS_SETTINGS:
            kept[key] = value
            continue
        errors.add(
            CadenceError(
                f"settings.{key} is not allowed: cadence itself limits what models may read "
                "and write",
                file=FILE,
                line=line_of(written, key),
                hint="list extra folders in warehouse.allowed_paths and extensions in "
                "warehouse.extensions (installed once beforehand)",
            )
        )
    return kept
