"""The file destination: a delivery becomes one data file (parquet, csv or jsonl, written by
DuckDB's own ``COPY``) and its ``<export_id>.manifest.json``.

Input: a fixed range of frozen changes of one channel x segment -> output: the data file and
its manifest under the export folder, and a ``DeliveryOutcome``. Invariants: the data file is
written by ``COPY`` under a temporary name, hashed and fdatasynced; the manifest (with that
sha256) is written and fdatasynced under its temporary name; then the data file is renamed in
and its folder synced, and only then the manifest is renamed in and the folder synced again
(before the caller commits the delivery). So a reader that sees a manifest knows its file is
complete, and no crash order (renames are not ordered on disk without the folder sync between
them) leaves a manifest naming a missing file or the older one a retry was replacing; the
export id and path depend only on the range and the attempt's planned time, so a retry rewrites
the same file (or, when its manifest already matches, leaves it) and never adds a second one;
files are 0600 and folders 0700 whatever the umask; a path never leaves the project folder (or
the absolute ``export_root``); names with ``/`` or ``..`` are refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import signal
import stat
from dataclasses import dataclass
from pathlib import Path

from cadence.activation import instants, outbox
from cadence.activation.instants import INSTANT
from cadence.activation.outbox import DeliveryOutcome
from cadence.disk import artifacts
from cadence.engines.base import Engine, EngineError
from cadence.load.channelconfig import ExportConfig
from cadence.load.relations import quote

FAULT_ENV = "CADENCE_TEST_FAULT"  # test-only: kill -9 this process at a named step
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MAX_MANIFEST_BYTES = 1 << 20  # a manifest is a few hundred bytes; anything larger is not one
COPY_OPTIONS = {
    "parquet": "format parquet",
    "csv": "format csv, header true",
    "jsonl": "format json",
}


class ExportPathError(Exception):
    """A path template that would write outside the allowed folder, or a name that cannot be
    part of a path."""


def checkpoint(step: str) -> None:
    """Test-only fault injection: ``CADENCE_TEST_FAULT=<step>`` kills this process with
    SIGKILL when the delivery reaches ``step`` (used by tests/test_activation_files.py)."""
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def export_id(channel: str, segment: str, first: int, last: int) -> str:
    """Deterministic: the same range of the same channel x segment always has the same id."""
    return f"{channel}__{segment}__{first:09d}-{last:09d}"


@dataclass(frozen=True)
class FileExport:
    outcome: DeliveryOutcome
    export_id: str
    path: str | None = None  # relative to the project when inside it
    rows: int | None = None


def render_path(
    template: str,
    *,
    root: Path,
    export_root: str | None,
    channel: str,
    segment: str,
    export: str,
    fmt: str,
    planned_at: dt.datetime,
) -> Path:
    for what, value in (("channel", channel), ("segment", segment)):
        if not SAFE_NAME.match(value) or ".." in value:
            raise ExportPathError(f"{what} name {value!r} cannot be part of an export path")
    utc = planned_at.astimezone(dt.timezone.utc)
    text = template.format(
        channel=channel,
        segment=segment,
        export_id=export,
        run_at=utc.strftime("%Y%m%dT%H%M%SZ"),
        date=utc.strftime("%Y-%m-%d"),
        format=fmt,
    )
    base = Path(export_root) if export_root else root
    candidate = Path(text) if os.path.isabs(text) else base / text
    # the folder is resolved, not the file: a symlink where the file goes is replaced by the
    # rename, never followed (it would overwrite whatever it points at)
    real = Path(os.path.realpath(candidate.parent)) / candidate.name
    allowed = [Path(os.path.realpath(root))]
    if export_root:
        allowed.append(Path(os.path.realpath(export_root)))
    if not any(real == a or a in real.parents for a in allowed):
        where = "the project folder" + (f" or export_root {export_root}" if export_root else "")
        raise ExportPathError(
            f"export path {text} resolves outside {where}"
            + ("" if export_root else " (set an absolute export_root to write elsewhere)")
        )
    return real


def _make_folders(folder: Path) -> None:
    missing = []
    here = folder
    while not here.exists():
        missing.append(here)
        here = here.parent
    for path in reversed(missing):
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)  # whatever the umask
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")


def _reserve(tmp: Path) -> int:
    """Open the temporary file (created owner-only, emptied) before anything writes into it."""
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # an older leftover may have other bits
    return fd


def _hash_and_sync(tmp: Path) -> str:
    """Owner-only, then sha256 of the file DuckDB wrote (read back from the page cache, one
    open), then fdatasync it: its content is on disk before anything names it. (``COPY`` over
    an existing file writes a new one beside it and renames it over, made under the process
    umask: the mode is set here, on what was written.)"""
    with open(tmp, "rb", buffering=0) as fh:
        os.fchmod(fh.fileno(), 0o600)
        digest = _sha256(fh)
        os.fdatasync(fh.fileno())
    return digest


def _sha256(fh: io.FileIO) -> str:
    h = hashlib.sha256()
    buf = bytearray(1 << 18)
    view = memoryview(buf)
    while n := fh.readinto(buf):
        h.update(view[:n])
    return h.hexdigest()


def _write_synced(tmp: Path, body: bytes) -> None:
    fd = _reserve(tmp)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _rename_durably(tmp: Path, final: Path) -> None:
    """Rename, then sync the folder: the new name is on disk before the next step."""
    os.replace(tmp, final)
    artifacts.fsync_dir(final.parent)


def sha256_of(path: Path) -> str:
    with open(path, "rb", buffering=0) as fh:
        return _sha256(fh)


def data_sql(
    channel: str,
    segment: str,
    mode: str,
    first: int,
    last: int,
    column_types: tuple[tuple[str, str], ...],
    fmt: str = "parquet",
    key_type: str = "VARCHAR",
) -> str:
    """The rows of a delivery: its changes (``changes``) or the audience after it (``full``),
    with the columns ``columns_of`` names: the key in ``key_type`` (the segment's key column
    type, which ``key_type_of`` checked every key casts to) and every time an instant
    (``instants.file_column``)."""
    struct = json.dumps({name: kind for name, kind in column_types})
    unpack = (
        ", json_transform(coalesce(columns, '{}'), " + _lit(struct) + ") as c"
        if column_types
        else ""
    )
    key = "key" if key_type.upper() == "VARCHAR" else f"cast(key as {key_type}) as key"
    picked = "".join(
        f", {instants.file_column(f'struct_extract(c, {_lit(name)})', kind, fmt)[0]} "
        f"as {quote(name)}"
        for name, kind in column_types
    )
    if mode == "full":
        projected = outbox.projected_sql(channel, segment, through=last)
        inner = f"select key{unpack} from ({projected}) as p"
        return f"select {key}{picked} from ({inner}) as r order by r.key"
    at = instants.file_column('"at"', "TIMESTAMP", fmt)[0]
    inner = (
        f'select seq, key, change, "at"{unpack} from {outbox.OUTBOX} '
        f"where channel = {_lit(channel)} and segment = {_lit(segment)} "
        f"and seq >= {first} and seq <= {last}"
    )
    return f'select seq, {key}, change, {at} as "at"{picked} from ({inner}) as r order by seq'


def columns_of(
    mode: str, column_types: tuple[tuple[str, str], ...], key_type: str = "VARCHAR"
) -> list[tuple[str, str]]:
    """The columns ``data_sql`` produces, with their types (json_transform casts to exactly
    the recorded types, so no query is needed to know them)."""
    fixed = [("key", key_type)]
    if mode != "full":
        fixed = [("seq", "BIGINT"), ("key", key_type), ("change", "VARCHAR"), ("at", INSTANT)]
    return fixed + [(name, instants.file_column(name, kind, "")[1]) for name, kind in column_types]


def key_type_of(engine: Engine, sql: str, wanted: str | None) -> str:
    """The type the key is written in: the segment's key column type when every key of the
    delivery casts back to it (keys are recorded as text; one recorded while the column had
    another type keeps them all text), else VARCHAR."""
    if not wanted or wanted.upper() == "VARCHAR":
        return "VARCHAR"
    try:
        bad = engine.query(
            f"select count(*) from ({sql}) as d "
            f"where key is not null and try_cast(key as {wanted}) is null"
        )[0][0]
    except EngineError:  # a type that text cannot be cast to at all
        return "VARCHAR"
    return "VARCHAR" if bad else wanted


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _already_written(manifest: Path, data: Path, export: str) -> int | None:
    """The rows of this export when its manifest and data file are both in place and match
    (a kill after the manifest, before the commit); None when it must be (re)written. Never
    raises: ``Path.exists`` raises PermissionError in a folder that cannot be searched, which
    ended the whole run (exit 3) instead of failing this delivery when writing it."""
    found_manifest = _open_regular(manifest)
    if found_manifest is None:  # also a folder that cannot be searched: writing says why
        return None
    with found_manifest:
        try:
            found = json.loads(found_manifest.read(MAX_MANIFEST_BYTES).decode("utf-8"))
        except (OSError, ValueError):
            return None
    found_data = _open_regular(data)
    if found_data is None or not isinstance(found, dict):
        return None
    with found_data:
        try:
            digest = _sha256(found_data)
        except OSError:
            return None
    if found.get("export_id") == export and found.get("sha256") == digest:
        return int(found.get("rows") or 0)
    return None


def _open_regular(path: Path) -> io.FileIO | None:
    """``path`` opened for reading when it is a regular file (not through a symlink); None
    otherwise. Opened without blocking: a FIFO put where an export goes would wait forever
    for a writer (holding the run lock), so it is replaced like any other leftover."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return io.FileIO(fd, "rb", closefd=True)


def deliver_file(
    engine: Engine,
    config: ExportConfig,
    *,
    root: Path,
    export_root: str | None,
    channel: str,
    segment: str,
    cursor: outbox.Cursor,
    counts: outbox.Counts,
    replace: bool,
    published_at: dt.datetime,
    key_type: str | None = None,
) -> FileExport:
    """Write the attempt's range (``cursor.planned_first..planned_last``) as one file plus
    manifest; ``key_type``: the segment's key column type (None: unknown, keys as text).
    Failures come back in the outcome (``delivered_through`` None), never raised."""
    first, last = cursor.planned_first or 0, cursor.planned_last or 0
    export = export_id(channel, segment, first, last)
    planned_at = cursor.planned_at or published_at
    try:
        data = render_path(
            config.path,
            root=root,
            export_root=export_root,
            channel=channel,
            segment=segment,
            export=export,
            fmt=config.format,
            planned_at=planned_at,
        )
    except ExportPathError as exc:  # the path template's fault: name where it is written
        where = f"cadence.yml:{config.line}: " if config.line else "cadence.yml: "
        return FileExport(
            DeliveryOutcome(None, 0, f"{where}channel '{channel}' export: {exc}"), export
        )
    manifest = data.with_name(f"{export}.manifest.json")
    shown = _shown(data, root)
    written = _already_written(manifest, data, export)
    if written is not None:
        # a kill after the manifest, before the commit: the file is complete, do not redo it
        return FileExport(DeliveryOutcome(last, 0, None), export, shown, written)
    tmp = data.with_name(f".{data.name}.tmp")
    manifest_tmp = manifest.with_name(f".{manifest.name}.tmp")
    types = cursor.column_types
    try:
        keys = key_type_of(
            engine, data_sql(channel, segment, config.mode, first, last, ()), key_type
        )
        sql = data_sql(channel, segment, config.mode, first, last, types, config.format, keys)
        _make_folders(data.parent)
        engine.execute(f"copy ({sql}) to {_lit(str(tmp))} ({COPY_OPTIONS[config.format]})")
        digest = _hash_and_sync(tmp)
        rows = (
            counts.total
            if config.mode == "changes"
            else int(engine.query(f"select count(*) from ({sql}) as r")[0][0])
        )
        body = {
            "export_id": export,
            "channel": channel,
            "segment": segment,
            "mode": config.mode,
            "format": config.format,
            "file": data.name,
            "change_range": {"first_seq": first, "last_seq": last},
            "counts": {"entered": counts.entered, "exited": counts.exited},
            "rows": rows,
            "columns": [
                {"name": name, "type": kind} for name, kind in columns_of(config.mode, types, keys)
            ],
            "sha256": digest,
            "published_at": published_at.astimezone(dt.timezone.utc).isoformat(),
            "replace": replace,
        }
        _write_synced(manifest_tmp, (json.dumps(body, indent=2) + "\n").encode())
        checkpoint("after_synced")  # both on disk under temporary names: nothing visible yet
        # the data file's name is on disk before the manifest's: no crash leaves a manifest
        # naming a file that is missing (or an older one the retry was replacing)
        _rename_durably(tmp, data)
        checkpoint("after_data")
        # ... and the manifest's before the caller commits the delivery
        _rename_durably(manifest_tmp, manifest)
        checkpoint("after_manifest")
    except (OSError, EngineError) as exc:
        for leftover in (tmp, manifest_tmp):
            try:
                leftover.unlink()
            except OSError:
                pass
        return FileExport(DeliveryOutcome(None, 0, _reason(exc, shown)), export, shown)
    return FileExport(DeliveryOutcome(last, counts.total, None), export, shown, rows)


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(os.path.realpath(root)).as_posix()
    except ValueError:
        return str(path)


def _reason(exc: BaseException, shown: str) -> str:
    if isinstance(exc, OSError):
        import errno

        if exc.errno == errno.ENOSPC:
            return f"disk full writing {shown}"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"permission denied writing {shown} ({exc.filename or ''})".replace(" ()", "")
        if isinstance(exc, (NotADirectoryError, FileExistsError)):
            return f"cannot write {shown}: a path component is a file, not a folder"
        return f"cannot write {shown}: {exc.strerror or exc}"
    text = str(exc)  # DuckDB's COPY reports the OS error in its message
    if "No space left" in text or "disk full" in text.lower():
        return f"disk full writing {shown}"
    if "Permission denied" in text or "Operation not permitted" in text:
        return f"permission denied writing {shown}"
    if "Not a directory" in text:
        return f"cannot write {shown}: a path component is a file, not a folder"
    return f"cannot write {shown}: {text.splitlines()[0] if text else type(exc).__name__}"


__all__ = ["FileExport", "deliver_file", "export_id", "render_path"]
