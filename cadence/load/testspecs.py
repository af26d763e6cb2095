"""Test definitions from YAML: dbt's ``tests:``/``data_tests:`` syntax read into ``DataTest``.

Input: a model's (or seed's) YAML entry -> output: ``DataTest`` values (kind, column, arguments,
severity, where) with the file and line they came from. Part of the parse stage; the SQL each
test runs is made later by ``datatests``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cadence.errors import CadenceError, ErrorCollector, did_you_mean
from cadence.load.yamlfile import line_of

GENERIC_TESTS = (
    "not_null",
    "unique",
    "accepted_values",
    "relationships",
    "row_count",
    "max_change",
)
TEST_CONFIG_KEYS = (
    "severity",
    "where",
    "error_if",
    "warn_if",
    "limit",
    "tags",
    "enabled",
    "name",
    "config",
    "arguments",
    "store_failures",
    "meta",
    "description",
)


@dataclass(frozen=True)
class DataTest:
    """A test on a model or seed: generic (from YAML) or singular (tests/*.sql)."""

    name: str
    kind: str
    model: str | None
    column: str | None
    args: dict[str, Any]
    severity: str
    where: str | None
    file: str
    line: int | None
    sql: str | None = None
    refs: tuple[str, ...] = ()
    env_vars: tuple[tuple[str, str | None], ...] = ()  # singular: (name, env_digest) read


def _test_entries(owner: dict[str, Any]) -> list[Any]:
    entries: list[Any] = []
    for key in ("tests", "data_tests"):
        value = owner.get(key) or []
        if isinstance(value, list):
            entries.extend(value)
    return entries


def parse_tests(
    entry: dict[str, Any],
    model: str,
    file: str,
    errors: ErrorCollector,
    warnings: list[CadenceError],
) -> list[DataTest]:
    out: list[DataTest] = []
    targets: list[tuple[str | None, dict[str, Any]]] = [(None, entry)]
    listed = entry.get("columns") or []
    for column in listed if isinstance(listed, list) else []:  # else: the parser says so
        if isinstance(column, dict) and column.get("name"):
            targets.append((str(column["name"]), column))
    for column, owner in targets:
        for test in _test_entries(owner):
            parsed = _parse_one_test(
                test,
                model,
                column,
                file,
                line_of(owner, "tests") or line_of(owner, "data_tests"),
                errors,
                warnings,
            )
            if parsed is not None:
                out.append(parsed)
    return out


def _parse_one_test(
    test: Any,
    model: str,
    column: str | None,
    file: str,
    line: int | None,
    errors: ErrorCollector,
    warnings: list[CadenceError],
) -> DataTest | None:
    if isinstance(test, str):
        kind, args = test, {}
    elif isinstance(test, dict) and len(test) >= 1:
        if "test_name" in test:
            kind, args = str(test["test_name"]), {k: v for k, v in test.items() if k != "test_name"}
        else:
            kind = str(next(iter(test)))
            raw = test[kind]
            args = (
                dict(raw) if isinstance(raw, dict) else ({"value": raw} if raw is not None else {})
            )
        line = line_of(test) or line
    else:
        errors.add(
            CadenceError(
                "a test must be a name or a mapping",
                file=file,
                line=line,
                hint="write - not_null, or - accepted_values: {values: [a, b]}",
            )
        )
        return None
    if "." in kind and kind.split(".")[-1] not in GENERIC_TESTS:
        warnings.append(
            CadenceError(
                f"test '{kind}' comes from a dbt package cadence does not load; skipped",
                file=file,
                line=line,
                severity="warning",
                hint="write it as a singular test in tests/*.sql",
            )
        )
        return None
    kind = kind.split(".")[-1]
    if kind not in GENERIC_TESTS:
        guess = did_you_mean(kind, GENERIC_TESTS)
        errors.add(
            CadenceError(
                f"unknown test '{kind}'",
                file=file,
                line=line,
                hint=f"did you mean '{guess}'?"
                if guess
                else "tests: " + ", ".join(GENERIC_TESTS) + ", or a singular test in tests/",
            )
        )
        return None
    cfg = args.pop("config", None) or {}
    nested = args.pop("arguments", None) or {}
    if isinstance(nested, dict):
        args.update(nested)
    if isinstance(cfg, dict):
        args.update({k: v for k, v in cfg.items() if k in ("severity", "where")})
    severity = str(args.pop("severity", "error")).lower()
    if severity not in ("error", "warn"):
        errors.add(
            CadenceError(
                f"invalid severity '{severity}'",
                file=file,
                line=line,
                hint="use severity: error (blocks publication) or warn",
            )
        )
        severity = "error"
    where = args.pop("where", None)
    for k in (
        "name",
        "tags",
        "enabled",
        "error_if",
        "warn_if",
        "limit",
        "store_failures",
        "meta",
        "description",
    ):
        args.pop(k, None)
    problem = _check_test_args(kind, column, args)
    if problem:
        errors.add(CadenceError(problem[0], file=file, line=line, hint=problem[1]))
        return None
    test_name = "_".join(p for p in (kind, model, column) if p)
    return DataTest(
        name=test_name,
        kind=kind,
        model=model,
        column=column,
        args=args,
        severity=severity,
        where=str(where) if where else None,
        file=file,
        line=line,
    )


def _check_test_args(kind: str, column: str | None, args: dict[str, Any]) -> tuple[str, str] | None:
    if kind in ("not_null", "unique", "accepted_values", "relationships") and column is None:
        column = args.get("column_name")
        if column is None:
            return (f"test '{kind}' needs a column", "list it under the column's tests:")
    if kind == "accepted_values" and not isinstance(args.get("values"), list):
        return ("accepted_values needs a list of values", "write accepted_values: {values: [a, b]}")
    if kind == "relationships" and not (args.get("to") and args.get("field")):
        return (
            "relationships needs 'to' and 'field'",
            "write relationships: {to: ref('customers'), field: customer_id}",
        )
    if kind == "max_change":
        value = args.get("value", args.get("fraction"))
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            return ("max_change needs a fraction such as 0.5", "write max_change: 0.5")
    if kind == "row_count" and not ({"min", "max"} & set(args)):
        return ("row_count needs min and/or max", "write row_count: {min: 1, max: 100000}")
    if kind == "row_count":
        for bound in ("min", "max"):
            value = args.get(bound)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                return (
                    f"row_count {bound} must be a whole number, not {str(value)[:40]!r}",
                    "write row_count: {min: 1, max: 100000}",
                )
    return None
