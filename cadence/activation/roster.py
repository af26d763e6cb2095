"""The members snapshot: what ``cadence members`` answers from while a run holds the warehouse.

Input: segments whose publish committed (their live relation and key) and their rows in
``_cadence.membership_changes`` -> output: files under ``target/members/<segment>/``
(``rosterread`` reads them back, ``rosterkeep`` decides when they are written):

- ``members.parquet``: the keys (as text, unsorted: the reader sorts) as of change ``through``
  (parquet key-value metadata, with ``run_id`` and ``as_of``, the publish time, UTC ISO 8601).
  It is a base, not rewritten at every publish: the current members are the base with the
  later parts applied (each key's latest change after ``through``), so a publish writes only
  its changes; the base is rewritten when the changes after it reach a quarter of its rows (at
  least ``REBASE_MIN``), past ``COMPACT_AFTER`` parts, or before pruning would remove a part it
  does not cover;
- ``changes/<first>-<last>-<newest>.parquet``: the membership changes with change_id
  ``first..last`` (one part per write that found changes; a part after a kill also covers what
  the killed run committed; past ``COMPACT_AFTER`` parts, each earlier UTC day's parts are
  merged into one), ``newest`` the latest ``at`` in it (UTC), by which ``history.keep_days``
  prunes whole parts.

``write_many`` brings many segments up to date in one pass: one query for where each stands,
one for the changes each lacks, one COPY (partitioned by segment) for all their parts and one
per 200 bases due, except that a segment with ``_ALONE_ROWS`` changes or more has a COPY of its
own for each (cheaper per row, and its rows are not held with the others'), the files synced
together on threads (the file system commits concurrent syncs together).

Invariants: every file is written by DuckDB's ``COPY`` to a temporary dot-name (``rosterstage``),
fdatasynced and renamed, so a reader (or a kill -9 at any step) sees the previous file or the new
one, never half of one; a part is renamed and its folder synced before ``members.parquet`` says
``through`` it, so no crash order leaves a gap that the next write would not fill; files are 0600
and folders 0700 whatever the umask. Written only when the segment's membership changed (or
nothing is there yet). A failed write never fails the publish: it comes back as a warning and
the next write of the segment catches up. DuckDB only (with Spark the segment's rows live in
Spark; ``members`` then needs the state file free).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cadence.activation.rosterstage import literal
from cadence.activation.rosterstage import stage as _stage
from cadence.activation.rosterstage import stage_all as _stage_all
from cadence.activation.rosterstage import unlink as _unlink
from cadence.disk import artifacts
from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError
from cadence.load.relations import quote
from cadence.record.membership import TABLE, MembershipChange
from cadence.record.state import from_db

FOLDER = "target/members"  # in a cadence project (artifacts.target_dir)
MEMBERS_DIR = "members"
MEMBERS = "members.parquet"
CHANGES = "changes"
FAULT_ENV = "CADENCE_TEST_FAULT"  # test-only: kill -9 this process at a named step
SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
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


def members_root(root: Path) -> Path:
    return artifacts.target_dir(root) / MEMBERS_DIR


def folder_of(root: Path, segment: str) -> Path:
    return members_root(root) / segment


def part_files(changes: Path) -> list[tuple[int, int, dt.datetime, Path]]:
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


def metadata(engine: Engine, path: Path) -> dict[str, str]:
    rows = engine.query(
        f"select decode(key), decode(value) from parquet_kv_metadata({literal(str(path))})"
    )
    return {str(k): str(v) for k, v in rows}


def _datasync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _each(work: Callable[[Path], None], paths: list[Path]) -> dict[Path, BaseException]:
    """``work`` on every path, on threads when there are several: the file system commits
    concurrent syncs together (16 syncs cost about what two do one after the other)."""
    failed: dict[Path, BaseException] = {}
    if not paths:
        return failed
    if len(paths) == 1:
        try:
            work(paths[0])
        except OSError as exc:
            failed[paths[0]] = exc
        return failed
    from concurrent.futures import ThreadPoolExecutor

    def one(path: Path) -> None:
        try:
            work(path)
        except OSError as exc:
            failed[path] = exc

    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        list(pool.map(one, paths))
    return failed


def _publish(staged: list[tuple[Path, Path]], step: str) -> dict[Path, BaseException]:
    """Sync every staged temporary file, then rename each over its final name: a reader (or a
    kill -9 at any step) sees the previous file or the new one. Returns the finals not written
    (their temporary file removed)."""
    failed = _each(_datasync, [tmp for tmp, _final in staged])
    if staged:
        _checkpoint(f"roster_before_{step}_rename")
    out: dict[Path, BaseException] = {}
    for tmp, final in staged:
        if tmp in failed:
            _unlink(tmp)
            out[final] = failed[tmp]
            continue
        try:
            os.replace(tmp, final)
        except OSError as exc:
            _unlink(tmp)
            out[final] = exc
    return out


def _copy(engine: Engine, sql: str, final: Path, step: str, options: str = "") -> None:
    """COPY ``sql`` to ``final`` atomically: owner-only temp name, fdatasync, rename."""
    failed = _publish([(_stage(engine, sql, final, options), final)], step)
    if failed:
        raise next(iter(failed.values()))


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


@dataclass(frozen=True)
class Target:
    """A segment whose members files are brought up to date: its name, live relation, key."""

    segment: str
    relation: str
    key: str


def write_many(
    engine: Engine,
    root: Path,
    targets: list[Target],
    run_id: str,
    at: dt.datetime,
    *,
    rebase: bool = False,
) -> dict[str, tuple[str, ...]]:
    """Bring the snapshots of ``targets`` up to date in one pass: one query for where each
    stands, one for the changes each lacks, a COPY per segment that changed (and per base due
    a rewrite), the files synced together. Returns warnings per segment (a write that failed:
    its publish stands, and the next write of that segment catches up); never raises."""
    if engine.state_store() is not engine:
        return {}
    targets = [t for t in targets if SAFE.match(t.segment) and ".." not in t.segment]
    warnings: dict[str, tuple[str, ...]] = {}

    def fail(segment: str, exc: BaseException) -> None:
        text = exc.message if isinstance(exc, CadenceError) else str(exc)
        first_line = (text.splitlines() or [type(exc).__name__])[0]
        warnings[segment] = (f"members snapshot of {segment} not written ({first_line})",)

    ready: list[Target] = []
    members = members_root(root)  # found once: each lookup reads dbt_project.yml's stat
    for name in os.listdir(members) if members.is_dir() else ():
        if name.startswith(".batch-"):  # what a killed write left (only the lock holder writes)
            shutil.rmtree(members / name, ignore_errors=True)
    try:
        artifacts.tighten_target(root)
    except (OSError, CadenceError) as exc:
        for t in targets:
            fail(t.segment, exc)
        return warnings
    for t in targets:
        try:
            artifacts.private_dir(members / t.segment / CHANGES, root)
            _sweep(members / t.segment)
            ready.append(t)
        except (OSError, CadenceError) as exc:
            fail(t.segment, exc)
    if not ready:
        return warnings
    try:
        parts = {t.segment: part_files(members / t.segment / CHANGES) for t in ready}
        through = _throughs(engine, members, [t.segment for t in ready])
        high = {s: max([through.get(s) or 0, *(p[1] for p in parts[s])]) for s in parts}
        ranges = _ranges(engine, high)
    except (OSError, EngineError) as exc:
        for t in ready:
            fail(t.segment, exc)
        return warnings
    # the changes each segment lacks, one part each (one COPY for all), synced and renamed
    # together; every part is on disk (its folder synced) before a base says through it
    staged, owner = [], {}
    for chunk in _chunks(ranges):  # a bounded number of rows each; a big segment alone
        finals = {}
        for segment in chunk:
            first, last, newest, _count = ranges[segment]
            stamp = (from_db(newest) or at).strftime(_STAMP)
            name = f"{first:012d}-{last:012d}-{stamp}.parquet"
            finals[segment] = members / segment / CHANGES / name
        more, mine = _stage_all(
            engine,
            members,
            finals,
            _parts_sql({s: ranges[s] for s in chunk}),
            "",
            fail,
            lambda s: _part_sql(s, *ranges[s][:2]),
        )
        staged += more
        owner.update(mine)
    for final, problem in _publish(staged, "part").items():
        fail(owner[final], problem)
    written = [owner[f] for _t, f in staged if owner[f] not in warnings]
    for segment, problem in _each_folder([members / s / CHANGES for s in written]).items():
        fail(segment, problem)
    if written:
        _checkpoint("roster_after_part")
    for segment in written:
        high[segment] = ranges[segment][1]
        if len(parts[segment]) + 1 > COMPACT_AFTER:
            try:
                _compact(engine, members / segment / CHANGES, at)
            except (OSError, EngineError) as exc:
                fail(segment, exc)
    # bases: none yet, or (rebase) asked for, or the changes after it are many
    behind = [
        t
        for t in ready
        if t.segment not in warnings
        and ((base := through.get(t.segment)) is None or base < high[t.segment])
    ]
    try:
        due = _rebases_due(engine, members, behind, through) if not rebase else set()
    except (OSError, EngineError) as exc:
        for t in behind:
            fail(t.segment, exc)
        return warnings
    rewrite = [t for t in behind if through.get(t.segment) is None or rebase or t.segment in due]
    staged, owner = [], {}
    for group in _groups(rewrite, {s: r[3] for s, r in ranges.items()}):
        # each base holds every key as of the newest change any of them has: a segment has
        # no change between its own newest and that one, so it holds for each
        top = max(high[s] for s in group)
        more, mine = _stage_all(
            engine,
            members,
            {s: members / s / MEMBERS for s in group},
            _bases_sql(list(group.values())),
            _base_options(top, run_id, at),
            fail,
            lambda s, group=group: _base_sql(group[s]),  # type: ignore[misc]
        )
        staged += more
        owner.update(mine)
    for final, problem in _publish(staged, "members").items():
        fail(owner[final], problem)
    if staged:
        _checkpoint("roster_after_members")
    return warnings


def _part_sql(segment: str, first: int, last: int) -> str:
    # unsorted: readers order by change_id (and sorting a big part costs more than its write)
    return (
        f'select change_id, segment, key, change, run_id, tick, "at" from {TABLE} '
        f"where segment = {literal(segment)} and change_id >= {first} "
        f"and change_id <= {last}"
    )


def _parts_sql(ranges: dict[str, tuple[int, int, dt.datetime, int]]) -> str:
    """The changes of every segment in ``ranges`` (first..last each), for one partitioned COPY."""
    values = ", ".join(f"({literal(s)}, {f}, {la})" for s, (f, la, _n, _c) in ranges.items())
    low = min((r[0] for r in ranges.values()), default=0)
    return (
        f'select c.change_id, c.segment, c.key, c.change, c.run_id, c.tick, c."at" from {TABLE} c '
        f"join (values {values}) as h(segment, first, last) on c.segment = h.segment "
        f"where c.change_id >= {low} and c.change_id between h.first and h.last"
    )


_UNION = 200  # segments whose bases one COPY writes
# changes of a segment from which its files are written by a COPY of their own: a partitioned
# COPY pays per row about twice what a plain one does and holds every partition's buffers,
# while a COPY's own cost is about that of 5,000 rows
_ALONE_ROWS = 10_000


def _groups(rewrite: list[Target], changes: dict[str, int]) -> list[dict[str, Target]]:
    """The bases to rewrite, in COPYs: alone, a segment with many changes this write (its base
    is big); together, up to ``_UNION`` others."""
    alone = [t for t in rewrite if changes.get(t.segment, 0) >= _ALONE_ROWS]
    rest = [t for t in rewrite if changes.get(t.segment, 0) < _ALONE_ROWS]
    return [{t.segment: t} for t in alone] + [
        {t.segment: t for t in rest[start : start + _UNION]}
        for start in range(0, len(rest), _UNION)
    ]


def _base_sql(target: Target) -> str:
    """A segment's base: its keys (as text)."""
    k = quote(target.key)
    return f"select cast({k} as varchar) as key from {target.relation} where {k} is not null"


def _bases_sql(targets: list[Target]) -> str:
    return " union all ".join(
        f"select {literal(t.segment)} as segment, key from ({_base_sql(t)})" for t in targets
    )


def _base_options(through: int, run_id: str, at: dt.datetime) -> str:
    """A base says as of which change it holds every key (``through``), and when."""
    meta = {
        "format": "cadence.members",
        "through": str(through),
        "run_id": run_id,
        "as_of": at.astimezone(dt.timezone.utc).isoformat(),
    }
    struct = ", ".join(f"{name}: {literal(value)}" for name, value in meta.items())
    return f", kv_metadata {{{struct}}}"


def _each_folder(folders: list[Path]) -> dict[str, BaseException]:
    """Sync folders (names just renamed into them); returns the segment of each that failed."""
    failed = _each(artifacts.fsync_dir, folders)
    return {path.parent.name: exc for path, exc in failed.items()}


def _throughs(engine: Engine, members: Path, segments: list[str]) -> dict[str, int | None]:
    """Where each segment's base stands (None: no base), from every footer in one query."""
    found: dict[str, int | None] = {s: None for s in segments}
    bases = {str(members / s / MEMBERS): s for s in segments}
    present = [path for path in bases if os.path.isfile(path)]
    if present:
        listed = "[" + ", ".join(literal(p) for p in present) + "]"
        for path in present:
            found[bases[path]] = 0  # a base without the key says through 0
        rows = engine.query(
            f"select file_name, decode(value) from parquet_kv_metadata({listed}) "
            "where decode(key) = 'through'"
        )
        for path, value in rows:
            found[bases[str(path)]] = int(value)
    return found


def _ranges(engine: Engine, high: dict[str, int]) -> dict[str, tuple[int, int, dt.datetime, int]]:
    """(first, last change id, newest at, count) of the changes after ``high`` of each
    segment, in one query (the id filter lets DuckDB skip what every segment has already)."""
    if not high:
        return {}
    values = ", ".join(f"({literal(s)}, {int(h)})" for s, h in high.items())
    rows = engine.query(
        f'select c.segment, min(c.change_id), max(c.change_id), max(c."at"), count(*) '
        f"from {TABLE} c "
        f"join (values {values}) as h(segment, high) on c.segment = h.segment "
        f"where c.change_id > {min(high.values())} and c.change_id > h.high "
        "group by c.segment"
    )
    return {str(r[0]): (int(r[1]), int(r[2]), r[3], int(r[4])) for r in rows}


_CHUNK_ROWS = 1_000_000  # changes one partitioned COPY takes at most (a bigger part goes alone)


def _chunks(ranges: dict[str, tuple[int, int, dt.datetime, int]]) -> list[list[str]]:
    """The segments in groups whose changes add up to at most ``_CHUNK_ROWS`` each, a segment
    with ``_ALONE_ROWS`` changes or more alone."""
    out: list[list[str]] = [[]]
    rows = 0
    for segment, (_first, _last, _newest, count) in ranges.items():
        if count >= _ALONE_ROWS:
            out.insert(0, [segment])
            continue
        if out[-1] and rows + count > _CHUNK_ROWS:
            out.append([])
            rows = 0
        out[-1].append(segment)
        rows += count
    return [c for c in out if c]


def _rebases_due(
    engine: Engine, members: Path, targets: list[Target], through: dict[str, int | None]
) -> set[str]:
    """Segments whose changes after their base are many enough (rows, from the parquet
    footers, all read in one query) that reading them costs about as much as the base."""
    files: dict[str, list[str]] = {}
    due: set[str] = set()
    for t in targets:
        base = through.get(t.segment)
        if base is None:
            continue
        folder = members / t.segment
        pending = [p for p in part_files(folder / CHANGES) if p[1] > base]
        if len(pending) > COMPACT_AFTER:
            due.add(t.segment)
            continue
        files[t.segment] = [str(folder / MEMBERS), *(str(p[3]) for p in pending)]
    listed = [f for group in files.values() for f in group]
    if not listed:
        return due
    rows = dict(
        engine.query(
            "select file_name, num_rows from parquet_file_metadata(["
            + ", ".join(literal(f) for f in listed)
            + "])"
        )
    )
    for segment, (base_file, *later) in files.items():
        changed = sum(int(rows.get(f) or 0) for f in later)
        if changed >= max(REBASE_MIN, int(rows.get(base_file) or 0) // 4):
            due.add(segment)
    return due


def base_through(engine: Engine, members: Path) -> int | None:
    return int(metadata(engine, members).get("through", 0)) if members.exists() else None


def _compact(engine: Engine, changes: Path, at: dt.datetime) -> None:
    """Merge the parts of each earlier UTC day into one (a 5-minute segment adds 288 parts a
    day). The merged part is renamed in and synced before the parts it covers are removed: a
    kill between leaves overlapping parts, which readers take once (``distinct``) and the next
    compaction merges again under the same name."""
    today = at.astimezone(dt.timezone.utc).date()
    days: dict[dt.date, list[tuple[int, int, dt.datetime, Path]]] = {}
    for part in part_files(changes):
        if part[2].date() < today:
            days.setdefault(part[2].date(), []).append(part)
    for group in days.values():
        if len(group) < 2:
            continue
        first, last = min(p[0] for p in group), max(p[1] for p in group)
        newest = max(p[2] for p in group).strftime(_STAMP)
        merged = changes / f"{first:012d}-{last:012d}-{newest}.parquet"
        files = "[" + ", ".join(literal(str(p[3])) for p in group) + "]"
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
