"""cadence.yml, read and validated: the project's settings as a ``ProjectConfig``.

Input: the text of cadence.yml and the project root (whose name stands in for a missing
``name``) -> output: a frozen ``ProjectConfig`` with its ``WarehouseConfig``, channels
(``channelconfig``) and folder defaults (model config layers, ``config``), or None when the file
cannot be read at all. Every problem goes to the ``ErrorCollector`` with its line and a hint;
unknown keys get a "did you mean". ``{{ env_var() }}`` in the warehouse path renders in a
sandbox of its own, and the variables read are kept as digests, never as values.

Reads no files: ``loader`` hands it cadence.yml's text, and ``plan.manifest`` parses it again
on every cached load. ``WarehouseConfig`` is what the engines connect with.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cadence.errors import CadenceError, ErrorCollector, did_you_mean, unknown_key_error
from cadence.load import access
from cadence.load.channelconfig import ChannelConfig, parse_channels
from cadence.load.config import ALL_MODEL_KEYS, ConfigLayer
from cadence.load.digests import env_digest
from cadence.load.freshness import AlertsConfig, parse_alerts
from cadence.load.yamlfile import LineDict, line_of, load_yaml

PROJECT_FILE = "cadence.yml"
TOP_KEYS = (
    "name",
    "version",
    "warehouse",
    "timezone",
    "channels",
    "models",
    "seeds",
    "vars",
    "tests",
    "export_root",
    "history",
    "alerts",
)
HISTORY_KEYS = ("keep_days",)
WAREHOUSE_KEYS = (
    "engine",
    "path",
    "threads",
    "schema",
    "settings",
    "extensions",
    "master",
    "connect_url",
    "remote",
    "catalog",
    "incremental_strategy",
    "compact_every",
    "allowed_paths",
)
INCREMENTAL_STRATEGIES = ("append", "merge")
ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class WarehouseConfig:
    engine: str = "duckdb"
    path: str = "warehouse.duckdb"
    threads: int = 4
    schema: str = "main"
    settings: dict[str, Any] = field(default_factory=dict)
    extensions: tuple[str, ...] = ()
    master: str | None = None
    connect_url: str | None = None  # Spark Connect URL (``remote``; the older name is kept)
    catalog: str | None = None
    incremental_strategy: str = "append"  # Spark: append + dedup view, or MERGE (Delta/Iceberg)
    compact_every: int = 10  # Spark: compact an appended incremental after this many batches
    # folders (or URL prefixes) models may read and write besides the project folder: the
    # user's warehouse.allowed_paths, absolute; a loader that declares more (a dbt profile's
    # external_root, attached databases) adds them here (engines.access reads this list)
    allowed_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProjectConfig:
    """cadence.yml, validated."""

    name: str
    timezone: str
    warehouse: WarehouseConfig
    channels: tuple[ChannelConfig, ...]
    folder_defaults: tuple[tuple[tuple[str, ...], ConfigLayer], ...]
    seed_config: dict[str, Any]
    vars: dict[str, Any]
    env_vars_used: tuple[tuple[str, str | None], ...] = ()  # (name, env_digest)
    export_root: str | None = None  # absolute folder export paths may write under
    history_keep_days: int | None = None  # prune history older than this (None: keep all)
    alerts: AlertsConfig | None = None  # alerts: {webhook: ...} (observe wing)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def channel(self, name: str) -> ChannelConfig | None:
        for c in self.channels:
            if c.name == name:
                return c
        return None


def parse_project_config(text: str, root: Path, errors: ErrorCollector) -> ProjectConfig | None:
    """Validate cadence.yml. Returns None when it cannot be read at all."""
    file = PROJECT_FILE
    try:
        raw = load_yaml(text, file)
    except CadenceError as exc:
        errors.add(exc)
        return None
    if not isinstance(raw, dict):
        errors.add(
            CadenceError(
                "cadence.yml must be a mapping of settings",
                file=file,
                line=1,
                hint="start from 'cadence init' or see docs/reference/config.md",
            )
        )
        return None
    for key in raw:
        if key not in TOP_KEYS:
            errors.add(
                unknown_key_error(
                    key, TOP_KEYS, what="cadence.yml", file=file, line=line_of(raw, key)
                )
            )
    name = raw.get("name")
    if not name or not isinstance(name, str):
        errors.add(
            CadenceError(
                "cadence.yml needs a 'name'", file=file, line=1, hint="add: name: my_project"
            )
        )
        name = root.name
    env_used: list[tuple[str, str | None]] = []
    timezone = raw.get("timezone", "UTC")
    try:
        if not isinstance(timezone, str) or not TZ_NAME.match(timezone):
            raise ValueError(timezone)
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        errors.add(
            CadenceError(
                f"unknown timezone '{_shorten(str(timezone))}'",
                file=file,
                line=line_of(raw, "timezone"),
                hint="use an IANA name such as Europe/Berlin, America/New_York or UTC",
            )
        )
        timezone = "UTC"
    warehouse = _parse_warehouse(raw.get("warehouse"), raw, errors, env_used, root)
    channels = parse_channels(raw.get("channels"), raw, errors)
    export_root = _parse_export_root(raw, errors)
    keep_days = _parse_history(raw, errors)
    alerts = parse_alerts(raw, errors)
    defaults = _parse_folder_defaults(raw.get("models"), str(name), raw, errors)
    seed_config = raw.get("seeds") or {}
    if not isinstance(seed_config, dict):
        errors.add(
            CadenceError(
                "'seeds' must be a mapping",
                file=file,
                line=line_of(raw, "seeds"),
                hint="write seeds: {column_types: {...}} or remove it",
            )
        )
        seed_config = {}
    vars_ = raw.get("vars") or {}
    if not isinstance(vars_, dict):
        errors.add(
            CadenceError(
                "'vars' must be a mapping",
                file=file,
                line=line_of(raw, "vars"),
                hint="write vars: {name: value}",
            )
        )
        vars_ = {}
    return ProjectConfig(
        name=str(name),
        timezone=str(timezone),
        warehouse=warehouse,
        channels=channels,
        folder_defaults=defaults,
        seed_config=dict(seed_config),
        vars=_plain(vars_),
        env_vars_used=tuple(env_used),
        export_root=export_root,
        history_keep_days=keep_days,
        alerts=alerts,
    )


TZ_NAME = re.compile(r"^[A-Za-z0-9_+-]{1,40}(/[A-Za-z0-9_+-]{1,40}){0,3}$")  # IANA key shape


def _shorten(text: str, limit: int = 60) -> str:
    """User text quoted in a message, cut so a 300-character value does not flood the terminal."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_history(raw: dict[str, Any], errors: ErrorCollector) -> int | None:
    """``history: {keep_days: N}``: N whole days, 1 to 36500."""
    value = raw.get("history")
    if value is None:
        return None
    line = line_of(raw, "history")
    if not isinstance(value, dict):
        errors.add(
            CadenceError(
                "'history' must be a mapping",
                file=PROJECT_FILE,
                line=line,
                hint="write history: {keep_days: 90}",
            )
        )
        return None
    for key in value:
        if key not in HISTORY_KEYS:
            errors.add(
                unknown_key_error(
                    str(key), HISTORY_KEYS, what="history", file=PROJECT_FILE, line=line
                )
            )
    days = value.get("keep_days")
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36500:
        errors.add(
            CadenceError(
                f"history.keep_days must be a whole number of days from 1 to 36500, got {days!r}",
                file=PROJECT_FILE,
                line=line,
                hint="write history: {keep_days: 90}",
            )
        )
        return None
    return days


def _parse_export_root(raw: dict[str, Any], errors: ErrorCollector) -> str | None:
    value = raw.get("export_root")
    if value is None:
        return None
    if not isinstance(value, str) or not os.path.isabs(value):
        errors.add(
            CadenceError(
                f"export_root must be an absolute folder path, got {value!r}",
                file=PROJECT_FILE,
                line=line_of(raw, "export_root"),
                hint="write export_root: /srv/exports (or leave it out: exports then stay "
                "inside the project folder)",
            )
        )
        return None
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def render_env_string(text: str, env_used: list[tuple[str, str | None]]) -> str:
    """Render ``{{ env_var('X', 'default') }}`` in a cadence.yml value."""
    if "{{" not in text and "{%" not in text:
        return text
    import jinja2.sandbox

    def env_var(name: Any = None, default: str | None = None) -> str:
        if not isinstance(name, str) or not name:
            raise CadenceError(
                "env_var() needs the name of an environment variable",
                file=PROJECT_FILE,
                hint="write {{ env_var('NAME', 'default') }}",
            )
        env_used.append((name, env_digest(os.environ.get(name))))
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise CadenceError(
                f"environment variable '{name}' is not set",
                file=PROJECT_FILE,
                hint=f"export {name}=... or give a default: env_var('{name}', 'value')",
            )
        return str(default)

    try:
        return jinja2.sandbox.SandboxedEnvironment().from_string(text).render(env_var=env_var)
    except CadenceError:
        raise
    except Exception as exc:  # noqa: BLE001 - a template in cadence.yml is user code
        raise CadenceError(
            f"invalid template in '{_shorten(text)}': {type(exc).__name__}: {exc}",
            file=PROJECT_FILE,
            hint="write {{ env_var('NAME', 'default') }}",
        ) from None


def _parse_warehouse(
    raw: Any,
    top: dict[str, Any],
    errors: ErrorCollector,
    env_used: list[tuple[str, str | None]],
    root: Path,
) -> WarehouseConfig:
    file = PROJECT_FILE
    if raw is None:
        return WarehouseConfig()
    if not isinstance(raw, dict):
        errors.add(
            CadenceError(
                "'warehouse' must be a mapping",
                file=file,
                line=line_of(top, "warehouse"),
                hint="write warehouse: {engine: duckdb, path: warehouse.duckdb}",
            )
        )
        return WarehouseConfig()
    for key in raw:
        if key not in WAREHOUSE_KEYS:
            errors.add(
                unknown_key_error(
                    key, WAREHOUSE_KEYS, what="warehouse", file=file, line=line_of(raw, key)
                )
            )
    engine = raw.get("engine", "duckdb")
    if engine not in ENGINES:
        errors.add(
            CadenceError(
                f"unknown engine '{engine}'",
                file=file,
                line=line_of(raw, "engine"),
                hint="engines: " + ", ".join(ENGINES),
            )
        )
        engine = "duckdb"
    path = str(raw.get("path", "warehouse.duckdb"))
    try:
        path = render_env_string(path, env_used)
    except CadenceError as exc:
        exc.line = line_of(raw, "path")
        errors.add(exc)
    threads = raw.get("threads", 4)
    problem = threads_problem(threads)
    if problem:
        errors.add(
            CadenceError(problem, file=file, line=line_of(raw, "threads"), hint=THREADS_HINT)
        )
        threads = 4
    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        errors.add(
            CadenceError(
                "warehouse settings must be a mapping",
                file=file,
                line=line_of(raw, "settings"),
                hint="write settings: {memory_limit: 4GB}",
            )
        )
        settings = {}
    bad = [k for k in ("threads", "worker_threads") if k in settings]  # DuckDB's names
    bad = [k for k in bad if threads_problem(settings[k])]
    for key in bad:
        problem = f"settings.{key}: {threads_problem(settings[key])}"
        errors.add(CadenceError(problem, file=file, line=line_of(settings, key), hint=THREADS_HINT))
    settings = {k: v for k, v in settings.items() if k not in bad}
    if engine == "duckdb":
        settings = access.without_access_settings(settings, raw.get("settings"), errors)
    strategy = raw.get("incremental_strategy", "append")
    if strategy not in INCREMENTAL_STRATEGIES:
        errors.add(
            CadenceError(
                f"unknown incremental_strategy '{strategy}'",
                file=file,
                line=line_of(raw, "incremental_strategy"),
                hint="incremental_strategy: " + " or ".join(INCREMENTAL_STRATEGIES),
            )
        )
        strategy = "append"
    compact = raw.get("compact_every", 10)
    if not isinstance(compact, int) or isinstance(compact, bool) or compact < 1:
        errors.add(
            CadenceError(
                "compact_every must be a positive integer",
                file=file,
                line=line_of(raw, "compact_every"),
                hint="write compact_every: 10",
            )
        )
        compact = 10
    if engine == "spark" and not (raw.get("remote") or raw.get("connect_url") or raw.get("master")):
        errors.add(
            CadenceError(
                "engine spark needs 'remote' (a Spark Connect URL) or 'master'",
                file=file,
                line=line_of(raw, "engine"),
                hint='write warehouse: {engine: spark, remote: "sc://localhost:15002"}',
            )
        )
    return WarehouseConfig(
        engine=str(engine),
        path=path,
        threads=threads,
        schema=str(raw.get("schema", "main")),
        settings=dict(settings),
        extensions=_parse_extensions(raw, errors),
        master=raw.get("master"),
        connect_url=raw.get("remote") or raw.get("connect_url"),
        catalog=raw.get("catalog"),
        incremental_strategy=str(strategy),
        compact_every=compact,
        allowed_paths=access.parse_allowed_paths(raw, root, errors),
    )


NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_THREADS = 64
THREADS_HINT = f"write threads: 4 (a whole number from 1 to {MAX_THREADS}; about the core count)"


def threads_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable thread count (DuckDB threads and parallel builds alike):
    each thread holds a connection and memory, so an absurd count would stall the machine."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        return (
            f"threads must be a whole number from 1 to {MAX_THREADS}, not {_shorten(repr(value))}"
        )
    if value > MAX_THREADS:
        return f"threads: {value} is more than cadence allows ({MAX_THREADS})"
    return None


def _parse_extensions(raw: dict[str, Any], errors: ErrorCollector) -> tuple[str, ...]:
    """DuckDB extension names: plain identifiers only (they end up in a ``load`` statement)."""
    value = raw.get("extensions") or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        errors.add(
            CadenceError(
                "'extensions' must be a list of extension names",
                file=PROJECT_FILE,
                line=line_of(raw, "extensions"),
                hint="write extensions: [httpfs, json]",
            )
        )
        return ()
    out = []
    for name in value:
        if isinstance(name, str) and NAME_RE.match(name) and len(name) <= 64:
            out.append(name)
            continue
        errors.add(
            CadenceError(
                f"invalid extension name {_shorten(repr(name))}",
                file=PROJECT_FILE,
                line=line_of(raw, "extensions"),
                hint="use DuckDB extension names such as httpfs, json, spatial "
                "(letters, digits and underscores)",
            )
        )
    return tuple(out)


def _parse_folder_defaults(
    raw: Any, project_name: str, top: dict[str, Any], errors: ErrorCollector
) -> tuple[tuple[tuple[str, ...], ConfigLayer], ...]:
    """Flatten nested folder defaults into (folder path parts, config layer), parents first."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        errors.add(
            CadenceError(
                "'models' must be a mapping of folder defaults",
                file=PROJECT_FILE,
                line=line_of(top, "models"),
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
                key.startswith("+")
                or not isinstance(value, dict)
                or norm in ("meta", "docs", "holdout", "persist_docs", "grants", "contract")
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
                        file=PROJECT_FILE,
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
            line = node.line if isinstance(node, LineDict) else None
            key_lines = {
                (k[1:] if k.startswith("+") else k): v
                for k, v in getattr(node, "key_lines", {}).items()
            }
            out.append((parts, ConfigLayer(values, PROJECT_FILE, line, key_lines)))

    visit(raw, ())
    out.sort(key=lambda item: len(item[0]))
    return tuple(out)
