"""Project files as the file system holds them: the one place cadence finds and opens what a user
put in the project folder (the loader reads through it, the manifest cache stats through it).

Input: the project root and a folder in it -> output: the project's input files (``walk``) and
their bytes (``read_bytes``, ``digest_file``). Invariants, whatever the folder holds:
- only regular files are opened, and opened non-blocking (a FIFO named ``x.sql`` or a device
  would otherwise block or stream forever);
- nothing that resolves outside the project folder is read (``ln -s /etc/shadow models/x.sql``);
- symbolic-link loops end (each real folder is walked once; a link back into its own ancestors
  is reported), broken links and unreadable folders are reported, not skipped silently;
- text files are bounded in size;
- every problem is a ``CadenceError`` naming the file relative to the root, with a hint.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cadence.errors import CadenceError

MAX_TEXT_BYTES = 16 * 1024 * 1024  # a model, YAML or macro file; seeds are not bounded
_CHUNK = 1024 * 1024


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _inside(real: str, root_real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _rel(root: Path, path: Path | str) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _link_problem(root: Path, path: str, rel: str) -> CadenceError | None:
    """Why the link at ``path`` cannot be followed (broken, a loop, or out of the project)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return CadenceError(
            f"broken symbolic link (to {os.readlink(path)})",
            file=rel,
            hint="point the link at an existing file in the project, or remove it",
        )
    except OSError as exc:
        return CadenceError(
            f"cannot follow symbolic link: {exc.strerror}",
            file=rel,
            hint="the link points at itself through other links; remove it",
        )
    real = os.path.realpath(path)
    if not _inside(real, os.path.realpath(root)):
        return CadenceError(
            "symbolic link resolves outside the project folder; it is not read",
            file=rel,
            hint="copy the file into the project instead of linking to it",
        )
    return None


def walk(
    root: Path, folder: str, suffixes: tuple[str, ...], errors: list[CadenceError]
) -> list[Path]:
    """Input files under ``root/folder`` whose names end with ``suffixes``, sorted by path (as
    seen through any links), hidden names skipped. Problems go to ``errors``; the walk goes on."""
    return [Path(e.path) for e in walk_entries(root, folder, suffixes, errors)]


def walk_entries(
    root: Path, folder: str, suffixes: tuple[str, ...], errors: list[CadenceError]
) -> list[os.DirEntry[str]]:
    """``walk`` as directory entries (``entry.stat()`` follows links): for the cache's scan,
    which runs on every invocation and must not pay for path objects."""
    base = root / folder
    if not base.is_dir():
        return []
    found: list[os.DirEntry[str]] = []
    visited: set[str] = set()

    stack = [str(base)]  # not recursion: a folder can be nested deeper than Python's stack
    while stack:
        current = stack.pop()
        real = os.path.realpath(current)
        if real in visited:  # the same folder linked twice: read it once
            continue
        visited.add(real)
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            errors.append(
                CadenceError(
                    f"cannot read folder: {exc.strerror}",
                    file=_rel(root, current),
                    hint="give the owner read access (chmod u+rx), or remove the folder",
                )
            )
            continue
        folders = []  # files of a folder first, then its sub-folders (as os.walk lists them)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            wanted = entry.name.endswith(suffixes)
            if entry.is_symlink():
                if not wanted and not entry.is_dir():
                    continue  # a link the project does not use (a broken one included)
                problem = _link_problem(root, entry.path, _rel(root, entry.path))
                if (
                    problem is None
                    and entry.is_dir()
                    and _inside(real, os.path.realpath(entry.path))
                ):
                    problem = CadenceError(
                        "symbolic link loop: this folder links to a folder that contains it",
                        file=_rel(root, entry.path),
                        hint=f"remove the link (rm {_rel(root, entry.path)})",
                    )
                if problem is not None:
                    errors.append(problem)
                    continue
            if entry.is_dir():
                folders.append(entry.path)
            elif wanted:
                if not entry.is_file():
                    errors.append(_not_regular(root, entry.path))
                    continue
                found.append(entry)
        stack.extend(reversed(folders))

    return found


def _not_regular(root: Path, path: str) -> CadenceError:
    try:
        kind = _kind(os.stat(path).st_mode)
    except OSError:
        kind = "not a regular file"
    return CadenceError(
        f"is {kind}, not a regular file; it is not read",
        file=_rel(root, path),
        hint="cadence reads only regular files: replace it with a file, or remove it",
    )


def _open(root: Path, path: Path) -> int:
    """A read-only descriptor of ``path``, a regular file inside the project, or CadenceError.
    Non-blocking, so opening a FIFO returns at once; then fstat decides."""
    rel = _rel(root, path)
    if os.path.islink(path):
        problem = _link_problem(root, str(path), rel)
        if problem is not None:
            raise problem
    elif not _inside(os.path.realpath(path), os.path.realpath(root)):
        raise CadenceError(
            "file resolves outside the project folder; it is not read",
            file=rel,
            hint="copy the file into the project instead of linking to it",
        )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise CadenceError(
            f"cannot read file: {exc.strerror}",
            file=rel,
            hint="give the owner read access (chmod u+r), or remove the file",
        ) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_regular(root, str(path))
    return fd


def read_bytes(root: Path, path: Path, limit: int | None = MAX_TEXT_BYTES) -> bytes:
    """The content of a project file (see the module invariants); at most ``limit`` bytes."""
    fd = _open(root, path)
    try:
        size = os.fstat(fd).st_size
        if limit is not None and size > limit:
            raise CadenceError(
                f"file is too large to be a project file ({size / 1e6:.0f} MB; "
                f"the limit is {limit / 1e6:.0f} MB)",
                file=_rel(root, path),
                hint="keep data in seeds or sources; model, YAML and macro files hold code",
            )
        chunks, total = [], 0
        while chunk := _read_chunk(root, path, fd):
            chunks.append(chunk)
            total += len(chunk)
            if limit is not None and total > limit:
                raise CadenceError(
                    "file grew past the size limit while being read",
                    file=_rel(root, path),
                    hint="keep data in seeds or sources",
                )
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_chunk(root: Path, path: Path, fd: int) -> bytes:
    try:
        return os.read(fd, _CHUNK)
    except OSError as exc:
        raise CadenceError(
            f"cannot read file: {exc.strerror}", file=_rel(root, path), hint="check the file"
        ) from None


def digest_file(root: Path, path: Path, digest_size: int = 12) -> str:
    """blake2b of a project file of any size (seeds), read in chunks."""
    fd = _open(root, path)
    try:
        h = hashlib.blake2b(digest_size=digest_size)
        while chunk := _read_chunk(root, path, fd):
            h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)
