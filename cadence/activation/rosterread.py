"""Reading the members snapshot: what ``cadence members`` answers while a run holds the warehouse.

Input: a segment's files under ``target/members/<segment>/`` (``roster`` writes them: a base
``members.parquet`` as of change ``through`` and ``changes/`` parts after it) -> output: a
``MembersAnswer`` -- the current keys (the base with each key's latest later change applied)
or the history of changes -- read with an in-memory DuckDB, never the warehouse, with ``as_of``
the time the answer holds for. A part pruned between listing and reading is listed again.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cadence.activation import roster
from cadence.activation.roster import MembersAnswer
from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError
from cadence.record.membership import MembershipChange
from cadence.record.state import from_db, to_db


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

    folder = roster.folder_of(root, segment)
    shown = f"{roster.FOLDER}/{segment}"
    members = folder / roster.MEMBERS
    if not members.exists() and not (changes and roster.part_files(folder / roster.CHANGES)):
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
    members = folder / roster.MEMBERS
    meta = roster.metadata(memory, members) if members.exists() else {}
    parts = roster.part_files(folder / roster.CHANGES)
    through = int(meta.get("through", 0))
    pending = [p for p in parts if p[1] > through]
    as_of_text = meta.get("as_of")
    as_of = dt.datetime.fromisoformat(as_of_text) if as_of_text else None
    if pending or as_of is None:  # as of the latest change the answer holds
        as_of = max(filter(None, (as_of, *(p[2] for p in (pending or parts)[-1:]))), default=None)
    if not changes:
        base = f"select key from read_parquet({roster.literal(str(members))})"
        if pending:  # the base, with each key's latest change after it applied
            files = "[" + ", ".join(roster.literal(str(p[3])) for p in pending) + "]"
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
    files = "[" + ", ".join(roster.literal(str(p[3])) for p in parts) + "]"
    where = f' where "at" >= {roster.literal(str(to_db(since)))}' if since is not None else ""
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
