"""Property files: the YAML beside the models (dbt's schema.yml), read into plain values.

Input: ``ProjectFiles`` -> output: per-model YAML entries, ``Source`` and ``Seed`` values, with
every unknown key reported (did you mean) at its file and line. Part of the parse stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cadence.errors import CadenceError, ErrorCollector, did_you_mean, unknown_key_error
from cadence.load import seedconfig
from cadence.load.freshness import Objective, parse_objective
from cadence.load.loader import ProjectFiles
from cadence.load.relations import relation_sql
from cadence.load.yamlfile import line_of, load_yaml

if TYPE_CHECKING:
    from cadence.load.dbt.nodes import DbtNodes

YAML_TOP_KEYS = (
    "version",
    "models",
    "sources",
    "seeds",
    "macros",
    "exposures",
    "metrics",
    "semantic_models",
    "saved_queries",
    "snapshots",
    "analyses",
    "unit_tests",
    "groups",
)
MODEL_ENTRY_KEYS = (
    "name",
    "description",
    "config",
    "columns",
    "tests",
    "data_tests",
    "docs",
    "meta",
    "access",
    "group",
    "latest_version",
    "versions",
    "constraints",
    "deprecation_date",
    "time_spine",
    "tags",
)
COLUMN_KEYS = (
    "name",
    "description",
    "tests",
    "data_tests",
    "data_type",
    "meta",
    "quote",
    "constraints",
    "tags",
    "policy_tags",
    "granularity",
    "config",
)
SOURCE_KEYS = (
    "name",
    "description",
    "schema",
    "database",
    "tables",
    "loaded_at",
    "loaded_at_field",
    "updates",
    "freshness",
    "meta",
    "tags",
    "config",
    "loader",
    "quoting",
    "overrides",
)
SOURCE_TABLE_KEYS = (
    "name",
    "description",
    "identifier",
    "loaded_at",
    "loaded_at_field",
    "updates",
    "columns",
    "tests",
    "data_tests",
    "meta",
    "tags",
    "config",
    "freshness",
    "external_location",
    "quoting",
    "external",
)


@dataclass(frozen=True)
class Source:
    source_name: str
    table: str
    relation: str
    file: str
    line: int | None
    loaded_at: str | None = None
    updates: str | None = None
    description: str = ""
    location: str | None = None  # external_location, absolute (or a URL): what it reads
    # dbt's freshness: {warn_after, error_after} in seconds (None: not declared)
    warn_after_s: int | None = None
    error_after_s: int | None = None


@dataclass(frozen=True)
class Seed:
    name: str
    path: str
    digest: str
    relation: str
    column_types: dict[str, str] = field(default_factory=dict)
    schema: str = "main"
    identifier: str = ""  # the table name (alias, default the seed name)
    delimiter: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def table(self) -> str:
        return self.identifier or self.name


@dataclass
class YamlModel:
    entry: dict[str, Any]
    file: str


def read_property_files(
    files: ProjectFiles,
    errors: ErrorCollector,
    others: dict[str, list[tuple[dict[str, Any], str]]] | None = None,
) -> tuple[
    dict[str, YamlModel], list[tuple[dict[str, Any], str]], list[tuple[dict[str, Any], str]]
]:
    """Model entries by name, source and seed entries; with ``others``, also the entries under
    ``snapshots:`` and ``unit_tests:`` (read by ``snapshots`` and ``unittests``)."""
    models: dict[str, YamlModel] = {}
    sources: list[tuple[dict[str, Any], str]] = []
    seeds: list[tuple[dict[str, Any], str]] = []
    for f in files.yaml_files:
        try:
            doc = load_yaml(f.text, f.path)
        except CadenceError as exc:
            errors.add(exc)
            continue
        if doc is None:
            continue
        if not isinstance(doc, dict):
            errors.add(
                CadenceError(
                    "a properties file must be a mapping (version: 2, models: [...])",
                    file=f.path,
                    line=1,
                    hint="see docs/reference/config.md",
                )
            )
            continue
        for key in doc:
            if key not in YAML_TOP_KEYS:
                guess = did_you_mean(str(key), YAML_TOP_KEYS)
                errors.add(
                    CadenceError(
                        f"unknown key '{key}'",
                        file=f.path,
                        line=line_of(doc, key),
                        hint=f"did you mean '{guess}'?"
                        if guess
                        else "allowed: " + ", ".join(YAML_TOP_KEYS),
                    )
                )
        kinds: list[tuple[str, list[tuple[dict[str, Any], str]] | None]] = [
            ("models", None),
            ("sources", sources),
            ("seeds", seeds),
        ]
        if others is not None:
            kinds += [(k, others.setdefault(k, [])) for k in ("snapshots", "unit_tests")]
        for kind, bucket in kinds:
            entries = doc.get(kind) or []
            if not isinstance(entries, list):
                errors.add(
                    CadenceError(
                        f"'{kind}' must be a list",
                        file=f.path,
                        line=line_of(doc, kind),
                        hint=f"write {kind}:\n  - name: ...",
                    )
                )
                continue
            for entry in entries:
                if not isinstance(entry, dict) or "name" not in entry:
                    errors.add(
                        CadenceError(
                            f"each entry under '{kind}' needs a name",
                            file=f.path,
                            line=line_of(entry) or line_of(doc, kind),
                            hint="write - name: my_model",
                        )
                    )
                    continue
                if bucket is not None:
                    bucket.append((entry, f.path))
                    continue
                name = str(entry["name"])
                if name in models:
                    errors.add(
                        CadenceError(
                            f"model '{name}' is described twice",
                            file=f.path,
                            line=line_of(entry, "name"),
                            hint=f"also described in {models[name].file}; keep one entry",
                        )
                    )
                    continue
                for key in entry:
                    if key not in MODEL_ENTRY_KEYS:
                        guess = did_you_mean(str(key), MODEL_ENTRY_KEYS)
                        errors.add(
                            CadenceError(
                                f"unknown key '{key}' for model '{name}'",
                                file=f.path,
                                line=line_of(entry, key),
                                hint=(
                                    f"did you mean '{guess}'?"
                                    if guess
                                    else "model settings go under config: "
                                    "(channels, cadence, key, ...)"
                                ),
                            )
                        )
                models[name] = YamlModel(entry, f.path)
    return models, sources, seeds


def parse_sources(
    entries: list[tuple[dict[str, Any], str]], files: ProjectFiles, errors: ErrorCollector
) -> list[Source]:
    out: list[Source] = []
    for entry, file in entries:
        for key in entry:
            if key not in SOURCE_KEYS:
                errors.add(
                    unknown_key_error(
                        str(key), SOURCE_KEYS, what="source", file=file, line=line_of(entry, key)
                    )
                )
        source_name = str(entry["name"])
        schema = str(entry.get("schema") or source_name)
        tables = entry.get("tables") or []
        if not isinstance(tables, list):
            errors.add(
                CadenceError(
                    f"'tables' of source '{source_name}' must be a list",
                    file=file,
                    line=line_of(entry, "tables"),
                    hint="write tables:\n  - name: events",
                )
            )
            tables = []
        for table in tables:
            if not isinstance(table, dict) or "name" not in table:
                errors.add(
                    CadenceError(
                        f"each table of source '{source_name}' needs a name",
                        file=file,
                        line=line_of(entry, "tables"),
                        hint="write tables:\n  - name: events",
                    )
                )
                continue
            for key in table:
                if key not in SOURCE_TABLE_KEYS:
                    errors.add(
                        unknown_key_error(
                            str(key),
                            SOURCE_TABLE_KEYS,
                            what="source table",
                            file=file,
                            line=line_of(table, key),
                        )
                    )
            name = str(table["name"])
            cfg = table.get("config") or {}
            meta = table.get("meta") or {}
            location = (
                table.get("external_location")
                or (cfg.get("external_location") if isinstance(cfg, dict) else None)
                or (meta.get("external_location") if isinstance(meta, dict) else None)
            )
            if location:
                location = str(location).replace("{name}", name).replace("{identifier}", name)
                if not re.match(r"^[a-z0-9]+://", location) and not location.startswith("/"):
                    location = str(files.root / location)
                relation = "'" + location.replace("'", "''") + "'"
            else:
                location = None
                relation = relation_sql(schema, str(table.get("identifier") or name))
            objective = _source_objective(
                entry, table, f"source '{source_name}.{name}'", file, errors
            )
            out.append(
                Source(
                    warn_after_s=objective.warn_after_s if objective else None,
                    error_after_s=objective.error_after_s if objective else None,
                    source_name=source_name,
                    table=name,
                    relation=relation,
                    file=file,
                    line=line_of(table, "name"),
                    loaded_at=table.get("loaded_at")
                    or table.get("loaded_at_field")
                    or entry.get("loaded_at")
                    or entry.get("loaded_at_field"),
                    updates=table.get("updates") or entry.get("updates"),
                    description=str(table.get("description") or ""),
                    location=location,
                )
            )
    return out


def _source_objective(
    entry: dict[str, Any], table: dict[str, Any], what: str, file: str, errors: ErrorCollector
) -> Objective | None:
    """dbt's ``freshness:`` of a source table: its own (``null`` turns it off), its config's,
    else its source's."""
    for holder in (table, table.get("config"), entry, entry.get("config")):
        if isinstance(holder, dict) and "freshness" in holder:
            raw = holder["freshness"]
            return parse_objective(raw, what, line_of(holder, "freshness"), errors, file)
    return None


def parse_seeds(
    files: ProjectFiles,
    yaml_seeds: list[tuple[dict[str, Any], str]],
    errors: ErrorCollector,
    warnings: list[CadenceError] | None = None,
    disabled: list[tuple[str, str]] | None = None,
    nodes: DbtNodes | None = None,
) -> list[Seed]:
    """Seeds with their config (cadence.yml ``seeds:`` and YAML ``config:``; in a dbt project
    dbt_project.yml's ``seeds:``, named as dbt names them); seeds with ``enabled: false`` go to
    ``disabled``."""
    found: list[CadenceError] = []
    warned: list[CadenceError] = []
    raw = files.config.seed_config if isinstance(files.config.seed_config, dict) else {}
    layers = seedconfig.project_layers(raw, files.config.name, found)
    seedconfig.check_project_layers(layers, warned)
    by_name: dict[str, tuple[dict[str, Any], str, int | None]] = {}
    for entry, file in yaml_seeds:
        checked = seedconfig.yaml_config(entry, file, found, warned)
        if checked is not None:
            by_name[str(entry["name"])] = checked
    out: list[Seed] = []
    for s in files.seeds:
        if nodes is not None:
            placed = nodes.place(s.path, "seed")
            sources = [
                (layer.values, layer.file, layer.line, dict(layer.key_lines))
                for layer in nodes.seed_layers_for(placed)
            ]
            cfg = seedconfig.resolve_sources(
                s.name, sources, by_name.get(s.name), found, warned, check=True
            )
        else:
            cfg = seedconfig.resolve(s.name, s.path, layers, by_name.get(s.name), found, warned)
        if not cfg.enabled:
            if disabled is not None:
                disabled.append((s.name, s.path))
            continue
        if nodes is not None:
            node = nodes.node(placed, "seed", s.path, {"schema": cfg.schema, "alias": cfg.alias})
            try:
                schema, identifier = nodes.names(cfg.schema, cfg.alias, cfg.database, node, s.path)
            except CadenceError as exc:
                found.append(exc)
                continue
        else:
            schema = cfg.schema or files.config.warehouse.schema
            identifier = cfg.alias or s.name
        out.append(
            Seed(
                s.name,
                s.path,
                s.digest,
                relation_sql(schema, identifier),
                cfg.column_types,
                schema=schema,
                identifier=identifier,
                delimiter=cfg.delimiter,
                tags=cfg.tags,
            )
        )
    seen: set[tuple[str | None, int | None, str]] = set()
    for e in found + warned:  # a folder's config is checked for each of its seeds: once each
        if (e.file, e.line, e.message) in seen:
            continue
        seen.add((e.file, e.line, e.message))
        if e.severity == "error":
            errors.add(e)
        elif warnings is not None:
            warnings.append(e)
    return out
