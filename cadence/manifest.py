"""The manifest cache: a loaded project kept under target/ so unchanged projects load instantly.

Input: a project root -> output: (``ParsedProject``, ``Dag``, ``Cadences``), from the cache when
every input file is unchanged, else from the stages (re-rendering only the models whose inputs
changed). Keyed by the content of every input: models, YAML, macros, tests, docs, seeds,
cadence.yml, and digests of the environment variables they read. Every load compares a digest of
each input file's bytes with the cached one, so an edit that keeps size and mtime (``cp -p``,
``touch -r``, ``tar x``) is seen. The cache is data only (JSON decoded into a fixed set of
frozen values: loading it runs no code), carries a keyed checksum (a cache edited by hand or
planted is ignored, never trusted to produce SQL that is not in the files), and stores digests of
env var values, never the values; cadence.yml is parsed again on every load, so no value it
reads from the environment is stored. A corrupt, stale or foreign cache is ignored and rewritten.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadence import __version__, artifacts
from cadence import files as fs
from cadence.cadences import Cadences, ModelCadence, Origin
from cadence.config import ConfigLayer, ModelConfig
from cadence.dag import Dag
from cadence.errors import CadenceError
from cadence.loader import ChannelConfig, ProjectConfig, WarehouseConfig, env_digest
from cadence.parser import Column, Model, ParsedProject
from cadence.properties import Seed, Source
from cadence.schedule import Schedule, TickSet
from cadence.testspecs import DataTest

CACHE_FILE = "target/manifest.json"
FORMAT = 7
MAGIC = b"cadence-manifest"
INPUT_DIRS = (
    ("models", (".sql", ".yml", ".yaml", ".md")),
    ("seeds", (".csv", ".yml", ".yaml")),
    ("macros", (".sql",)),
    ("tests", (".sql",)),
)


@dataclass(frozen=True)
class Manifest:
    version: str
    env: tuple[tuple[str, str | None], ...]  # (name, digest of the value) for every env var read
    parsed: ParsedProject
    dag: Dag
    cadences: Cadences
    model_keys: dict[str, str]  # model name -> key of the inputs it was rendered from
    digests: dict[str, str]  # input path -> content hash


def scan(root: Path) -> tuple[str, ...]:
    """The path of every input file, sorted, cadence.yml first (directory listings only)."""
    out: list[str] = []
    prefix = len(str(root)) + 1  # scandir paths start with the root as given
    problems: list[CadenceError] = []
    for folder, suffixes in INPUT_DIRS:
        for entry in fs.walk_entries(root, folder, suffixes, problems):
            out.append(entry.path[prefix:].replace(os.sep, "/"))
    if problems:  # links, FIFOs, unreadable folders: never a cache hit; the loader reports them
        out.append("\0problems")
    out.sort()
    return ("cadence.yml", *out)


def _unchanged(root: Path, cached: Manifest, paths: tuple[str, ...]) -> bytes | None:
    """cadence.yml's bytes when every input file has the content the cache was built from."""
    from cadence.loader import digest

    digests = cached.digests
    if len(paths) != len(digests):
        return None
    config = b""
    base = str(root) + os.sep
    for path in paths:
        try:
            with open(base + path, "rb") as fh:
                data = fh.read()
        except (OSError, ValueError):  # gone, unreadable, or the problems marker
            return None
        if digests.get(path) != digest(data):
            return None
        if path == "cadence.yml":
            config = data
    return config


# -- the data-only format ---------------------------------------------------------------------
# JSON; a frozen value is {"~": class name, "a": [field values]} (only the classes below), a
# tuple {"(": [...]}, a dict with keys that are not strings (or look like tags) {"{": [[k, v]]},
# a set {"s": [...]}, a project warning {"!": [message, file, line, column, hint, severity]}.
_CLASSES: dict[str, type] = {
    c.__name__: c
    for c in (
        Manifest,
        ParsedProject,
        Model,
        ModelConfig,
        ConfigLayer,
        Column,
        Seed,
        Source,
        DataTest,
        ProjectConfig,
        WarehouseConfig,
        ChannelConfig,
        Dag,
        Cadences,
        ModelCadence,
        Origin,
        Schedule,
        TickSet,
    )
}
_TAGS = frozenset({"~", "a", "(", "{", "s", "!"})


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, tuple):
        return {"(": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        if all(type(k) is str and k not in _TAGS for k in value):
            return {k: _encode(v) for k, v in value.items()}
        return {"{": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        return {"s": [_encode(v) for v in value]}
    if isinstance(value, CadenceError):
        e = value
        return {"!": [e.message, e.file, e.line, e.column, e.hint, e.severity]}
    cls = type(value)
    if _CLASSES.get(cls.__name__) is cls:
        fields = dataclasses.fields(value)
        return {"~": cls.__name__, "a": [_encode(getattr(value, f.name)) for f in fields]}
    raise TypeError(f"cannot cache a {cls.__name__}")


def _decode(d: dict[str, Any]) -> Any:
    if len(d) > 2:
        return d
    if "~" in d:
        return _CLASSES[d["~"]](*d["a"])  # an unknown name is a KeyError: the cache is ignored
    if "(" in d:
        return tuple(d["("])
    if "{" in d:
        return {(tuple(k) if isinstance(k, list) else k): v for k, v in d["{"]}
    if "s" in d:
        return frozenset(d["s"])
    if "!" in d:
        message, file, line, column, hint, severity = d["!"]
        return CadenceError(
            message, file=file, line=line, column=column, hint=hint, severity=severity
        )
    return d


def _key() -> bytes:
    """The key of the cache checksum: per user, outside the project (so a cache copied or
    committed with a checkout does not verify), created owner-only on first use."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cadence"
    path = base / "manifest.key"
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except OSError:
        pass
    try:
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32))
        return path.read_bytes()
    except OSError:
        return b""  # no home to keep a key in: an unkeyed checksum still catches edits


def _checksum(key: bytes, payload: bytes) -> bytes:
    return hashlib.blake2b(payload, key=key[:64], digest_size=32).hexdigest().encode()


def read(root: Path) -> Manifest | None:
    path = root / CACHE_FILE
    try:
        with open(path, "rb") as fh:
            head = fh.readline()
            payload = fh.read()
    except OSError:
        return None
    parts = head.split()
    if len(parts) != 3 or parts[0] != MAGIC or parts[1] != f"{__version__}/{FORMAT}".encode():
        return None
    if not hmac.compare_digest(parts[2], _checksum(_key(), payload)):
        return None  # edited, planted or written with another key: never trusted
    try:
        manifest = json.loads(payload, object_hook=_decode)
    except Exception:  # noqa: BLE001 - a corrupt cache is rebuilt, never trusted
        return None
    if not isinstance(manifest, Manifest) or manifest.version != f"{__version__}/{FORMAT}":
        return None
    return manifest


def env_unchanged(manifest: Manifest) -> bool:
    return all(env_digest(os.environ.get(name)) == value for name, value in manifest.env)


def write(root: Path, manifest: Manifest) -> None:
    try:
        payload = json.dumps(_encode(manifest), separators=(",", ":")).encode()
    except (TypeError, ValueError):
        return  # something not cacheable: the next load renders again
    head = b" ".join((MAGIC, manifest.version.encode(), _checksum(_key(), payload))) + b"\n"
    try:
        artifacts.tighten_target(root)
        artifacts.write_bytes(root / CACHE_FILE, head + payload, root)
    except (CadenceError, OSError):
        pass  # a read-only checkout or a full disk still works, just without the cache


def load(root: Path, *, use_cache: bool = True) -> tuple[ParsedProject, Dag, Cadences]:
    """The project at ``root``, from the cache when nothing it was built from changed."""
    # Loading creates many small objects that live as long as the process: the cyclic garbage
    # collector would rescan them over and over (doubling load time at 10,000 models). Pause
    # it while loading, then move what was loaded out of its sight.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _load(root, use_cache)
    finally:
        if paused:
            gc.freeze()
            gc.enable()


def _load(root: Path, use_cache: bool) -> tuple[ParsedProject, Dag, Cadences]:
    paths = scan(root)
    cached = read(root) if use_cache else None
    if cached is not None and env_unchanged(cached):
        config_text = _unchanged(root, cached, paths)
        if config_text is not None:
            config = _config_again(root, config_text)
            if config is not None:
                parsed = dataclasses.replace(cached.parsed, config=config)
                return parsed, cached.dag, cached.cadences
    from cadence.cadences import resolve_cadences
    from cadence.dag import build_dag
    from cadence.errors import ProjectErrors
    from cadence.loader import load_files
    from cadence.parser import make_environment, parse_project

    problems: list[CadenceError] = []  # every problem of every stage, reported at once
    files = load_files(root, problems)
    env = make_environment(files)
    reuse: dict[str, Model] = {}
    if cached is not None:
        reuse = {
            key: m
            for m in cached.parsed.models
            if (key := cached.model_keys.get(m.name)) is not None
        }
    keys: dict[str, str] = {}
    parsed = parse_project(files, env, reuse=reuse, keys_out=keys, errors_out=problems)
    dag = build_dag(parsed, problems)
    cadences = resolve_cadences(parsed, dag, problems)
    if problems:
        raise ProjectErrors(problems)
    env_used = dict(files.config.env_vars_used)
    for m in parsed.models:
        for name, _value in m.env_vars:
            env_used[name] = env_digest(os.environ.get(name))
    digests = {
        f.path: f.digest
        for group in (files.models, files.yaml_files, files.macros, files.tests, files.docs)
        for f in group
    }
    digests.update({s.path: s.digest for s in files.seeds})
    digests["cadence.yml"] = files.config_digest
    manifest = Manifest(
        f"{__version__}/{FORMAT}",
        tuple(sorted(env_used.items())),
        dataclasses.replace(parsed, config=_NO_CONFIG),  # parsed again on every load
        dag,
        cadences,
        keys,
        digests,
    )
    write(root, manifest)
    return parsed, dag, cadences


_NO_CONFIG = ProjectConfig("", "UTC", WarehouseConfig(), (), (), {}, {})


def _config_again(root: Path, text: bytes) -> ProjectConfig | None:
    """cadence.yml as it is now (cheap: one small file); the cache never holds its values."""
    from cadence.errors import ErrorCollector
    from cadence.loader import parse_project_config

    errors = ErrorCollector()
    try:
        config = parse_project_config(text.decode("utf-8"), root, errors)
    except (CadenceError, UnicodeDecodeError):
        return None
    return config if config is not None and not errors.errors else None


def cache_stats(root: Path) -> dict[str, Any]:
    """For tests and `--debug`: whether a cache exists and matches the files now."""
    cached = read(root)
    return {
        "exists": cached is not None,
        "fresh": cached is not None
        and env_unchanged(cached)
        and _unchanged(root, cached, scan(root)) is not None,
    }
