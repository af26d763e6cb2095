"""``cadence test``: run data tests against the live relations.

Input: ``Project`` and a selection -> output: one ``TestResult`` per test (pass, fail, warn,
error). Blocking tests also run during publish (runner); this is the after-the-fact check.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cadence.build.datatests import failing_rows_sql, judge, target_resolver
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
    chosen = project.selected(selection, None, now)
    if not project.warehouse_exists():
        raise CadenceError(
            "the warehouse does not exist yet",
            file=project.parsed.config.warehouse.path,
            hint="run 'cadence run' first",
        )
    engine = project.open_engine(read_only=True)
    resolve = target_resolver(project.parsed, project.compiler.relation_of)
    results = []
    try:
        for test in project.parsed.tests:
            owners = set(test.refs) | ({test.model} if test.model else set())
            if owners and not owners & chosen:
                continue
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
                    relation = project.compiler.relation_of(test.model)
                    sql = failing_rows_sql(test, relation, resolve) or ""
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
