"""cadence.yml, read and validated: the project's settings as a ``ProjectConfig``.

Input: the text of cadence.yml and the project root (whose name stands in for a missing
``name``) -> output: a frozen ``ProjectConfig`` with its ``WarehouseConfig``, channels
(``channelconfig``) and folder defaults (model config layers, ``config``), or None when the file
cannot be read at all. In a dbt project cadence.yml is optional and laid over ``DbtSettings``
(what dbt_project.yml and the profile say, read by ``load.dbt``): its ``warehouse:`` keys
override the profile's, its ``vars`` the project's, and its ``models:`` are dbt's form. Every
problem goes to the ``ErrorCollector`` with its line and a hint; unknown keys get a "did you
mean". ``{{ env_var() }}`` in the warehouse path renders in a
sandbox of its own, and the variables read are kept as digests, never as values.

Reads no files: ``loader`` hands it cadence.yml's text, and ``plan.manifest`` its parsed
YAML on every cached load (``parse_project_tree``); ``env_var()`` calls with literal arguments
render without importing Jinja. ``WarehouseConfig`` is what the engines connect with.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cadence.errors import CadenceError, ErrorCollector, unknown_key_error
from cadence.load import access
from cadence.load.channelconfig import ChannelConfig, parse_channels
from cadence.load.config import ConfigLayer, parse_folder_defaults
from cadence.load.costconfig import CostConfig, parse_cost
from cadence.load.envtemplate import render_env_string, shorten
from cadence.load.freshness import AlertsConfig, parse_alerts
from cadence.load.layout import CADENCE_LAYOUT, Layout
from cadence.load.yamlfile import LineDict, line_of, load_yaml, mapping_at, settings_mapping

PROJECT_FILE = "cadence.yml"
TOP_KEYS = (
    "name",
    "version",
    "warehouse",
    "timezone",
    "channels",
    "models",
    "seeds",
    "snapshots",
    "vars",
    "tests",
    "export_root",
    "history",
    "cost",
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
    "external_root",
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
    database: str | None = None  # dbt's target.database (DuckDB: the file's stem)
    external_root: str | None = None  # a dbt profile's external_root (files models may read)
    # folders (or URL prefixes) models may read and write besides the project folder: the
    # user's warehouse.allowed_paths, absolute; a loader that declares more (a dbt profile's
    # external_root, attached databases) adds them here (engines.access reads this list)
    allowed_paths: tuple[str, ...] = ()
    # where ``settings`` were read (cadence.yml, or a dbt profile): what DuckDB refuses names it
    settings_file: str = "cadence.yml"


@dataclass(frozen=True)
class DbtSettings:
    """What a dbt project's own files say, as plain data (``load.dbt`` reads dbt_project.yml and
    the profile; the manifest cache keeps it, unless environment variables were read)."""

    name: str
    warehouse: dict[str, Any]  # the profile target's values (engine, path, schema, ...)
    vars: dict[str, Any]  # dbt_project.yml's global vars
    package_vars: dict[str, dict[str, Any]]  # dbt_project.yml's vars scoped to a package
    profile_name: str | None
    target_name: str | None
    profile_file: str | None  # where the profile was read (messages about its values)
    env_used: tuple[tuple[str, str | None], ...] = ()


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
    cost: CostConfig | None = None  # the price of compute (None: no money figures)
    alerts: AlertsConfig | None = None  # alerts: {webhook: ...} (observe wing)
    layout: Layout = CADENCE_LAYOUT  # where the project's files are
    dbt: DbtSettings | None = None  # a dbt project's own settings (None: a cadence project)
    cli_vars: dict[str, Any] = field(default_factory=dict)  # --vars: over every other var
    # a dbt project's snapshots: configs (the root project's), as (folders, layer), parents first
    snapshot_defaults: tuple[tuple[tuple[str, ...], ConfigLayer], ...] = ()
    # cadence.yml's snapshots: (dbt's form), laid over snapshot_defaults, parents first
    own_snapshot_defaults: tuple[tuple[tuple[str, ...], ConfigLayer], ...] = ()

    @property
    def is_dbt(self) -> bool:
        return self.dbt is not None

    @property
    def target_name(self) -> str:
        return (self.dbt.target_name if self.dbt else None) or "default"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def channel(self, name: str) -> ChannelConfig | None:
        for c in self.channels:
            if c.name == name:
                return c
        return None


def parse_project_config(
    text: str | None,
    root: Path,
    errors: ErrorCollector,
    *,
    dbt: DbtSettings | None = None,
    layout: Layout = CADENCE_LAYOUT,
    cli_vars: dict[str, Any] | None = None,
) -> ProjectConfig | None:
    """Validate cadence.yml (None: there is none, as a dbt project may have), laid over a dbt
    project's ``dbt`` settings when given. Returns None when it cannot be read at all."""
    try:
        raw = load_yaml(text, PROJECT_FILE) if text is not None else LineDict()
    except CadenceError as exc:
        errors.add(exc)
        return None
    return parse_project_tree(raw, root, errors, dbt=dbt, layout=layout, cli_vars=cli_vars)


def parse_project_tree(
    raw: Any,
    root: Path,
    errors: ErrorCollector,
    *,
    dbt: DbtSettings | None = None,
    layout: Layout = CADENCE_LAYOUT,
    cli_vars: dict[str, Any] | None = None,
) -> ProjectConfig | None:
    """``parse_project_config`` of cadence.yml as parsed YAML (the load cache keeps the tree,
    never what the environment gave it: ``env_var()`` in the warehouse path renders here)."""
    file = PROJECT_FILE
    if raw is None and dbt is not None:
        raw = LineDict()  # an empty cadence.yml beside dbt_project.yml
    hint = "start from 'cadence init' or see docs/reference/config.md"
    if not settings_mapping(raw, file, "cadence.yml", TOP_KEYS, errors, hint):
        return None
    name = raw.get("name")
    if dbt is not None:
        if name is not None and name != dbt.name:
            errors.add(
                CadenceError(
                    f"cadence.yml names the project '{name}', dbt_project.yml '{dbt.name}'",
                    file=file,
                    line=line_of(raw, "name"),
                    hint="remove name: from cadence.yml (the dbt project's name is used)",
                )
            )
        name = dbt.name
    elif not name or not isinstance(name, str):
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
                f"unknown timezone '{shorten(str(timezone))}'",
                file=file,
                line=line_of(raw, "timezone"),
                hint="use an IANA name such as Europe/Berlin, America/New_York or UTC",
            )
        )
        timezone = "UTC"
    base = dbt.warehouse if dbt is not None else None
    warehouse = _parse_warehouse(raw.get("warehouse"), raw, errors, env_used, root, base, dbt)
    channels = parse_channels(raw.get("channels"), raw, errors)
    export_root = _parse_export_root(raw, errors)
    keep_days = _parse_history(raw, errors)
    cost = parse_cost(raw, errors)
    alerts = parse_alerts(raw, errors)
    defaults = parse_folder_defaults(raw.get("models"), str(name), line_of(raw, "models"), errors)
    snapshot_tree = mapping_at(
        raw,
        "snapshots",
        errors,
        "write snapshots: {my_project: {orders_snap: {+cadence: daily}}}",
        file,
        " of snapshot configs",
    )
    own_snapshots: tuple[tuple[tuple[str, ...], ConfigLayer], ...] = ()
    if snapshot_tree:
        from cadence.load.dbt.configs import folder_defaults  # dbt's form; loaded only if used

        own_snapshots = folder_defaults(snapshot_tree, file, str(name))
    seed_config = (
        mapping_at(raw, "seeds", errors, "write seeds: {column_types: {...}} or remove it", file)
        or {}
    )
    vars_ = mapping_at(raw, "vars", errors, "write vars: {name: value}", file) or {}
    if dbt is not None:
        vars_ = {**dbt.vars, **vars_}
        env_used = [*dbt.env_used, *env_used]
    return ProjectConfig(
        name=str(name),
        timezone=str(timezone),
        warehouse=warehouse,
        channels=channels,
        folder_defaults=defaults,
        own_snapshot_defaults=own_snapshots,
        seed_config=dict(seed_config),
        vars=_plain(vars_),
        env_vars_used=tuple(env_used),
        export_root=export_root,
        history_keep_days=keep_days,
        cost=cost,
        alerts=alerts,
        layout=layout,
        dbt=dbt,
        cli_vars=dict(cli_vars or {}),
    )


TZ_NAME = re.compile(r"^[A-Za-z0-9_+-]{1,40}(/[A-Za-z0-9_+-]{1,40}){0,3}$")  # IANA key shape


def _parse_history(raw: dict[str, Any], errors: ErrorCollector) -> int | None:
    """``history: {keep_days: N}``: N whole days, 1 to 36500."""
    value = mapping_at(raw, "history", errors, "write history: {keep_days: 90}", PROJECT_FILE)
    if value is None:
        return None
    line = line_of(raw, "history")
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


def _parse_warehouse(
    raw: Any,
    top: dict[str, Any],
    errors: ErrorCollector,
    env_used: list[tuple[str, str | None]],
    root: Path,
    base: dict[str, Any] | None = None,
    dbt: DbtSettings | None = None,
) -> WarehouseConfig:
    """cadence.yml's ``warehouse:``; over ``base`` (a dbt profile's target) when given: a key
    cadence.yml sets wins, the others come from the profile (checked where they were read)."""
    file = PROJECT_FILE
    if raw is None and base is None:
        if dbt is not None:  # no profile and no warehouse: load.dbt already said so
            return WarehouseConfig(database=dbt.name)
        return WarehouseConfig()
    if raw is None:
        raw = LineDict()
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
    own = set(raw)
    profile_file = dbt.profile_file if dbt is not None and dbt.profile_file else file

    def at(key: str) -> dict[str, Any]:
        """Where a value was read: cadence.yml, or the profile it came from."""
        if key in own:
            return {"file": file, "line": line_of(raw, key)}
        return {"file": profile_file, "line": None}

    if base is not None:
        raw = _over(base, raw)
    engine = raw.get("engine", "duckdb")
    if engine not in ENGINES:
        errors.add(
            CadenceError(
                f"unknown engine '{engine}'",
                **at("engine"),
                hint="engines: " + ", ".join(ENGINES),
            )
        )
        engine = "duckdb"
    path = str(raw.get("path", "warehouse.duckdb"))
    try:
        if "path" in own:  # a profile's values were rendered when it was read
            path = render_env_string(path, env_used)
    except CadenceError as exc:
        exc.line = line_of(raw, "path")
        errors.add(exc)
    threads = raw.get("threads", 1 if dbt is not None else 4)  # dbt's default is 1
    problem = threads_problem(threads)
    if problem:
        errors.add(CadenceError(problem, **at("threads"), hint=THREADS_HINT))
        threads = 4
    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        errors.add(
            CadenceError(
                "warehouse settings must be a mapping",
                **at("settings"),
                hint="write settings: {memory_limit: 4GB}",
            )
        )
        settings = {}
    bad = [k for k in ("threads", "worker_threads") if k in settings]  # DuckDB's names
    bad = [k for k in bad if threads_problem(settings[k])]
    for key in bad:
        problem = f"settings.{key}: {threads_problem(settings[key])}"
        errors.add(
            CadenceError(
                problem, file=at("settings")["file"], line=line_of(settings, key), hint=THREADS_HINT
            )
        )
    settings = {k: v for k, v in settings.items() if k not in bad}
    if engine == "duckdb":
        settings = access.without_access_settings(settings, raw.get("settings"), errors)
    strategy = raw.get("incremental_strategy", "append")
    if strategy not in INCREMENTAL_STRATEGIES:
        errors.add(
            CadenceError(
                f"unknown incremental_strategy '{strategy}'",
                **at("incremental_strategy"),
                hint="incremental_strategy: " + " or ".join(INCREMENTAL_STRATEGIES),
            )
        )
        strategy = "append"
    compact = raw.get("compact_every", 10)
    if not isinstance(compact, int) or isinstance(compact, bool) or compact < 1:
        errors.add(
            CadenceError(
                "compact_every must be a positive integer",
                **at("compact_every"),
                hint="write compact_every: 10",
            )
        )
        compact = 10
    if engine == "spark" and not (raw.get("remote") or raw.get("connect_url") or raw.get("master")):
        errors.add(
            CadenceError(
                "engine spark needs 'remote' (a Spark Connect URL) or 'master'",
                **at("engine"),
                hint='write warehouse: {engine: spark, remote: "sc://localhost:15002"}',
            )
        )
    return WarehouseConfig(
        engine=str(engine),
        path=path,
        threads=threads,
        schema=str(raw.get("schema", "main")),
        settings=dict(settings),
        extensions=_parse_extensions(raw, errors, at("extensions")["file"]),
        master=raw.get("master"),
        connect_url=raw.get("remote") or raw.get("connect_url"),
        catalog=raw.get("catalog"),
        incremental_strategy=str(strategy),
        compact_every=compact,
        database=_database(raw, path),
        external_root=str(raw["external_root"]) if raw.get("external_root") else None,
        allowed_paths=_allowed_paths(raw, root, errors),
        settings_file=str(at("settings")["file"]),
    )


def _over(base: dict[str, Any], raw: dict[str, Any]) -> LineDict:
    """The profile's values with cadence.yml's keys laid over them; lines are cadence.yml's."""
    merged = LineDict({**base, **raw})
    merged.line = line_of(raw)
    merged.key_lines = dict(getattr(raw, "key_lines", {}) or {})
    return merged


def _allowed_paths(raw: dict[str, Any], root: Path, errors: ErrorCollector) -> tuple[str, ...]:
    """``warehouse.allowed_paths``, and a dbt profile's ``external_root`` (its models write and
    read files there: dbt-duckdb's external materialization and ``adapter.external_root()``)."""
    found = access.parse_allowed_paths(raw, root, errors)
    external = raw.get("external_root")
    if isinstance(external, str) and external.strip() and external.strip() != ".":
        found = (*found, access.absolute_location(external.strip(), root))
    return found


def _database(raw: dict[str, Any], path: str) -> str | None:
    """dbt's target.database: DuckDB names a database after its file."""
    if raw.get("engine", "duckdb") != "duckdb":
        return None
    return "memory" if path == ":memory:" else Path(path).stem


NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_THREADS = 64
THREADS_HINT = f"write threads: 4 (a whole number from 1 to {MAX_THREADS}; about the core count)"


def threads_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable thread count (DuckDB threads and parallel builds alike):
    each thread holds a connection and memory, so an absurd count would stall the machine."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        return f"threads must be a whole number from 1 to {MAX_THREADS}, not {shorten(repr(value))}"
    if value > MAX_THREADS:
        return f"threads: {value} is more than cadence allows ({MAX_THREADS})"
    return None


def _parse_extensions(
    raw: dict[str, Any], errors: ErrorCollector, file: str = PROJECT_FILE
) -> tuple[str, ...]:
    """DuckDB extension names: plain identifiers only (they end up in a ``load`` statement)."""
    value = raw.get("extensions") or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        errors.add(
            CadenceError(
                "'extensions' must be a list of extension names",
                file=file,
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
                f"invalid extension name {shorten(repr(name))}",
                file=file,
                line=line_of(raw, "extensions"),
                hint="use DuckDB extension names such as httpfs, json, spatial "
                "(letters, digits and underscores)",
            )
        )
    return tuple(out)
