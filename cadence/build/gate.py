"""The gate a staged candidate passes before it is published: its blocking tests, run on it.

Input: the ``RunContext``, a model, its staging relation (and for an incremental the live
relation the merge goes into) -> output: one ``TestOutcome`` per test that ran. The tests are
the model's YAML and singular tests plus, for a segment, ``not_null`` and ``unique`` on its key
(unless the YAML already checks them). A singular test reads the candidate in place of the live
relation; generic failing-row counts are asked in one query; ``max_change`` compares with the
live row count. A test whose other relation does not exist yet is skipped (checked on a later
build). Reads only: ``publish`` decides from the outcomes what blocks and what warns. Inside a
commit group (``grouped``) the built-in tests that read only the model's own table, built in
place, are left for the group's commit (``Pending``), where ``settle`` judges those of all its
publishes in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from cadence.build.context import RunContext
from cadence.build.datatests import (
    TestOutcome,
    describe_failure,
    judge,
    one_query,
    outcomes,
    own_table_only,
    target_resolver,
)
from cadence.build.incremental import checked_sql
from cadence.engines.base import Engine, EngineError
from cadence.errors import CadenceError, did_you_mean
from cadence.load.parser import Model
from cadence.load.testspecs import DataTest
from cadence.record import membership


def run_tests(
    ctx: RunContext,
    model: Model,
    relation: str,
    candidate_rows: int | None,
    merge_into: str | None = None,
    built_from: str | None = None,
) -> list[TestOutcome]:
    """The outcomes of ``model``'s tests on ``relation``. With ``built_from`` (the query the
    candidate was built from) the candidate's columns are not looked up first: a test on a
    missing column makes the tests' one query fail, and ``TestsCannotRun.named``, called once
    the transaction is rolled back, names it (one statement fewer per publish)."""
    found: list[TestOutcome] = []
    tests = list(ctx.tests_by_model.get(model.name, ()))
    if model.config.key:
        declared = {(t.kind, t.column) for t in tests if t.severity == "error" and not t.where}
        for kind in ("not_null", "unique"):
            if (kind, model.config.key) in declared:
                continue  # the YAML already checks it
            tests.append(
                DataTest(
                    name=f"key_{kind}_{model.name}",
                    kind=kind,
                    model=model.name,
                    column=model.config.key,
                    args={},
                    severity="error",
                    where=None,
                    file=model.path,
                    line=None,
                )
            )
    counted: list[tuple[DataTest, str]] = []  # built-in tests, judged in one query
    resolve = target_resolver(ctx.project, ctx.compiler.relation_of)
    for test in tests:
        if test.error is not None:
            continue  # cannot run: `cadence test` reports it
        if test.kind == "singular" or test.custom:
            others = [r for r in test.refs if r != model.name]
            if not all(_target_exists(ctx, f"ref('{r}')") for r in others):
                continue  # reads a relation that does not exist yet: checked on a later build
            # the test reads the candidate in place of the live relation
            sql = ctx.compiler.compile_sql(test.sql or "", ctx.now, {model.name: relation})
            membership.before_reading(ctx.engine, sql)
            try:
                found.extend(judge(ctx.engine, [(test, sql)], ctx.compiler.accepted))
            except EngineError as exc:  # the test's SQL, not the model's: say which file
                what = "singular test" if test.kind == "singular" else f"test {test.kind}"
                raise EngineError(f"{what} {test.name} ({test.file}): {exc}") from exc
            continue
        if test.kind == "max_change":
            found.append(_max_change(ctx, model, test, candidate_rows))
            continue
        if test.kind == "relationships" and not _target_exists(ctx, str(test.args["to"])):
            found.append(TestOutcome(test, 0, ""))  # nothing to check against yet
            continue
        rows_sql = checked_sql(test, relation, merge_into, model, resolve)
        if rows_sql is not None:
            counted.append((test, rows_sql))
    group = ctx.engine.group
    settles = ctx.settles_at_commit and relation == model.relation and merge_into is None
    if counted and group is not None and settles and not found:
        if all(own_table_only(t) for t, _q in counted):  # each the same at the commit
            group.checks.append(
                Pending(model, tuple(counted), one_query(counted, ctx.compiler.accepted))
            )
            return found
    membership.before_reading(ctx.engine, "\n".join(q for _t, q in counted))
    if built_from is None:  # name the test (or key) of a missing column before the one query
        missing = _missing_column(ctx.engine, model, f"select * from {relation}", counted)
        if missing is not None:
            raise missing
    try:
        judged = judge(ctx.engine, counted, ctx.compiler.accepted)
    except EngineError as exc:
        if built_from is None:
            raise _named(model, counted, exc) from exc
        raise TestsCannotRun(model, counted, built_from, _named(model, counted, exc)) from exc
    found.extend(_keyed(o) for o in judged)
    return found


def _keyed(outcome: TestOutcome) -> TestOutcome:
    """The checks cadence adds on a segment's key say so."""
    if outcome.test.name.startswith("key_") and outcome.message:
        return replace(outcome, message="key " + outcome.message)
    return outcome


@dataclass(frozen=True)
class Pending:
    """The data tests of one publish judged at its group's commit: their one query (checked
    when the publish asked for it) and the tests its row answers."""

    model: Model
    counted: tuple[tuple[DataTest, str], ...]
    query: str


def settle(engine: Engine, pending: Sequence[Pending]) -> dict[str, list[TestOutcome]]:
    """The outcomes of every pending publish's tests, per model, from one statement (each
    publish's own one query, side by side)."""
    if not pending:
        return {}
    sources = ",\n".join(f"({p.query}) as t{i}" for i, p in enumerate(pending))
    row = engine.query(f"select * from\n{sources}")[0]
    found: dict[str, list[TestOutcome]] = {}
    start = 0
    for p in pending:
        width = 3 * len(p.counted)
        found[p.model.name] = [_keyed(o) for o in outcomes(p.counted, row[start : start + width])]
        start += width
    return found


class TestsCannotRun(EngineError):
    """The tests' one query failed inside the publish transaction, which is now of no further
    use: ``named`` (after the rollback) says which test's column is missing, if one is."""

    def __init__(
        self, model: Model, counted: list[tuple[DataTest, str]], built_from: str, error: EngineError
    ) -> None:
        super().__init__(str(error))
        self.model, self.counted, self.built_from = model, counted, built_from

    def named(self, engine: Engine) -> EngineError:
        query = f"select * from (\n{self.built_from}\n) as __cadence_candidate"
        return _missing_column(engine, self.model, query, self.counted) or self


def _missing_column(
    engine: Engine, model: Model, query: str, counted: list[tuple[DataTest, str]]
) -> EngineError | None:
    """A test on a column the candidate (``query``'s rows) does not have (a misspelled column,
    a wrong ``key``), named with its file and line and the closest column, instead of the
    tests' one query failing for all of them."""
    columns = [t.column for t, _sql in counted if t.column]
    if not columns:
        return None
    try:
        have = [str(r[0]) for r in engine.query(f"describe {query}")]
    except (EngineError, CadenceError):
        return None  # the tests' own query says what is wrong
    lower = {h.lower() for h in have}
    for test, _sql in counted:
        if test.column and test.column.strip('"').lower() not in lower:
            guess = did_you_mean(test.column, have)
            hint = f"did you mean '{guess}'?" if guess else "its columns: " + ", ".join(have)
            return EngineError(
                f"{_label(model, test)}: column '{test.column}' is not a column of "
                f"{model.name} ({hint})"
            )
    return None


def _named(model: Model, counted: list[tuple[DataTest, str]], error: EngineError) -> EngineError:
    """The tests' one query failed: say which tests it held (the one, when it held one)."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    if len(counted) == 1:
        return EngineError(f"{_label(model, counted[0][0])}: {first}")
    names = [t.name for t, _sql in counted]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return EngineError(f"the data tests of {model.name} cannot run ({shown}): {first}")


def _label(model: Model, test: DataTest) -> str:
    """``test not_null_vip_email (models/vip.yml:12)``, or for the checks cadence adds on a
    segment's key, ``key 'id' of vip (models/vip.sql:1)`` where the key is set."""
    if test.name.startswith("key_") and test.column == model.config.key:
        file, line = model.config.origins.get("key", (model.path, None))
        where = f"{file}:{line}" if line else file
        return f"key '{test.column}' of {model.name} ({where})"
    where = f"{test.file}:{test.line}" if test.line else test.file
    return f"test {test.name} ({where})"


def _target_exists(ctx: RunContext, to: str) -> bool:
    from cadence.plan.dag import ref_target

    if to.lstrip().startswith("source("):
        return True  # a source is not built here: it is there or the test's query says so
    name = ref_target(to)
    model = ctx.compiler.models.get(name)
    seed = ctx.compiler.seeds.get(name)
    schema, identifier = (
        (model.schema, model.identifier)
        if model is not None
        else (seed.schema, seed.table)
        if seed is not None
        else (ctx.project.config.warehouse.schema, name)
    )
    return (schema, identifier) in (ctx.visible if ctx.visible is not None else ctx.relations)


def _max_change(ctx: RunContext, model: Model, test: DataTest, new_rows: int | None) -> TestOutcome:
    if new_rows is None or not ctx.state.exists(model.schema, model.identifier):
        return TestOutcome(test, 0, "")
    old = ctx.engine.row_count(model.relation)
    limit = float(test.args.get("value", test.args.get("fraction", 0.5)))
    if old == 0:
        change = 0.0 if new_rows == 0 else float("inf")
    else:
        change = abs(new_rows - old) / old
    if change > limit and old > 0:
        msg = f"size changed from {old} to {new_rows} rows ({change:.0%} > {limit:.0%})"
        return TestOutcome(test, 1, describe_failure(test, 1, msg))
    return TestOutcome(test, 0, "")
