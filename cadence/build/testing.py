"""``cadence test``: run unit tests in memory and data tests against the live relations.

Input: ``Project`` and a selection -> output: one ``TestResult`` per test (pass, fail, warn,
error): the unit tests of the selected models first (``unittests``: no warehouse needed), then
their data tests. Blocking data tests also run during publish (``gate``); this is the
after-the-fact check. A test of a model or seed with no live relation (never built or loaded
successfully) is skipped with a result saying so, naming it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cadence.build.compiler import ensure_query
from cadence.build.datatests import failing_rows_sql, judge, target_resolver
from cadence.build.unittests import run_unit_tests
from cadence.engines.base import EngineError
from cadence.errors import CadenceError


@dataclass(frozen=True)
class TestResult:
    name: str
    status: str  # pass | fail | warn | error | skipped
    failures: int
    message: str
    file: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "failures": self.failures,
            "message": self.message,
            "file": self.file,
        }


def run_tests(project: Any, selection: Any, now: dt.datetime) -> list[TestResult]:
    """Unit tests of the selected models (in memory), then data tests (on the warehouse)."""
    chosen = project.selected(selection, None, now)
    results = [
        TestResult(u.name, u.status, int(u.status == "fail"), u.message, u.file)
        for u in run_unit_tests(project, chosen, now)
    ]
    return results + run_data_tests(project, chosen, now, bool(results))


def run_data_tests(
    project: Any, chosen: set[str], now: dt.datetime, others: bool = False
) -> list[TestResult]:
    """The data tests of the ``chosen`` models, on the live relations. Without a warehouse:
    an error (or, when ``others`` ran, one error result saying so)."""
    if not project.warehouse_exists():
        problem = CadenceError(
            "the warehouse does not exist yet",
            file=project.parsed.config.warehouse.path,
            hint="run 'cadence run' first",
        )
        if not others:
            raise problem
        readers = _readers(project.parsed)
        waiting = [t for t in project.parsed.tests if _owned(t, chosen, readers)]
        if not waiting:
            return []
        message = f"{len(waiting)} data test(s) not run: {problem.message}; {problem.hint}"
        return [TestResult("data tests", "error", 0, message, str(problem.file))]
    engine = project.open_engine(read_only=True)
    resolve = target_resolver(project.parsed, project.compiler.relation_of)
    sources = {f"{s.source_name}.{s.table}": s.relation for s in project.parsed.sources}
    readers = _readers(project.parsed)
    results: list[TestResult] = []
    try:
        missing = _unpublished(project.parsed, engine.relations())
        for test in project.parsed.tests:
            if not _owned(test, chosen, readers):
                continue
            if test.error is not None:
                results.append(TestResult(test.name, "error", 0, test.error, test.file))
                continue
            absent = sorted(({test.model} | set(test.refs)) & missing.keys())
            if test.kind == "max_change":
                results.append(
                    TestResult(
                        test.name,
                        "skipped",
                        0,
                        "max_change compares versions; checked when a build publishes",
                        test.file,
                    )
                )
                continue
            try:
                if test.kind == "singular" or test.custom:
                    sql = project.compiler.compile_sql(test.sql or "", now)
                else:
                    relation = (
                        sources[test.source]
                        if test.source
                        else project.compiler.relation_of(test.model)
                    )
                    sql = failing_rows_sql(test, relation, resolve) or ""
                ensure_query(sql, test.file)
                if absent:  # the test itself is sound: what it reads is not there yet
                    results.append(_not_published(test, absent, missing))
                    continue
                outcome = judge(engine, [(test, sql)])[0]
            except (EngineError, CadenceError) as exc:
                message = exc.message if isinstance(exc, CadenceError) else str(exc)
                results.append(
                    TestResult(test.name, "error", 0, message.splitlines()[0], test.file)
                )
                continue
            results.append(
                TestResult(
                    test.name,
                    outcome.status,
                    outcome.failures if outcome.status != "pass" else 0,
                    outcome.message,
                    test.file,
                )
            )
    finally:
        engine.close()
    return results


def _not_published(test: Any, absent: list[str], missing: dict[str, str]) -> TestResult:
    names = ", ".join(f"{missing[n]} '{n}'" for n in absent)
    return TestResult(
        test.name,
        "skipped",
        0,
        f"{names} {'is' if len(absent) == 1 else 'are'} not published yet (never built "
        "successfully); its tests run once 'cadence run' publishes it",
        test.file,
    )


def _unpublished(parsed: Any, live: dict[tuple[str, str], str]) -> dict[str, str]:
    """Models and seeds with no live relation (never built or loaded successfully: a first
    build whose tests failed published nothing) -> "model" or "seed"."""
    out = {
        m.name: "model"
        for m in parsed.models
        if m.materialized != "ephemeral" and (m.schema, m.identifier) not in live
    }
    out.update({s.name: "seed" for s in parsed.seeds if (s.schema, s.table) not in live})
    return out


def _owned(test: Any, chosen: set[str], readers: dict[str, set[str]]) -> bool:
    """A test runs when a model it belongs to is selected (a source's test: a model reading
    the source), or when it belongs to none."""
    owners = set(test.refs) | ({test.model} if test.model else set())
    if test.source:
        owners |= readers.get(test.source, set())
    return not owners or bool(owners & chosen)


def _readers(parsed: Any) -> dict[str, set[str]]:
    """Source ("<source>.<table>") -> the models reading it directly."""
    out: dict[str, set[str]] = {}
    for m in parsed.models:
        for source, table in m.sources:
            out.setdefault(f"{source}.{table}", set()).add(m.name)
    return out
