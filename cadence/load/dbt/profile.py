"""The DuckDB target of a dbt profile, as cadence's warehouse settings.

Input: the profile name (dbt_project.yml's ``profile:``), the project root and the options given
(``--profiles-dir``, ``--target``, ``--vars``) -> output: a ``Profile``: where profiles.yml was
found, the target chosen, and the warehouse values (path, schema, threads, extensions, settings,
external_root, database) as plain data. profiles.yml is found in dbt's order: ``--profiles-dir``,
``DBT_PROFILES_DIR``, the project folder, ``~/.dbt``; the target is ``--target``, else
``DBT_TARGET``, else the profile's ``target:``. Values may use ``{{ env_var() }}``; the
variables read are kept as digests, never values. A target that is not DuckDB, or that uses a
dbt-duckdb feature cadence does not run (attached databases, plugins, MotherDuck, ...), is an
error naming the key, never a silent skip.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadence.errors import CadenceError, did_you_mean
from cadence.load.envtemplate import render_env_string
from cadence.load.yamlfile import line_of, load_yaml

PROFILES_FILE = "profiles.yml"
SUPPORTED = (
    *("type", "path", "database", "schema", "threads", "extensions", "settings"),
    "external_root",
)
NO_EFFECT = ("keep_open", "retries", "disable_transactions")  # connection handling cadence owns
UNSUPPORTED = (
    "attach",
    "plugins",
    "filesystems",
    "secrets",
    "module_paths",
    "use_credential_provider",
    "config_options",
    "remote",
    "is_motherduck",
    "motherduck_token",
)


@dataclass(frozen=True)
class Profile:
    """The target a dbt project runs on, read from profiles.yml."""

    file: str  # the profiles.yml read (relative to the project root when inside it)
    checked: tuple[str, ...]  # candidates looked at before it, absent (the cache watches them)
    profile_name: str
    target_name: str
    warehouse: dict[str, Any] = field(default_factory=dict)  # engine, path, schema, threads, ...
    env_used: tuple[tuple[str, str | None], ...] = ()


def candidates(root: Path, profiles_dir: str | None) -> tuple[list[Path], str]:
    """Where profiles.yml may be, in dbt's order, and what decided it (for messages)."""
    if profiles_dir:
        return [Path(profiles_dir).expanduser() / PROFILES_FILE], "--profiles-dir"
    env = os.environ.get("DBT_PROFILES_DIR")
    if env:
        return [Path(env).expanduser() / PROFILES_FILE], "DBT_PROFILES_DIR"
    return [root / PROFILES_FILE, Path.home() / ".dbt" / PROFILES_FILE], "default"


def shown_path(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def read_profile(
    root: Path,
    profile_name: str,
    *,
    profiles_dir: str | None = None,
    target: str | None = None,
    cli_vars: dict[str, Any] | None = None,
) -> Profile:
    """The chosen target of ``profile_name``; raises ``CadenceError`` naming the file."""
    paths, source = candidates(root, profiles_dir)
    checked: list[str] = []
    found: Path | None = None
    for path in paths:
        if path.is_file():
            found = path
            break
        checked.append(shown_path(root, path))
    if found is None:
        where = " or ".join(str(p) for p in paths)
        raise CadenceError(
            f"no profiles.yml found for profile '{profile_name}' (looked in {where})",
            file="dbt_project.yml",
            hint="put a profiles.yml beside dbt_project.yml, pass --profiles-dir, or give "
            "cadence.yml a warehouse: {path: warehouse.duckdb}"
            if source == "default"
            else f"check {source}",
        )
    shown = shown_path(root, found)
    try:
        text = found.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CadenceError(f"cannot read profiles.yml: {exc}", file=shown) from None
    doc = load_yaml(text, shown)
    if not isinstance(doc, dict) or profile_name not in doc:
        names = [k for k in doc if k != "config"] if isinstance(doc, dict) else []
        guess = did_you_mean(profile_name, names)
        raise CadenceError(
            f"profile '{profile_name}' is not in {shown}",
            file=shown,
            hint=f"did you mean '{guess}'?"
            if guess
            else "profiles there: " + (", ".join(names) or "none"),
        )
    env_used: list[tuple[str, str | None]] = []
    entry = doc[profile_name]
    if not isinstance(entry, dict) or not isinstance(entry.get("outputs"), dict):
        raise CadenceError(
            f"profile '{profile_name}' needs outputs: (a mapping of targets)",
            file=shown,
            line=line_of(doc, profile_name),
            hint="write outputs:\n  dev: {type: duckdb, path: dev.duckdb}",
        )
    chosen = target or os.environ.get("DBT_TARGET") or entry.get("target") or "default"
    chosen = render_env_string(str(chosen), env_used, shown, cli_vars or {})
    outputs = entry["outputs"]
    if chosen not in outputs:
        guess = did_you_mean(chosen, [str(k) for k in outputs])
        raise CadenceError(
            f"target '{chosen}' is not in profile '{profile_name}'",
            file=shown,
            line=line_of(entry, "outputs"),
            hint=f"did you mean '{guess}'?"
            if guess
            else "targets: " + ", ".join(str(k) for k in outputs),
        )
    out = outputs[chosen]
    if not isinstance(out, dict):
        raise CadenceError(
            f"target '{chosen}' must be a mapping", file=shown, line=line_of(outputs, chosen)
        )
    values = {k: _render(v, env_used, shown, cli_vars or {}) for k, v in out.items()}
    warehouse = _warehouse(values, out, shown, f"{profile_name}.{chosen}")
    return Profile(shown, tuple(checked), profile_name, chosen, warehouse, tuple(env_used))


def _render(value: Any, env_used: list[tuple[str, str | None]], file: str, cli: Any) -> Any:
    if isinstance(value, str):
        return render_env_string(value, env_used, file, cli)
    if isinstance(value, dict):
        return {k: _render(v, env_used, file, cli) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, env_used, file, cli) for v in value]
    return value


def _warehouse(values: dict[str, Any], raw: Any, file: str, where: str) -> dict[str, Any]:
    kind = values.get("type")
    if kind != "duckdb":
        raise CadenceError(
            f"target {where} is of type '{kind}'; cadence runs dbt projects on DuckDB",
            file=file,
            line=line_of(raw, "type"),
            hint="choose a duckdb target with --target, or give cadence.yml a warehouse:",
        )
    for key in values:
        if key in UNSUPPORTED:
            raise CadenceError(
                f"profile key '{key}' ({where}) is not supported by cadence",
                file=file,
                line=line_of(raw, key),
                hint="cadence runs one local DuckDB file; supported keys: " + ", ".join(SUPPORTED),
            )
        if key not in SUPPORTED and key not in NO_EFFECT:
            guess = did_you_mean(str(key), SUPPORTED)
            raise CadenceError(
                f"unknown profile key '{key}' ({where})",
                file=file,
                line=line_of(raw, key),
                hint=f"did you mean '{guess}'?"
                if guess
                else "supported keys: " + ", ".join(SUPPORTED),
            )
    path = values.get("path")
    if not isinstance(path, str) or not path:
        raise CadenceError(
            f"target {where} has no path: dbt-duckdb would use an in-memory database, which "
            "keeps nothing between runs",
            file=file,
            line=line_of(raw),
            hint="set path: warehouse.duckdb (a DuckDB file)",
        )
    if path.startswith("md:") or path.startswith("motherduck:"):
        raise CadenceError(
            f"target {where} is a MotherDuck database; cadence runs one local DuckDB file",
            file=file,
            line=line_of(raw, "path"),
            hint="point path: at a DuckDB file",
        )
    stem = "memory" if path == ":memory:" else Path(path).stem
    database = values.get("database")
    if database is not None and str(database) != stem:
        raise CadenceError(
            f"target {where} names database '{database}', but its file makes it '{stem}'",
            file=file,
            line=line_of(raw, "database"),
            hint="DuckDB names the database after the file: remove database:",
        )
    out: dict[str, Any] = {"engine": "duckdb", "path": path, "database": stem}
    for key in ("schema", "threads", "settings", "external_root"):
        if key in values:
            out[key] = values[key]
    extensions = values.get("extensions")
    if extensions is not None:
        items = extensions if isinstance(extensions, list) else [extensions]
        names = []
        for item in items:
            if isinstance(item, dict) and set(item) <= {"name", "repo"} and "name" in item:
                if "repo" in item:
                    raise CadenceError(
                        f"extension '{item['name']}' from repo {item['repo']}: cadence loads "
                        "installed extensions only, it installs nothing",
                        file=file,
                        line=line_of(raw, "extensions"),
                        hint=f'install it once (duckdb -c "install {item["name"]} from '
                        f'{item["repo"]}") and list it by name',
                    )
                names.append(item["name"])
            else:
                names.append(item)
        out["extensions"] = names
    return out
