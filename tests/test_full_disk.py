"""A full disk during a run (SPEC §6; issue 17 item 6): the run exits 1 naming the cause, never
3, and the next invocation that can write records what the warehouse refused -- the failed
build's row, its state and its backoff -- as if the disk had taken it.

The disk is filled in-process (no root, no mount): the engine refuses every commit (and every
write outside a transaction) from a chosen statement on, as DuckDB does once its file cannot
grow; target/ can be full too, until the run gives back its reserve (disk.reserve). The same
was checked on a real tmpfs filled to 0-48 KB free (see the commit that added this file)."""

from __future__ import annotations

import errno
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cadence.build import grouped
from cadence.disk import artifacts, reserve
from cadence.engines.base import EngineError
from cadence.engines.duckdb import DuckDBEngine
from cadence.record import unrecorded

FULL = (
    'TransactionContext Error: Failed to commit: Could not write file "warehouse.duckdb.wal": '
    "No space left on device"
)
CADENCE_YML = """\
name: disk
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: Europe/Berlin
channels:
  web: {cadence: "every 15 minutes", kind: web}
"""
FILES = {
    "models/base.sql": "select 1 as id\n",
    "models/seg.sql": "{{ config(channels=['web']) }}\nselect * from {{ ref('base') }}\n",
    "models/other.sql": "{{ config(channels=['web']) }}\nselect 2 as id\n",
}


class Disk:
    """The warehouse's disk and target/'s, full from a chosen statement on."""

    def __init__(self) -> None:
        self.full = False  # the warehouse refuses commits and writes outside a transaction
        self.target_full = False  # target/ refuses writes until the reserve is given back
        self.fill_when: Callable[[str], bool] | None = None
        self.also_target = False  # when the warehouse fills, target/ fills too

    def free(self) -> None:
        self.full = self.target_full = False
        self.fill_when = None


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    # one publish per transaction: the disk fills at the model named and stays full, so the
    # commit refused is that model's alone (with commit groups the publishes before it, not yet
    # committed, would be refused with it: test_grouped covers a refused group)
    monkeypatch.setattr(grouped, "GROUP_MODELS", 1)
    d = Disk()
    real_transaction = DuckDBEngine.transaction
    real_query = DuckDBEngine.query
    real_write = artifacts.write_bytes
    real_release = reserve.release

    class _Refused(Exception):
        pass

    @contextmanager
    def transaction(self: DuckDBEngine) -> Iterator[None]:
        self._in_tx = True  # type: ignore[attr-defined]
        try:
            with real_transaction(self):
                yield
                if d.full:
                    raise _Refused()  # rolled back by the real transaction, like DuckDB's
        except _Refused:
            raise EngineError(FULL) from None
        finally:
            self._in_tx = False  # type: ignore[attr-defined]

    def query(self: DuckDBEngine, sql: str, params: Any = (), fetch: bool = True) -> Any:
        if d.fill_when is not None and d.fill_when(sql):
            d.full, d.fill_when = True, None
            d.target_full = d.target_full or d.also_target
        write = not sql.lstrip().lower().startswith(("select", "with"))
        if d.full and write and not getattr(self, "_in_tx", False):
            raise EngineError(FULL)
        return real_query(self, sql, params, fetch)

    def write_bytes(path: Path, data: bytes, root: Path | None = None, **kw: Any) -> Path:
        if d.target_full and "target" in Path(path).parts:
            raise artifacts.write_error(path, OSError(errno.ENOSPC, "No space left"), root)
        return real_write(path, data, root, **kw)

    def release(root: Path) -> bool:
        freed = real_release(root)
        if freed:
            d.target_full = False  # what the reserve held is free again
        return freed

    monkeypatch.setattr(DuckDBEngine, "transaction", transaction)
    monkeypatch.setattr(DuckDBEngine, "query", query)
    monkeypatch.setattr(artifacts, "write_bytes", write_bytes)
    monkeypatch.setattr(reserve, "release", release)
    return d


def publishing(model: str) -> Callable[[str], bool]:
    """The statement that builds ``model`` (its staging table, or the table itself when it is
    built in its publish transaction): its publish commit is refused."""
    return lambda sql: sql.startswith("create or replace table") and (
        f'"{model}__' in sql or f'."{model}" as (' in sql
    )


def builds(root: Path, model: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "select status, error from _cadence.model_builds where model = ? order by started_at",
            [model],
        ).fetchall()


def state(root: Path, model: str) -> tuple[Any, ...]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "select last_status, failure_streak, last_error from _cadence.model_state "
            "where model = ?",
            [model],
        ).fetchone()


def check_clean_failure(result: Any) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output


@pytest.mark.parametrize("target_full", [False, True], ids=["warehouse", "warehouse+target"])
def test_a_commit_refused_for_space_is_recorded_by_the_next_run_with_its_backoff(
    make_project, cli, disk, run_results, target_full
):
    root = make_project(
        {**FILES, "models/seg.sql": FILES["models/seg.sql"].replace("*", "nope")}, CADENCE_YML
    )
    assert cli(root, "run", "--at", "2026-01-10T10:00").exit_code == 1  # seg: SQL error
    (root / "models/seg.sql").write_text(FILES["models/seg.sql"])
    assert state(root, "seg")[:2] == ("error", 1)

    disk.fill_when, disk.also_target = publishing("seg"), target_full
    full = cli(root, "run", "--due", "--at", "2026-01-10T10:15")
    check_clean_failure(full)
    assert "seg: no space left on device: the warehouse (warehouse.duckdb) could not be " in (
        full.output
    )
    assert "free space on that disk" in full.output
    assert f"the failure of seg is kept in {unrecorded.FILE}; the next run records it" in (
        full.output
    )
    assert run_results(root)["at"].startswith("2026-01-10T10:15")  # the reserve made room
    assert builds(root, "seg") == [("error", builds(root, "seg")[0][1])]  # nothing new yet

    disk.free()
    status = json.loads(cli(root, "status", "--json", "--at", "2026-01-10T10:16").output)
    seg = next(m for m in status["models"] if m["name"] == "seg")
    assert seg["last_status"] == "error" and "no space left on device" in seg["last_error"]

    # the next run records it first: the second failure in a row backs off 2 minutes (it
    # builds nothing, so it leaves run_results.json in place: its --json document says why)
    later = cli(root, "run", "--due", "--json", "--at", "2026-01-10T10:16")
    assert later.exit_code == 0, later.output
    assert [s for s, _ in builds(root, "seg")] == ["error", "error"]
    assert "no space left on device" in builds(root, "seg")[1][1]
    assert state(root, "seg")[:2] == ("error", 2)
    reasons = {r["name"]: r["reason"] for r in json.loads(later.stdout)["results"]}
    assert reasons["seg"].startswith("backing off after 2 failures; next retry at 2026-01-10 10:17")
    assert not (root / unrecorded.FILE).exists()

    again = cli(root, "run", "--due", "--at", "2026-01-10T10:17")
    assert again.exit_code == 0, again.output
    assert state(root, "seg")[:2] == ("success", 0)
    assert [s for s, _ in builds(root, "seg")] == ["error", "error", "success"]  # once each


def test_a_refused_end_of_run_is_folded_by_the_next_run(make_project, cli, disk):
    root = make_project(FILES, CADENCE_YML)
    assert cli(root, "run", "--at", "2026-01-10T10:00").exit_code == 0
    disk.fill_when = lambda sql: sql.startswith("update _cadence.runs set finished_at")
    full = cli(root, "run", "--due", "--at", "2026-01-10T10:15")
    check_clean_failure(full)
    assert "the end of this run is not recorded; the next run records its builds" in full.output
    disk.free()
    # its builds committed: nothing is due again, and the next run that builds folds them
    idle = cli(root, "run", "--due", "--at", "2026-01-10T10:16")
    assert idle.exit_code == 0 and "nothing to do" in idle.output.lower() or not idle.output
    assert cli(root, "run", "--due", "--at", "2026-01-10T10:30").exit_code == 0
    assert [s for s, _ in builds(root, "seg")] == ["success", "success", "success"]
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        seg = "select builds from _cadence.model_state where model = 'seg'"
        assert con.execute(seg).fetchone() == (3,)
        assert con.execute("select bool_and(folded) from _cadence.runs").fetchone() == (True,)


def test_a_run_the_warehouse_refuses_from_the_start_builds_nothing_and_says_why(
    make_project, cli, disk, run_results
):
    root = make_project(FILES, CADENCE_YML)
    assert cli(root, "run", "--at", "2026-01-10T10:00").exit_code == 0
    disk.full = True
    full = cli(root, "run", "--due", "--at", "2026-01-10T10:15")
    check_clean_failure(full)
    assert "error: no space left on device: the warehouse (warehouse.duckdb)" in full.output
    statuses = {r["name"]: r["status"] for r in run_results(root)["results"]}
    assert set(statuses.values()) == {"skipped"}
    disk.free()
    assert cli(root, "run", "--due", "--at", "2026-01-10T10:16").exit_code == 0
    assert [s for s, _ in builds(root, "seg")] == ["success", "success"]


def test_without_room_for_the_record_the_run_still_says_what_was_lost(
    make_project, cli, disk, monkeypatch
):
    root = make_project(FILES, CADENCE_YML)
    assert cli(root, "run", "--at", "2026-01-10T10:00").exit_code == 0
    (root / reserve.RESERVE_FILE).unlink()
    monkeypatch.setattr(reserve, "keep", lambda root: None)  # the disk had no room for it
    disk.fill_when, disk.also_target = publishing("seg"), True
    full = cli(root, "run", "--due", "--at", "2026-01-10T10:15")
    check_clean_failure(full)
    assert "the failure of seg is not recorded (disk full: cannot write " in full.output
    assert "disk full: cannot write target/run_results.json" in full.output


@pytest.mark.parametrize(
    "path",
    ["target/run_results.json", "target/state_snapshot.json", "target/cadence.lock.json"],
)
def test_a_full_disk_under_target_exits_1_naming_the_file(make_project, cli, monkeypatch, path):
    root = make_project(FILES, CADENCE_YML)
    assert cli(root, "run", "--at", "2026-01-10T10:00").exit_code == 0
    (root / reserve.RESERVE_FILE).unlink(missing_ok=True)  # no room kept: the write fails
    real = artifacts.write_bytes

    def write_bytes(target: Path, data: bytes, base: Path | None = None, **kw: Any) -> Path:
        if Path(target) == root / path:
            raise artifacts.write_error(target, OSError(errno.ENOSPC, "No space"), base)
        return real(target, data, base, **kw)

    monkeypatch.setattr(artifacts, "write_bytes", write_bytes)
    result = cli(root, "run", "--due", "--at", "2026-01-10T10:15")
    check_clean_failure(result)
    assert f"disk full: cannot write {path}" in result.output


def test_a_kept_record_is_written_once_even_if_its_file_outlives_the_commit(tmp_path: Path):
    import datetime as dt

    from cadence.plan.history import BuildRecord
    from cadence.record.state import ensure_schema

    at = dt.datetime(2026, 1, 10, 9, 15, tzinfo=dt.timezone.utc)
    record = BuildRecord("r1", "seg", "model", at, at, "error", "due", None, 0.5, None, "full")
    (tmp_path / "target").mkdir()
    unrecorded.save(tmp_path, [record])
    unrecorded.save(tmp_path, [record])  # saved twice: kept once
    assert unrecorded.read(tmp_path) == (record,)
    engine = DuckDBEngine(duckdb.connect(str(tmp_path / "w.duckdb")), str(tmp_path / "w.duckdb"))
    ensure_schema(engine)
    unrecorded.insert(engine, [record])
    assert unrecorded.record_pending(engine, tmp_path) == 1  # the file outlived the first insert
    assert engine.query("select count(*) from _cadence.model_builds") == [(1,)]
    assert not (tmp_path / unrecorded.FILE).exists()
    (tmp_path / unrecorded.FILE).write_text("{not json")
    assert unrecorded.read(tmp_path) == () and unrecorded.record_pending(engine, tmp_path) == 0
    engine.close()


@pytest.mark.parametrize(
    "message, said",
    [
        (  # a COPY's file (members files, exports) on a full disk, as DuckDB 2.0 says it
            'IO Error: Async write failed for range [offset=27, size=37549]: {"exception_type":'
            '"IO","exception_message":"Could not write file \\"/p/target/members/vip/'
            'tmp_.members.parquet.14522.tmp\\": No space left on device","errno":"28"}',
            "disk full: cannot write /p/target/members/vip/tmp_.members.parquet.14522.tmp "
            "(free space on that disk)",
        ),
        (  # the warehouse's own log
            'TransactionContext Error: Failed to commit: Could not write file '
            '"/p/warehouse.duckdb.wal": No space left on device',
            "disk full: the warehouse could not be written (TransactionContext Error: Failed to "
            'commit: Could not write file "/p/warehouse.duckdb.wal": No space left on device)',
        ),
        (  # a file beside the warehouse whose name starts like it
            'IO Error: Could not write file "/p/warehouse.duckdb_exports/a.parquet": No space '
            "left on device",
            "disk full: cannot write /p/warehouse.duckdb_exports/a.parquet (free space on that "
            "disk)",
        ),
        (  # the warehouse's own temporary folder (a spilled query)
            'IO Error: Could not write file "/p/warehouse.duckdb.tmp/duckdb_temp_storage-0.tmp"'
            ": No space left on device",
            "disk full: the warehouse could not be written (IO Error: Could not write file "
            '"/p/warehouse.duckdb.tmp/duckdb_temp_storage-0.tmp": No space left on device)',
        ),
    ],
    ids=["a-copys-file", "the-warehouse", "a-file-named-like-it", "its-temporary-folder"],
)
def test_a_full_disk_names_the_file_a_statement_could_not_write(message: str, said: str) -> None:
    """Seen on a real tmpfs filled during a run: a members file's COPY that found the disk full
    said "the warehouse could not be written"; it names the file now, and the warehouse's own
    files (its log, its temporary folder) still say the warehouse."""
    from cadence.engines.duckdb import _disk_full

    assert _disk_full(message, "/p/warehouse.duckdb") == said
