"""Load a project from disk: the only stage that reads project files.

Input: a folder (or any folder beneath a project) -> output: ``ProjectFiles``, the validated
``cadence.yml`` plus the text of every model, YAML, seed, macro, test and docs file, each with a
content hash (the manifest cache keys on them). Every problem is reported at once.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cadence.config import ALL_MODEL_KEYS, ConfigLayer
from cadence.errors import (
    CadenceError,
    ErrorCollector,
    ProjectErrors,
    did_you_mean,
    unknown_key_error,
)
from cadence.yamlfile import LineDict, line_of, load_yaml

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
)
WAREHOUSE_KEYS = (
    "engine",
    "path",
    "threads",
    "schema",
    "settings",
    "extensions",
    "master",
    "connect_url",
)
ENGINES = ("duckdb", "spark")
CHANNEL_KEYS = ("cadence", "kind", "description", "export", "suppress", "owner")
DOCS_BLOCK = re.compile(r"{%-?\s*docs\s+(\w+)\s*-?%}(.*?){%-?\s*enddocs\s*-?%}", re.S)


@dataclass(frozen=True)
class SourceFile:
    """A text file of the project: path relative to the root, its text and hash."""

    path: str
    text: str
    digest: str


@dataclass(frozen=True)
class SeedFile:
    name: str
    path: str
    digest: str


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    cadence: str
    kind: str | None = None
    description: str | None = None
    export: dict[str, Any] | None = None
    suppress: tuple[str, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class WarehouseConfig:
    engine: str = "duckdb"
    path: str = "warehouse.duckdb"
    threads: int = 4
    schema: str = "main"
    settings: dict[str, Any] = field(default_factory=dict)
    extensions: tuple[str, ...] = ()
    master: str | None = None
    connect_url: str | None = None


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

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def channel(self, name: str) -> ChannelConfig | None:
        for c in self.channels:
            if c.name == name:
                return c
        return None


@dataclass(frozen=True)
class ProjectFiles:
    """Everything read from disk, ready for parsing."""

    root: Path
    config: ProjectConfig
    config_digest: str
    models: tuple[SourceFile, ...]
    yaml_files: tuple[SourceFile, ...]
    seeds: tuple[SeedFile, ...]
    macros: tuple[SourceFile, ...]
    tests: tuple[SourceFile, ...]
    docs: tuple[SourceFile, ...]

    def doc_blocks(self) -> dict[str, str]:
        blocks: dict[str, str] = {}
        for f in self.docs:
            for m in DOCS_BLOCK.finditer(f.text):
                blocks[m.group(1)] = m.group(2).strip()
        return blocks


def find_project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding cadence.yml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    raise CadenceError(
        f"no {PROJECT_FILE} found in {start} or any parent folder",
        hint="run inside a cadence project, pass --project-dir, "
        "or create one with 'cadence init NAME'",
    )


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def env_digest(value: str | None) -> str | None:
    """What the cache keeps of an environment variable's value: a digest, never the value."""
    return None if value is None else digest(b"env:" + value.encode("utf-8", "surrogatepass"))


def _read(root: Path, path: Path) -> SourceFile:
    data = path.read_bytes()
    rel = path.relative_to(root).as_posix()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CadenceError(
            f"file is not UTF-8 (byte {exc.start})", file=rel, hint="save the file as UTF-8"
        ) from None
    return SourceFile(rel, text, digest(data))


def _walk(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        return []
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(suffixes) and not name.startswith("."):
                found.append(Path(dirpath) / name)
    return found


def load_files(root: Path, errors_out: list[CadenceError] | None = None) -> ProjectFiles:
    """Read the project at ``root``; raises ``ProjectErrors`` listing every problem (or, with
    ``errors_out``, adds them there and goes on when cadence.yml could be read at all)."""
    errors = ErrorCollector()
    config_path = root / PROJECT_FILE
    config_bytes = config_path.read_bytes()
    config = parse_project_config(config_bytes.decode("utf-8", errors="replace"), root, errors)

    def read_all(paths: list[Path]) -> tuple[SourceFile, ...]:
        out = []
        for p in paths:
            try:
                out.append(_read(root, p))
            except CadenceError as exc:
                errors.add(exc)
        return tuple(out)

    models_dir = root / "models"
    models = read_all(_walk(models_dir, (".sql",)))
    yaml_files = read_all(
        _walk(models_dir, (".yml", ".yaml")) + _walk(root / "seeds", (".yml", ".yaml"))
    )
    docs = read_all(_walk(models_dir, (".md",)))
    macros = read_all(_walk(root / "macros", (".sql",)))
    tests = read_all(_walk(root / "tests", (".sql",)))
    seeds = tuple(
        SeedFile(p.stem, p.relative_to(root).as_posix(), digest(p.read_bytes()))
        for p in _walk(root / "seeds", (".csv",))
    )
    if config is None:
        errors.raise_if_any()
        raise AssertionError("unreachable")
    _check_folder_defaults(config, root, errors)
    errors.finish(errors_out)
    return ProjectFiles(
        root=root,
        config=config,
        config_digest=digest(config_bytes),
        models=models,
        yaml_files=yaml_files,
        seeds=seeds,
        macros=macros,
        tests=tests,
        docs=docs,
    )


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
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        errors.add(
            CadenceError(
                f"unknown timezone '{timezone}'",
                file=file,
                line=line_of(raw, "timezone"),
                hint="use an IANA name such as Europe/Berlin, America/New_York or UTC",
            )
        )
        timezone = "UTC"
    warehouse = _parse_warehouse(raw.get("warehouse"), raw, errors, env_used)
    channels = _parse_channels(raw.get("channels"), raw, errors)
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
    )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def render_env_string(text: str, env_used: list[tuple[str, str | None]]) -> str:
    """Render ``{{ env_var('X', 'default') }}`` in a cadence.yml value."""
    if "{{" not in text:
        return text
    import jinja2

    def env_var(name: str, default: str | None = None) -> str:
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
        return jinja2.Environment().from_string(text).render(env_var=env_var)
    except jinja2.TemplateError as exc:
        raise CadenceError(
            f"invalid template in '{text}': {exc}",
            file=PROJECT_FILE,
            hint="write {{ env_var('NAME', 'default') }}",
        ) from None


def _parse_warehouse(
    raw: Any, top: dict[str, Any], errors: ErrorCollector, env_used: list[tuple[str, str | None]]
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
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        errors.add(
            CadenceError(
                "threads must be a positive integer",
                file=file,
                line=line_of(raw, "threads"),
                hint="write threads: 4",
            )
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
    return WarehouseConfig(
        engine=str(engine),
        path=path,
        threads=threads,
        schema=str(raw.get("schema", "main")),
        settings=dict(settings),
        extensions=tuple(str(x) for x in (raw.get("extensions") or ())),
        master=raw.get("master"),
        connect_url=raw.get("connect_url"),
    )


NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _parse_channels(
    raw: Any, top: dict[str, Any], errors: ErrorCollector
) -> tuple[ChannelConfig, ...]:
    file = PROJECT_FILE
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        errors.add(
            CadenceError(
                "'channels' must be a mapping of channel name to settings",
                file=file,
                line=line_of(top, "channels"),
                hint='write channels: {email: {cadence: "daily at 05:00"}}',
            )
        )
        return ()
    out = []
    for name, spec in raw.items():
        line = line_of(raw, name)
        if not NAME_RE.match(str(name)):
            errors.add(
                CadenceError(
                    f"invalid channel name '{name}'",
                    file=file,
                    line=line,
                    hint="use letters, digits and underscores (no '/', '.' or spaces)",
                )
            )
            continue
        if isinstance(spec, str):
            spec = {"cadence": spec}
        if not isinstance(spec, dict):
            errors.add(
                CadenceError(
                    f"channel '{name}' must be a mapping",
                    file=file,
                    line=line,
                    hint="write " + f'{name}: {{cadence: "every 15 minutes"}}',
                )
            )
            continue
        for key in spec:
            if key not in CHANNEL_KEYS:
                errors.add(
                    unknown_key_error(
                        key, CHANNEL_KEYS, what="channel", file=file, line=line_of(spec, key)
                    )
                )
        if "cadence" not in spec:
            errors.add(
                CadenceError(
                    f"channel '{name}' has no cadence",
                    file=file,
                    line=line,
                    hint='add cadence: "every 15 minutes" (or "on demand")',
                )
            )
            continue
        suppress = spec.get("suppress") or ()
        if isinstance(suppress, str):
            suppress = (suppress,)
        export = spec.get("export")
        out.append(
            ChannelConfig(
                name=str(name),
                cadence=str(spec["cadence"]),
                kind=spec.get("kind"),
                description=spec.get("description"),
                export=_plain(export) if isinstance(export, dict) else None,
                suppress=tuple(str(s) for s in suppress),
                line=line_of(spec, "cadence") or line,
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


def _check_folder_defaults(config: ProjectConfig, root: Path, errors: ErrorCollector) -> None:
    for parts, layer in config.folder_defaults:
        if parts and not (root / "models" / Path(*parts)).is_dir():
            here = root / "models" / Path(*parts[:-1])
            options = [p.name for p in here.iterdir() if p.is_dir()] if here.is_dir() else []
            guess = did_you_mean(parts[-1], options)
            errors.add(
                CadenceError(
                    f"folder defaults name models/{'/'.join(parts)}, which does not exist",
                    file=PROJECT_FILE,
                    line=layer.line,
                    hint=(
                        f"did you mean '{guess}'?"
                        if guess
                        else "create the folder or remove these defaults"
                    ),
                )
            )


__all__ = [
    "ChannelConfig",
    "ProjectConfig",
    "ProjectErrors",
    "ProjectFiles",
    "SeedFile",
    "SourceFile",
    "WarehouseConfig",
    "find_project_root",
    "load_files",
]
