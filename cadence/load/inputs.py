"""The project's input files, as a fingerprint: which they are and one digest of their contents.

Input: a project root and its ``Layout`` -> output: the input files (``scan``: the layout's
single files -- cadence.yml, in a dbt project also dbt_project.yml, the profile, packages.yml --
then every file of its folders, by directory listings only), one digest of every file's content
(``inputs_now``: each file read whole, so an edit that keeps size and mtime -- ``cp -p``,
``touch -r`` -- is seen), whether the environment variables a load read still hold the same
values (``env_unchanged``, on digests: values are never kept), and the keyed checksum files
cadence derives from these carry (``checksum``, with a per-user key outside the project, so a
file copied or committed with a checkout does not verify).

Kept apart from ``plan.manifest`` and ``load.loader`` so that the idle ``run --due``
(``build.idle``), which only asks "did anything change?", imports no parser: everything here
is the standard library, ``disk.files`` and ``load.layout``. The load cache (``plan.manifest``)
keys on exactly these, so both agree on what "unchanged" means.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cadence.disk import files as fs
from cadence.errors import CadenceError
from cadence.load.digests import digest, env_digest
from cadence.load.layout import CADENCE_LAYOUT, Layout, LoadOptions

PROJECT_FILE = "cadence.yml"
DBT_PROJECT_FILE = "dbt_project.yml"
ABSENT = "absent"  # the digest of an optional input file that does not exist
_FIRST_READ = 1 << 16  # most input files are read whole by one read()
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class Fingerprint:
    """What a loaded project was loaded from: the digest of every input file (``inputs_now``),
    (name, digest of the value) of every environment variable the load read, where the inputs
    are (``layout``) and a digest of the command line's load options."""

    inputs: str
    env: tuple[tuple[str, str | None], ...]
    layout: Layout = CADENCE_LAYOUT
    options: str = ""


def find_project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding cadence.yml or dbt_project.yml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / PROJECT_FILE).is_file() or (folder / DBT_PROJECT_FILE).is_file():
            return folder
    raise CadenceError(
        f"no {PROJECT_FILE} or {DBT_PROJECT_FILE} found in {start} or any parent folder",
        hint="run inside a cadence or dbt project, pass --project-dir, "
        "or create one with 'cadence init NAME'",
    )


def scan(root: Path, layout: Layout = CADENCE_LAYOUT) -> tuple[str, ...]:
    """The path of every input file: the layout's single files first, then every file of its
    folders, sorted (directory listings only)."""
    out: list[str] = []
    prefix = len(str(root)) + 1  # scandir paths start with the root as given
    problems: list[CadenceError] = []
    for folder, suffixes in layout.folders():
        for entry in fs.walk_entries(root, folder, suffixes, problems):
            out.append(entry.path[prefix:].replace(os.sep, "/"))
    if problems:  # links, FIFOs, unreadable folders: never a cache hit; the loader reports them
        out.append("\0problems")
    out = sorted(set(out))
    return (*layout.files, *out)


def combine(pairs: Iterable[tuple[str, str]]) -> str:
    """One digest of (path, content digest) pairs, in the order given."""
    return digest("\n".join(f"{path}\0{d}" for path, d in pairs).encode("utf-8", "surrogatepass"))


def inputs_now(root: Path, paths: tuple[str, ...]) -> tuple[str, bytes | None] | None:
    """The digest of every input file's content as it is now (each file read whole), and
    cadence.yml's bytes (None when there is none); None when a file cannot be read (gone, not
    a file: never a hit)."""
    found = read_inputs(root, paths)
    return None if found is None else (combine(found[0]), found[1])


def read_inputs(
    root: Path, paths: tuple[str, ...]
) -> tuple[list[tuple[str, str]], bytes | None] | None:
    """(path, content digest) of each input, and cadence.yml's bytes; None when one cannot be
    read. ``?path``: an optional file (its absence is an input too); ``@folder``: the names of
    the packages installed there; an absolute path: a file outside the project (a profiles.yml
    in ~/.dbt)."""
    pairs = []
    config: bytes | None = None
    base = str(root) + os.sep
    for path in paths:
        if path[:1] == "@":
            pairs.append((path, _listing(root, path[1:])))
            continue
        optional = path[:1] == "?"
        name = path[1:] if optional else path
        try:  # non-blocking: a FIFO swapped in after the scan cannot hang the load
            fd = os.open(name if name[:1] == "/" else base + name, _OPEN_FLAGS)
        except FileNotFoundError:
            if optional:
                pairs.append((path, ABSENT))
                continue
            return None
        except (OSError, ValueError):  # gone, unreadable, or the problems marker
            return None
        try:
            data = os.read(fd, _FIRST_READ)
            if len(data) == _FIRST_READ:  # a large file (a seed): the rest of it
                chunks = [data]
                while chunk := os.read(fd, 1 << 20):
                    chunks.append(chunk)
                data = b"".join(chunks)
        except OSError:  # a folder, or an I/O error
            return None
        finally:
            os.close(fd)
        pairs.append((path, digest(data)))
        if name == PROJECT_FILE:
            config = data
    return pairs, config


def _listing(root: Path, folder: str) -> str:
    """Which packages are installed in ``folder``: a new one makes the cache stale."""
    try:
        names = sorted(
            e.name for e in os.scandir(root / folder) if os.path.isfile(f"{e.path}/dbt_project.yml")
        )
    except OSError:
        return ABSENT
    return digest("\n".join(names).encode("utf-8", "surrogatepass"))


def options_key(options: LoadOptions) -> str:
    """What a fingerprint keeps of the load options: a digest (``key()`` holds env values)."""
    return digest(options.key().encode("utf-8", "surrogatepass"))


def env_unchanged(env: Iterable[tuple[str, str | None]]) -> bool:
    """Every (name, digest of its value) still holds in this process's environment."""
    return all(env_digest(os.environ.get(name)) == value for name, value in env)


def cache_key() -> bytes:
    """The key of cadence's file checksums: per user, outside the project (so a file copied or
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


def checksum(key: bytes, payload: bytes) -> bytes:
    # HMAC-SHA256: twice as fast as keyed blake2b here (SHA extensions), as strong for this
    return hmac.new(key, payload, "sha256").hexdigest().encode()
