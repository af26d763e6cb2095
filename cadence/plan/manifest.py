"""The manifest cache: a loaded project kept under target/ so unchanged projects load instantly.

Input: a project root and the command line's ``LoadOptions`` -> output: (``ParsedProject``,
``Dag``, ``Cadences``), from the cache when every input file is unchanged, else from the stages
(re-rendering only the models whose inputs changed). Keyed by the content of every input: models,
YAML, macros, tests, docs, seeds, cadence.yml (in a dbt project also dbt_project.yml, the
profile, packages.yml and every installed package's files, found through the cached ``Layout``),
the options (``--vars``, ``--target``) and digests of the environment variables they read.
The cache lives in ``artifacts.target_dir``: target/ or, in a dbt project,
``<target-path>/cadence/``. Every load reads every input
file whole and compares one digest of all their contents with the cached one, so an edit that
keeps size and mtime (``cp -p``, ``touch -r``, ``tar x``) is seen. The cache is data only (JSON
column tables decoded into a fixed set of frozen values, cadence/cachefile.py: loading it runs
no code), carries keyed checksums (a cache edited by hand or planted is ignored, never trusted to
produce SQL that is not in the files), and stores digests of env var values, never the values;
cadence.yml is kept as parsed YAML (its ``env_var()`` templates, never their values) and
validated again on every load with the environment as it is then, without PyYAML or Jinja;
a dbt project's settings (``DbtSettings``) are kept only when its files read no environment
variable, else read again (which imports ``load.dbt``; otherwise a cached load never does).
What deciding what is due does not read (SQL, tests, DAG edges, config provenance) is decoded
only on first use, from the file's second part, read and verified while the inputs are read.
A corrupt, stale or foreign cache is ignored and rewritten.
"""

from __future__ import annotations

import gc
import hmac
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cadence import __version__
from cadence.disk import artifacts
from cadence.errors import CadenceError
from cadence.load import inputs
from cadence.load.cachefile import Codec, lazy_field, with_fields
from cadence.load.config import ModelConfig
from cadence.load.digests import digest, env_digest
from cadence.load.inputs import (  # noqa: F401 - scan, combine, read_inputs: the cache's names
    Fingerprint,
    cache_key,
    checksum,
    combine,
    inputs_now,
    options_key,
    read_inputs,
    scan,
)
from cadence.load.layout import Layout, LoadOptions, PackagePaths
from cadence.load.parser import Column, Model, ParsedProject
from cadence.load.projectconfig import DbtSettings, ProjectConfig
from cadence.load.properties import Seed, Source
from cadence.load.snapshots import SnapshotSpec
from cadence.load.testspecs import DataTest
from cadence.load.unittests import UnitFixture, UnitTest
from cadence.plan.cadences import Cadences, ModelCadence, Origin
from cadence.plan.dag import Dag
from cadence.plan.schedule import Schedule, TickSet

CACHE_FILE = "target/manifest.json"  # in a cadence project (artifacts.target_dir)
CACHE_NAME = "manifest.json"
FORMAT = 9  # with the codec's schema digest in the header: any other layout is rebuilt
MAGIC = b"cadence-manifest"


@dataclass(frozen=True)
class Manifest:
    env: tuple[tuple[str, str | None], ...]  # (name, digest of the value) for every env var read
    inputs: str  # digest of every input file's path and content, in ``scan`` order
    parsed: ParsedProject  # without its config: cadence.yml is parsed again on every load
    dag: Dag
    cadences: Cadences
    view_hashes: dict[str, str]  # ParsedProject.view_hashes (it reads every model's SQL)
    model_keys: dict[str, str]  # model name -> key of the inputs it was rendered from
    layout: Layout  # where the inputs are (a dbt project's folders, packages, profile)
    options: str  # LoadOptions.key() of the load
    dbt: DbtSettings | None  # None in a cadence project, or when env vars were read
    # files whose rendering read env vars (models, their descriptions, singular tests): kept
    # without what they rendered, and rendered again on every load (no env value is stored)
    env_rendered: tuple[str, ...]
    # cadence.yml as parsed YAML (``yamlfile.tree_to_data``; None: none, or a tree it cannot
    # keep), so a cached load reads its settings without PyYAML; never what the environment gives
    config_tree: Any

    if not TYPE_CHECKING:
        __getattr__ = lazy_field  # model_keys is decoded only when a model is rendered again


# -- the data-only format ---------------------------------------------------------------------
# One header line: MAGIC, version/FORMAT/schema, keyed checksums of the first document and of the
# rest, the lengths of the two JSON documents; then the documents (load.cachefile: a table per
# class, stored by column; the first read at once, the second when a lazy field is first used)
# and the text blob the second slices its SQL from.
_CLASSES = (
    ParsedProject,
    Model,
    ModelConfig,
    Column,
    Seed,
    Source,
    DataTest,
    SnapshotSpec,
    UnitTest,
    UnitFixture,
    Dag,
    Cadences,
    ModelCadence,
    Origin,
    Schedule,
    TickSet,
    Layout,
    PackagePaths,
    DbtSettings,
)
_SHARED = (ModelConfig, Column, ModelCadence, Origin, Schedule, TickSet)
# what deciding what is due does not read: decoded only when a command needs it
# (fields with a default cannot be lazy: the class attribute would answer for them)
_LAZY = (
    *(
        (Model, f)
        for f in (
            *("path", "raw_sql", "rendered", "relation", "refs", "ref_lines", "sources"),
            *("per_run", "digest", "description", "columns", "env_vars"),
        )
    ),
    (ModelConfig, "origins"),
    *((ParsedProject, f) for f in ("tests", "macro_files", "doc_blocks", "snapshots")),
    (ParsedProject, "unit_tests"),
    (ModelCadence, "channels"),
    (Origin, "via"),
    *((Dag, f) for f in ("parents", "children", "kinds")),
    (Manifest, "model_keys"),
)


@lru_cache(maxsize=1)
def _codec() -> Codec:
    return Codec(Manifest, _CLASSES, _SHARED, skip=[(ParsedProject, "config")], lazy=_LAZY)


def _version() -> bytes:
    return f"{__version__}/{FORMAT}/{_codec().schema}".encode()


_key = cache_key  # the tests' names for them
_checksum = checksum


def read(root: Path) -> Manifest | None:
    """The cache, when both its checksums verify; else None."""
    opened = _open(root)
    return opened[0] if opened is not None and opened[1]() else None


def _open(root: Path) -> tuple[Manifest, Callable[[], bool]] | None:
    """The cache decoded from its first document (when its checksum verifies), and a check of
    the rest (SQL, tests: decoded on first use), read and verified meanwhile in a thread
    (hashing releases the GIL), so the check costs nothing next to reading the inputs."""
    try:
        with artifacts.open_regular(artifacts.target_dir(root) / CACHE_NAME) as fh:
            parts = fh.readline().split()
            if len(parts) != 6 or parts[0] != MAGIC or parts[1] != _version():
                return None
            first, second = int(parts[4]), int(parts[5])
            document = fh.read(first)
            key = _key()
            if not hmac.compare_digest(parts[2], _checksum(key, document)):
                return None  # edited, planted or written with another key: never trusted
            start, fd = fh.tell(), os.dup(fh.fileno())  # the same file, whatever replaces it
    except (OSError, ValueError):
        return None
    rest: list[bytes] = []
    checked: list[bool] = []

    def check_rest() -> None:
        try:
            with os.fdopen(fd, "rb") as f:
                f.seek(start)
                rest.append(f.read())
        except OSError:
            return  # not checked: not used
        checked.append(hmac.compare_digest(parts[3], _checksum(key, rest[0])))

    reader = threading.Thread(target=check_rest, daemon=True)
    reader.start()

    def verified() -> bool:
        reader.join()
        return checked == [True]

    def lazy_part() -> tuple[bytes, bytes]:
        if not verified():  # read() and load() never hand out such a cache
            raise CadenceError(
                "the project cache does not match its checksum",
                file=artifacts.shown(root, CACHE_NAME),
            )
        return rest[0][:second], rest[0][second:]

    try:
        manifest = _codec().decode(document, lazy_part)
    except Exception:  # noqa: BLE001 - a corrupt cache is rebuilt, never trusted
        verified()
        return None
    return (manifest, verified) if isinstance(manifest, Manifest) else None


def env_unchanged(manifest: Manifest) -> bool:
    return inputs.env_unchanged(manifest.env)


def write(root: Path, manifest: Manifest) -> None:
    try:
        document, later, blob = _codec().encode(manifest)
    except (TypeError, ValueError):
        return  # something not cacheable: the next load renders again
    key, rest = _key(), later + blob
    sums = (_checksum(key, document), _checksum(key, rest))
    sizes = (str(len(document)).encode(), str(len(later)).encode())
    head = b" ".join((MAGIC, _version(), *sums, *sizes)) + b"\n"
    try:
        artifacts.tighten_target(root)
        # not synced: after a crash a torn file fails its checksum and is rebuilt
        path = artifacts.target_dir(root) / CACHE_NAME
        artifacts.write_bytes(path, head + document + rest, root, durable=False)
    except (CadenceError, OSError):
        pass  # a read-only checkout or a full disk still works, just without the cache


def load(
    root: Path, *, use_cache: bool = True, options: LoadOptions = LoadOptions()
) -> tuple[ParsedProject, Dag, Cadences]:
    """The project at ``root``, from the cache when nothing it was built from changed."""
    found = load_fingerprinted(root, use_cache=use_cache, options=options)
    return found[0], found[1], found[2]


def load_fingerprinted(
    root: Path, *, use_cache: bool = True, options: LoadOptions = LoadOptions()
) -> tuple[ParsedProject, Dag, Cadences, Fingerprint]:
    """``load``, and the fingerprint of the files, environment and options it was loaded from
    (what the idle ``run --due`` compares with the project as it is then)."""
    # Loading creates many small objects that live as long as the process: the cyclic garbage
    # collector would rescan them over and over (doubling load time at 10,000 models). Pause
    # it while loading, then move what was loaded out of its sight.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _load(root, use_cache, options)
    finally:
        if paused:
            gc.freeze()
            gc.enable()


def _load(
    root: Path, use_cache: bool, options: LoadOptions
) -> tuple[ParsedProject, Dag, Cadences, Fingerprint]:
    opened = _open(root) if use_cache else None
    if opened is not None and opened[0].parsed.root != str(root):
        opened = None  # a copied or moved project: the cache names files of the old folder
    cached = opened[0] if opened is not None else None
    if (
        cached is not None
        and cached.options == options.key()
        and env_unchanged(cached)
        and not cached.env_rendered
    ):
        paths = scan(root, cached.layout)
        now = inputs_now(root, paths)
        if now is not None and now[0] == cached.inputs and opened is not None and opened[1]():
            config = _config_again(root, now[1], cached, options)
            if config is not None:
                parsed = with_fields(cached.parsed, config=config)
                parsed.__dict__["view_hashes"] = cached.view_hashes  # its cached_property
                found = Fingerprint(cached.inputs, cached.env, cached.layout, options_key(options))
                return parsed, cached.dag, cached.cadences, found
    from cadence.errors import ProjectErrors
    from cadence.load.environment import make_environment
    from cadence.load.loader import load_files
    from cadence.load.parser import parse_project
    from cadence.plan.cadences import resolve_cadences
    from cadence.plan.dag import build_dag

    problems: list[CadenceError] = []  # every problem of every stage, reported at once
    files = load_files(root, problems, options)
    env = make_environment(files)
    reuse: dict[str, Model] = {}
    if cached is not None and opened is not None and opened[1]():  # only a cache that verifies
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
    for name, _value in (
        *(pair for m in parsed.models for pair in m.env_vars),
        *(pair for t in parsed.tests for pair in t.env_vars),
    ):
        env_used[name] = env_digest(os.environ.get(name))
    layout = files.config.layout
    singles = read_inputs(root, layout.files)  # cadence.yml, dbt_project.yml, the profile...
    order = sorted(files.digests)  # as ``scan`` lists them, after the layout's single files
    inputs = (
        ""
        if singles is None
        else combine([*singles[0], *((path, files.digests[path]) for path in order)])
    )
    dbt = files.config.dbt
    stored, env_rendered = without_env_values(parsed)
    manifest = Manifest(
        tuple(sorted(env_used.items())),
        inputs,  # "" (a file that could not be read): never a hit
        stored,  # its config is left out: cadence.yml is parsed again on every load
        dag,
        cadences,
        parsed.view_hashes,
        {name: key for name, key in keys.items() if name not in env_rendered},
        layout,
        options.key(),
        dbt if dbt is not None and not dbt.env_used else None,  # never an env value
        tuple(sorted(env_rendered.values())),
        _tree(root, files.config_digest or None),
    )
    write(root, manifest)
    return parsed, dag, cadences, Fingerprint(inputs, manifest.env, layout, options_key(options))


def _tree(root: Path, loaded: str | None) -> Any:
    """cadence.yml's parsed YAML as data for the cache, when the file still is what the load
    read (digest ``loaded``); else None (not kept: parsed again on each load)."""
    from cadence.load.yamlfile import load_yaml, tree_to_data

    try:
        data = (root / "cadence.yml").read_bytes()
        if loaded is None or digest(data) != loaded:
            return None
        return tree_to_data(load_yaml(data.decode("utf-8"), "cadence.yml"))
    except (CadenceError, OSError, UnicodeDecodeError, TypeError, RecursionError):
        return None


def without_env_values(parsed: ParsedProject) -> tuple[ParsedProject, dict[str, str]]:
    """``parsed`` as the cache may hold it (SPEC §6: no secret values): each model and
    singular test that read an env var keeps its name, file and the digests of what it read,
    nothing it rendered; and {model or test name: its file} of those (rendered on each load)."""
    from dataclasses import replace

    if not any(m.env_vars for m in parsed.models) and not any(t.env_vars for t in parsed.tests):
        return parsed, {}
    rendered: dict[str, str] = {}
    models = []
    for m in parsed.models:
        if m.env_vars:
            rendered[m.name] = m.path
            m = Model(
                m.name, m.path, m.raw_sql, "", ModelConfig(), "", "", "", (), (), (), False,
                m.digest, "", (), m.env_vars, m.run_dependent,
            )  # fmt: skip
        models.append(m)
    tests = []
    for t in parsed.tests:
        if t.env_vars:
            rendered["test " + t.name] = t.file
            t = replace(t, sql="", refs=())
        tests.append(t)
    return with_fields(parsed, models=tuple(models), tests=tuple(tests)), rendered


def _config_again(
    root: Path, text: bytes | None, cached: Manifest, options: LoadOptions
) -> ProjectConfig | None:
    """The settings as they are now (cheap: cadence.yml, one small file; in a dbt project over
    the cached ``DbtSettings``): the cache never holds a value read from the environment."""
    from cadence.errors import ErrorCollector
    from cadence.load.projectconfig import parse_project_config, parse_project_tree
    from cadence.load.yamlfile import tree_from_data

    errors = ErrorCollector()
    layout, dbt = cached.layout, cached.dbt
    try:
        decoded = text.decode("utf-8") if text is not None else None
        if layout.is_dbt and dbt is None:  # its files read environment variables: again
            from cadence.load.dbt.reading import read_dbt

            found = read_dbt(root, decoded, options, errors)
            if found is None or found.layout != layout:
                return None
            dbt = found.settings
        if decoded is None and not layout.is_dbt:
            return None
        if decoded is not None and cached.config_tree is not None:  # kept: no YAML parser
            config = parse_project_tree(
                tree_from_data(cached.config_tree),
                root,
                errors,
                dbt=dbt,
                layout=layout,
                cli_vars=options.cli_vars,
            )
        else:
            config = parse_project_config(
                decoded, root, errors, dbt=dbt, layout=layout, cli_vars=options.cli_vars
            )
    except (CadenceError, UnicodeDecodeError, ValueError, TypeError, KeyError):
        return None
    return config if config is not None and not errors.errors else None


def cache_stats(root: Path) -> dict[str, Any]:
    """For tests and `--debug`: whether a cache exists and matches the files now."""
    cached = read(root)
    now = inputs_now(root, scan(root, cached.layout)) if cached is not None else None
    return {
        "exists": cached is not None,
        "fresh": cached is not None
        and env_unchanged(cached)
        and now is not None
        and now[0] == cached.inputs,
    }
