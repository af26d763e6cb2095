"""Compile models to runnable SQL: swap ref tokens for relations, inline ephemerals.

Input: ``ParsedProject`` + ``Dag`` + per-run values (now, tick, the run's id, whether an
incremental's relation exists) -> output: ``CompiledModel`` (final SQL and its hash). Models that
read per-run values (``Model.per_run``: a view or ephemeral whose text depends on the run always
is) are rendered again here, an ephemeral inlined into another model included; all others reuse
the text rendered at load time.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cadence.build.onequery import OneQuery
from cadence.errors import CadenceError
from cadence.load.digests import digest
from cadence.load.parser import Model, ParsedProject
from cadence.load.relations import REF_TOKEN, Relation, qualified, ref_token

if TYPE_CHECKING:
    from cadence.load.rendering import ModelEnvironment

EPHEMERAL_PREFIX = "__cadence_ephemeral__"
Query = Callable[[str], tuple[list[str], list[tuple[Any, ...]]]]
_LEADING = re.compile(r"^(\s*(?:--[^\n]*\n|/\*.*?\*/)?)*\s*", re.S)


@dataclass(frozen=True)
class CompiledModel:
    name: str
    path: str
    sql: str
    sql_hash: str
    incremental: bool = False
    watermark: str | None = None  # the column an incremental run filters on
    unfiltered: str = ""  # with ``watermark``: the model's SQL before the filter
    this: str = ""  # with ``watermark``: the relation whose newest value is the bound

    def bound_sql(self, bound: str | None) -> str:
        """The SQL to run: ``sql`` with the watermark subquery replaced by ``bound``, an
        expression holding its value as a constant (``Engine.watermark_bound``), if any."""
        if self.watermark is None or bound is None:
            return self.sql
        return _after_watermark(self.unfiltered, self.watermark, self.this, bound)


class Compiler:
    """Compiles models of one project for one run (``now`` and ``tick`` fixed per run)."""

    def __init__(self, project: ParsedProject, env: ModelEnvironment | None = None) -> None:
        self.project = project
        self._env = env
        self.models = {m.name: m for m in project.models}
        self.seeds = {s.name: s for s in project.seeds}
        self._accepted: OneQuery | None = None
        self._accepting = threading.Lock()  # the build threads' first checks come at once

    @property
    def accepted(self) -> OneQuery:
        """The SQL texts DuckDB's parser accepted as one query in earlier runs (read once)."""
        with self._accepting:
            if self._accepted is None:
                from cadence.engines.duckdb import PARSER

                self._accepted = OneQuery.read(Path(self.project.root), PARSER)
            return self._accepted

    @property
    def env(self) -> ModelEnvironment:
        if self._env is None:
            from cadence.load.environment import environment

            project = self.project
            self._env = environment(
                project.config, project.macro_files, project.doc_blocks, project.dispatch
            )
            self._env.set_sources(
                (s.source_name, s.table, s.relation) for s in self.project.sources
            )
        return self._env

    def relation_of(self, name: str) -> str:
        """How a ref to ``name`` reads in compiled SQL (in a dbt project, with the database,
        as dbt renders it)."""
        database = self._database
        if name in self.models:
            model = self.models[name]
            return qualified(database, model.schema, model.identifier)
        seed = self.seeds[name]
        return qualified(database, seed.schema, seed.table)

    @property
    def _database(self) -> str | None:
        config = self.project.config
        return config.warehouse.database if config.is_dbt else None

    def rendered(
        self,
        model: Model,
        now: dt.datetime | None,
        tick: dt.datetime | None,
        incremental: bool,
        query: Query | None = None,
        invocation_id: str | None = None,
    ) -> str:
        """The model's SQL with ref tokens; rendered again when it reads per-run values, with
        ``query`` (the run's warehouse) behind ``run_query``, ``adapter`` and ``execute``."""
        if not model.per_run and not (incremental and model.materialized == "incremental"):
            return model.rendered
        from cadence.load.context import RenderState

        state = RenderState(
            file=model.path,
            run_started_at=now,
            tick=tick or now,
            incremental=incremental,
            package=model.package,
            query=query,
            invocation_id=invocation_id,
        )
        database = self._database
        this = qualified(database, model.schema, model.identifier)
        state.this = Relation(model.schema, model.identifier, this, database)
        state.base_config = config_values(model)
        state.resolve_ref = lambda name: self._relation(name, database)
        return self.env.render(model.raw_sql, state)

    def _relation(self, name: str, database: str | None) -> Relation:
        """What ``ref(name)`` returns during a run: the model's real relation (``run_query``
        and ``adapter`` calls read it); an ephemeral's stays the token the compiler inlines."""
        model = self.models.get(name)
        seed = self.seeds.get(name)
        if model is not None and model.materialized != "ephemeral":
            kind = "view" if model.materialized == "view" else "table"
            rendered = qualified(database, model.schema, model.identifier)
            return Relation(model.schema, model.identifier, rendered, database, kind)
        if seed is not None:
            rendered = qualified(database, seed.schema, seed.table)
            return Relation(seed.schema, seed.table, rendered, database, "table")
        return Relation(None, name, ref_token(name))

    def compile(
        self,
        name: str,
        now: dt.datetime | None = None,
        tick: dt.datetime | None = None,
        incremental: bool = False,
        query: Query | None = None,
        invocation_id: str | None = None,
    ) -> CompiledModel:
        """The model's final SQL; ``query`` reaches the warehouse for templates that read it
        (dbt's ``run_query``, ``adapter.get_columns_in_relation``); ``invocation_id``: the run's
        id (``invocation_id`` in Jinja)."""
        model = self.models[name]
        sql = _without_trailing_semicolon(
            self._resolve(model, now, tick, incremental, invocation_id, query)
        )
        column = model.config.watermark
        if incremental and model.materialized == "incremental" and column:
            filtered = _after_watermark(sql, column, model.relation)
            return CompiledModel(
                name,
                model.path,
                filtered,
                digest(filtered.encode()),
                incremental=True,
                watermark=column,
                unfiltered=sql,
                this=model.relation,
            )
        return CompiledModel(name, model.path, sql, digest(sql.encode()), incremental)

    def analyses(self, now: dt.datetime | None) -> list[tuple[str, str, str]]:
        """A dbt project's analyses compiled: (name, path, SQL), never run."""
        return [(n, p, self.compile_sql(sql, now)) for n, p, sql in self.project.analyses]

    def compile_sql(
        self, text: str, now: dt.datetime | None = None, overrides: dict[str, str] | None = None
    ) -> str:
        """Compile SQL already rendered with ref tokens (tests); ``overrides`` maps a model to
        another relation (its staging relation while a build is being tested)."""
        ctes: dict[str, str] = {}
        swap = overrides or {}

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            return swap[name] if name in swap else self._ref(name, ctes, now, None, None, set())

        body = REF_TOKEN.sub(sub, text)
        return _with_ctes(body, ctes)

    def _resolve(
        self,
        model: Model,
        now: dt.datetime | None,
        tick: dt.datetime | None,
        incremental: bool,
        invocation_id: str | None,
        query: Query | None = None,
    ) -> str:
        ctes: dict[str, str] = {}
        text = self.rendered(model, now, tick, incremental, query, invocation_id)
        body = REF_TOKEN.sub(
            lambda m: self._ref(m.group(1), ctes, now, tick, invocation_id, {model.name}, query),
            text,
        )
        return _with_ctes(body, ctes)

    def _ref(
        self,
        name: str,
        ctes: dict[str, str],
        now: dt.datetime | None,
        tick: dt.datetime | None,
        invocation_id: str | None,
        stack: set[str],
        query: Query | None = None,
    ) -> str:
        model = self.models.get(name)
        if model is None or model.materialized != "ephemeral":
            if model is None and name not in self.seeds:
                raise CadenceError(f"unknown ref '{name}'", hint="check the model name")
            return self.relation_of(name)
        cte = EPHEMERAL_PREFIX + name
        if cte not in ctes and name not in stack:
            # rendered again for this run when its text depends on the run (Model.per_run)
            text = self.rendered(model, now, tick, False, query, invocation_id)
            inner = REF_TOKEN.sub(
                lambda m: self._ref(
                    m.group(1), ctes, now, tick, invocation_id, stack | {name}, query
                ),
                text,
            )
            ctes[cte] = _strip_sql(inner)
        return cte


QUERY_HINT = (
    "a model (and a test) is one query: a SELECT, CTEs welcome; no ';' with a second "
    "statement after it, and no COPY, ATTACH, INSTALL, SET or other statement"
)


def ensure_query(sql: str, file: str, accepted: OneQuery | None = None) -> None:
    """Raise a ``CadenceError`` naming ``file`` unless ``sql`` is exactly one query, checked
    with DuckDB's own parser before it runs (SPEC §6): nothing a model or test smuggles past
    its query (a ';' and a statement, through a closing parenthesis or a macro) ever runs.
    ``accepted``: the texts the parser accepted in earlier runs (``build.onequery``), not
    parsed again."""
    if accepted is not None and accepted.known(sql):
        return
    from cadence.engines.duckdb import query_problem  # duckdb only when something is built

    problem = query_problem(sql)
    if problem is not None:
        raise CadenceError(f"{file} {problem}", file=file, hint=QUERY_HINT)
    if accepted is not None:
        accepted.add(sql)


def _after_watermark(sql: str, column: str, this: str, bound: str | None = None) -> str:
    """Only rows newer than what the table holds. With ``bound`` (the newest value, read by the
    engine as a constant) the filter is pushed down into the scan of the sources, so an
    incremental run costs in proportion to what arrived."""
    from cadence.load.relations import quote

    col = quote(column)
    body = _strip_sql(sql)
    newest = (
        f"(select coalesce(max({col}), '-infinity') from {this})"
        if bound is None
        else f"coalesce({bound}, '-infinity')"
    )
    return f"select * from (\n{body}\n) as __cadence_new\nwhere {col} > {newest}"


def _without_trailing_semicolon(sql: str) -> str:
    """A model is one SELECT; a trailing ';' (common in SQL files) would break the wrapping
    ``create table ... as (...)``."""
    stripped = sql.rstrip()
    if stripped.endswith(";"):
        return stripped.rstrip(";").rstrip() + "\n"
    return sql


def _strip_sql(sql: str) -> str:
    return sql.strip().rstrip(";").strip()


def _with_ctes(body: str, ctes: dict[str, str]) -> str:
    """Prepend ephemeral CTEs, merging with a WITH the model already opens with."""
    if not ctes:
        return body
    defs = ",\n".join(f"{name} as (\n{sql}\n)" for name, sql in ctes.items())
    lead = _LEADING.match(body)
    start = lead.end() if lead else 0
    rest = body[start:]
    m = re.match(r"with(\s+recursive)?\b", rest, re.I)
    if m:
        recursive = m.group(1) or ""
        return f"{body[:start]}with{recursive} {defs},\n{rest[m.end() :].lstrip()}"
    return f"{body[:start]}with {defs}\n{rest}"


def config_values(model: Model) -> dict[str, Any]:
    """A model's merged config as ``config.get`` reads it during a run."""
    config = model.config
    out: dict[str, Any] = dict(config.extra)
    for f in fields(config):
        if f.name not in ("origins", "extra"):
            value = getattr(config, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out
