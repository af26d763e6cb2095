"""DuckDB, embedded: the default engine. One file, no server, transactional DDL.

Input: SQL -> output: rows and relations. Transactions cover DDL, so a model's build, its tests,
the swap into the live name and its state record commit together or not at all.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from cadence.disk import artifacts
from cadence.engines import access
from cadence.engines.base import CommitGroup, Engine, EngineError
from cadence.errors import CadenceError, WarehouseBusy
from cadence.load.projectconfig import WarehouseConfig
from cadence.load.relations import quote

WATERMARK_VARIABLE = "cadence_watermark"  # per connection; set just before each use
_SOURCE = "cadence_source"  # the warehouse attached read-only to an in-memory engine (attached)


def _lock_holder(message: str) -> str:
    """The process DuckDB names in a lock conflict: ``Conflicting lock is held in
    /usr/bin/python3 (PID 4242) by user ...``."""
    found = re.search(r"lock is held in (.+?\(PID \d+\))", message)
    return found.group(1) if found else "unknown process (DuckDB did not say)"


class DuckDBEngine(Engine):
    name = "duckdb"
    builds_in_place = True  # DDL is transactional
    groups_commits = True

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str, owner: bool = True) -> None:
        self.con = con
        self.path = path
        self._owner = owner
        # share_threads: the warehouse's threads and DuckDB's external_threads (read once;
        # None: sizing is off), and the size set now (None: unknown, a SET cut short)
        self._pool: tuple[int, int] | None = None
        self._pool_read = False
        self._pool_size: int | None = None

    @classmethod
    def open(
        cls,
        warehouse: WarehouseConfig,
        root: Path,
        *,
        read_only: bool = False,
        allowed: Sequence[str] = (),
    ) -> DuckDBEngine:
        """Connect, load the declared extensions, then limit file access to the project
        folder, the warehouse's folder, ``warehouse.allowed_paths`` and ``allowed`` (what the
        project declares, ``access.declared``): from then on no SQL can reach further."""
        path = warehouse.path
        if path != ":memory:" and not Path(path).is_absolute():
            path = str(root / path)
        if path != ":memory:" and not read_only:
            artifacts.private_dir(Path(path).parent, root)
        # no INSTALL at run time: an extension is installed once, by hand, and declared
        config: dict[str, Any] = {
            "threads": warehouse.threads,
            "autoinstall_known_extensions": False,
        }
        for key, value in warehouse.settings.items():
            config[str(key)] = value
        try:
            con = duckdb.connect(path, read_only=read_only, config=config)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                holder = _lock_holder(text)
                raise WarehouseBusy(
                    f"the warehouse is open in another process: {holder}",
                    holder=holder,
                    file=warehouse.path,
                    hint="close it there (a notebook or BI tool holding the file blocks runs), "
                    "or use --wait SECONDS to wait for it",
                ) from None
            denied = "permission denied" in text.lower() or "read-only" in text.lower()
            raise CadenceError(
                f"cannot open the warehouse: {text.splitlines()[0] if text else 'I/O error'}",
                file=warehouse.path,
                hint="make the warehouse file and its folder writable for the user that runs "
                "cadence"
                if denied
                else "check the warehouse path in cadence.yml (a folder that is a file? "
                "a file that is not a DuckDB database?)",
            ) from None
        except duckdb.Error as exc:
            raise CadenceError(
                f"cannot open the warehouse: {exc}",
                file=warehouse.settings_file,
                hint=f"check the warehouse settings in {warehouse.settings_file}",
            ) from None
        for ext in warehouse.extensions:
            try:
                con.execute(f"load {quote(ext)}")  # names are validated identifiers, and quoted
            except duckdb.Error as exc:
                con.close()
                raise CadenceError(
                    f"cannot load DuckDB extension '{ext}': {str(exc).splitlines()[0]}",
                    file="cadence.yml",
                    hint=f"install it once (duckdb -c 'install {ext}') or remove it "
                    "from warehouse.extensions",
                ) from None
        try:
            _limit_access(con, access.folders(root, warehouse, path, allowed))
        except duckdb.Error as exc:
            con.close()
            raise CadenceError(
                f"cannot limit what models may read: {str(exc).splitlines()[0]}",
                file="cadence.yml",
                hint="check warehouse.allowed_paths",
            ) from None
        if path != ":memory:" and not read_only:  # made before cadence kept files private
            for own in (Path(path), Path(path + ".wal")):
                artifacts.make_private(own)
        return cls(con, path)

    @classmethod
    def attached(cls, warehouse: WarehouseConfig, root: Path) -> DuckDBEngine:
        """An in-memory engine with the warehouse's DuckDB file (with Spark: its state file)
        attached read-only as its current database: copy what is needed into memory
        (``create table memory.main.x as select ...``), then ``detach()``: the file is free
        again for a run at once, and the copies stay for as long as the engine is open."""
        path = warehouse.path if Path(warehouse.path).is_absolute() else str(root / warehouse.path)
        config: dict[str, Any] = {"threads": warehouse.threads}
        for key, value in warehouse.settings.items():
            config[str(key)] = value
        con = duckdb.connect(":memory:", config=config)
        escaped = path.replace("'", "''")
        try:
            con.execute(f"attach '{escaped}' as {_SOURCE} (read_only)")
            con.execute(f"use {_SOURCE}")
        except duckdb.Error as exc:
            con.close()
            text = str(exc)
            if "lock" in text.lower():
                holder = _lock_holder(text)
                raise WarehouseBusy(
                    f"the warehouse is open in another process: {holder}",
                    holder=holder,
                    file=warehouse.path,
                    hint="try again when it is free (it reads the warehouse for a moment)",
                ) from None
            raise CadenceError(
                f"cannot read the warehouse: {text.splitlines()[0] if text else 'I/O error'}",
                file=warehouse.path,
                hint="check the warehouse path in cadence.yml",
            ) from None
        return cls(con, path)

    def detach(self) -> None:
        self.con.execute("use memory")
        self.con.execute(f"detach {_SOURCE}")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.query(sql, params, fetch=False)

    def query(
        self, sql: str, params: Sequence[Any] = (), fetch: bool = True
    ) -> list[tuple[Any, ...]]:
        try:
            result = self.con.execute(sql, list(params) if params else None)
            return result.fetchall() if fetch else []
        except duckdb.Error as exc:
            self._aborted()
            if "interrupted" in str(exc).lower():
                raise KeyboardInterrupt() from None
            raise EngineError(_refused(_disk_full(str(exc), self.path))) from None
        except RuntimeError as exc:  # DuckDB reports a signal during a query this way
            if "interrupted" in str(exc).lower():
                raise KeyboardInterrupt() from None
            raise

    def query_named(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        try:
            result = self.con.execute(sql)
            names = [d[0] for d in (result.description or [])]
            return names, result.fetchall()
        except duckdb.Error as exc:
            self._aborted()
            raise EngineError(_disk_full(str(exc), self.path)) from None

    def relations(self) -> dict[tuple[str, str], str]:
        rows = self.query(
            "select schema_name, table_name, 'table' from duckdb_tables() "
            "where database_name = current_database() "
            "union all select schema_name, view_name, 'view' from duckdb_views() "
            "where not internal and database_name = current_database()"
        )
        return {(r[0], r[1]): r[2] for r in rows}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        group = self.group
        if group is not None:  # joins the open group's transaction, which commits later
            if group.broken:
                raise EngineError("the transaction of this commit group was aborted")
            held = len(group.records)  # the publishes before this one
            try:
                yield
            except Exception:
                # a statement may have failed: the group can only be rolled back. When it held
                # no publish before this one (nor left anything of this one for the commit), it
                # is rolled back now, so that the failure is handled (and recorded) as in a
                # transaction of its own; else the run loop rolls it back and builds this one
                # again alone (``grouped``): in a fresh transaction it may not fail (a CHECKPOINT
                # hook), or fail otherwise (its tests judged as it publishes)
                group.broken = True
                if not held and not group.checks and not group.entered:
                    self.group = None
                    self._rollback()
                raise
            except BaseException:  # an interrupt: the run loop rolls the group back
                group.broken = True
                raise
            return
        self.con.execute("begin transaction")
        try:
            yield
        except BaseException:
            try:
                self.con.execute("rollback")
            except duckdb.Error:
                pass
            raise
        else:
            try:
                self.con.execute("commit")
            except duckdb.Error as exc:
                raise EngineError(str(exc)) from None

    def _aborted(self) -> None:
        """A statement failed: DuckDB aborts the open transaction, a commit group's too."""
        if self.group is not None:
            self.group.broken = True

    def open_group(self) -> CommitGroup:
        self.execute("begin transaction")
        self.group = CommitGroup()
        return self.group

    def close_group(self, commit: bool) -> None:
        """Commit the open group (raises ``EngineError`` when the warehouse refuses, and
        KeyboardInterrupt when a signal stops the commit: nothing of it is kept), or roll it
        back."""
        self.group = None
        if not commit:
            self._rollback()
            return
        try:
            self.query("commit", fetch=False)
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        """Roll the open transaction back (none left, after a failed commit: nothing to do)."""
        with contextlib.suppress(duckdb.Error):
            self.con.execute("rollback")

    def close(self) -> None:
        if self._owner:
            self.con.close()

    def create_schema(self, schema: str) -> None:
        self.execute(f"create schema if not exists {quote(schema)}")

    def create_table_as(self, relation: str, sql: str) -> int | None:
        rows = self.query(f"create or replace table {relation} as ({sql}\n)")
        return int(rows[0][0]) if rows and rows[0] and rows[0][0] is not None else None

    def create_view_as(self, relation: str, sql: str) -> None:
        self.execute(f"create or replace view {relation} as ({sql}\n)")

    def drop(self, relation: str, kind: str) -> None:
        self.execute(f"drop {'view' if kind == 'view' else 'table'} if exists {relation}")

    def rename(self, relation: str, new_identifier: str) -> None:
        self.execute(f"alter table {relation} rename to {quote(new_identifier)}")

    def insert_into(self, relation: str, sql: str) -> None:
        self.execute(f"insert into {relation} by name (\n{sql}\n)")

    def delete_matching(self, relation: str, source: str, keys: Sequence[str]) -> None:
        cond = " and ".join(f"t.{quote(k)} = s.{quote(k)}" for k in keys)
        self.execute(
            f"delete from {relation} as t where exists (select 1 from {source} as s where {cond})"
        )

    def watermark_bound(self, column: str, relation: str) -> str | None:
        # a variable is folded into a constant when the next statement is planned, so the
        # filter becomes a table filter and zone maps skip the row groups already loaded (a
        # scalar subquery would be a nested-loop join over every source row)
        self.execute(
            f"set variable {WATERMARK_VARIABLE} = (select max({quote(column)}) from {relation})"
        )
        return f"getvariable('{WATERMARK_VARIABLE}')"

    def load_csv(
        self,
        relation: str,
        path: str,
        column_types: dict[str, str],
        delimiter: str | None = None,
        exact: bool = False,
    ) -> None:
        escaped = path.replace("'", "''")
        if exact:  # dbt-duckdb's seed: the table from the given types, then DuckDB's COPY
            columns = ", ".join(f"{quote(k)} {v}" for k, v in column_types.items())
            self.execute(f"create or replace table {relation} ({columns})")
            delim = (delimiter or ",").replace("'", "''")
            self.execute(
                f"copy {relation} from '{escaped}' (format csv, header true, delimiter '{delim}')"
            )
            return
        options = ["header = true", "auto_detect = true"]
        if delimiter:
            options.append("delim = '" + delimiter.replace("'", "''") + "'")
        if column_types:
            types = ", ".join(f"'{k}': '{v}'" for k, v in column_types.items())
            options.append(f"types = {{{types}}}")
        self.create_table_as(relation, f"select * from read_csv('{escaped}', {', '.join(options)})")

    def row_count(self, relation: str) -> int:
        return int(self.query(f"select count(*) from {relation}")[0][0])

    def interrupt(self) -> None:
        self.con.interrupt()

    def cursor(self) -> DuckDBEngine:
        return DuckDBEngine(self.con.cursor(), self.path, owner=True)

    def share_threads(self, builds: int) -> None:
        # DuckDB's pool serves every cursor, and the thread that runs a statement works on it
        # too: N statements at once on a pool of T use N + T - 1 threads. Sized to the
        # warehouse's threads, small models stop waking workers they cannot use (measured: a
        # 4-thread build of 1,000 small models 6-9% faster on 2 cores), and a model built
        # alone still gets the whole pool. Never below DuckDB's external_threads (it refuses);
        # only ever a speed-up: a SET refused leaves the pool as the warehouse set it
        if not self._pool_read:
            self._pool_read = True
            with contextlib.suppress(EngineError):  # unreadable: leave the pool alone
                row = self.query(
                    "select current_setting('threads'), current_setting('external_threads')"
                )[0]
                self._pool = (int(row[0]), max(1, int(row[1])))
                self._pool_size = self._pool[0]
        if self._pool is None:
            return
        full, floor = self._pool
        want = max(floor, full - builds + 1) if builds > 0 else full
        if want == self._pool_size:
            return
        self._pool_size = None  # unknown until the SET returns (an interrupt may cut it short)
        try:
            self.execute(f"set threads = {want}")
        except EngineError:
            self._pool = None  # refused: sizing is off for this engine, the pool as it was
            with contextlib.suppress(EngineError):
                self.execute(f"set threads = {full}")
            return
        self._pool_size = want


def read_file(
    path: str, column_types: dict[str, str], delimiter: str | None = None
) -> tuple[list[str], list[str], Any]:
    """A CSV (header, types detected unless given) or parquet file -> (columns, DuckDB type
    names, Arrow table), read in UTC: how other engines load a seed with explicit types."""
    escaped = path.replace("'", "''")
    parquet = path.lower().endswith(".parquet")
    options = "" if parquet else ", header = true, auto_detect = true"
    if delimiter and not parquet:
        options += ", delim = '" + delimiter.replace("'", "''") + "'"
    if column_types:
        types = ", ".join(f"'{k}': '{v}'" for k, v in column_types.items())
        options += f", types = {{{types}}}"
    reader = "read_parquet" if parquet else "read_csv"
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        rel = con.sql(f"select * from {reader}('{escaped}'{options})")
        return list(rel.columns), [str(t) for t in rel.types], rel.to_arrow_table()
    except duckdb.Error as exc:
        raise EngineError(str(exc)) from None
    finally:
        con.close()


_PARSER = threading.local()  # one in-memory connection per thread, for its parser only
PARSER = f"duckdb-{duckdb.__version__}"  # whose judgement ``build.onequery`` remembers


def query_problem(sql: str) -> str | None:
    """Why ``sql`` is not exactly one query, by DuckDB's own parser (None: it is one). A query
    is a SELECT (CTEs, VALUES, FROM-first and PIVOT included); a second statement after a
    ``;``, whether written, smuggled through a closing parenthesis or produced by a macro, is
    a problem, and so is text DuckDB cannot parse (it could hide one)."""
    con = getattr(_PARSER, "con", None)
    if con is None:
        con = _PARSER.con = duckdb.connect(":memory:")
    try:
        statements = con.extract_statements(sql)
        if len(statements) == 1 and statements[0].type == duckdb.StatementType.MULTI:
            # a PIVOT whose columns come from the data parses as several statements; a query
            # is what can stand as a subquery (ALTER or TRUNCATE expansions cannot)
            inner = con.extract_statements(f"select 1 from (\n{sql}\n) as __cadence_query")
            if len(inner) != 1:
                return "is not one query"
    except duckdb.Error as exc:
        lines = str(exc).splitlines()
        shown = "; ".join(line.strip() for line in lines[:3] if line.strip())
        return f"cannot be parsed as one query ({shown})"
    if not statements:
        return "holds no query (only comments or nothing)"
    kinds = [s.type.name for s in statements]
    if len(statements) > 1:
        second = next((k for k in kinds[1:] if k != "SELECT"), kinds[1])
        return (
            f"is {len(statements)} statements, not one query "
            f"({_article(second)} {second} statement follows the first ';')"
        )
    if kinds[0] not in ("SELECT", "MULTI"):
        return f"is {_article(kinds[0])} {kinds[0]} statement, not a query"
    return None


def _article(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


def _limit_access(con: duckdb.DuckDBPyConnection, folders: Sequence[str]) -> None:
    """External access off, ``folders`` allowed. DuckDB refuses to turn access back on (or to
    change the folders) once it is off, for this connection and every cursor of it."""
    row = con.execute("select current_setting('enable_external_access')").fetchone()
    if row is not None and not row[0]:
        return  # this database is already open (and limited) in this process
    listing = ", ".join(_literal(f) for f in folders)
    con.execute(f"set allowed_directories = [{listing}]")
    con.execute("set enable_external_access = false")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


REFUSED = (
    "models may read and write files only inside the project folder, warehouse.allowed_paths "
    "and the locations the project declares (sources' external_location, export_root)"
)
_FILE_REFUSED = re.compile(r'Cannot access (file|directory) "([^"]*)" - file system operations')
_EXTENSION = re.compile(r"(?:install the required extension|extension) '?\"?([A-Za-z0-9_]+)")


def _refused(message: str) -> str:
    """DuckDB's refusals under the access limits, said in cadence's terms."""
    if "automatically install" in message or "Loading external extensions is disabled" in message:
        found = _EXTENSION.search(message)
        name = f"'{found.group(1)}' " if found else ""
        return (
            f"refused: DuckDB extension {name}is not loaded (extensions are loaded before "
            "models run and never installed by a run: install it once and list it in "
            "warehouse.extensions)"
        )
    found = _FILE_REFUSED.search(message)
    if found:
        return f'refused: cannot access {found.group(1)} "{found.group(2)}": {REFUSED}'
    return message


_WRITING = re.compile(r'Could not write file \\?"([^"\\]+)')


def _disk_full(message: str, warehouse: str) -> str:
    """DuckDB's out-of-space errors, said plainly (the run then exits 1 naming the model): the
    warehouse could not be written, or the file a ``COPY`` writes (members files, exports)."""
    if "no space left" in message.lower() or "disk full" in message.lower():
        found = _WRITING.search(message)
        written = found.group(1) if found else ""
        own = os.path.abspath(warehouse)
        path = os.path.abspath(written) if written else own
        if path not in (own, f"{own}.wal") and not path.startswith(f"{own}.tmp{os.sep}"):
            return f"disk full: cannot write {written} (free space on that disk)"
        return f"disk full: the warehouse could not be written ({message})"
    return message
