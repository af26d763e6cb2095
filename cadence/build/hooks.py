"""What a model's configuration asks for around its build, and a project's hooks around a run.

Input: a model, the run's compiler and engine (inside the model's publish transaction) ->
output: the SQL of its ``pre_hook``s and ``sql_header`` run before it is built, its
``post_hook``s after it is live (``{{ this }}`` names the live relation) and, with
``persist_docs``, its description and column descriptions as DuckDB comments; and for a run, a
dbt project's ``on-run-start``/``on-run-end`` hooks. Hooks are Jinja rendered like the model
(its package, ``this``, ``run_query``), each one statement run as written. A hook that fails
fails the model's build (its transaction rolls back, the last good version stays live); a failed
``on-run-start`` fails the run before anything is built. Used by ``publish`` and the facade.
A hook or ``sql_header`` never changes a session setting (``SET``, ``RESET``, ``PRAGMA``): the
setting would outlive the model and apply to the rest of the run (cadence's own state writes
included); such a statement is refused before anything runs, naming the file. ``SET VARIABLE``
(a user variable, read with ``getvariable``) is allowed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from cadence.build.compiler import Compiler
from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError
from cadence.load.parser import Model, ParsedProject
from cadence.load.relations import Relation, qualified, quote


def hook_list(value: Any) -> list[str]:
    """A ``pre_hook``/``post_hook`` value as SQL templates: text, a list, or ``{sql: ...}``."""
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("sql")
        if isinstance(item, str) and item.strip():
            out.append(item)
    return out


def model_hooks(model: Model, when: str) -> list[str]:
    extra = model.config.extra
    return hook_list(extra.get(when)) + hook_list(extra.get(when.replace("_", "-")))


# SQL a project can run while a run builds, beside its models' queries (``run_query``,
# ``statement``, ``adapter.execute`` in a model, test or macro)
_RUNS = re.compile(r"\brun_query\b|\bstatement\s*\(|\badapter\s*\.\s*execute\b", re.IGNORECASE)


def runs_sql(project: ParsedProject) -> bool:
    """Whether something in ``project`` may run SQL of its own between one publish and the next:
    a model's hooks or ``sql_header``, or ``run_query``, ``statement`` or ``adapter.execute``
    written in a model, test or macro. Conservative: a mention is enough."""
    for model in project.models:
        header = model.config.extra.get("sql_header")
        if model_hooks(model, "pre_hook") or model_hooks(model, "post_hook"):
            return True
        if (isinstance(header, str) and header.strip()) or _RUNS.search(model.raw_sql):
            return True
    texts = [text for _path, text in project.macro_files]
    texts += [t.sql for t in project.tests if t.sql]
    return any(_RUNS.search(text) for text in texts)


def _render(
    compiler: Compiler, model: Model | None, text: str, engine: Engine, now: dt.datetime, file: str
) -> str:
    from cadence.load.context import RenderState

    state = RenderState(file=file, run_started_at=now, tick=now, query=engine.query_named)
    if model is not None:
        config = compiler.project.config
        database = config.warehouse.database if config.is_dbt else None
        rendered = qualified(database, model.schema, model.identifier)
        state.this = Relation(model.schema, model.identifier, rendered, database)
        state.package = model.package
    sql = compiler.env.render(text, state)
    return compiler.compile_sql(sql, now)


# what a statement opens with, once strings, quoted names and comments are blanked out
_HIDDEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?(?:\*/|$)", re.S)
_SESSION = re.compile(r"^\s*\(*\s*(set|reset|pragma)\b(?!\s+variable\b)", re.I)


def session_statement(sql: str) -> str | None:
    """The keyword (SET, RESET, PRAGMA) of the first statement of ``sql`` that changes a
    session setting, or None."""
    for statement in _HIDDEN.sub(" ", sql).split(";"):
        m = _SESSION.match(statement)
        if m:
            return m.group(1).upper()
    return None


def _run(engine: Engine, sql: str, what: str, file: str | None = None) -> None:
    if not sql.strip():
        return
    keyword = session_statement(sql)
    if keyword is not None:
        where = f" of {file}" if file and file not in what else ""
        raise CadenceError(
            f"{what}{where} runs {keyword}: hooks may not change session settings",
            file=file,
            hint="a setting would outlive the model and apply to the rest of the run; set it "
            "in the warehouse settings (profiles.yml settings:, or warehouse: in cadence.yml)",
        )
    try:
        engine.execute(sql)
    except EngineError as exc:
        raise CadenceError(f"{what} failed: {exc}") from None


def before_build(compiler: Compiler, model: Model, engine: Engine, now: dt.datetime) -> None:
    """Pre-hooks, then the SQL header, inside the model's transaction."""
    for i, text in enumerate(model_hooks(model, "pre_hook")):
        sql = _render(compiler, model, text, engine, now, model.path)
        _run(engine, sql, f"pre_hook {i + 1}", model.path)
    header = model.config.extra.get("sql_header")
    if isinstance(header, str) and header.strip():
        sql = _render(compiler, model, header, engine, now, model.path)
        _run(engine, sql, "sql_header", model.path)


def after_build(compiler: Compiler, model: Model, engine: Engine, now: dt.datetime) -> None:
    """Post-hooks (the model is live), then ``persist_docs`` comments."""
    for i, text in enumerate(model_hooks(model, "post_hook")):
        sql = _render(compiler, model, text, engine, now, model.path)
        _run(engine, sql, f"post_hook {i + 1}", model.path)
    _persist_docs(model, engine)


def _persist_docs(model: Model, engine: Engine) -> None:
    wanted = model.config.extra.get("persist_docs")
    if not isinstance(wanted, dict) or model.materialized == "ephemeral":
        return
    kind = "view" if model.materialized == "view" else "table"
    if wanted.get("relation") and model.description:
        _run(
            engine,
            f"comment on {kind} {model.relation} is {_literal(model.description)}",
            "persist_docs",
        )
    if wanted.get("columns"):
        present = {
            str(r[0])
            for r in engine.query(
                "select column_name from duckdb_columns() where schema_name = ? and table_name = ?",
                [model.schema, model.identifier],
            )
        }
        for column in model.columns:
            if column.description and column.name in present:
                _run(
                    engine,
                    f"comment on column {model.relation}.{quote(column.name)} is "
                    f"{_literal(column.description)}",
                    "persist_docs",
                )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def run_hooks(
    project: ParsedProject,
    compiler: Compiler,
    engine: Engine,
    when: str,
    now: dt.datetime,
    results: Sequence[Any] = (),
) -> int:
    """A dbt project's ``on-run-start`` or ``on-run-end`` hooks, in order; returns how many
    ran. ``results`` (the run's results) is what ``{{ results }}`` holds in on-run-end."""
    ran = 0
    for hook_when, file, text in project.hooks:
        if hook_when != when:
            continue
        env = compiler.env
        env.env.globals["results"] = list(results)
        try:
            sql = _render(compiler, None, text, engine, now, file)
        finally:
            env.env.globals.pop("results", None)
        _run(engine, sql, f"{when} hook {ran + 1} ({file})", file)
        ran += 1
    return ran


def start_of_run(
    project: ParsedProject,
    compiler: Compiler,
    engine: Engine,
    decisions: Sequence[Any],
    now: dt.datetime,
) -> bool:
    """A dbt project's on-run-start, when the run builds anything (an idle ``run --due`` runs
    no hook); whether it ran (then ``end_of_run`` follows the run)."""
    if not project.hooks or not any(d.builds for d in decisions):
        return False
    run_hooks(project, compiler, engine, "on-run-start", now)
    return True


def end_of_run(
    project: ParsedProject,
    compiler: Compiler,
    engine: Engine,
    results: Sequence[Any],
    now: dt.datetime,
) -> None:
    """on-run-end, with ``{{ results }}``: the models the run built or failed."""
    done = [r for r in results if r.status != "skipped"]
    run_hooks(project, compiler, engine, "on-run-end", now, done)
