"""``cadence test``: run data tests against the live relations.

Input: ``Project`` and a selection -> output: one ``TestResult`` per test (pass, fail, warn,
error). Blocking tests also run during publish (runner); this is the after-the-fact check.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cadence.build.compiler import ensure_query
from cadence.build.datatests import describe_failure, test_sql
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
                if test.kind == "singular":
                    sql = test_sql(test, "", None)
                    sql = project.compiler.compile_sql(sql or "", now)
                else:
                    relation = project.compiler.relation_of(test.model)
                    sql = test_sql(test, relation, project.compiler.relation_of)
                ensure_query(sql or "", test.file)
                failures = int(engine.query(sql)[0][0])
            except (EngineError, CadenceError) as exc:
                text = exc.message if isinstance(exc, CadenceError) else str(exc)
                results.append(TestResult(test.name, "error", 0, text.splitlines()[0], test.file))
                continue
            if failures == 0:
                results.append(TestResult(test.name, "pass", 0, "", test.file))
            else:
                status = "warn" if test.severity == "warn" else "fail"
                results.append(
                    TestResult(
                        test.name, status, failures, describe_failure(test, failures), test.file
                    )
                )
    finally:
        engine.close()
    return results
