"""Parse snapshots: dbt's ``{% snapshot %}`` blocks and YAML snapshots, as nodes of the project.

Input: the snapshot files (``snapshots/*.sql``), the ``snapshots:`` entries of the YAML property
files, cadence.yml and the model environment -> output: each snapshot as a ``Model`` with
``materialized: snapshot`` (so the DAG, cadences, selection, ``ref()`` and the runner treat it
like any table) plus its ``SnapshotSpec`` (strategy, unique key, ``updated_at`` or
``check_cols``, ``hard_deletes``, dbt's meta column names) and the data tests its YAML declares.
A block's SQL keeps its line numbers in the file; a YAML snapshot (dbt 1.9+, ``relation:``)
is ``select * from`` its relation. Config precedence is dbt's: YAML ``config:`` < the block's
``config()``. ``target_schema`` names the schema verbatim (dbt's legacy form); ``schema`` is a
custom schema like a model's. Every problem is reported with its file and line. Used by
``parser``; the build is ``build.snapshots``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any

from cadence.errors import CadenceError, ErrorCollector, did_you_mean
from cadence.load.config import ConfigLayer, ModelConfig, merge_config
from cadence.load.generictests import GenericTests
from cadence.load.loader import ProjectFiles, SourceFile
from cadence.load.projectconfig import ProjectConfig
from cadence.load.relations import Relation, relation_sql
from cadence.load.testspecs import DataTest, parse_tests
from cadence.load.yamlfile import line_of

SNAPSHOT_BLOCK = re.compile(
    r"{%[-+]?\s*snapshot\s+([A-Za-z_]\w*)\s*[-+]?%}(.*?){%[-+]?\s*endsnapshot\s*[-+]?%}", re.S
)
STRATEGIES = ("timestamp", "check")
HARD_DELETES = ("ignore", "invalidate", "new_record")
META_COLUMNS = ("dbt_scd_id", "dbt_updated_at", "dbt_valid_from", "dbt_valid_to", "dbt_is_deleted")
SNAPSHOT_KEYS = (
    "strategy",
    "unique_key",
    "updated_at",
    "check_cols",
    "hard_deletes",
    "invalidate_hard_deletes",
    "target_schema",
    "target_database",
    "snapshot_meta_column_names",
    "dbt_valid_to_current",
    "materialized",
)
YAML_SNAPSHOT_KEYS = (
    "name",
    "relation",
    "description",
    "config",
    "columns",
    "tests",
    "data_tests",
    "meta",
    "docs",
    "tags",
    "group",
)


@dataclass(frozen=True)
class SnapshotSpec:
    """How one snapshot records history (dbt's snapshot configs, validated)."""

    name: str
    strategy: str  # timestamp | check
    unique_key: tuple[str, ...]  # SQL expressions, as dbt uses them
    updated_at: str | None  # timestamp: the column; check: optional
    check_cols: tuple[str, ...]  # check: the columns compared, () with check_all
    check_all: bool
    hard_deletes: str  # ignore | invalidate | new_record
    valid_to_current: str | None  # SQL for dbt_valid_to of current rows (None: null)
    scd_id: str = "dbt_scd_id"
    updated_at_column: str = "dbt_updated_at"
    valid_from: str = "dbt_valid_from"
    valid_to: str = "dbt_valid_to"
    is_deleted: str = "dbt_is_deleted"


@dataclass(frozen=True)
class ParsedSnapshots:
    models: tuple[Any, ...]  # parser.Model values, materialized "snapshot"
    specs: tuple[SnapshotSpec, ...]
    tests: tuple[DataTest, ...]
    disabled: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Source:
    """One snapshot to parse: its name, where it is defined and its SQL text."""

    name: str
    path: str
    line: int | None
    text: str  # Jinja, padded so that lines count as in the file
    digest: str
    properties: dict[str, Any] | None  # its YAML entry
    properties_file: str | None


def parse_snapshots(
    files: ProjectFiles,
    entries: list[tuple[dict[str, Any], str]],
    config: ProjectConfig,
    env: Any,
    errors: ErrorCollector,
    warnings: list[CadenceError],
    taken: dict[str, str],
    make_model: Any,
) -> ParsedSnapshots:
    """Every snapshot of the project. ``taken`` maps the names models and seeds use (to their
    paths; the snapshots' names are added); ``make_model`` builds a ``parser.Model``."""
    sources = _sources(files, entries, errors, warnings)
    generic = GenericTests(env)
    models, specs, tests, disabled = [], [], [], []
    for source in sources:
        if source.name in taken:
            errors.add(
                CadenceError(
                    f"duplicate name '{source.name}'",
                    file=source.path,
                    line=source.line,
                    hint=f"also defined by {taken[source.name]}; a snapshot's name must not be "
                    "the name of a model, seed or other snapshot",
                )
            )
            continue
        taken[source.name] = source.path
        local = ErrorCollector()
        try:
            parsed = _parse_one(source, config, env, local, make_model)
        except CadenceError as exc:
            local.add(exc)
            parsed = None
        for e in local.errors:
            errors.add(e)
        if parsed is None:
            if not local.errors:
                disabled.append((source.name, source.path))
            continue
        model, spec = parsed
        models.append(model)
        specs.append(spec)
        if source.properties is not None and source.properties_file is not None:
            tests.extend(
                parse_tests(
                    source.properties,
                    source.name,
                    source.properties_file,
                    errors,
                    warnings,
                    generic,
                )
            )
    return ParsedSnapshots(tuple(models), tuple(specs), tuple(tests), tuple(disabled))


def _sources(
    files: ProjectFiles,
    entries: list[tuple[dict[str, Any], str]],
    errors: ErrorCollector,
    warnings: list[CadenceError],
) -> list[_Source]:
    properties: dict[str, tuple[dict[str, Any], str]] = {}
    yaml_defined: list[_Source] = []
    for entry, file in entries:
        name = str(entry["name"])
        for key in entry:
            if key not in YAML_SNAPSHOT_KEYS:
                guess = did_you_mean(str(key), YAML_SNAPSHOT_KEYS)
                errors.add(
                    CadenceError(
                        f"unknown key '{key}' for snapshot '{name}'",
                        file=file,
                        line=line_of(entry, key),
                        hint=f"did you mean '{guess}'?"
                        if guess
                        else "snapshot settings go under config: (strategy, unique_key, ...)",
                    )
                )
        if name in properties:
            errors.add(
                CadenceError(
                    f"snapshot '{name}' is described twice",
                    file=file,
                    line=line_of(entry, "name"),
                    hint=f"also described in {properties[name][1]}; keep one entry",
                )
            )
            continue
        properties[name] = (entry, file)
        relation = entry.get("relation")
        if relation is None:
            continue
        text = str(relation).strip()
        if not re.match(r"^(ref|source)\s*\(.*\)$", text, re.S):
            errors.add(
                CadenceError(
                    f"snapshot '{name}': relation must be ref('model') or source('src', 'table')",
                    file=file,
                    line=line_of(entry, "relation"),
                    hint="write relation: ref('stg_orders')",
                )
            )
            continue
        from cadence.load.digests import digest

        line = line_of(entry, "relation") or 1
        sql = "\n" * (line - 1) + "select * from {{ " + text + " }}\n"
        yaml_defined.append(
            _Source(name, file, line_of(entry, "name"), sql, digest(sql.encode()), entry, file)
        )
    out: list[_Source] = []
    for f in files.snapshots:
        for m in SNAPSHOT_BLOCK.finditer(f.text):
            name = m.group(1)
            before = f.text.count("\n", 0, m.start(2))
            props = properties.pop(name, None)
            if props is not None and props[0].get("relation") is not None:
                errors.add(
                    CadenceError(
                        f"snapshot '{name}' is defined twice",
                        file=props[1],
                        line=line_of(props[0], "name"),
                        hint=f"{f.path} has a {{% snapshot {name} %}} block; remove one",
                    )
                )
                continue
            out.append(
                _Source(
                    name,
                    f.path,
                    f.text.count("\n", 0, m.start()) + 1,
                    "\n" * before + m.group(2),
                    f.digest,
                    props[0] if props else None,
                    props[1] if props else None,
                )
            )
        if not SNAPSHOT_BLOCK.search(f.text) and f.text.strip():
            errors.add(_no_block(f))
    named = {s.name for s in yaml_defined}
    for name, (entry, file) in properties.items():
        if name in named:
            continue
        guess = did_you_mean(name, [s.name for s in out])
        warnings.append(
            CadenceError(
                f"properties for snapshot '{name}', but no snapshot of that name",
                file=file,
                line=line_of(entry, "name"),
                severity="warning",
                hint=f"did you mean '{guess}'?"
                if guess
                else "add relation: ref('...') to define it in YAML, or a {% snapshot %} block",
            )
        )
    return out + yaml_defined


def _no_block(f: SourceFile) -> CadenceError:
    return CadenceError(
        "a snapshot file holds no {% snapshot name %}...{% endsnapshot %} block",
        file=f.path,
        line=1,
        hint="wrap the query: {% snapshot orders_history %} select ... {% endsnapshot %}",
    )


def _parse_one(
    source: _Source,
    config: ProjectConfig,
    env: Any,
    errors: ErrorCollector,
    make_model: Any,
) -> tuple[Any, SnapshotSpec] | None:
    from cadence.load.context import RenderState

    layers: list[ConfigLayer] = _project_layers(config, source)
    entry, entry_file = source.properties, source.properties_file
    description = ""
    if entry is not None and entry_file is not None:
        cfg = entry.get("config") or {}
        if not isinstance(cfg, dict):
            raise CadenceError("config must be a mapping", file=entry_file, line=line_of(entry))
        values = dict(cfg)
        if entry.get("tags"):
            values["tags"] = entry["tags"]
        layers.append(
            ConfigLayer(
                values,
                entry_file,
                line_of(entry, "config") or line_of(entry),
                dict(getattr(cfg, "key_lines", {}) or {}),
            )
        )
        description = str(entry.get("description") or "")
    schema0 = config.warehouse.schema
    guess = Relation(schema0, source.name, relation_sql(schema0, source.name))
    state = RenderState(file=source.path, this=guess)
    rendered = env.render(source.text, state)
    found = re.search(r"config\s*\(", source.text)
    config_line = source.text.count("\n", 0, found.start()) + 1 if found else source.line
    layers.append(ConfigLayer(dict(state.config), source.path, config_line))
    snapshot_values, model_layers = _split(layers)
    local: list[CadenceError] = []
    merged = merge_config(model_layers, local)
    for e in local:
        errors.add(e)
    if not merged.enabled:
        return None
    spec = _spec(source, snapshot_values, errors, config_line)
    if spec is None:
        return None
    schema, identifier = _relation_parts(source, config, merged, snapshot_values, errors, env)
    relation = relation_sql(schema, identifier)
    if relation != guess.rendered and state.this_used:
        again = RenderState(file=source.path, this=Relation(schema, identifier, relation))
        rendered = env.render(source.text, again)
    if merged.key:
        errors.add(
            CadenceError(
                f"snapshot '{source.name}' cannot be a segment (key)",
                file=source.path,
                line=source.line,
                hint="a segment is a model: select the current rows of the snapshot in a model "
                "with key: (where dbt_valid_to is null)",
            )
        )
        return None
    model = make_model(
        name=source.name,
        path=source.path,
        raw_sql=source.text,
        rendered=rendered,
        config=replace(merged, materialized="snapshot"),
        relation=relation,
        schema=schema,
        identifier=identifier,
        refs=tuple(state.refs),
        ref_lines=tuple((r, *_ref_line(source.text, r)) for r in state.refs),
        sources=tuple(state.sources),
        per_run=state.per_run,
        digest=source.digest,
        description=description,
        columns=(),
        env_vars=tuple(sorted((k, _env_digest(v)) for k, v in state.env_vars.items())),
    )
    return model, spec


def _env_digest(value: str | None) -> str | None:
    from cadence.load.digests import env_digest

    return env_digest(value)


def _ref_line(text: str, name: str) -> tuple[int, int]:
    m = re.search(r"ref\(\s*(?:['\"][^'\"]*['\"]\s*,\s*)?['\"]" + re.escape(name) + r"['\"]", text)
    if not m:
        return (1, 1)
    return (
        text.count("\n", 0, m.start()) + 1,
        m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1,
    )


def _project_layers(config: ProjectConfig, source: _Source) -> list[ConfigLayer]:
    """Config for a snapshot from the project files, least specific first: dbt_project.yml's
    ``snapshots:``, then cadence.yml's ``models:`` paths naming the snapshot, then cadence.yml's
    ``snapshots:``. A path is the folders below the snapshot folder, then the snapshot's name;
    a ``models:`` folder path (no name) stays with the models."""
    folder = PurePosixPath(source.path).parent.parts[1:]
    path = (*folder, source.name)
    found = [layer for parts, layer in config.snapshot_defaults if path[: len(parts)] == parts]
    found += [
        layer
        for parts, layer in config.folder_defaults
        if parts and parts[-1] == source.name and path[: len(parts)] == parts
    ]
    found += [layer for parts, layer in config.own_snapshot_defaults if path[: len(parts)] == parts]
    return found


def _split(
    layers: list[ConfigLayer],
) -> tuple[dict[str, tuple[Any, ConfigLayer]], list[ConfigLayer]]:
    """Snapshot keys (value and the layer that set it, later layers win) apart from the keys
    every model has."""
    snapshot: dict[str, tuple[Any, ConfigLayer]] = {}
    rest: list[ConfigLayer] = []
    for layer in layers:
        own = {k: v for k, v in layer.values.items() if k in SNAPSHOT_KEYS}
        for key, value in own.items():
            snapshot[key] = (value, layer)
        rest.append(
            ConfigLayer(
                {k: v for k, v in layer.values.items() if k not in SNAPSHOT_KEYS},
                layer.file,
                layer.line,
                layer.key_lines,
            )
        )
    return snapshot, rest


def _spec(
    source: _Source,
    values: dict[str, tuple[Any, ConfigLayer]],
    errors: ErrorCollector,
    config_line: int | None,
) -> SnapshotSpec | None:
    problems: list[CadenceError] = []

    def bad(key: str, message: str, hint: str) -> None:
        layer = values[key][1] if key in values else None
        problems.append(
            CadenceError(
                f"snapshot '{source.name}': {message}",
                file=layer.file if layer else source.path,
                line=layer.line_of(key) if layer else config_line,
                hint=hint,
            )
        )

    def get(key: str) -> Any:
        return values[key][0] if key in values else None

    materialized = get("materialized")
    if materialized not in (None, "snapshot"):
        bad("materialized", f"materialized '{materialized}'", "a snapshot is materialized as one")
    strategy = get("strategy")
    if strategy not in STRATEGIES:
        bad(
            "strategy",
            "strategy is missing" if strategy is None else f"invalid strategy '{strategy}'",
            "set strategy='timestamp' (with updated_at) or strategy='check' (with check_cols)",
        )
    unique_key = get("unique_key")
    keys: tuple[str, ...] = ()
    if isinstance(unique_key, str) and unique_key.strip():
        keys = (unique_key,)
    elif (
        isinstance(unique_key, list) and unique_key and all(isinstance(k, str) for k in unique_key)
    ):
        keys = tuple(unique_key)
    else:
        bad("unique_key", "unique_key is missing", "set unique_key='id' (a column or a list)")
    updated_at = get("updated_at")
    if updated_at is not None and not isinstance(updated_at, str):
        bad("updated_at", "updated_at must be a column name", "write updated_at='updated_at'")
        updated_at = None
    if strategy == "timestamp" and not updated_at:
        bad("strategy", "the timestamp strategy needs updated_at", "set updated_at='updated_at'")
    check = get("check_cols")
    check_all = check == "all"
    check_cols: tuple[str, ...] = ()
    if strategy == "check" and not check_all:
        if isinstance(check, list) and check and all(isinstance(c, str) for c in check):
            check_cols = tuple(check)
        else:
            bad(
                "check_cols" if check is not None else "strategy",
                "the check strategy needs check_cols ('all' or a list of columns)",
                "set check_cols=['status', 'amount'] or check_cols='all'",
            )
    hard = get("hard_deletes")
    legacy = get("invalidate_hard_deletes")
    if hard is not None and legacy is not None:
        bad(
            "hard_deletes",
            "hard_deletes and invalidate_hard_deletes are both set",
            "keep hard_deletes (invalidate_hard_deletes=true is hard_deletes='invalidate')",
        )
    if legacy is not None and not isinstance(legacy, bool):
        bad("invalidate_hard_deletes", "invalidate_hard_deletes must be true or false", "")
    hard_deletes = "invalidate" if legacy is True else str(hard or "ignore")
    if hard_deletes not in HARD_DELETES:
        guess = did_you_mean(hard_deletes, HARD_DELETES)
        bad(
            "hard_deletes",
            f"invalid hard_deletes '{hard_deletes}'",
            f"did you mean '{guess}'?" if guess else "use ignore, invalidate or new_record",
        )
    names = dict(zip(META_COLUMNS, META_COLUMNS, strict=True))
    renamed = get("snapshot_meta_column_names")
    if renamed is not None:
        if not isinstance(renamed, dict):
            bad("snapshot_meta_column_names", "snapshot_meta_column_names must be a mapping", "")
        else:
            for key, value in renamed.items():
                if key not in META_COLUMNS:
                    guess = did_you_mean(str(key), META_COLUMNS)
                    bad(
                        "snapshot_meta_column_names",
                        f"unknown meta column '{key}'",
                        f"did you mean '{guess}'?"
                        if guess
                        else "meta columns: " + ", ".join(META_COLUMNS),
                    )
                elif value:
                    names[key] = str(value)
    current = get("dbt_valid_to_current")
    for e in problems:
        errors.add(e)
    if problems:
        return None
    return SnapshotSpec(
        name=source.name,
        strategy=str(strategy),
        unique_key=keys,
        updated_at=str(updated_at) if updated_at else None,
        check_cols=check_cols,
        check_all=check_all,
        hard_deletes=hard_deletes,
        valid_to_current=str(current) if current is not None else None,
        scd_id=names["dbt_scd_id"],
        updated_at_column=names["dbt_updated_at"],
        valid_from=names["dbt_valid_from"],
        valid_to=names["dbt_valid_to"],
        is_deleted=names["dbt_is_deleted"],
    )


def _relation_parts(
    source: _Source,
    config: ProjectConfig,
    merged: ModelConfig,
    values: dict[str, tuple[Any, ConfigLayer]],
    errors: ErrorCollector,
    env: Any = None,
) -> tuple[str, str]:
    """(schema, identifier): ``target_schema`` verbatim (dbt's legacy config), else the
    model's way (``schema``: a custom schema), in the warehouse's database."""
    database = values.get("target_database")
    if database is not None:
        stem = PurePosixPath(config.warehouse.path).stem
        if str(database[0]) != stem:
            errors.add(
                CadenceError(
                    f"snapshot '{source.name}': target_database '{database[0]}' is not the "
                    f"warehouse ('{stem}')",
                    file=database[1].file,
                    line=database[1].line_of("target_database"),
                    hint="cadence builds into one database; remove target_database",
                )
            )
    target_schema = values.get("target_schema")
    if target_schema is not None:
        schema = str(target_schema[0])
    elif config.is_dbt:  # a custom schema goes through generate_schema_name, as in dbt
        from cadence.load.dbt.naming import default_schema

        own = env.macro_names if env is not None else {}
        if "generate_schema_name" in own:
            node = {"name": source.name, "resource_type": "snapshot", "path": source.path}
            macro = env.env.globals["generate_schema_name"]
            schema = str(macro(merged.schema, node)).strip()
        else:
            schema = default_schema(config.warehouse.schema, merged.schema)
    else:
        schema = merged.schema or config.warehouse.schema
    return schema, merged.alias or source.name
