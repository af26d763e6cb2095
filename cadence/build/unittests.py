"""Run unit tests: a model's SQL on given rows, in DuckDB in memory, compared with the expected.

Input: the project (its compiler and parsed ``UnitTest`` values), the selected models and the
run time -> output: one ``UnitOutcome`` per unit test (pass, fail with a diff, or error). The
warehouse is never opened. Each test gets a fresh in-memory database holding its ``given``
rows under the names the model reads (``ref()`` and ``source()`` relations, ``this``), typed as
the real inputs are: each upstream is built empty in a second in-memory database (seeds loaded
from their files, models and snapshots compiled over empty upstreams, external sources read for
their columns) and the given values are cast to its column types, as dbt casts them to the
warehouse's; an input whose types cannot be known so (a source in the warehouse) is typed from
its values. The model is rendered with the test's ``overrides`` (vars, macros such as
``is_incremental``, env vars), its expected rows cast to the model's output types, and only the
columns ``expect`` lists are compared, in any order: a difference fails the test with a diff
like dbt's (``@@`` header, ``→`` changed cells ``expected→actual``, ``---`` rows missing,
``+++`` rows extra). Used by ``testing`` (``cadence test``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadence.build.compiler import ensure_query
from cadence.build.seeds import load_csv_into
from cadence.build.snapshots import first_version_sql
from cadence.engines import Engine, connect
from cadence.engines.base import EngineError
from cadence.errors import CadenceError
from cadence.load.projectconfig import WarehouseConfig
from cadence.load.relations import Relation, quote
from cadence.load.unittests import UnitFixture, UnitTest


@dataclass(frozen=True)
class UnitOutcome:
    name: str  # <model>::<test>, as dbt prints it
    status: str  # pass | fail | error
    message: str
    file: str


def run_unit_tests(project: Any, chosen: set[str], now: dt.datetime) -> list[UnitOutcome]:
    tests = [t for t in project.parsed.unit_tests if t.model in chosen]
    if not tests:
        return []
    types = _Types(project, now)
    out = []
    try:
        for test in tests:
            label = f"{test.model}::{test.name}"
            try:
                message = _run(project, types, test, now)
            except (CadenceError, EngineError) as exc:
                text = exc.message if isinstance(exc, CadenceError) else str(exc)
                out.append(UnitOutcome(label, "error", f"unit test {test.name}: {text}", test.file))
                continue
            out.append(UnitOutcome(label, "fail" if message else "pass", message, test.file))
    finally:
        types.close()
    return out


def memory_engine(project: Any) -> Engine:
    """DuckDB in memory, reaching the files the project's models may reach (SPEC §6)."""
    from cadence.engines import access

    warehouse = project.parsed.config.warehouse
    duck = warehouse.engine == "duckdb"
    config = WarehouseConfig(
        path=":memory:",
        threads=1,
        settings=dict(warehouse.settings) if duck else {},
        extensions=warehouse.extensions if duck else (),
        allowed_paths=warehouse.allowed_paths,
    )
    engine = connect(config, Path(project.root), allowed=access.declared(project.parsed))
    database = project.parsed.config.warehouse.database if project.parsed.config.is_dbt else None
    if database and database != "memory":  # a dbt project's SQL names "db"."schema"."name"
        from cadence.load.relations import quote

        engine.execute(f"attach ':memory:' as {quote(database)}")
        engine.execute(f"use {quote(database)}")
    return engine


class _Types:
    """Upstream relations built empty in memory, to learn the column types of each input."""

    def __init__(self, project: Any, now: dt.datetime) -> None:
        self.project = project
        self.now = now
        self.engine: Engine | None = None
        self.known: dict[str, list[tuple[str, str]] | None] = {}

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()

    def _engine(self) -> Engine:
        if self.engine is None:
            self.engine = memory_engine(self.project)
        return self.engine

    def of(self, key: str) -> list[tuple[str, str]] | None:
        """Columns of ``ref:<name>`` or ``source:<source>.<table>``; None when unknown."""
        if key not in self.known:
            self.known[key] = None
            try:
                self.known[key] = self._build(key)
            except (EngineError, CadenceError):
                self.known[key] = None
        return self.known[key]

    def _build(self, key: str) -> list[tuple[str, str]] | None:
        engine = self._engine()
        parsed, compiler = self.project.parsed, self.project.compiler
        if key.startswith("source:"):
            source, _, table = key[7:].partition(".")
            found = [s for s in parsed.sources if (s.source_name, s.table) == (source, table)]
            if not found or not found[0].relation.startswith("'"):
                return None  # a table in the warehouse: its types are not known here
            return _describe(engine, f"select * from {found[0].relation}")
        name = key[4:]
        seed = next((s for s in parsed.seeds if s.name == name), None)
        if seed is not None:
            engine.create_schema(seed.schema)
            load_csv_into(engine, parsed.root, seed, seed.relation, parsed.config.is_dbt)
            return _describe(engine, f"select * from {seed.relation}")
        model = parsed.model(name)
        if model is None:
            return None
        for parent in model.refs:
            if self.of(f"ref:{parent}") is None:
                return None
        for source, table in model.sources:
            if self.of(f"source:{source}.{table}") is None:
                return None
        sql = compiler.compile(name, self.now, self.now, False).sql
        if model.materialized == "snapshot":
            spec = next(s for s in parsed.snapshots if s.name == name)
            sql = first_version_sql(spec, sql, "cast(null as timestamp)")
        columns = _describe(engine, sql)
        if model.materialized != "ephemeral":
            engine.create_schema(model.schema)
            engine.execute(f"create table {model.relation} as select * from ({sql}) limit 0")
        return columns


def _describe(engine: Engine, sql: str) -> list[tuple[str, str]]:
    return [(str(r[0]), str(r[1])) for r in engine.query(f"describe {sql}")]


@contextlib.contextmanager
def _overrides(env: Any, test: UnitTest) -> Iterator[None]:
    """The test's vars, macros and env vars in place while the model renders (restored after)."""
    saved_vars = dict(env.project.vars)
    saved_globals = {k: env.env.globals[k] for k in test.macros if k in env.env.globals}
    saved_env = {k: os.environ.get(k) for k in test.env_vars}
    env.project.vars.update(test.vars)
    for name, value in test.macros.items():
        if name != "is_incremental":
            env.env.globals[name] = _returning(value)
    os.environ.update(test.env_vars)
    try:
        yield
    finally:
        env.project.vars.clear()
        env.project.vars.update(saved_vars)
        for name in test.macros:
            if name in saved_globals:
                env.env.globals[name] = saved_globals[name]
            elif name != "is_incremental":
                env.env.globals.pop(name, None)
        for key, old in saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _returning(value: Any) -> Any:
    def macro(*args: Any, **kwargs: Any) -> Any:
        return value

    return macro


def _render(project: Any, test: UnitTest, now: dt.datetime) -> Any:
    """The model's text rendered with the test's overrides (ref placeholders left in), and
    what that render read (its ``refs`` and ``sources``)."""
    from cadence.load.context import RenderState

    model = project.parsed.model(test.model)
    env = project.compiler.env
    state = RenderState(
        file=model.path,
        run_started_at=now,
        tick=now,
        incremental=bool(test.macros.get("is_incremental", False)),
    )
    state.this = Relation(model.schema, model.identifier, model.relation)
    with _overrides(env, test):
        text = env.render(model.raw_sql, state)
    return text, state


def _run(project: Any, types: _Types, test: UnitTest, now: dt.datetime) -> str:
    """Run one unit test; returns its diff (empty when it passed)."""
    parsed = project.parsed
    model = parsed.model(test.model)
    text, rendered = _render(project, test, now)
    _check_inputs(project, test, rendered.refs, rendered.sources)
    engine = memory_engine(project)
    try:
        ephemerals: dict[str, str] = {}
        files: dict[str, str] = {}
        for i, fixture in enumerate(test.given):
            relation, columns = _target(project, types, test, fixture, i)
            upstream = parsed.model(fixture.ref) if fixture.ref else None
            if upstream is not None and upstream.materialized == "ephemeral":
                ephemerals[upstream.name] = relation
            if relation.startswith("'"):  # a source read from a file: read the fixture instead
                files[relation] = f'"unit_test_inputs"."input_{i}"'
                relation = files[relation]
            if "." in relation:
                engine.execute(f"create schema if not exists {relation.split('.')[0]}")
            _create_input(engine, project, relation, fixture, columns, test)
        sql = project.compiler.compile_sql(text, now, ephemerals).strip().rstrip(";")
        for literal, table in files.items():
            sql = sql.replace(literal, table)
        ensure_query(sql, model.path)
        try:
            output = _describe(engine, sql)
        except EngineError as exc:
            raise CadenceError(f"the model failed on the given rows: {exc}") from None
        return _compare(engine, sql, output, test)
    finally:
        engine.close()


def _check_inputs(
    project: Any, test: UnitTest, refs: list[str], sources: list[tuple[str, str]]
) -> None:
    """Every relation the model reads as rendered for the test (through ephemerals too) must
    be given, as dbt requires."""
    parsed = project.parsed
    given = {g.input for g in test.given}
    needed = [f"source:{a}.{b}" for a, b in sources]
    stack = list(refs)
    seen: set[str] = set()
    while stack:
        name = stack.pop(0)
        if name in seen or f"ref:{name}" in given:
            continue
        seen.add(name)
        upstream = parsed.model(name)
        if upstream is not None and upstream.materialized == "ephemeral":
            stack.extend(upstream.refs)
            needed.extend(f"source:{a}.{b}" for a, b in upstream.sources)
            continue
        needed.append(f"ref:{name}")
    missing = [n for n in dict.fromkeys(needed) if n not in given]
    if missing:
        first = missing[0]
        what = (
            f"ref('{first[4:]}')"
            if first.startswith("ref:")
            else "source('{}', '{}')".format(*first[7:].split(".", 1))
        )
        raise CadenceError(
            f"model {test.model} reads {what}, which is not given",
            hint=f"add - input: {what} to given: (rows: [] when its rows do not matter)",
        )


def _target(
    project: Any, types: _Types, test: UnitTest, fixture: UnitFixture, index: int
) -> tuple[str, list[tuple[str, str]] | None]:
    """(relation the model reads for this input, its column types when known)."""
    parsed = project.parsed
    if fixture.input == "this":
        model = parsed.model(test.model)
        return model.relation, types.of(f"ref:{test.model}")
    if fixture.ref is not None:
        name = fixture.ref
        upstream = parsed.model(name)
        if upstream is not None and upstream.materialized == "ephemeral":
            return f'"unit_test_inputs"."input_{index}"', types.of(f"ref:{name}")
        relation = upstream.relation if upstream is not None else project.compiler.relation_of(name)
        return relation, types.of(f"ref:{name}")
    source, table = fixture.source or ("", "")
    found = next(s for s in parsed.sources if (s.source_name, s.table) == (source, table))
    return found.relation, types.of(f"source:{source}.{table}")


def _create_input(
    engine: Engine,
    project: Any,
    relation: str,
    fixture: UnitFixture,
    columns: list[tuple[str, str]] | None,
    test: UnitTest,
) -> None:
    if fixture.format == "sql":
        engine.execute(f"create table {relation} as select * from (\n{fixture.rows}\n)")
        return
    if fixture.rows is None:  # a seed's own rows
        seed = next(s for s in project.parsed.seeds if s.name == fixture.ref)
        load_csv_into(engine, project.parsed.root, seed, relation, project.parsed.config.is_dbt)
        return
    rows: list[dict[str, Any]] = fixture.rows
    if columns is None:
        columns = _inferred(rows)
    what = fixture.ref or fixture.input
    sql = _rows_sql(rows, columns, f"'{what}'", test)
    engine.execute(f"create table {relation} as {sql}")


def _rows_sql(
    rows: list[dict[str, Any]], columns: list[tuple[str, str]], what: str, test: UnitTest
) -> str:
    """The rows as a query, each value cast to its column's type; missing columns are null."""
    types = {name.lower(): (name, type_) for name, type_ in columns}
    for row in rows:
        for key in row:
            if key.lower() not in types:
                raise CadenceError(
                    f"invalid column name '{key}' in the fixture for {what}",
                    hint="columns of " + what + ": " + ", ".join(n for n, _t in columns),
                )
    if not rows:
        cells = ", ".join(f"cast(null as {t}) as {quote(n)}" for n, t in columns)
        return f"select {cells} limit 0"
    selects = []
    for row in rows:
        values = {k.lower(): v for k, v in row.items()}
        cells = ", ".join(
            f"cast({_literal(values.get(n.lower()))} as {t}) as {quote(n)}" for n, t in columns
        )
        selects.append(f"select {cells}")
    return "\nunion all ".join(selects)


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


_INT = re.compile(r"^-?\d+$")
_NUMBER = re.compile(r"^-?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


def _inferred(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Column types from the values alone (an input whose real types are unknown)."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    out = []
    for name in names:
        values = [row.get(name) for row in rows if row.get(name) is not None]
        out.append((name, _type_of(values)))
    return out


def _type_of(values: list[Any]) -> str:
    if not values:
        return "VARCHAR"
    texts = [v for v in values if isinstance(v, str)]
    if all(isinstance(v, bool) for v in values) or (
        len(texts) == len(values) and all(t.lower() in ("true", "false") for t in texts)
    ):
        return "BOOLEAN"
    plain = [str(v) for v in values if not isinstance(v, bool)]
    if len(plain) == len(values) and all(_INT.match(p) for p in plain):
        return "BIGINT" if any(abs(int(p)) > 2**31 - 1 for p in plain) else "INTEGER"
    if len(plain) == len(values) and all(_NUMBER.match(p) for p in plain):
        return "DOUBLE"
    if len(texts) == len(values) and all(_DATE.match(t) for t in texts):
        return "DATE"
    if len(texts) == len(values) and all(_TIMESTAMP.match(t) for t in texts):
        return "TIMESTAMP"
    return "VARCHAR"


def _compare(engine: Engine, sql: str, output: list[tuple[str, str]], test: UnitTest) -> str:
    expect = test.expect
    names = {n.lower(): n for n, _t in output}
    if expect.format == "sql":
        compared = [n for n, _t in output]
        expected_sql = str(expect.rows)
    else:
        rows: list[dict[str, Any]] = expect.rows or []
        wanted = list(dict.fromkeys(k for row in rows[:1] for k in row)) if rows else []
        compared = [names[k.lower()] for k in wanted if k.lower() in names]
        unknown = [k for k in wanted if k.lower() not in names]
        for row in rows:
            unknown += [k for k in row if k.lower() not in names and k not in unknown]
        if unknown:
            raise CadenceError(
                f"invalid column name '{unknown[0]}' in the expected rows",
                hint=f"columns of {test.model}: " + ", ".join(n for n, _t in output),
            )
        if not rows:
            compared = [n for n, _t in output]
        typed = [(n, t) for n, t in output if n in compared]
        expected_sql = _rows_sql(rows, typed, "the expected output", test)
    cols = ", ".join(quote(c) for c in compared)
    actual = engine.query(f"select {cols} from (\n{sql}\n) actual")
    try:
        expected = engine.query(f"select {cols} from (\n{expected_sql}\n) expected")
    except EngineError as exc:
        raise CadenceError(f"the expected rows do not fit the model's columns: {exc}") from None
    return diff(compared, expected, actual)


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is not None, str(type(v)), v if v is not None else 0) for v in row)


def _sorted(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    try:
        return sorted(rows, key=_sort_key)
    except TypeError:
        return sorted(rows, key=repr)


def diff(columns: list[str], expected: list[tuple[Any, ...]], actual: list[tuple[Any, ...]]) -> str:
    """Empty when the two multisets of rows are equal; else a table of what differs, as dbt
    shows it: ``→`` a row whose cells changed (``expected→actual``), ``---`` an expected row
    missing, ``+++`` an actual row not expected."""
    left = list(_sorted(expected))
    right = list(_sorted(actual))
    for row in list(left):
        if row in right:
            left.remove(row)
            right.remove(row)
    if not left and not right:
        return ""
    lines: list[list[str]] = [["@@", *columns]]
    unmatched = list(right)
    for row in left:
        partner = next((r for r in unmatched if r[:1] == row[:1]), None)
        if partner is None:
            lines.append(["---", *(_cell(v) for v in row)])
            continue
        unmatched.remove(partner)
        cells = [
            _cell(a) if a == b else f"{_cell(a)}→{_cell(b)}"
            for a, b in zip(row, partner, strict=True)
        ]
        lines.append(["→", *cells])
    lines += [["+++", *(_cell(v) for v in row)] for row in unmatched]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    table = "\n".join(
        ",".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines
    )
    return f"actual differs from expected:\n\n{table}"


def _cell(value: Any) -> str:
    return "null" if value is None else str(value)
