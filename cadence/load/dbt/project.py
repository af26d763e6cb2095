"""dbt_project.yml, read and validated: a ``DbtProject``.

Input: the text of a dbt_project.yml (the root project's or an installed package's), the ``--vars``
given -> output: a frozen ``DbtProject``: name, profile, the folders of each kind of file
(``PackagePaths``), target-path and packages-install-path, vars (global and per package), the
``models:``/``seeds:``/``snapshots:``/``data_tests:`` config trees as written (their ``+key``s
and Jinja values are resolved per file by ``configs``), ``on-run-start``/``on-run-end`` hooks and
``dispatch``. Top-level strings may use ``{{ env_var() }}`` and ``{{ var() }}`` (``--vars``), as
in dbt; the variables read are kept as digests, never values. Every problem names the file and
line; unknown keys get a "did you mean".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cadence.errors import CadenceError, ErrorCollector
from cadence.load.envtemplate import render_env_string
from cadence.load.layout import PackagePaths
from cadence.load.yamlfile import line_of, load_yaml, mapping_at, settings_mapping

PROJECT_FILE = "dbt_project.yml"
PATH_KEYS = {
    "model-paths": "model_paths",
    "seed-paths": "seed_paths",
    "macro-paths": "macro_paths",
    "test-paths": "test_paths",
    "snapshot-paths": "snapshot_paths",
    "analysis-paths": "analysis_paths",
    "docs-paths": "docs_paths",
}
DEFAULT_PATHS = {
    "model_paths": ("models",),
    "seed_paths": ("seeds",),
    "macro_paths": ("macros",),
    "test_paths": ("tests",),
    "snapshot_paths": ("snapshots",),
    "analysis_paths": ("analyses",),
    "docs_paths": (),
}
CONFIG_TREES = ("models", "seeds", "snapshots", "data_tests", "tests", "sources", "unit_tests")
# accepted and documented as without effect in cadence (docs/guides/dbt-projects.md)
NO_EFFECT = (
    "version",
    "config-version",
    "require-dbt-version",
    "clean-targets",
    "log-path",
    "asset-paths",
    "function-paths",
    "query-comment",
    "quoting",
    "restrict-access",
    "dbt-cloud",
    "flags",
    "analyses",
    "exposures",
    "metrics",
    "semantic-models",
    "saved-queries",
    "functions",
)
TOP_KEYS = (
    "name",
    "profile",
    *PATH_KEYS,
    "target-path",
    "packages-install-path",
    "vars",
    *CONFIG_TREES,
    "on-run-start",
    "on-run-end",
    "dispatch",
    *NO_EFFECT,
)


@dataclass(frozen=True)
class DbtProject:
    """One dbt_project.yml (the root project's or a package's)."""

    name: str
    file: str  # relative to the project root
    profile: str | None
    paths: PackagePaths
    target_path: str = "target"
    packages_install_path: str = "dbt_packages"
    vars: dict[str, Any] = field(default_factory=dict)  # as written (see ``scoped_vars``)
    trees: dict[str, Any] = field(default_factory=dict)  # "models" -> the mapping as written
    on_run_start: tuple[tuple[str, int | None], ...] = ()  # (SQL template, line)
    on_run_end: tuple[tuple[str, int | None], ...] = ()
    dispatch: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (macro_namespace, search_order)
    env_used: tuple[tuple[str, str | None], ...] = ()


def read_project(
    text: str,
    file: str,
    folder: str,
    errors: ErrorCollector,
    cli_vars: dict[str, Any] | None = None,
) -> DbtProject | None:
    """Validate a dbt_project.yml; ``folder`` is where it lies (relative to the project root,
    "" for the root project). None when the file cannot be read at all."""
    try:
        raw = load_yaml(text, file)
    except CadenceError as exc:
        errors.add(exc)
        return None
    hint = "it starts with: name: my_project"
    if not settings_mapping(raw, file, "dbt_project.yml", TOP_KEYS, errors, hint):
        return None
    env_used: list[tuple[str, str | None]] = []

    def text_value(key: str, default: str | None) -> str | None:
        value = raw.get(key, default)
        if value is None:
            return None
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            errors.add(
                CadenceError(
                    f"'{key}' must be text, got {type(value).__name__}",
                    file=file,
                    line=line_of(raw, key),
                    hint=f"write {key}: my_value",
                )
            )
            return default
        try:
            return render_env_string(str(value), env_used, file, cli_vars or {})
        except CadenceError as exc:
            exc.line = line_of(raw, key)
            errors.add(exc)
            return default

    name = text_value("name", None)
    if not name:
        errors.add(
            CadenceError(
                "dbt_project.yml needs a 'name'", file=file, line=1, hint="add: name: my_project"
            )
        )
        name = folder.rsplit("/", 1)[-1] or "project"
    paths: dict[str, tuple[str, ...]] = {}
    for key, attr in PATH_KEYS.items():
        paths[attr] = _path_list(raw, key, DEFAULT_PATHS[attr], file, errors, env_used)
    target_path = text_value("target-path", "target") or "target"
    if "{{" in str(raw.get("target-path", "")):
        errors.add(
            CadenceError(
                "target-path uses Jinja; cadence needs a plain folder to find its files in "
                "before it reads anything else",
                file=file,
                line=line_of(raw, "target-path"),
                hint="write target-path: target (or set DBT_TARGET_PATH)",
            )
        )
    install = text_value("packages-install-path", "dbt_packages") or "dbt_packages"
    vars_ = _vars(raw, file, errors)
    trees: dict[str, Any] = {}
    for key in CONFIG_TREES:
        hint = f"write {key}:\n  {name}:\n    +materialized: table"
        value = mapping_at(raw, key, errors, hint, file, " of configs")
        if value is not None:
            trees["data_tests" if key == "tests" else key] = value
    return DbtProject(
        name=str(name),
        file=file,
        profile=text_value("profile", None),
        paths=PackagePaths(name=str(name), folder=folder, **paths),
        target_path=target_path,
        packages_install_path=install,
        vars=vars_,
        trees=trees,
        on_run_start=_hooks(raw, "on-run-start", file, errors),
        on_run_end=_hooks(raw, "on-run-end", file, errors),
        dispatch=_dispatch(raw, file, errors),
        env_used=tuple(env_used),
    )


def _path_list(
    raw: dict[str, Any],
    key: str,
    default: tuple[str, ...],
    file: str,
    errors: ErrorCollector,
    env_used: list[tuple[str, str | None]],
) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        errors.add(
            CadenceError(
                f"'{key}' must be a list of folders",
                file=file,
                line=line_of(raw, key),
                hint=f'write {key}: ["{default[0] if default else "docs"}"]',
            )
        )
        return default
    out = []
    for v in value:
        folder = render_env_string(v, env_used, file).strip().rstrip("/")
        if folder.startswith("/") or ".." in folder.split("/"):
            errors.add(
                CadenceError(
                    f"'{key}' names {folder!r}, outside the project folder",
                    file=file,
                    line=line_of(raw, key),
                    hint="cadence reads project files only inside the project folder",
                )
            )
            continue
        out.append(folder or ".")
    return tuple(out)


def _vars(raw: dict[str, Any], file: str, errors: ErrorCollector) -> dict[str, Any]:
    value = mapping_at(raw, "vars", errors, "write vars: {name: value}", file) or {}
    return {str(k): plain(v) for k, v in value.items()}


def scoped_vars(
    vars_: dict[str, Any], scopes: set[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """dbt's vars: the global ones, and those under a key naming a package (or the project)."""
    global_vars: dict[str, Any] = {}
    per_package: dict[str, dict[str, Any]] = {}
    for key, value in vars_.items():
        if key in scopes and isinstance(value, dict):
            per_package[key] = value
        else:
            global_vars[key] = value
    return global_vars, per_package


def _hooks(
    raw: dict[str, Any], key: str, file: str, errors: ErrorCollector
) -> tuple[tuple[str, int | None], ...]:
    value = raw.get(key)
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, str):
            errors.add(
                CadenceError(
                    f"each {key} hook must be a SQL string",
                    file=file,
                    line=line_of(raw, key),
                    hint=f'write {key}: ["create schema if not exists x"]',
                )
            )
            continue
        out.append((item, line_of(raw, key)))
    return tuple(out)


def _dispatch(
    raw: dict[str, Any], file: str, errors: ErrorCollector
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    value = raw.get("dispatch")
    if value is None:
        return ()
    hint = (
        "write dispatch:\n  - macro_namespace: dbt_utils\n    search_order: [my_project, dbt_utils]"
    )
    if not isinstance(value, list):
        errors.add(
            CadenceError(
                "'dispatch' must be a list", file=file, line=line_of(raw, "dispatch"), hint=hint
            )
        )
        return ()
    out = []
    for entry in value:
        line = line_of(entry) or line_of(raw, "dispatch")
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("macro_namespace"), str)
            or not isinstance(entry.get("search_order"), list)
            or not all(isinstance(s, str) for s in entry["search_order"])
            or set(entry) - {"macro_namespace", "search_order"}
        ):
            errors.add(
                CadenceError(
                    "each dispatch entry needs macro_namespace (text) and search_order "
                    "(a list of package names), nothing else",
                    file=file,
                    line=line,
                    hint=hint,
                )
            )
            continue
        out.append((entry["macro_namespace"], tuple(entry["search_order"])))
    return tuple(out)


def plain(value: Any) -> Any:
    """YAML values without their line bookkeeping (plain dicts and lists)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
