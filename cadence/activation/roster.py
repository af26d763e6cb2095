"""The members snapshot: what ``cadence members`` answers from while a run holds the warehouse.

Input: a segment whose publish transaction just committed (its live relation and key) and its
rows in ``_cadence.membership_changes`` -> output: files under ``target/members/<segment>/``:

- ``members.parquet``: the keys (as text, unsorted: the reader sorts) as of change ``through``
  (parquet key-value metadata, with ``run_id`` and ``as_of``, the publish time, UTC ISO 8601).
  It is a base, not rewritten at every publish: the current members are the base with the
  later parts applied (each key's latest change after ``through``), so a publish writes only
  its changes; the base is rewritten when the changes after it reach a quarter of its rows (at
  least ``REBASE_MIN``), past ``COMPACT_AFTER`` parts, or before pruning would remove a part it
  does not cover;
- ``changes/<first>-<last>-<newest>.parquet``: the membership changes with change_id
  ``first..last`` (one part per publish that changed membership; a part after a kill also
  covers what the killed run committed; past ``COMPACT_AFTER`` parts, each earlier UTC day's
  parts are merged into one), ``newest`` the latest ``at`` in it (UTC), by which
  ``history.keep_days`` prunes whole parts.

And back: a ``MembersAnswer`` read with an in-memory DuckDB (the warehouse is never opened).

Invariants: every file is written by DuckDB's ``COPY`` to a temporary dot-name, fdatasynced and
renamed, so a reader (or a kill -9 at any step) sees the previous file or the new one, never half
of one; a part is renamed and its folder synced before ``members.parquet`` says ``through`` it,
so no crash order leaves a gap that the next write would not fill; files are 0600 and folders
0700 whatever the umask. Written only when the segment's membership changed (or nothing is
there yet), so an unchanged segment costs one indexed count and a changed one the size of
its changes (plus, now and then, one rewrite of the base). A failed write never fails the
publish: it comes back as a warning and the next publish of the segment catches up. DuckDB
only (with Spark the segment's rows live in Spark; ``members`` then needs the state file free).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path

from cadence.disk import artifacts
from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError
from cadence.load.parser import Model
from cadence.load.relations import quote
from cadence.record.membership import TABLE, MembershipChange
from cadence.record.state import from_db, to_db

FOLDER = "target/members"  # in a cadence project (artifacts.target_dir)
MEMBERS_DIR = "members"
MEMBERS = "members.parquet"
CHANGES = "changes"
FAULT_ENV = "CADENCE_TEST_FAULT"  # test-only: kill -9 this process at a named step
_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_PART = re.compile(r"^(\d{12})-(\d{12})-(\d{8}T\d{6}Z)\.parquet$")
_STAMP = "%Y%m%dT%H%M%SZ"
COMPACT_AFTER = 64  # parts of a segment before earlier days' parts are merged, one per day
REBASE_MIN = 10_000  # changes after the base before it may be rewritten (and a quarter of it)


@dataclass(frozen=True)
class MembersAnswer:
    """``cadence members``: the keys (sorted) or, with ``changes``, the history; ``as_of``
    and ``note`` are set when it comes from the snapshot (when the segment was published, and
    why the warehouse was not read)."""

    segment: str
    keys: tuple[str, ...] = ()
    changes: tuple[MembershipChange, ...] | None = None
    as_of: dt.datetime | None = None
    note: str | None = None
    source: str | None = None  # the snapshot folder, relative to the project


def _checkpoint(step: str) -> None:
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def folder_of(root: Path, segment: str) -> Path:
    return artifacts.target_dir(root) / MEMBERS_DIR / segment


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _parts(changes: Path) -> list[tuple[int, int, dt.datetime, Path]]:
    """(first, last, newest, path) of every complete part, oldest first."""
    found = []
    try:
        names = os.listdir(changes)
    except FileNotFoundError:
        return []
    for name in names:
        m = _PART.match(name)
        if m:
            newest = dt.datetime.strptime(m.group(3), _STAMP).replace(tzinfo=dt.timezone.utc)
            found.append((int(m.group(1)), int(m.group(2)), newest, changes / name))
    return sorted(found)


def _metadata(engine: Engine, path: Path) -> dict[str, str]:
    rows = engine.query(
        f"select decode(key), decode(value) from parquet_kv_metadata({_lit(str(path))})"
    )
    return {str(k): str(v) for k, v in rows}


def _copy(engine: Engine, sql: str, final: Path, step: str, options: str = "") -> None:
    """COPY ``sql`` to ``final`` atomically: owner-only temp name, fdatasync, rename."""
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
        engine.execute(f"copy ({sql}) to {_lit(str(tmp))} (format parquet{options})")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fchmod(fd, artifacts.FILE_MODE)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        _checkpoint(f"roster_before_{step}_rename")
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _sweep(folder: Path) -> None:
    """Temporary files a killed writer left (only the run holding the lock writes here)."""
    for here in (folder, folder / CHANGES):
        try:
            names = os.listdir(here)
        except FileNotFoundError:
            continue
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                try:
                    os.unlink(here / name)
                except OSError:
                    pass


def write(
    engine: Engine,
    root: Path,
    *,
    segment: str,
    relation: str,
    key: str,
    run_id: str,
    at: dt.datetime,
    rebase: bool = False,
) -> list[str]:
    """After ``segment``'s publish committed: bring its snapshot up to date (``rebase``: and
    rewrite its base). Returns warnings (a write that failed; the publish stands and the next
    one catches up), never raises."""
    if engine.state_store() is not engine or not _SAFE.match(segment) or ".." in segment:
        return []
    folder = folder_of(root, segment)
    try:
        artifacts.tighten_target(root)
        artifacts.private_dir(folder / CHANGES, root)
        _sweep(folder)
        members = folder / MEMBERS
        parts = _parts(folder / CHANGES)
        through = _through(engine, members)
        high = max([through or 0, *(p[1] for p in parts)])
        first, last, count, newest = engine.query(
            f'select min(change_id), max(change_id), count(*), max("at") from {TABLE} '
            f"where segment = {_lit(segment)} and change_id > {high}"
        )[0]
        if count:
            stamp = (from_db(newest) or at).strftime(_STAMP)
            name = f"{int(first):012d}-{int(last):012d}-{stamp}.parquet"
            _copy(
                engine,
                f'select change_id, segment, key, change, run_id, tick, "at" from {TABLE} '
                f"where segment = {_lit(segment)} and change_id >= {int(first)} "
                f"and change_id <= {int(last)} order by change_id",
                folder / CHANGES / name,
                "part",
            )
            # the part is on disk before members.parquet says through it
            artifacts.fsync_dir(folder / CHANGES)
            _checkpoint("roster_after_part")
            high = int(last)
            if len(parts) + 1 > COMPACT_AFTER:
                _compact(engine, folder / CHANGES, at)
        if through is None or (
            through < high and (rebase or _rebase_due(engine, members, folder / CHANGES, through))
        ):
            k = quote(key)
            meta = {
                "format": "cadence.members",
                "segment": segment,
                "through": str(high),
                "run_id": run_id,
                "as_of": at.astimezone(dt.timezone.utc).isoformat(),
            }
            struct = ", ".join(f"{name}: {_lit(value)}" for name, value in meta.items())
            _copy(
                engine,
                f"select cast({k} as varchar) as key from {relation} where {k} is not null",
                members,
                "members",
                f", kv_metadata {{{struct}}}",
            )
            _checkpoint("roster_after_members")
    except (OSError, EngineError, CadenceError) as exc:
        text = exc.message if isinstance(exc, CadenceError) else str(exc)
        first_line = (text.splitlines() or [type(exc).__name__])[0]
        return [f"members snapshot of {segment} not written ({first_line})"]
    return []


def _rebase_due(engine: Engine, members: Path, changes: Path, through: int) -> bool:
    """The changes after the base are many enough (rows, from the parquet footers) that reading
    them costs about as much as the base: rewrite it."""
    pending = [p for p in _parts(changes) if p[1] > through]
    if len(pending) > COMPACT_AFTER:
        return True
    files = "[" + ", ".join(_lit(str(p[3])) for p in pending) + "]"
    rows = engine.query(
        f"select coalesce(sum(num_rows), 0) from parquet_file_metadata({_lit(str(members))})"
    )[0][0]
    changed = engine.query(f"select sum(num_rows) from parquet_file_metadata({files})")[0][0]
    return int(changed or 0) >= max(REBASE_MIN, int(rows or 0) // 4)


def _through(engine: Engine, members: Path) -> int | None:
    return int(_metadata(engine, members).get("through", 0)) if members.exists() else None


def _compact(engine: Engine, changes: Path, at: dt.datetime) -> None:
    """Merge the parts of each earlier UTC day into one (a 5-minute segment adds 288 parts a
    day). The merged part is renamed in and synced before the parts it covers are removed: a
    kill between leaves overlapping parts, which readers take once (``distinct``) and the next
    compaction merges again under the same name."""
    today = at.astimezone(dt.timezone.utc).date()
    days: dict[dt.date, list[tuple[int, int, dt.datetime, Path]]] = {}
    for part in _parts(changes):
        if part[2].date() < today:
            days.setdefault(part[2].date(), []).append(part)
    for group in days.values():
        if len(group) < 2:
            continue
        first, last = min(p[0] for p in group), max(p[1] for p in group)
        newest = max(p[2] for p in group).strftime(_STAMP)
        merged = changes / f"{first:012d}-{last:012d}-{newest}.parquet"
        files = "[" + ", ".join(_lit(str(p[3])) for p in group) + "]"
        _copy(
            engine,
            f"select distinct * from read_parquet({files}) order by change_id",
            merged,
            "merged",
        )
        artifacts.fsync_dir(changes)
        _checkpoint("roster_after_merge")
        for p in group:
            if p[3] != merged:
                p[3].unlink(missing_ok=True)


def keep(
    engine: Engine, root: Path, model: Model, run_id: str, at: dt.datetime, rebase: bool = False
) -> tuple[str, ...]:
    """The runner's hook once a model's publish committed (and its result is recorded, so an
    interrupt here loses nothing): a segment's snapshot, warnings back."""
    if not model.config.key or model.materialized in ("view", "ephemeral"):
        return ()
    found = write(
        engine,
        root,
        segment=model.name,
        relation=model.relation,
        key=model.config.key,
        run_id=run_id,
        at=at,
        rebase=rebase,
    )
    return tuple(found)


def missing(root: Path, segments: list[str]) -> list[str]:
    """Segments with no members file yet (a warehouse from before snapshots were kept). On
    every idle ``run --due``, for every segment: one stat each, no ``Path`` objects."""
    base = os.path.join(artifacts.target_dir(root), MEMBERS_DIR)
    return [s for s in segments if not os.path.isfile(f"{base}/{s}/{MEMBERS}")]


def prune(
    engine: Engine,
    root: Path,
    models: list[Model],
    before: dt.datetime,
    run_id: str,
    at: dt.datetime,
) -> int:
    """``history.keep_days``: drop change parts whose newest change is older than ``before``,
    oldest first (a kill midway leaves a contiguous newer history). A part the base does not
    cover yet is needed for the current members: the base is rewritten first. Returns parts
    removed."""
    removed = 0
    for model in models:
        segment = model.name
        if not _SAFE.match(segment) or ".." in segment:
            continue
        folder = folder_of(root, segment)
        parts = _parts(folder / CHANGES)
        old = [p for p in parts if p[2] < before]
        if not old:
            continue
        try:
            through = _through(engine, folder / MEMBERS)
            if through is not None and any(p[1] > through for p in old):
                keep(engine, root, model, run_id, at, rebase=True)
                through = _through(engine, folder / MEMBERS)
        except (OSError, EngineError):
            continue
        for _first, last, newest, path in parts:
            if newest >= before or through is None or last > through:
                break
            try:
                path.unlink()
                removed += 1
            except OSError:
                break
    return removed


def read(
    root: Path,
    segment: str,
    *,
    changes: bool,
    since: dt.datetime | None,
    why: str,
) -> MembersAnswer:
    """The snapshot of ``segment`` (``why``: why the warehouse is not read)."""
    from cadence.engines.duckdb import DuckDBEngine
    from cadence.load.projectconfig import WarehouseConfig

    folder = folder_of(root, segment)
    shown = artifacts.shown(root, f"{MEMBERS_DIR}/{segment}")
    members = folder / MEMBERS
    if not members.exists() and not (changes and _parts(folder / CHANGES)):
        raise CadenceError(
            f"{why}, and no members snapshot of '{segment}' has been written yet",
            file=shown,
            hint="try again when it finishes (each publish of a segment leaves a snapshot "
            "for `cadence members` to answer from)",
        )
    memory = DuckDBEngine.open(WarehouseConfig(path=":memory:", threads=1), root)
    try:
        for attempt in range(3):  # a part pruned between listing and reading: list again
            try:
                return _read(memory, segment, folder, changes, since, why, shown)
            except EngineError as exc:
                if attempt == 2 or "No files found" not in str(exc) and "No such" not in str(exc):
                    raise CadenceError(
                        f"{why}, and the members snapshot cannot be read "
                        f"({str(exc).splitlines()[0]})",
                        file=shown,
                        hint="try again when it finishes; the next publish writes a new one",
                    ) from None
    finally:
        memory.close()
    raise AssertionError("unreachable")  # pragma: no cover


def _read(
    memory: Engine,
    segment: str,
    folder: Path,
    changes: bool,
    since: dt.datetime | None,
    why: str,
    shown: str,
) -> MembersAnswer:
    members = folder / MEMBERS
    meta = _metadata(memory, members) if members.exists() else {}
    parts = _parts(folder / CHANGES)
    through = int(meta.get("through", 0))
    pending = [p for p in parts if p[1] > through]
    as_of_text = meta.get("as_of")
    as_of = dt.datetime.fromisoformat(as_of_text) if as_of_text else None
    if pending or as_of is None:  # as of the latest change the answer holds
        as_of = max(filter(None, (as_of, *(p[2] for p in (pending or parts)[-1:]))), default=None)
    if not changes:
        base = f"select key from read_parquet({_lit(str(members))})"
        if pending:  # the base, with each key's latest change after it applied
            files = "[" + ", ".join(_lit(str(p[3])) for p in pending) + "]"
            base = (
                f"with c as (select key, arg_max(change, change_id) as last "
                f"from read_parquet({files}) where change_id > {through} group by key) "
                f"select b.key from ({base}) b anti join c using (key) "
                f"union all select key from c where last = 'entered'"
            )
        keys = memory.query(f"select key from ({base}) order by key")
        return MembersAnswer(segment, tuple(str(r[0]) for r in keys), None, as_of, why, shown)
    if not parts:
        return MembersAnswer(segment, (), (), as_of, why, shown)
    files = "[" + ", ".join(_lit(str(p[3])) for p in parts) + "]"
    where = f' where "at" >= {_lit(str(to_db(since)))}' if since is not None else ""
    rows = memory.query(
        f'select distinct change_id, segment, key, change, run_id, tick, "at" '
        f"from read_parquet({files}){where} order by change_id"
    )
    found = tuple(
        MembershipChange(
            int(r[0]), r[1], r[2], r[3], r[4], from_db(r[5]), from_db(r[6]) or dt.datetime.min
        )
        for r in rows
    )
    return MembersAnswer(segment, (), found, as_of, why, shown)
