"""Load a project from disk: the only stage that reads project files.

Input: a folder (or any folder beneath a project) and the command line's ``LoadOptions`` ->
output: ``ProjectFiles``, the validated settings (``projectconfig`` reads cadence.yml; in a dbt
project ``load.dbt`` reads dbt_project.yml, the profile and the installed packages, and cadence.yml
is optional) plus the text of every model, YAML, seed, macro, test, snapshot, analysis and docs
file of every package, each with a content hash (the manifest cache keys on them). The folders
come from the project's ``Layout``. Every problem is reported at once. Used by ``plan.manifest``
(a load the cache cannot serve) and the facade (``find_project_root``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from cadence.disk import files
from cadence.errors import CadenceError, ErrorCollector, ProjectErrors, did_you_mean
from cadence.load.digests import digest
from cadence.load.inputs import find_project_root
from cadence.load.layout import CADENCE_LAYOUT, SUFFIXES, Layout, LoadOptions, PackagePaths
from cadence.load.projectconfig import PROJECT_FILE, ProjectConfig, parse_project_config

if TYPE_CHECKING:
    from cadence.load.dbt.reading import DbtRead

DOCS_BLOCK = re.compile(r"{%-?\s*docs\s+(\w+)\s*-?%}(.*?){%-?\s*enddocs\s*-?%}", re.S)
DBT_PROJECT_FILE = "dbt_project.yml"


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
class ProjectFiles:
    """Everything read from disk, ready for parsing."""

    root: Path
    config: ProjectConfig
    config_digest: str
    models: tuple[SourceFile, ...]
    yaml_files: tuple[SourceFile, ...]
    seeds: tuple[SeedFile, ...]
    macros: tuple[SourceFile, ...]  # macro files, and generic tests under tests/generic/
    tests: tuple[SourceFile, ...]  # singular tests (tests/ but generic/ and fixtures/)
    docs: tuple[SourceFile, ...]
    snapshots: tuple[SourceFile, ...] = ()  # .sql files in snapshot folders
    analyses: tuple[SourceFile, ...] = ()  # .sql files in analysis folders
    fixtures: tuple[SourceFile, ...] = ()  # unit-test fixtures under tests/fixtures/
    python_models: tuple[str, ...] = ()  # .py files in model folders (each an error)
    dbt: DbtRead | None = None  # a dbt project's own files, read (None: a cadence project)
    digests: dict[str, str] = field(default_factory=dict)  # watched single files -> digest
    # input files that could not be read (their error reported): a ref to one is not unknown
    unreadable: tuple[str, ...] = ()

    @property
    def layout(self) -> Layout:
        return self.config.layout

    def doc_blocks(self) -> dict[str, str]:
        blocks: dict[str, str] = {}
        for f in self.docs:
            for m in DOCS_BLOCK.finditer(f.text):
                blocks[m.group(1)] = m.group(2).strip()
        return blocks


def is_dbt_project(root: Path) -> bool:
    return (root / DBT_PROJECT_FILE).is_file()


def _read(base: Path, path: Path, rel: str) -> SourceFile:
    data = files.read_bytes(base, path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CadenceError(
            f"file is not UTF-8 (byte {exc.start})", file=rel, hint="save the file as UTF-8"
        ) from None
    if "\x00" in text:
        raise CadenceError(
            "file holds NUL bytes (a binary file?)", file=rel, hint="save it as UTF-8 text"
        )
    return SourceFile(rel, text, digest(data))


def load_files(
    root: Path,
    errors_out: list[CadenceError] | None = None,
    options: LoadOptions = LoadOptions(),
) -> ProjectFiles:
    """Read the project at ``root``; raises ``ProjectErrors`` listing every problem (or, with
    ``errors_out``, adds them there and goes on when the settings could be read at all)."""
    errors = ErrorCollector()
    dbt_read: DbtRead | None = None
    config_bytes: bytes | None = None
    if is_dbt_project(root):
        if (root / PROJECT_FILE).exists():
            try:
                config_bytes = files.read_bytes(root, root / PROJECT_FILE)
            except CadenceError as exc:
                raise ProjectErrors([exc]) from None
        from cadence.load.dbt.reading import read_dbt

        text = config_bytes.decode("utf-8", errors="replace") if config_bytes is not None else None
        dbt_read = read_dbt(root, text, options, errors)
        if dbt_read is None:
            errors.raise_if_any()
            raise AssertionError("unreachable")
        config = parse_project_config(
            text,
            root,
            errors,
            dbt=dbt_read.settings,
            layout=dbt_read.layout,
            cli_vars=options.cli_vars,
        )
        if config is not None:
            from cadence.load.dbt.configs import folder_defaults

            trees = dbt_read.project.trees.get("snapshots")
            defaults = folder_defaults(trees, dbt_read.project.file, dbt_read.project.name)
            config = replace(config, snapshot_defaults=defaults)
    else:
        if options.target or options.profiles_dir:
            flag = "--target" if options.target else "--profiles-dir"
            raise ProjectErrors(
                [
                    CadenceError(
                        f"{flag} is for dbt projects, and {root} has no {DBT_PROJECT_FILE}",
                        file=PROJECT_FILE,
                        hint="set the warehouse in cadence.yml instead",
                    )
                ]
            )
        try:
            config_bytes = files.read_bytes(root, root / PROJECT_FILE)
        except CadenceError as exc:
            raise ProjectErrors([exc]) from None
        config = parse_project_config(
            config_bytes.decode("utf-8", errors="replace"),
            root,
            errors,
            cli_vars=options.cli_vars,
        )
    layout = config.layout if config is not None else CADENCE_LAYOUT
    found = _read_layout(root, layout, errors)
    if config is None:
        errors.raise_if_any()
        raise AssertionError("unreachable")
    if not layout.is_dbt:
        _check_folder_defaults(config, root, errors)
    errors.finish(errors_out)
    return ProjectFiles(
        root=root,
        config=config,
        config_digest=digest(config_bytes) if config_bytes is not None else "",
        dbt=dbt_read,
        **found,
    )


def _read_layout(root: Path, layout: Layout, errors: ErrorCollector) -> dict[str, Any]:
    """Every input file of every package of ``layout``, sorted by kind."""
    out: dict[str, list[object]] = {
        k: []
        for k in ("models", "yaml_files", "seeds", "macros", "tests", "docs", "snapshots")
        + ("analyses", "fixtures", "python_models")
    }
    digests: dict[str, str] = {}  # every file walked, read or not (the cache keys on them)
    seen: set[str] = set()
    unreadable: list[str] = []
    for package in layout.packages:
        base = root / package.folder if package.folder else root
        for folder, suffixes in package.folders().items():
            inner = folder[len(package.folder) + 1 :] if package.folder else folder
            walked: list[CadenceError] = []  # named relative to the package: re-rooted below
            for p in files.walk(base, inner, suffixes, walked):
                rel = p.relative_to(base).as_posix()
                rel = f"{package.folder}/{rel}" if package.folder else rel
                if rel in seen:
                    continue
                seen.add(rel)
                before = len(errors.errors)
                found = _sort_file(base, p, rel, package, layout, out, errors)
                if any(e.severity != "warning" for e in errors.errors[before:]):
                    unreadable.append(rel)
                if found is None:
                    try:
                        found = files.digest_file(base, p)
                    except CadenceError:
                        continue  # reported where it was read
                digests[rel] = found
            for problem in walked:
                if package.folder and problem.file:
                    problem.file = f"{package.folder}/{problem.file}"
                if problem.file and problem.severity != "warning":
                    unreadable.append(problem.file)
                errors.add(problem)
    for key in out:
        if key not in ("python_models", "seeds"):
            out[key].sort(key=lambda f: f.path)  # type: ignore[attr-defined]
    sorted_files = {k: tuple(v) for k, v in out.items()}
    return {**sorted_files, "digests": digests, "unreadable": tuple(unreadable)}


def _sort_file(
    base: Path,
    path: Path,
    rel: str,
    package: PackagePaths,
    layout: Layout,
    out: dict[str, list[object]],
    errors: ErrorCollector,
) -> str | None:
    """Put one file where its folder and suffix say it belongs; its digest when it was read."""
    bucket = _bucket(path.suffix.lower(), rel, package, layout)
    if bucket is None:
        return None
    if bucket == "python_models":
        out[bucket].append(rel)
        return None
    try:
        if bucket == "seeds":
            seed = SeedFile(path.stem, rel, files.digest_file(base, path))
            out[bucket].append(seed)
            return seed.digest
        source = _read(base, path, rel)
    except CadenceError as exc:
        exc.file = rel
        errors.add(exc)
        return None
    out[bucket].append(source)
    return source.digest


def _bucket(suffix: str, rel: str, package: PackagePaths, layout: Layout) -> str | None:
    """Which of ``ProjectFiles``' fields a file goes to (None: none, it is only watched)."""

    def inside(kind: str) -> str | None:
        located = layout.locate(rel, kind)
        if located is None or located[0] is not package or suffix not in SUFFIXES[kind]:
            return None
        return located[1]

    if suffix in (".yml", ".yaml"):
        return "yaml_files"
    if suffix == ".md":
        return "docs"
    if suffix == ".py":
        return "python_models" if inside("model") is not None else None
    if suffix == ".csv":
        if inside("seed") is not None:
            return "seeds"
        in_tests = inside("test")
        return "fixtures" if in_tests and _first(in_tests) == "fixtures" else None
    if suffix != ".sql":
        return None
    for kind, key in (("model", "models"), ("macro", "macros"), ("snapshot", "snapshots")):
        if inside(kind) is not None:
            return key
    in_tests = inside("test")
    if in_tests is not None:  # dbt: tests/generic/ holds generic tests, tests/fixtures/ data
        return {"generic": "macros", "fixtures": "fixtures"}.get(_first(in_tests), "tests")
    return "analyses" if inside("analysis") is not None else None


def _first(inner: str) -> str:
    return PurePosixPath(inner).parts[0] if "/" in inner else ""


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
    "ProjectFiles",
    "SeedFile",
    "SourceFile",
    "find_project_root",
    "load_files",
]
