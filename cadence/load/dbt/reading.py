"""A dbt project's own files, read: the one entry the loader calls for a dbt project.

Input: the project root, cadence.yml's text when there is one, the command line's
``LoadOptions`` -> output: ``DbtRead``: the root ``DbtProject``, its installed packages, the
profile target (not read when cadence.yml gives a ``warehouse:``, which replaces it), the
``Layout`` of every package's folders and the files the load depends on (which the manifest
cache watches), and the ``DbtSettings`` cadence.yml is laid over. Every problem goes to the
``ErrorCollector``; None when dbt_project.yml cannot be read at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadence.disk import files
from cadence.errors import CadenceError, ErrorCollector
from cadence.load.dbt.packages import SPEC_FILES, read_packages
from cadence.load.dbt.profile import Profile, read_profile
from cadence.load.dbt.project import PROJECT_FILE, DbtProject, read_project, scoped_vars
from cadence.load.layout import Layout, LoadOptions
from cadence.load.projectconfig import DbtSettings
from cadence.load.yamlfile import load_yaml


@dataclass(frozen=True)
class DbtRead:
    project: DbtProject
    packages: tuple[DbtProject, ...]
    profile: Profile | None
    layout: Layout
    settings: DbtSettings


def read_dbt(
    root: Path, cadence_yml: str | None, options: LoadOptions, errors: ErrorCollector
) -> DbtRead | None:
    cli_vars = options.cli_vars
    try:
        text = files.read_bytes(root, root / PROJECT_FILE).decode("utf-8")
    except CadenceError as exc:
        errors.add(exc)
        return None
    except UnicodeDecodeError:
        errors.add(CadenceError("file is not UTF-8", file=PROJECT_FILE, hint="save it as UTF-8"))
        return None
    project = read_project(text, PROJECT_FILE, "", errors, cli_vars)
    if project is None:
        return None
    packages = tuple(read_packages(root, project.packages_install_path, errors, cli_vars))
    profile = None
    if not _has_warehouse(cadence_yml):
        try:
            profile = read_profile(
                root,
                project.profile or project.name,
                profiles_dir=options.profiles_dir,
                target=options.target,
                cli_vars=cli_vars,
            )
        except CadenceError as exc:
            errors.add(exc)
    watched = [PROJECT_FILE, "?cadence.yml", *(f"?{name}" for name in SPEC_FILES)]
    watched.append(f"@{project.packages_install_path}")  # which packages are installed
    watched += [p.file for p in packages]
    if profile is not None:
        watched += [f"?{path}" for path in profile.checked] + [profile.file]
    layout = Layout("dbt", (project.paths, *(p.paths for p in packages)), tuple(watched))
    names = {project.name, *(p.name for p in packages)}
    root_vars, scoped = scoped_vars(project.vars, names)
    own_vars = {**root_vars, **scoped.get(project.name, {})}
    package_vars: dict[str, dict[str, Any]] = {}
    for p in packages:
        theirs, _ = scoped_vars(p.vars, {p.name})
        package_vars[p.name] = {**theirs, **root_vars, **scoped.get(p.name, {})}
    env_used = list(project.env_used)
    for p in packages:
        env_used += p.env_used
    if profile is not None:
        env_used += profile.env_used
    settings = DbtSettings(
        name=project.name,
        warehouse=dict(profile.warehouse) if profile is not None else {},
        vars=own_vars,
        package_vars=package_vars,
        profile_name=profile.profile_name if profile is not None else project.profile,
        target_name=profile.target_name if profile is not None else options.target,
        profile_file=profile.file if profile is not None else None,
        env_used=tuple(dict.fromkeys(env_used)),
    )
    return DbtRead(project, packages, profile, layout, settings)


def _has_warehouse(text: str | None) -> bool:
    if text is None:
        return False
    try:
        doc = load_yaml(text, "cadence.yml")
    except CadenceError:
        return False  # parse_project_config reports it
    return isinstance(doc, dict) and doc.get("warehouse") is not None
