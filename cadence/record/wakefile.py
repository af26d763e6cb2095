"""The wake file: what a run leaves so that the next idle ``run --due`` need not open anything.

Input: a ``WakeRecord`` -- the run's id and time, the next instant anything can become due
(``plan.wake``), the fingerprint of the project the run loaded (``load.inputs``), the identity
of the warehouse file as the run left it, and the files an idle run would otherwise repair ->
output: ``target/wake.json``; and back: the record, or None for anything that is not exactly
one (``read``). A file's identity is its device, inode, size, mtime and ctime in nanoseconds:
an edit, a ``cp -p`` restore of an older copy (new inode and ctime) or a ``touch -r`` is a
different identity.

Invariants (as the load cache's): data only (versioned JSON of names, digests, numbers and
times: no code runs on load, no environment value is stored, only digests); a keyed checksum
in the header line (the per-user key of ``load.inputs``: a file edited, planted or copied from
another checkout never verifies); written owner-only to a temporary name, fsynced and renamed
(a reader sees the previous file or the new one); standard library only, so reading it costs
no imports.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadence import __version__
from cadence.disk import artifacts
from cadence.load.inputs import cache_key, checksum
from cadence.load.layout import CADENCE_LAYOUT, Layout, PackagePaths

WAKE_FILE = "wake.json"  # in target/, beside the state snapshot
MAGIC = b"cadence-wake"
VERSION = 1


@dataclass(frozen=True)
class FileIdentity:
    """Which file is at ``path`` and whether it changed: (device, inode, size, mtime_ns,
    ctime_ns) as ``os.stat`` gives them."""

    path: str
    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


@dataclass(frozen=True)
class WakeRecord:
    run_id: str
    run_at: dt.datetime  # the time the run ran as (its --at): a later run at an earlier time
    wake_at: dt.datetime | None  # None: nothing time-driven is left
    reason: str  # why then (for people reading the file)
    timezone: str  # the project's: naive --at times are read in it
    inputs: str  # load.inputs: the digest of every input file as the run loaded them
    env: tuple[tuple[str, str | None], ...]  # (variable, digest of its value) the load read
    warehouse: FileIdentity  # the warehouse file as the run left it
    present: tuple[str, ...] = ()  # files (absolute paths) an idle run writes when missing
    unchanged: tuple[FileIdentity, ...] = ()  # files an idle run rewrites when changed
    layout: Layout = CADENCE_LAYOUT  # where the inputs are (a dbt project's folders, packages)
    options: str = ""  # digest of the load options (--vars, --target, dbt's env) of the run


def path_of(root: Path) -> Path:
    return artifacts.target_dir(root) / WAKE_FILE


def identity(path: str | Path) -> FileIdentity | None:
    """The identity of the file at ``path`` now (None: no such file, or not a regular file)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not (st.st_mode & 0o170000) == 0o100000:  # S_ISREG without importing stat
        return None
    return FileIdentity(str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _version() -> bytes:
    return f"{__version__}/{VERSION}".encode()


def _identity_data(f: FileIdentity) -> list[Any]:
    return [f.path, f.device, f.inode, f.size, f.mtime_ns, f.ctime_ns]


def to_data(record: WakeRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "run_at": record.run_at.isoformat(),
        "wake_at": record.wake_at.isoformat() if record.wake_at is not None else None,
        "reason": record.reason,
        "timezone": record.timezone,
        "inputs": record.inputs,
        "env": [list(pair) for pair in record.env],
        "warehouse": _identity_data(record.warehouse),
        "present": list(record.present),
        "unchanged": [_identity_data(f) for f in record.unchanged],
        "layout": [
            record.layout.kind,
            list(record.layout.files),
            [[getattr(p, f) for f in _PACKAGE_FIELDS] for p in record.layout.packages],
        ],
        "options": record.options,
    }


def write(root: Path, record: WakeRecord) -> Path:
    """Write the record atomically (temp, fsync, rename), owner-only, with its checksum."""
    body = json.dumps(to_data(record), separators=(",", ":")).encode()
    head = b" ".join((MAGIC, _version(), checksum(cache_key(), _bound(root, body)))) + b"\n"
    artifacts.tighten_target(root)
    return artifacts.write_bytes(path_of(root), head + body, root)


def _bound(root: Path, body: bytes) -> bytes:
    """What the checksum covers: the record and the project folder it was written for, so a
    copied project (``cp -a``), whose record names the original's warehouse and files, does
    not verify and its first ``run --due`` takes the full path."""
    return os.fsencode(os.path.realpath(root)) + b"\n" + body


def remove(root: Path) -> None:
    """No wake file: the next ``run --due`` takes the full path."""
    try:
        os.unlink(path_of(root))
    except FileNotFoundError:
        pass


def read(root: Path) -> WakeRecord | None:
    """The record, when the file verifies and holds exactly one; else None (never raises)."""
    try:
        data = artifacts.read_regular(path_of(root))
    except (OSError, ValueError):
        return None
    head, _, body = data.partition(b"\n")
    parts = head.split(b" ")
    if len(parts) != 3 or parts[0] != MAGIC or parts[1] != _version():
        return None
    if not hmac.compare_digest(parts[2], checksum(cache_key(), _bound(root, body))):
        return None  # edited, planted, written with another key or for another folder
    try:
        return _from_data(json.loads(body))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _text(value: object) -> str:
    if type(value) is not str:
        raise TypeError(f"not text: {value!r}")
    return value


def _number(value: object) -> int:
    if type(value) is not int:
        raise TypeError(f"not a whole number: {value!r}")
    return value


def _time(value: object) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(_text(value))
    if parsed.tzinfo is None:
        raise ValueError(f"time without offset: {value!r}")
    return parsed


def _identity_from(value: object) -> FileIdentity:
    if type(value) is not list or len(value) != 6:
        raise TypeError("not a file identity")
    return FileIdentity(_text(value[0]), *(_number(v) for v in value[1:]))


def _from_data(data: object) -> WakeRecord:
    if type(data) is not dict:
        raise TypeError("not a wake record")
    env = []
    for pair in data["env"]:
        if type(pair) is not list or len(pair) != 2:
            raise TypeError("not an environment digest")
        env.append((_text(pair[0]), None if pair[1] is None else _text(pair[1])))
    return WakeRecord(
        run_id=_text(data["run_id"]),
        run_at=_time(data["run_at"]),
        wake_at=None if data["wake_at"] is None else _time(data["wake_at"]),
        reason=_text(data["reason"]),
        timezone=_text(data["timezone"]),
        inputs=_text(data["inputs"]),
        env=tuple(env),
        warehouse=_identity_from(data["warehouse"]),
        present=tuple(_text(p) for p in data["present"]),
        unchanged=tuple(_identity_from(f) for f in data["unchanged"]),
        layout=_layout_from(data["layout"]),
        options=_text(data["options"]),
    )


_PACKAGE_FIELDS = tuple(PackagePaths.__dataclass_fields__)  # name, folder, then tuples of paths


def _layout_from(value: object) -> Layout:
    if type(value) is not list or len(value) != 3:
        raise TypeError("not a layout")
    kind, files, packages = value
    out = []
    for row in packages:
        if type(row) is not list or len(row) != len(_PACKAGE_FIELDS):
            raise TypeError("not a package")
        name, folder, *paths = row
        out.append(PackagePaths(_text(name), _text(folder), *(tuple(map(_text, p)) for p in paths)))
    return Layout(_text(kind), tuple(out), tuple(_text(f) for f in files))
