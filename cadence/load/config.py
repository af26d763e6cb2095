"""The configuration vocabulary: which keys exist where, their types, and how they merge.

Input: raw mappings from cadence.yml (its ``models:`` folder defaults, flattened here into
layers), YAML property files and ``config()`` calls -> output: validated ``ModelConfig`` values.
Validation happens once, here; unknown keys are errors with a "did you mean".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cadence.errors import CadenceError, ErrorCollector, did_you_mean
from cadence.load.cachefile import lazy_field
from cadence.load.yamlfile import LineDict, line_of

MATERIALIZATIONS = ("view", "table", "incremental", "ephemeral")
ON_ERROR = ("skip_children", "continue")
REFRESH = ("always", "on_new_data")

# Keys cadence acts on.
MODEL_CONFIG_KEYS = (
    "channels",
    "cadence",
    "materialized",
    "key",
    "unique_key",
    "watermark",
    "tags",
    "enabled",
    "on_error",
    "refresh",
    "schema",
    "alias",
    "holdout",
    "event_time",
)
# dbt's model config keys (dbt-core 1.11 NodeConfig and ModelConfig, dbt-duckdb's own), each
# with what cadence does with it: nothing dbt accepts is ignored silently.
# - implemented (docs/reference/config.md says how):
DBT_IMPLEMENTED_KEYS = (
    "database",  # only the warehouse's own: another is an error
    "full_refresh",
    "pre_hook",
    "post_hook",
    "pre-hook",
    "post-hook",
    "sql_header",
    "on_schema_change",
    "incremental_strategy",
    "persist_docs",
    "event_time",
    "contract",  # only {enforced: false}: an enforced contract is an error
)
# - no effect on DuckDB, in dbt-duckdb as in cadence (descriptions; grants DuckDB lacks, warned
#   as dbt-duckdb warns; quoting: cadence quotes every name, which DuckDB reads the same)
DBT_NO_EFFECT_KEYS = (
    "meta",
    "docs",
    "group",
    "access",
    "labels",
    "unique_id",
    "static_analysis",
    "grants",
    "quoting",
)
# - not supported: setting one is an error naming it and why
DBT_UNSUPPORTED_KEYS = {
    "batch_size": "microbatch incremental models",
    "lookback": "microbatch incremental models",
    "begin": "microbatch incremental models",
    "concurrent_batches": "microbatch incremental models",
    "on_configuration_change": "materialized views",
    "packages": "Python models",
    "indexes": "dbt-duckdb's indexes",
    "partitioned_by": "DuckLake partitioning",
    "sorted_by": "DuckLake sort orders",
    "freshness": "model freshness (dbt's build_after); a model's cadence says when it builds",
    "column_types": "column_types on a model (a seed config)",
    "file_format": "dbt-duckdb's external materialization",
    "location": "dbt-duckdb's external materialization",
    "options": "dbt-duckdb's external materialization",
    "external_location": "dbt-duckdb's external materialization",
    "format": "dbt-duckdb's external materialization",
    "delimiter": "dbt-duckdb's external materialization",
    "header": "dbt-duckdb's external materialization",
    "quote_columns": "dbt-duckdb's external materialization",
    "glue_register": "dbt-duckdb's external materialization",
    "glue_database": "dbt-duckdb's external materialization",
    "plugin": "dbt-duckdb's external materialization",
    "merge_update_columns": "merge options of incremental_strategy: merge",
    "merge_exclude_columns": "merge options of incremental_strategy: merge",
    "incremental_predicates": "incremental predicates",
}
# every dbt key the parser accepts (the unsupported ones are then errors naming them)
DBT_PASSTHROUGH_KEYS = DBT_IMPLEMENTED_KEYS + DBT_NO_EFFECT_KEYS + tuple(DBT_UNSUPPORTED_KEYS)
INCREMENTAL_STRATEGIES = ("append", "delete+insert", "merge")
ON_SCHEMA_CHANGE = ("ignore", "fail", "append_new_columns", "sync_all_columns")
OTHER_MATERIALIZATIONS = (
    "external",
    "materialized_view",
    "dynamic_table",
    "streaming_table",
    "table_function",
    "seed",
    "snapshot",
    "test",
)
ALL_MODEL_KEYS = frozenset(MODEL_CONFIG_KEYS + DBT_PASSTHROUGH_KEYS)


@dataclass(frozen=True)
class ModelConfig:
    """The merged configuration of one model (defaults < folder < YAML < config())."""

    materialized: str = "table"
    channels: tuple[str, ...] = ()
    cadence: str | None = None
    key: str | None = None
    unique_key: tuple[str, ...] = ()
    watermark: str | None = None
    tags: tuple[str, ...] = ()
    enabled: bool = True
    on_error: str = "skip_children"
    refresh: str = "always"
    schema: str | None = None
    alias: str | None = None
    holdout: dict[str, Any] | None = None
    event_time: str | None = None  # a segment's column: when each member qualified
    origins: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    if not TYPE_CHECKING:
        __getattr__ = lazy_field  # fields a cached load decodes on first use (cachefile.py)


@dataclass(frozen=True)
class ConfigLayer:
    """One source of configuration: its values and where they came from."""

    values: dict[str, Any]
    file: str
    line: int | None = None
    key_lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int | None:
        return self.key_lines.get(key, self.line)


def normalize_key(key: str) -> str:
    return key[1:] if key.startswith("+") else key


def check_keys(layer: ConfigLayer, errors: list[CadenceError]) -> None:
    for key in layer.values:
        if key not in ALL_MODEL_KEYS:
            guess = did_you_mean(key, MODEL_CONFIG_KEYS)
            hint = (
                f"did you mean '{guess}'?"
                if guess
                else "model config keys: " + ", ".join(MODEL_CONFIG_KEYS)
            )
            errors.append(
                CadenceError(
                    f"unknown config key '{key}'",
                    file=layer.file,
                    line=layer.line_of(key),
                    hint=hint,
                )
            )


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return (str(value),)


HOLDOUT_KEYS = ("percent", "salt")


def _check_holdout(value: Any, bad: Any) -> dict[str, Any] | None:
    """``holdout: {percent: 0-100, salt: text}``; returns the validated mapping or None."""
    hint = "write holdout: {percent: 10, salt: spring_test}"
    if not isinstance(value, dict):
        bad("holdout must be a mapping", hint)
        return None
    unknown = [k for k in value if k not in HOLDOUT_KEYS]
    if unknown:
        guess = did_you_mean(str(unknown[0]), HOLDOUT_KEYS)
        bad(
            f"unknown holdout key '{unknown[0]}'",
            f"did you mean '{guess}'?" if guess else "holdout keys: percent, salt",
        )
        return None
    percent = value.get("percent")
    if (
        isinstance(percent, bool)
        or not isinstance(percent, (int, float))
        or not (0 <= percent <= 100)
    ):
        bad(f"holdout percent must be a number from 0 to 100, got {percent!r}", hint)
        return None
    salt = value.get("salt", "")
    if not isinstance(salt, (str, int)):
        bad(f"holdout salt must be text, got {salt!r}", hint)
        return None
    return {"percent": percent, "salt": str(salt)}


def merge_config(layers: list[ConfigLayer], errors: list[CadenceError]) -> ModelConfig:
    """Merge layers, later wins (tags accumulate as in dbt); type-check each value."""
    merged: dict[str, Any] = {}
    origin: dict[str, ConfigLayer] = {}
    tags: list[str] = []
    for layer in layers:
        check_keys(layer, errors)
        for key, value in layer.values.items():
            if key == "tags":
                for t in _as_tuple(value):
                    if t not in tags:
                        tags.append(t)
                continue
            merged[key] = value
            origin[key] = layer

    def bad(key: str, message: str, hint: str) -> None:
        layer = origin[key]
        errors.append(CadenceError(message, file=layer.file, line=layer.line_of(key), hint=hint))

    def choice(key: str, allowed: tuple[str, ...], default: str) -> str:
        value = merged.get(key, default)
        if key == "materialized" and value in OTHER_MATERIALIZATIONS:
            bad(
                key,
                f"materialized '{value}' is not supported by cadence",
                "cadence builds table, view, incremental and ephemeral models "
                "(see docs/guides/dbt-projects.md)",
            )
            return default
        if value not in allowed:
            guess = did_you_mean(str(value), allowed)
            hint = f"did you mean '{guess}'?" if guess else "use one of: " + ", ".join(allowed)
            bad(key, f"invalid {key} '{value}'", hint)
            return default
        return str(value)

    def optional_str(key: str) -> str | None:
        value = merged.get(key)
        if value is None:
            return None
        if not isinstance(value, (str, int)):
            bad(key, f"{key} must be a string, got {type(value).__name__}", f"write {key}: <text>")
            return None
        return str(value)

    enabled = merged.get("enabled", True)
    if not isinstance(enabled, bool):
        bad("enabled", "enabled must be true or false", "write enabled: true or enabled: false")
        enabled = True
    channels = merged.get("channels")
    if channels is not None and not isinstance(channels, (list, tuple, str)):
        bad("channels", "channels must be a list of channel names", "write channels: [email, ads]")
        channels = None
    holdout = merged.get("holdout")
    if holdout is not None:
        holdout = _check_holdout(holdout, lambda m, h: bad("holdout", m, h))
    cadence_value = optional_str("cadence")
    _check_dbt_keys(merged, bad)
    extra = {k: v for k, v in merged.items() if k not in MODEL_CONFIG_KEYS}
    return ModelConfig(
        materialized=choice("materialized", MATERIALIZATIONS, "table"),
        channels=_as_tuple(channels),
        cadence=cadence_value,
        key=optional_str("key"),
        unique_key=_as_tuple(merged.get("unique_key")),
        watermark=optional_str("watermark"),
        tags=tuple(tags),
        enabled=bool(enabled),
        on_error=choice("on_error", ON_ERROR, "skip_children"),
        refresh=choice("refresh", REFRESH, "always"),
        schema=optional_str("schema"),
        alias=optional_str("alias"),
        holdout=dict(holdout) if holdout else None,
        event_time=optional_str("event_time"),
        origins={
            k: (v.file, v.line_of(k))
            for k, v in origin.items()
            if k in ("channels", "cadence", "key")
        },
        extra=extra,
    )


def _check_dbt_keys(merged: dict[str, Any], bad: Any) -> None:
    """The dbt keys cadence implements take only the values it implements; the unsupported
    ones are errors naming them."""
    for key, what in DBT_UNSUPPORTED_KEYS.items():
        if merged.get(key) not in (None, [], {}):
            bad(key, f"config key '{key}' is not supported by cadence ({what})", _NOT_RUN)
    contract = merged.get("contract")
    if isinstance(contract, dict) and contract.get("enforced"):
        bad("contract", "enforced model contracts are not checked by cadence", _NOT_RUN)
    for key, allowed in (
        ("incremental_strategy", INCREMENTAL_STRATEGIES),
        ("on_schema_change", ON_SCHEMA_CHANGE),
    ):
        value = merged.get(key)
        if value is not None and value not in allowed:
            bad(key, f"{key} '{value}' is not supported by cadence", "use " + ", ".join(allowed))
    full = merged.get("full_refresh")
    if full is not None and not isinstance(full, bool):
        bad("full_refresh", "full_refresh must be true or false", "write full_refresh: false")
    for key in ("pre_hook", "post_hook", "pre-hook", "post-hook", "sql_header"):
        value = merged.get(key)
        ok = (
            value is None
            or isinstance(value, str)
            or (
                key != "sql_header"
                and isinstance(value, (list, tuple))
                and all(isinstance(v, (str, dict)) for v in value)
            )
        )
        if not ok:
            bad(
                key,
                f"{key} must be SQL text" + (" or a list of it" if "hook" in key else ""),
                f'write {key}: "..."',
            )
    docs = merged.get("persist_docs")
    if docs is not None and (not isinstance(docs, dict) or set(docs) - {"relation", "columns"}):
        bad(
            "persist_docs",
            "persist_docs takes relation and columns",
            "persist_docs: {relation: true}",
        )


_NOT_RUN = "remove it; cadence errors rather than ignore it (docs/guides/dbt-projects.md)"
# keys accepted without effect that still deserve a word when set (dbt-duckdb warns too)
WARNED_KEYS = frozenset(("grants",))


def unsupported_keys(config: ModelConfig) -> list[str]:
    """Keys a model sets that do nothing on DuckDB and are worth a warning (``grants``)."""
    return sorted(k for k in config.extra if k in WARNED_KEYS and config.extra.get(k))


FOLDER_DEFAULTS_FILE = "cadence.yml"
DICT_VALUED = ("meta", "docs", "holdout", "persist_docs", "grants", "contract")


def parse_folder_defaults(
    raw: Any, project_name: str, line: int | None, errors: ErrorCollector
) -> tuple[tuple[tuple[str, ...], ConfigLayer], ...]:
    """cadence.yml's ``models:``: nested folder defaults flattened into (folder path parts,
    config layer), parents first (a top-level key naming the project is the project itself)."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        errors.add(
            CadenceError(
                "'models' must be a mapping of folder defaults",
                file=FOLDER_DEFAULTS_FILE,
                line=line,
                hint="write models: {staging: {materialized: view}}",
            )
        )
        return ()
    out: list[tuple[tuple[str, ...], ConfigLayer]] = []

    def visit(node: dict[str, Any], parts: tuple[str, ...]) -> None:
        values: dict[str, Any] = {}
        for key, value in node.items():
            norm = key[1:] if key.startswith("+") else key
            if norm in ALL_MODEL_KEYS and (
                key.startswith("+") or not isinstance(value, dict) or norm in DICT_VALUED
            ):
                values[norm] = _plain(value)
            elif isinstance(value, dict):
                child = parts if (not parts and key == project_name) else parts + (key,)
                visit(value, child)
            else:
                guess = did_you_mean(norm, ALL_MODEL_KEYS)
                errors.add(
                    CadenceError(
                        f"unknown config key '{key}' in folder defaults",
                        file=FOLDER_DEFAULTS_FILE,
                        line=line_of(node, key),
                        hint=(
                            f"did you mean '{guess}'?"
                            if guess
                            else "keys here are model config keys "
                            "or sub-folders of models/ (as mappings)"
                        ),
                    )
                )
        if values:
            at = node.line if isinstance(node, LineDict) else None
            key_lines = {
                (k[1:] if k.startswith("+") else k): v
                for k, v in getattr(node, "key_lines", {}).items()
            }
            out.append((parts, ConfigLayer(values, FOLDER_DEFAULTS_FILE, at, key_lines)))

    visit(raw, ())
    out.sort(key=lambda item: len(item[0]))
    return tuple(out)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
