"""Seed configuration, dbt-compatible: where each CSV is loaded and how.

Input: the ``seeds:`` mapping of cadence.yml (dbt_project.yml style: ``+key`` config at any
level, nested under the project name, folders of seeds/ and seed names; plus cadence's own
``column_types: {seed: {column: type}}``) and ``seeds:`` entries of YAML property files (their
``config:``, which wins) -> output: a ``SeedConfig`` per seed. Supported: ``schema`` (used
verbatim, as for models), ``alias``, ``column_types``, ``enabled``, ``quote_columns`` (DuckDB
keeps header names as written either way) and ``delimiter``. Other dbt seed keys are accepted
with a warning naming them; unknown keys are errors with a "did you mean".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from cadence.errors import CadenceError, did_you_mean
from cadence.load.yamlfile import line_of

PROJECT_FILE = "cadence.yml"
SUPPORTED = (
    *("schema", "alias", "column_types", "enabled", "quote_columns", "delimiter"),
    "full_refresh",  # cadence always loads a seed whole, as dbt's full refresh does
    "tags",  # selection by tag: seeds too
    "database",  # only the warehouse's own: another is an error
    "fast",  # true (dbt-duckdb's default): loaded by DuckDB's COPY; false is an error
)
# dbt seed keys cadence does not run: setting one is an error naming it
UNSUPPORTED = ("persist_docs", "pre_hook", "post_hook", "pre-hook", "post-hook")
# no effect on DuckDB, in dbt-duckdb as in cadence (grants warned, as dbt-duckdb warns)
NO_EFFECT = ("grants", "quoting", "event_time", "materialized")
METADATA = ("meta", "docs", "group", "description")  # documentation only: no warning
ALL_KEYS = SUPPORTED + UNSUPPORTED + NO_EFFECT + METADATA


@dataclass(frozen=True)
class SeedConfig:
    schema: str | None = None
    alias: str | None = None
    column_types: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    quote_columns: bool | None = None
    delimiter: str | None = None
    tags: tuple[str, ...] = ()
    database: str | None = None


@dataclass
class _Layer:
    parts: tuple[str, ...]  # seeds/ folders and/or the seed name it applies to
    values: dict[str, Any]
    file: str
    line: int | None
    key_lines: dict[str, int | None] = field(default_factory=dict)


def _norm(key: object) -> str:
    text = str(key)
    return text[1:] if text.startswith("+") else text


def _check(
    values: dict[str, Any],
    file: str,
    line: int | None,
    where: str,
    out: list[CadenceError],
    key_lines: dict[str, int | None] | None = None,
) -> None:
    """Keys cadence does not run are errors (a warning's severity says so); ``grants`` a
    warning: DuckDB has none."""
    for key in values:
        at = (key_lines or {}).get(key) or line
        if key in UNSUPPORTED:
            out.append(
                CadenceError(
                    f"seed config key '{key}' ({where}) is not supported by cadence",
                    file=file,
                    line=at,
                    hint="remove it; cadence errors rather than ignore it "
                    "(supported for seeds: " + ", ".join(SUPPORTED) + ")",
                )
            )
        elif key == "fast" and values[key] is False:
            out.append(
                CadenceError(
                    f"seed config fast: false ({where}) is not supported by cadence",
                    file=file,
                    line=at,
                    hint="cadence loads seeds as dbt-duckdb's default (fast: true), with COPY",
                )
            )
        elif key == "grants" and values[key]:
            out.append(
                CadenceError(
                    f"seed config grants ({where}) have no effect: DuckDB has no grants",
                    file=file,
                    line=at,
                    severity="warning",
                    hint="dbt-duckdb skips them too; remove them to silence this",
                )
            )


def project_layers(
    raw: dict[str, Any], project_name: str, errors: list[CadenceError]
) -> list[_Layer]:
    """Flatten cadence.yml ``seeds:`` into layers, outermost first."""
    layers: list[_Layer] = []

    def visit(node: dict[str, Any], parts: tuple[str, ...]) -> None:
        values: dict[str, Any] = {}
        lines: dict[str, int | None] = {}
        for key, value in node.items():
            norm = _norm(key)
            if not parts and key == "column_types" and isinstance(value, dict):
                # cadence's own form: column_types: {seed_name: {column: type}}
                for seed, types in value.items():
                    if isinstance(types, dict):
                        layers.append(
                            _Layer(
                                (str(seed),),
                                {"column_types": dict(types)},
                                PROJECT_FILE,
                                line_of(value, seed),
                            )
                        )
                continue
            if (norm in ALL_KEYS and (str(key).startswith("+") or not isinstance(value, dict))) or (
                norm in ("column_types", "meta", "docs") and isinstance(value, dict)
            ):
                values[norm] = value
                lines[norm] = line_of(node, key)
            elif isinstance(value, dict):
                child = parts if (not parts and key == project_name) else (*parts, str(key))
                visit(value, child)
            else:
                guess = did_you_mean(norm, ALL_KEYS)
                errors.append(
                    CadenceError(
                        f"unknown seed config key '{key}' in cadence.yml",
                        file=PROJECT_FILE,
                        line=line_of(node, key),
                        hint=f"did you mean '+{guess}'?"
                        if guess
                        else "keys here are seed config keys (+schema, +column_types, ...) "
                        "or folders and seeds under seeds/ (as mappings)",
                    )
                )
        if values:
            layers.append(_Layer(parts, values, PROJECT_FILE, getattr(node, "line", None), lines))

    visit(raw, ())
    return layers


def resolve(
    seed_name: str,
    seed_path: str,
    layers: list[_Layer],
    yaml_config: tuple[dict[str, Any], str, int | None] | None,
    errors: list[CadenceError],
    warnings: list[CadenceError],
) -> SeedConfig:
    """The merged config of one seed: cadence.yml layers matching its folders or name, nearest
    last, then its YAML ``config:``."""
    rel = PurePosixPath(seed_path)
    folders = rel.parent.parts[1:]  # below seeds/
    chain = (*folders, seed_name)
    matching = [
        layer
        for layer in layers
        if chain[: len(layer.parts)] == layer.parts or layer.parts == (seed_name,)
    ]
    matching.sort(key=lambda layer: len(layer.parts))
    sources = [(layer.values, layer.file, layer.line, layer.key_lines) for layer in matching]
    return resolve_sources(seed_name, sources, yaml_config, errors, warnings)


Source = tuple[dict[str, Any], str, int | None, dict[str, Any]]


def resolve_sources(
    seed_name: str,
    sources: list[Source],
    yaml_config: tuple[dict[str, Any], str, int | None] | None,
    errors: list[CadenceError],
    warnings: list[CadenceError],
    *,
    check: bool = False,
) -> SeedConfig:
    """The merged config of one seed from the layers that apply to it (least specific first)
    and its YAML ``config:``; with ``check``, unknown keys of the layers are errors (a dbt
    project's ``seeds:``, whose folder configs ``load.dbt.configs`` matched)."""
    if check:
        for values, file, line, key_lines in sources:
            for key in values:
                if key not in ALL_KEYS:
                    guess = did_you_mean(key, ALL_KEYS)
                    errors.append(
                        CadenceError(
                            f"unknown seed config key '{key}'",
                            file=file,
                            line=key_lines.get(key) or line,
                            hint=f"did you mean '+{guess}'?"
                            if guess
                            else "seed config keys: " + ", ".join(SUPPORTED),
                        )
                    )
            _check(values, file, line, f"seed '{seed_name}'", warnings, key_lines)
    merged: dict[str, Any] = {}
    origin: dict[str, tuple[str, int | None]] = {}
    if yaml_config is not None:
        sources = [*sources, (*yaml_config, {})]
    for values, file, line, key_lines in sources:
        for key, value in values.items():
            if key == "column_types":
                before = merged.get(key)
                if before is not None and not isinstance(before, dict):
                    continue  # reported below, where it was written
                if isinstance(value, dict):
                    value = {**(before or {}), **value}
            merged[key] = value
            origin[key] = (file, key_lines.get(key) or line)

    def bad(key: str, message: str, hint: str) -> None:
        file, line = origin[key]
        errors.append(CadenceError(message, file=file, line=line, hint=hint))

    out: dict[str, Any] = {}
    for key in ("schema", "alias", "delimiter"):
        value = merged.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            bad(key, f"seed '{seed_name}': {key} must be text, got {value!r}", f"+{key}: raw")
        elif value is not None:
            out[key] = value
    for key in ("enabled", "quote_columns"):
        value = merged.get(key)
        if value is not None and not isinstance(value, bool):
            bad(key, f"seed '{seed_name}': {key} must be true or false, got {value!r}", "")
        elif value is not None:
            out[key] = value
    types = merged.get("column_types") or {}
    if not isinstance(types, dict) or not all(isinstance(v, str) for v in types.values()):
        bad(
            "column_types",
            f"seed '{seed_name}': column_types must map columns to type names",
            "+column_types: {country: varchar(2)}",
        )
        types = {}
    out["column_types"] = {str(k): str(v) for k, v in types.items()}
    tags = merged.get("tags")
    if tags is not None:
        out["tags"] = tuple(str(t) for t in (tags if isinstance(tags, list) else [tags]))
    database = merged.get("database")
    if database is not None:
        out["database"] = str(database)
    return SeedConfig(**out)


def yaml_config(
    entry: dict[str, Any], file: str, errors: list[CadenceError], warnings: list[CadenceError]
) -> tuple[dict[str, Any], str, int | None] | None:
    """The ``config:`` of a seed entry in a YAML property file, checked."""
    cfg = entry.get("config")
    if cfg is None:
        return None
    line = line_of(entry, "config")
    if not isinstance(cfg, dict):
        errors.append(
            CadenceError(
                f"config of seed '{entry.get('name')}' must be a mapping",
                file=file,
                line=line,
                hint="config:\n  schema: raw",
            )
        )
        return None
    values: dict[str, Any] = {}
    for key, value in cfg.items():
        norm = _norm(key)
        if norm not in ALL_KEYS:
            guess = did_you_mean(norm, ALL_KEYS)
            errors.append(
                CadenceError(
                    f"unknown config key '{key}' for seed '{entry.get('name')}'",
                    file=file,
                    line=line_of(cfg, key) or line,
                    hint=f"did you mean '{guess}'?"
                    if guess
                    else "seed config keys: " + ", ".join(SUPPORTED),
                )
            )
            continue
        values[norm] = value
    _check(values, file, line, f"seed '{entry.get('name')}'", warnings)
    return values, file, line


def check_project_layers(layers: list[_Layer], warnings: list[CadenceError]) -> None:
    for layer in layers:
        where = "seeds: " + ("/".join(layer.parts) if layer.parts else "(all seeds)")
        _check(layer.values, layer.file, layer.line, where, warnings, layer.key_lines)
