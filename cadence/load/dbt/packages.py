"""The packages ``dbt deps`` installed: each one's dbt_project.yml, read as a ``DbtProject``.

Input: the project root, its packages-install-path (``dbt_packages``) and packages.yml ->
output: one ``DbtProject`` per installed package (name, folders, vars, configs), sorted by
name. cadence never downloads: a package packages.yml lists but that is not installed is an
error saying to run ``dbt deps``, as dbt says it. A package folder may be a link (``dbt deps``
links ``local:`` packages): its files are read inside the folder the link points to, never
beyond it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cadence.disk import files
from cadence.errors import CadenceError, ErrorCollector
from cadence.load.dbt.project import DbtProject, read_project
from cadence.load.yamlfile import load_yaml

SPEC_FILES = ("packages.yml", "dependencies.yml")


def package_folders(root: Path, install_path: str) -> list[str]:
    """Folders under the install path holding a dbt_project.yml, relative to the root."""
    base = root / install_path
    if not base.is_dir():
        return []
    out = []
    for entry in sorted(os.scandir(base), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if os.path.isfile(os.path.join(entry.path, "dbt_project.yml")):
            out.append(f"{install_path.rstrip('/')}/{entry.name}")
    return out


def read_packages(
    root: Path,
    install_path: str,
    errors: ErrorCollector,
    cli_vars: dict[str, Any] | None = None,
) -> list[DbtProject]:
    """Every installed package, checked against what packages.yml lists."""
    found: list[DbtProject] = []
    for folder in package_folders(root, install_path):
        file = f"{folder}/dbt_project.yml"
        try:
            data = files.read_bytes(root / folder, root / file)
            text = data.decode("utf-8")
        except CadenceError as exc:
            exc.file = file
            errors.add(exc)
            continue
        except UnicodeDecodeError:
            errors.add(CadenceError("file is not UTF-8", file=file, hint="save it as UTF-8"))
            continue
        project = read_project(text, file, folder, errors, cli_vars)
        if project is not None:
            found.append(project)
    seen: dict[str, str] = {}
    for p in found:
        if p.name in seen:
            errors.add(
                CadenceError(
                    f"package '{p.name}' is installed twice ({seen[p.name]} and {p.paths.folder})",
                    file=p.file,
                    hint="remove one of them and run dbt deps again",
                )
            )
        seen[p.name] = p.paths.folder
    _check_specified(root, install_path, len(found), errors)
    return sorted(found, key=lambda p: p.name)


def specified_count(root: Path, errors: ErrorCollector) -> tuple[int, str] | None:
    """How many packages packages.yml (or dependencies.yml) lists, and which file."""
    for name in SPEC_FILES:
        path = root / name
        if not path.is_file():
            continue
        try:
            doc = load_yaml(files.read_bytes(root, path).decode("utf-8", "replace"), name)
        except CadenceError as exc:
            errors.add(exc)
            return None
        entries = doc.get("packages") if isinstance(doc, dict) else None
        if entries is None:
            continue
        if not isinstance(entries, list):
            errors.add(
                CadenceError(
                    "'packages' must be a list",
                    file=name,
                    hint="write packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.3.0",
                )
            )
            return None
        return len(entries), name
    return None


def _check_specified(root: Path, install_path: str, installed: int, errors: ErrorCollector) -> None:
    spec = specified_count(root, errors)
    if spec is None or spec[0] <= installed:
        return
    count, name = spec
    errors.add(
        CadenceError(
            f"{count} package(s) are specified in {name}, but only {installed} are installed "
            f"in {install_path}",
            file=name,
            hint="run 'dbt deps' to install them (cadence loads installed packages and never "
            "downloads any)",
        )
    )
