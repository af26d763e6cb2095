"""The configuration vocabulary: which keys exist where, their types, and how they merge.

Input: raw mappings from cadence.yml, YAML property files and ``config()`` calls ->
output: validated ``ModelConfig`` values. Validation happens once, here; unknown keys are
errors with a "did you mean".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cadence.errors import CadenceError, did_you_mean
from cadence.load.cachefile import lazy_field

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
# dbt keys accepted so dbt projects run unchanged; cadence does not act on them.
DBT_PASSTHROUGH_KEYS = (
    "meta",
    "docs",
    "persist_docs",
    "grants",
    "contract",
    "group",
    "access",
    "pre_hook",
    "post_hook",
    "pre-hook",
    "post-hook",
    "incremental_strategy",
    "on_schema_change",
    "database",
    "full_refresh",
    "quoting",
    "column_types",
    "packages",
    "sql_header",
    "labels",
    "unique_id",
    "batch_size",
    "lookback",
    "begin",
    "concurrent_batches",
    "file_format",
    "location",
    "options",
    "external_location",
    "format",
    "delimiter",
    "header",
    "quote_columns",
    "delimiter",
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
            k: (v.file, v.line_of(k)) for k, v in origin.items() if k in ("channels", "cadence")
        },
        extra=extra,
    )


# passthrough keys that only describe (documentation, ownership): accepted without a warning
DESCRIPTIVE_KEYS = frozenset(("meta", "docs", "group", "access", "labels", "unique_id"))


def unsupported_keys(config: ModelConfig) -> list[str]:
    """dbt config keys a model sets that cadence accepts but does not act on (warned)."""
    return sorted(k for k in config.extra if k in ALL_MODEL_KEYS and k not in DESCRIPTIVE_KEYS)
