"""The manifest cache: a loaded project kept under target/ so unchanged projects load instantly.

Input: a project root -> output: (``ParsedProject``, ``Dag``, ``Cadences``), from the cache when
every input file is unchanged, else from the stages (re-rendering only the models whose inputs
changed). Keyed by the content of every input: models, YAML, macros, tests, docs, seeds,
cadence.yml, and the values of the environment variables they read. A fast check compares file
sizes and modification times; when those differ, content hashes decide. Values that change per
run (now, run id) never enter it. A corrupt, stale or foreign cache is ignored and rewritten.
"""

from __future__ import annotations

import gc
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadence import __version__
from cadence import files as fs
from cadence.cadences import Cadences
from cadence.dag import Dag
from cadence.errors import CadenceError
from cadence.parser import Model, ParsedProject

CACHE_FILE = "target/manifest.pickle"
FORMAT = 6
INPUT_DIRS = (
    ("models", (".sql", ".yml", ".yaml", ".md")),
    ("seeds", (".csv", ".yml", ".yaml")),
    ("macros", (".sql",)),
    ("tests", (".sql",)),
)


@dataclass(frozen=True)
class Manifest:
    version: str
    stats: tuple[tuple[str, int, int], ...]
    env: tuple[tuple[str, str | None], ...]
    parsed: ParsedProject
    dag: Dag
    cadences: Cadences
    model_keys: dict[str, str]  # model name -> key of the inputs it was rendered from
    digests: dict[str, str]  # input path -> content hash
    written_ns: int  # when the cache was written (file-system clock)


def scan(root: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime_ns) of every input file, sorted; cheap (stat only, no reads)."""
    out: list[tuple[str, int, int]] = []
    st = os.stat(root / "cadence.yml")
    out.append(("cadence.yml", st.st_size, st.st_mtime_ns))
    prefix = len(str(root)) + 1  # scandir paths start with the root as given
    problems: list[CadenceError] = []
    for folder, suffixes in INPUT_DIRS:
        for path in fs.walk(root, folder, suffixes, problems):
            try:
                s = os.stat(path)
            except OSError:
                problems.append(CadenceError("vanished", file=str(path)))
                continue
            out.append((str(path)[prefix:].replace(os.sep, "/"), s.st_size, s.st_mtime_ns))
    if problems:  # links, FIFOs, unreadable folders: never a cache hit; the loader reports them
        out.append(("\0problems", len(problems), -1))
    out.sort()
    return tuple(out)


def read(root: Path) -> Manifest | None:
    path = root / CACHE_FILE
    try:
        with open(path, "rb") as fh:
            manifest = pickle.load(fh)
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a corrupt cache is rebuilt, never trusted
        return None
    if not isinstance(manifest, Manifest) or manifest.version != f"{__version__}/{FORMAT}":
        return None
    return manifest


def env_unchanged(manifest: Manifest) -> bool:
    return all(os.environ.get(name) == value for name, value in manifest.env)


def write(root: Path, manifest: Manifest) -> None:
    path = root / CACHE_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".manifest.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(manifest, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only checkout still works, just without the cache


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
    stats = scan(root)
    cached = read(root) if use_cache else None
    if (
        cached is not None
        and cached.stats == stats
        and env_unchanged(cached)
        and not _racy_changes(root, cached)
    ):
        return cached.parsed, cached.dag, cached.cadences
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
            env_used[name] = os.environ.get(name)
    digests = {
        f.path: f.digest
        for group in (files.models, files.yaml_files, files.macros, files.tests, files.docs)
        for f in group
    }
    digests.update({s.path: s.digest for s in files.seeds})
    digests["cadence.yml"] = files.config_digest
    manifest = Manifest(
        f"{__version__}/{FORMAT}",
        stats,
        tuple(sorted(env_used.items())),
        parsed,
        dag,
        cadences,
        keys,
        digests,
        time.time_ns(),
    )
    _ = parsed.view_hashes, parsed.by_name  # computed once, kept in the cache
    write(root, manifest)
    return parsed, dag, cadences


RACY_NS = 2_000_000_000


def _racy_changes(root: Path, cached: Manifest) -> bool:
    """A file modified within two seconds of the cache write may have changed without its size
    or mtime showing it (coarse file-system timestamps): compare its content for those."""
    from cadence.loader import digest

    for path, _size, mtime_ns in cached.stats:
        if mtime_ns >= cached.written_ns - RACY_NS:
            try:
                data = fs.read_bytes(root, root / path, limit=None)
            except CadenceError:
                return True
            if digest(data) != cached.digests.get(path):
                return True
    return False


def cache_stats(root: Path) -> dict[str, Any]:
    """For tests and `--debug`: whether a cache exists and matches the files now."""
    cached = read(root)
    return {
        "exists": cached is not None,
        "fresh": cached is not None and cached.stats == scan(root) and env_unchanged(cached),
    }
