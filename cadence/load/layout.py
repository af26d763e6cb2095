"""Where a project's files are: the folders each kind of file is read from, per package.

Input: values only (``CADENCE_LAYOUT`` for a cadence project; ``load.dbt`` builds one from
dbt_project.yml and the installed packages) -> output: a frozen ``Layout``. The loader walks it,
the parser asks it which package and folder a file belongs to, and the manifest cache keeps it:
a cached load scans the folders it names without reading dbt_project.yml again, so the idle
``run --due`` of a dbt project imports no dbt code.

Invariant: every path is relative to the project root and uses ``/``; the root project is the
first package, with folder "".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

# what each kind of folder holds (and the cache watches): .py in model folders is read only to
# be refused (a Python model is an error, never a silent skip)
SUFFIXES = {
    "model": (".sql", ".yml", ".yaml", ".md", ".py"),
    "seed": (".csv", ".yml", ".yaml", ".md"),
    "macro": (".sql", ".yml", ".yaml", ".md"),
    "test": (".sql", ".yml", ".yaml", ".md", ".csv"),  # .csv: unit-test fixtures
    "snapshot": (".sql", ".yml", ".yaml", ".md"),
    "analysis": (".sql", ".yml", ".yaml", ".md"),
    "docs": (".md",),
}
KINDS = tuple(SUFFIXES)


@dataclass(frozen=True)
class PackagePaths:
    """One package's folders: the root project's, or an installed dbt package's."""

    name: str
    folder: str  # relative to the project root: "" for the root project, "dbt_packages/x"
    model_paths: tuple[str, ...] = ("models",)
    seed_paths: tuple[str, ...] = ("seeds",)
    macro_paths: tuple[str, ...] = ("macros",)
    test_paths: tuple[str, ...] = ("tests",)
    snapshot_paths: tuple[str, ...] = ("snapshots",)
    analysis_paths: tuple[str, ...] = ()
    docs_paths: tuple[str, ...] = ()  # folders of .md docs blocks besides the ones above

    def paths(self, kind: str) -> tuple[str, ...]:
        return tuple(getattr(self, f"{kind}_paths"))

    def prefixed(self, path: str) -> str:
        """A folder of this package relative to the project root."""
        return f"{self.folder}/{path}" if self.folder else path

    def folders(self) -> dict[str, tuple[str, ...]]:
        """Every folder to walk (relative to the project root) with the suffixes wanted in it."""
        out: dict[str, list[str]] = {}
        for kind in KINDS:
            for path in self.paths(kind):
                wanted = out.setdefault(self.prefixed(_clean(path)), [])
                wanted += [s for s in SUFFIXES[kind] if s not in wanted]
        return {folder: tuple(suffixes) for folder, suffixes in out.items()}


@dataclass(frozen=True)
class Layout:
    """The project's kind and packages, and the single files its load depends on."""

    kind: str  # "cadence" or "dbt"
    packages: tuple[PackagePaths, ...]
    files: tuple[str, ...] = ("cadence.yml",)  # "?name": optional (its absence is an input too)

    @property
    def root(self) -> PackagePaths:
        return self.packages[0]

    @property
    def is_dbt(self) -> bool:
        return self.kind == "dbt"

    def folders(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Every folder to walk with its suffixes, sorted by path."""
        out: dict[str, tuple[str, ...]] = {}
        for package in self.packages:
            for folder, suffixes in package.folders().items():
                out[folder] = tuple(dict.fromkeys(out.get(folder, ()) + suffixes))
        return tuple(sorted(out.items()))

    def locate(self, path: str, kind: str) -> tuple[PackagePaths, str] | None:
        """The package a file of ``kind`` belongs to and its path inside the folder of that kind
        it lies in (``staging/orders.sql`` for ``models/staging/orders.sql``); None when no
        folder of that kind holds it. The deepest matching folder wins (a package inside)."""
        best: tuple[PackagePaths, str] | None = None
        depth = -1
        for package in self.packages:
            for folder in package.paths(kind):
                prefix = package.prefixed(_clean(folder))
                if prefix == ".":
                    prefix = ""
                if (not prefix or path.startswith(prefix + "/")) and len(prefix) > depth:
                    rest = path[len(prefix) + 1 :] if prefix else path
                    best, depth = (package, rest), len(prefix)
        return best


def _clean(path: str) -> str:
    text = PurePosixPath(path.replace("\\", "/")).as_posix()
    return text.rstrip("/") or "."


CADENCE_LAYOUT = Layout("cadence", (PackagePaths(name="", folder=""),))


@dataclass(frozen=True)
class LoadOptions:
    """What the command line adds to a project's files: ``--vars`` (over every var), and for a
    dbt project ``--target`` and ``--profiles-dir``."""

    vars: tuple[tuple[str, object], ...] = ()
    target: str | None = None
    profiles_dir: str | None = None

    @property
    def cli_vars(self) -> dict[str, object]:
        return dict(self.vars)

    def key(self) -> str:
        """What the manifest cache keys a load on (with the environment dbt reads)."""
        import os

        env = tuple(os.environ.get(n) for n in ("DBT_PROFILES_DIR", "DBT_TARGET"))
        return repr((sorted(self.vars, key=lambda kv: kv[0]), self.target, self.profiles_dir, env))


def parse_vars(text: str | None) -> tuple[tuple[str, object], ...]:
    """``--vars '{key: value}'``: a YAML (or JSON) mapping, as dbt reads it."""
    from cadence.errors import UsageError
    from cadence.load.yamlfile import load_yaml

    if text is None or not text.strip():
        return ()
    try:
        value = load_yaml(text, "--vars")
    except Exception as exc:  # noqa: BLE001 - a CadenceError naming YAML's problem
        raise UsageError(
            f"--vars is not YAML: {getattr(exc, 'message', exc)}",
            hint="write --vars '{name: value, other: 2}'",
        ) from None
    if not isinstance(value, dict):
        raise UsageError(
            "--vars must be a mapping of names to values",
            hint="write --vars '{name: value, other: 2}'",
        )
    return tuple((str(k), _plain(v)) for k, v in value.items())


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
