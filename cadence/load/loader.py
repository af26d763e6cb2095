"""Load a project from disk: the only stage that reads project files.

Input: a folder (or any folder beneath a project) -> output: ``ProjectFiles``, the validated
``cadence.yml`` (``projectconfig`` reads it) plus the text of every model, YAML, seed, macro,
test and docs file, each with a content hash (the manifest cache keys on them). Every problem is
reported at once. Used by ``plan.manifest`` (a load the cache cannot serve) and the facade
(``find_project_root``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cadence.disk import files
from cadence.errors import CadenceError, ErrorCollector, ProjectErrors, did_you_mean
from cadence.load.digests import digest
from cadence.load.projectconfig import PROJECT_FILE, ProjectConfig, parse_project_config

SNAPSHOTS_DIR = "snapshots"  # dbt's default snapshot-paths
FIXTURES_DIR = "tests/fixtures"  # unit-test fixture files (dbt: <test-paths>/fixtures)
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
    snapshots: tuple[SourceFile, ...] = ()  # snapshots/*.sql ({% snapshot %} blocks)
    fixtures: tuple[SourceFile, ...] = ()  # tests/fixtures/*.csv|sql (unit-test fixtures)

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


def _read(root: Path, path: Path) -> SourceFile:
    data = files.read_bytes(root, path)
    rel = path.relative_to(root).as_posix()
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


def load_files(root: Path, errors_out: list[CadenceError] | None = None) -> ProjectFiles:
    """Read the project at ``root``; raises ``ProjectErrors`` listing every problem (or, with
    ``errors_out``, adds them there and goes on when cadence.yml could be read at all)."""
    errors = ErrorCollector()
    try:
        config_bytes = files.read_bytes(root, root / PROJECT_FILE)
    except CadenceError as exc:
        raise ProjectErrors([exc]) from None
    config = parse_project_config(config_bytes.decode("utf-8", errors="replace"), root, errors)

    def read_all(paths: list[Path]) -> tuple[SourceFile, ...]:
        out = []
        for p in paths:
            try:
                out.append(_read(root, p))
            except CadenceError as exc:
                errors.add(exc)
        return tuple(out)

    def walk(folder: str, *suffixes: str) -> list[Path]:
        return files.walk(root, folder, suffixes, errors.errors)

    def having(paths: list[Path], *suffixes: str) -> list[Path]:
        return [p for p in paths if p.name.endswith(suffixes)]

    in_models = walk("models", ".sql", ".yml", ".yaml", ".md")
    in_seeds = walk("seeds", ".csv", ".yml", ".yaml")
    in_snapshots = walk(SNAPSHOTS_DIR, ".sql", ".yml", ".yaml")
    models = read_all(having(in_models, ".sql"))
    yaml_files = read_all(
        having(in_models, ".yml", ".yaml")
        + having(in_seeds, ".yml", ".yaml")
        + having(in_snapshots, ".yml", ".yaml")
    )
    docs = read_all(having(in_models, ".md"))
    in_tests = walk("tests", ".sql")
    # dbt's generic tests ({% test %} blocks) live in tests/generic/ too; tests/fixtures/ holds
    # unit-test fixtures: neither is a singular test
    generic_dir, fixtures_dir = root / "tests" / "generic", root / FIXTURES_DIR
    macros = read_all(walk("macros", ".sql") + [p for p in in_tests if generic_dir in p.parents])
    tests = read_all(
        [p for p in in_tests if generic_dir not in p.parents and fixtures_dir not in p.parents]
    )
    seeds = []
    for p in having(in_seeds, ".csv"):
        try:
            seeds.append(
                SeedFile(p.stem, p.relative_to(root).as_posix(), files.digest_file(root, p))
            )
        except CadenceError as exc:
            errors.add(exc)
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
        seeds=tuple(seeds),
        macros=macros,
        tests=tests,
        docs=docs,
        snapshots=read_all(having(in_snapshots, ".sql")),
        fixtures=read_all(walk(FIXTURES_DIR, ".csv", ".sql")),
    )


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
