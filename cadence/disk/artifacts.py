"""Files cadence writes: compiled SQL and run results under target/, and the one helper every
writer uses (the manifest cache, the lock, exports): owner-only, atomic writes.

Input: bytes or text and a path -> output: the file, complete. ``target_dir`` is the folder
cadence keeps its own files in: ``target/`` in a cadence project, ``<target-path>/cadence/`` in
a dbt project (a folder holding dbt_project.yml), so cadence never writes over dbt's own
``manifest.json`` or ``run_results.json``. Invariants, whatever the umask:
- files are 0600 and folders cadence creates are 0700 (they hold customer data); ``target/``
  itself is made 0700, and what an older version left readable in it is tightened once;
- a file is written to a temporary name beside it, fsynced, then renamed over the old one: a
  reader (or a crash, kill -9 included) sees the old file or the new one, never half of one;
  a failed write removes its temporary file (what every run rewrites -- compiled SQL, run
  results -- is renamed into place but not fsynced);
- compiled SQL already on disk with exactly the text to write (a regular, owner-only file of
  this user, not linked elsewhere) is left as it is: most runs compile the same SQL again, and
  a temporary file and a rename over the old one cost 0.1-0.7 ms each; anything else there (a
  symlink, a FIFO, other text or modes) is replaced as above;
- a write that fails raises ``CadenceError`` naming the file (relative to the project when
  known) and the cause; disk full says so (``DiskFull``: the command exits 1).
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from cadence.errors import CadenceError, DiskFull

TARGET = "target"
DBT_PROJECT_FILE = "dbt_project.yml"
FILE_MODE = 0o600
DIR_MODE = 0o700
PRIVATE_UMASK = 0o077

_tightened: set[str] = set()  # target/ folders made private in this process
_tightening = threading.Lock()


def target_dir(root: Path) -> Path:
    """The folder cadence keeps its own files in (see the module docstring)."""
    return root / target_folder(root)


def target_folder(root: Path) -> str:
    """``target_dir`` relative to the project root (absolute when dbt's target-path is)."""
    try:
        st = os.stat(os.path.join(root, DBT_PROJECT_FILE))
    except OSError:
        return TARGET
    override = os.environ.get("DBT_TARGET_PATH")
    key = (str(root), st.st_mtime_ns, st.st_size, override)
    found = _dbt_targets.get(key)
    if found is None:
        folder = override or _target_path(Path(root) / DBT_PROJECT_FILE) or TARGET
        found = _dbt_targets[key] = folder.rstrip("/") + "/cadence"
    return found


# dbt_project.yml's ``target-path: folder`` (a top-level key; comments and quotes allowed)
_TARGET_PATH = re.compile(r"^target-path:[ \t]*(['\"]?)([^'\"#\n]*?)\1[ \t]*(?:#.*)?$", re.M)
_dbt_targets: dict[tuple[str, int, int, str | None], str] = {}


def _target_path(path: Path) -> str | None:
    """dbt_project.yml's target-path, read without a YAML parser (every command needs it before
    anything else, the idle ``run --due`` included); None when not set. A value with Jinja is
    refused by the project loader (load.dbt.project), so this never guesses wrong silently."""
    try:
        with open(path, "rb") as fh:
            text = fh.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return None
    m = _TARGET_PATH.search(text)
    return m.group(2).strip() or None if m else None


def compiled_path(model_path: str, root: Path | None = None) -> str:
    """Where a model's compiled SQL is written, relative to the project root."""
    base = target_folder(root) if root is not None else TARGET
    return f"{base}/compiled/{model_path}"


def shown(root: Path, name: str) -> str:
    """A file in ``target_dir`` as messages name it: relative to the project root."""
    return f"{target_folder(root)}/{name}"


@contextmanager
def private_umask() -> Iterator[None]:
    """Files created meanwhile -- by DuckDB too (warehouse, .wal, spill files) -- are owner-only.
    The umask is per process: library callers get this around every writing call; the CLI sets
    it once at entry."""
    previous = os.umask(PRIVATE_UMASK)
    os.umask(previous | PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def write_error(path: Path, exc: OSError, root: Path | None = None) -> CadenceError:
    """The CadenceError for a failed write of ``path``."""
    where = _shown(path, root)
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return DiskFull(
            f"disk full: cannot write {where}",
            file=where,
            hint="free space on that disk; nothing half-written was kept",
        )
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) or isinstance(exc, NotADirectoryError):
        return CadenceError(
            f"cannot write {where}: a file is in the way of a folder ({exc.strerror})",
            file=where,
            hint="move that file away (cadence keeps its artifacts in the folder target/)",
        )
    return CadenceError(
        f"cannot write {where}: {exc.strerror}",
        file=where,
        hint="make the folder writable for the user that runs cadence",
    )


def _shown(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


def private_dir(path: Path, root: Path | None = None) -> Path:
    """``mkdir -p path``: every folder created is 0700."""
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    try:
        for folder in reversed(missing):
            try:
                os.mkdir(folder, DIR_MODE)
            except FileExistsError:
                if not folder.is_dir():
                    raise
                continue
            os.chmod(folder, DIR_MODE)  # the umask may have taken bits off; never adds any
    except OSError as exc:
        raise write_error(path, exc, root) from None
    return path


def tighten_target(root: Path) -> Path:
    """Make ``target/`` 0700, and once per process everything in it owner-only (a target/
    written before cadence did this, or copied in, may hold 0644 files)."""
    target = target_dir(root)
    private_dir(target, root)
    key = str(target)
    if key in _tightened:
        return target
    with _tightening:
        try:
            if stat.S_IMODE(os.stat(target).st_mode) != DIR_MODE:
                os.chmod(target, DIR_MODE)
                for dirpath, dirnames, filenames in os.walk(target):
                    for d in dirnames:
                        _chmod_quietly(os.path.join(dirpath, d), DIR_MODE)
                    for f in filenames:
                        _chmod_quietly(os.path.join(dirpath, f), FILE_MODE)
        except OSError as exc:
            raise write_error(target, exc, root) from None
        _tightened.add(key)
    return target


def _chmod_quietly(path: str, mode: int) -> None:
    try:
        if not os.path.islink(path):
            os.chmod(path, mode)
    except OSError:
        pass


def make_private(path: Path) -> None:
    """Owner-only an existing file (a warehouse or .wal DuckDB created); absent is fine."""
    try:
        if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
            os.chmod(path, FILE_MODE)
    except FileNotFoundError:
        pass


def fsync_dir(folder: Path) -> None:
    """Sync a folder: the names just renamed into it are on disk before the next step."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_made: set[str] = set()  # folders written into by this process (compiled SQL: 10,000 writes)


def write_bytes(
    path: Path,
    data: bytes,
    root: Path | None = None,
    *,
    durable: bool = True,
    unless_same: bool = False,
) -> Path:
    """Owner-only atomic write (module invariants). Folders are created 0700. ``durable=False``
    skips the fsync, for files rebuilt on every run (compiled SQL): still atomic, not flushed.
    ``unless_same``: nothing is written when ``path`` already holds exactly ``data`` (``holds``)."""
    if unless_same and holds(path, data):
        return path
    folder = str(path.parent)
    if folder not in _made:
        private_dir(path.parent, root)
        _made.add(folder)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        except FileNotFoundError:  # the folder was removed since: make it again
            private_dir(path.parent, root)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:  # an interrupt too: never leave the temporary file behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise write_error(path, exc, root) from None
        raise
    return path


_OPEN_EXISTING = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def open_regular(path: Path) -> BinaryIO:
    """A file cadence keeps (in target/), opened for reading only when it is a regular file: a
    FIFO put in its place (which would block the open or the read forever), a symlink or a
    folder raise ``OSError`` as a missing file does, so a reader treats them alike."""
    fd = os.open(path, _OPEN_EXISTING)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EINVAL, "not a regular file", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path) -> bytes:
    """``open_regular`` and read it whole."""
    with open_regular(path) as fh:
        return fh.read()


def holds(path: Path, data: bytes) -> bool:
    """True when ``path`` is a regular file of this user, mode 0600, with one link, holding
    exactly ``data`` (a size check first, then the bytes). A symlink, anything not a regular
    file, or a file that cannot be read answers False: the caller writes it as usual."""
    try:
        with open_regular(path) as fh:
            st = os.fstat(fh.fileno())
            if (
                st.st_size != len(data)
                or stat.S_IMODE(st.st_mode) != FILE_MODE
                or st.st_nlink != 1
                or st.st_uid != os.geteuid()
            ):
                return False
            return fh.read(len(data) + 1) == data  # one byte past: a file that grew differs
    except OSError:
        return False


def write_text(
    path: Path,
    text: str,
    root: Path | None = None,
    *,
    durable: bool = True,
    unless_same: bool = False,
) -> Path:
    return write_bytes(path, text.encode("utf-8"), root, durable=durable, unless_same=unless_same)


def write_compiled(root: Path, model_path: str, sql: str) -> str:
    """A model's compiled SQL under ``target/compiled/`` (left alone when it holds that text)."""
    base = target_folder(root)  # one stat of dbt_project.yml, not three
    rel = f"{base}/compiled/{model_path}"
    if str(root / base) not in _tightened:
        tighten_target(root)
    text = sql if sql.endswith("\n") else sql + "\n"
    write_text(root / rel, text, root, durable=False, unless_same=True)
    return rel


def write_json(root: Path, name: str, data: Any) -> Path:
    path = tighten_target(root) / name
    # no indent: only then does json use its C encoder (run results of 10,000 models)
    text = json.dumps(data, default=str, separators=(",", ":")) + "\n"
    return write_text(path, text, root, durable=False)  # rewritten by every run, cron's too
