"""Test definitions: dbt's ``tests:``/``data_tests:`` in YAML, and ``tests/*.sql``, as ``DataTest``.

Input: a model's (or seed's, snapshot's, source table's) YAML entry, or a singular test file
-> output: ``DataTest`` values (kind,
column, arguments, configs) with the file and line they came from. Built-in tests keep their
arguments (``datatests`` writes their SQL later); a custom generic test (``{% test %}`` in
macros/ or tests/generic/, see ``generictests``) is rendered here into the SQL of its failing
rows. Configs are dbt's: ``severity``, ``where``, ``limit``, ``warn_if``, ``error_if``,
``fail_calc``, ``name``, ``enabled``, ``tags``, ``meta``, ``description``, given beside the
arguments or under ``config:``; ``store_failures`` is refused (cadence stores no failing rows).
Names are dbt's (``accepted_values_orders_status__placed__shipped``). Part of the parse stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cadence.errors import CadenceError, ErrorCollector, did_you_mean
from cadence.load.yamlfile import line_of

if TYPE_CHECKING:
    from cadence.load.generictests import GenericTests
    from cadence.load.loader import SourceFile

GENERIC_TESTS = (
    "not_null",
    "unique",
    "accepted_values",
    "relationships",
    "row_count",
    "max_change",
)
# the arguments each built-in takes (``column_name`` is given by the column it sits under)
BUILTIN_ARGS = {
    "not_null": ("column_name",),
    "unique": ("column_name",),
    "accepted_values": ("column_name", "values", "quote"),
    "relationships": ("column_name", "to", "field"),
    "row_count": ("min", "max"),
    "max_change": ("value", "fraction"),
}
TEST_CONFIG_KEYS = (
    "severity",
    "where",
    "limit",
    "warn_if",
    "error_if",
    "fail_calc",
    "tags",
    "enabled",
    "meta",
    "store_failures",
    "store_failures_as",
    "database",
    "schema",
    "alias",
)
# beside the arguments, not configs: popped before the arguments are checked
TEST_ENTRY_KEYS = ("name", "description", "config", "arguments", "column_name")
DEFAULT_CONDITION = "!= 0"
_CONDITION = re.compile(r"^\s*(=|==|!=|<>|>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
CONDITION_HINT = 'a comparison with a number, e.g. error_if: ">10", warn_if: "!= 0"'


@dataclass(frozen=True)
class DataTest:
    """A test on a model, seed or snapshot: generic (from YAML) or singular (tests/*.sql).

    ``sql`` is the failing-rows query of a singular or custom generic test (with ref
    placeholders); built-in tests have none (``datatests`` writes it from ``args``). The
    verdict is dbt's: ``failures`` = ``fail_calc`` over the failing rows (at most ``limit``);
    it fails when ``failures <error_if>`` (severity ``error``), else warns when
    ``failures <warn_if>``."""

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
    warn_if: str = DEFAULT_CONDITION
    error_if: str = DEFAULT_CONDITION
    limit: int | None = None
    fail_calc: str = "count(*)"
    source: str | None = None  # a test on a source table: "<source>.<table>" (model is None)
    error: str | None = None  # a test that cannot run (dbt reports it as an error when it runs)
    env_vars: tuple[tuple[str, str | None], ...] = ()  # singular: (name, env_digest) read

    @property
    def custom(self) -> bool:
        """A custom generic test (its SQL rendered from a ``{% test %}`` macro)."""
        return self.sql is not None and self.kind != "singular"

    @property
    def default_thresholds(self) -> bool:
        return (
            self.warn_if == DEFAULT_CONDITION
            and self.error_if == DEFAULT_CONDITION
            and self.fail_calc == "count(*)"
        )


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
    generic: GenericTests | None = None,
    defaults: dict[str, Any] | None = None,
) -> list[DataTest]:
    """The tests of one YAML entry (model-level and under each column). ``generic`` resolves
    and renders custom generic tests; without it only the built-ins are known. ``defaults``:
    test configs set for the project (dbt_project.yml's ``data_tests:``), below each test's."""
    out: list[DataTest] = []
    targets: list[tuple[str | None, dict[str, Any]]] = [(None, entry)]
    listed = entry.get("columns") or []
    for column in listed if isinstance(listed, list) else []:  # else: the parser says so
        if isinstance(column, dict) and column.get("name"):
            targets.append((str(column["name"]), column))
    for column, owner in targets:
        for test in _test_entries(owner):
            line = line_of(owner, "tests") or line_of(owner, "data_tests")
            try:
                parsed = _parse_one_test(
                    test, model, column, file, line, generic, defaults=defaults
                )
            except CadenceError as exc:
                errors.add(exc)
                continue
            if parsed is not None:
                out.append(parsed)
    return out


def parse_source_tests(
    entries: list[tuple[dict[str, Any], str]],
    relations: dict[tuple[str, str], str],
    errors: ErrorCollector,
    generic: GenericTests | None = None,
) -> list[DataTest]:
    """The tests declared on source tables (and their columns), run by ``cadence test``
    against the source relation (``relations``: (source, table) -> relation SQL)."""
    out: list[DataTest] = []
    for entry, file in entries:
        source = str(entry.get("name"))
        tables = entry.get("tables")
        for table in tables if isinstance(tables, list) else []:  # else: the parser says so
            if not isinstance(table, dict) or "name" not in table:
                continue
            key = (source, str(table["name"]))
            if key not in relations:
                continue
            targets: list[tuple[str | None, dict[str, Any]]] = [(None, table)]
            listed = table.get("columns")
            for column in listed if isinstance(listed, list) else []:
                if isinstance(column, dict) and column.get("name"):
                    targets.append((str(column["name"]), column))
            for column, owner in targets:
                for test in _test_entries(owner):
                    line = line_of(owner, "tests") or line_of(owner, "data_tests")
                    try:
                        parsed = _parse_one_test(
                            test,
                            f"{key[0]}_{key[1]}",
                            column,
                            file,
                            line,
                            generic,
                            key,
                            relations[key],
                        )
                    except CadenceError as exc:
                        errors.add(exc)
                        continue
                    if parsed is not None:
                        out.append(parsed)
    return out


def _parse_one_test(
    test: Any,
    model: str,
    column: str | None,
    file: str,
    line: int | None,
    generic: GenericTests | None,
    source: tuple[str, str] | None = None,
    source_relation: str = "",
    defaults: dict[str, Any] | None = None,
) -> DataTest | None:
    """One test of ``model`` (or, with ``source``, of that source table: ``model`` is then
    dbt's target name ``<source>_<table>``)."""
    if isinstance(test, str):
        kind, raw = test, {}
    elif isinstance(test, dict) and len(test) >= 1:
        line = line_of(test) or line
        if "test_name" in test:
            kind, raw = str(test["test_name"]), {k: v for k, v in test.items() if k != "test_name"}
        elif len(test) == 1:
            kind = str(next(iter(test)))
            value = test[kind]
            raw = (
                dict(value)
                if isinstance(value, dict)
                else ({"value": value} if value is not None else {})
            )
        else:
            raise CadenceError(
                "a test mapping must have one key, the test's name",
                file=file,
                line=line,
                hint="indent the arguments under the name: - unique: {config: {severity: warn}}",
            )
    else:
        raise CadenceError(
            "a test must be a name or a mapping",
            file=file,
            line=line,
            hint="write - not_null, or - accepted_values: {values: [a, b]}",
        )
    args = dict(raw)
    custom_name = args.pop("name", None)
    args.pop("description", None)
    config = {**(defaults or {}), **_configs(args, file, line)}
    _refuse_store_failures(config, file, line)
    nested = args.pop("arguments", None)
    if nested is not None and not isinstance(nested, dict):
        raise CadenceError("arguments must be a mapping", file=file, line=line)
    args.update(nested or {})
    if column is None and "column_name" in args:
        column = str(args.pop("column_name"))
    else:
        args.pop("column_name", None)
    if generic is not None:  # Jinja in a config value, as dbt renders it
        for key, value in config.items():
            if isinstance(value, str) and ("{{" in value or "{%" in value):
                config[key] = generic.env.render(value, _state(file)).strip()
    if config.get("enabled", True) in (False, "false", "False"):
        return None
    severity, warn_if, error_if, limit, fail_calc, where = _verdict_configs(config, file, line)
    macro = generic.find(kind) if generic is not None else None
    base = kind.split(".")[-1]
    unknown = macro is None and "." not in kind and kind not in GENERIC_TESTS
    package = generic.package_with(kind) if generic is not None and unknown else None
    if package is not None:  # as dbt: the test exists, but only as package.kind
        label = kind if not source else f"source_{kind}"
        name_args = {**args, **({"column_name": column} if column is not None else {})}
        return DataTest(
            name=str(custom_name) if custom_name else _builtin_name(label, model, name_args),
            kind=kind,
            model=None if source else model,
            column=column,
            args=args,
            severity=severity,
            where=None,
            file=file,
            line=line,
            source=f"{source[0]}.{source[1]}" if source else None,
            error=f"'test_{kind}' is undefined: the test is in package '{package}'; "
            f"write {package}.{kind} (as dbt requires)",
        )
    if macro is None and base not in GENERIC_TESTS:
        _unknown_test(kind, file, line, generic)
    if macro is None:
        kind = base  # dbt's own namespace: ``dbt.unique`` is ``unique``
        _check_builtin_args(kind, column, args, file, line)
    label = ("source_" if source else "") + kind.replace(".", "_")
    name_args = {**args, **({"column_name": column} if column is not None else {})}
    name = str(custom_name) if custom_name else _builtin_name(label, model, name_args)
    sql: str | None = None
    refs: tuple[str, ...] = ()
    if macro is not None:
        assert generic is not None
        from cadence.load.generictests import test_model_relation
        from cadence.load.relations import Relation

        tested = (
            Relation(source[0], source[1], source_relation)
            if source
            else test_model_relation(model)
        )
        sql, refs = generic.render(macro, kind, model, tested, column, where, args, file, line)
        if source:
            refs = refs[1:]  # the first is the target's own name, not a ref
        where = None  # applied to ``model`` inside the rendered SQL
    return DataTest(
        name=name,
        kind=kind,
        model=None if source else model,
        column=column,
        args=args,
        severity=severity,
        where=str(where) if where else None,
        file=file,
        line=line,
        sql=sql,
        refs=refs,
        warn_if=warn_if,
        error_if=error_if,
        limit=limit,
        fail_calc=fail_calc,
        source=f"{source[0]}.{source[1]}" if source else None,
    )


def _builtin_name(label: str, model: str, args: dict[str, Any]) -> str:
    from cadence.load.generictests import synthesized_name

    return synthesized_name(label, model, args)


def _state(file: str) -> Any:
    from cadence.load.context import RenderState

    return RenderState(file=file)


def _configs(args: dict[str, Any], file: str, line: int | None) -> dict[str, Any]:
    """Configs given beside the arguments (dbt's legacy form) and under ``config:``; the same
    key in both places is an error, as in dbt."""
    config: dict[str, Any] = {}
    nested = args.pop("config", None)
    if nested is not None and not isinstance(nested, dict):
        raise CadenceError(
            "a test's config must be a mapping",
            file=file,
            line=line,
            hint="write config: {severity: warn}",
        )
    for key in TEST_CONFIG_KEYS:
        if key in args:
            if nested and key in nested:
                raise CadenceError(
                    f"test config '{key}' is given twice (beside the arguments and under config:)",
                    file=file,
                    line=line,
                    hint="keep the one under config:",
                )
            config[key] = args.pop(key)
    for key, value in (nested or {}).items():
        if key not in TEST_CONFIG_KEYS:
            guess = did_you_mean(str(key), TEST_CONFIG_KEYS)
            raise CadenceError(
                f"unknown test config '{key}'",
                file=file,
                line=line_of(nested, key) or line,
                hint=f"did you mean '{guess}'?"
                if guess
                else "test configs: " + ", ".join(TEST_CONFIG_KEYS),
            )
        config[key] = value
    return config


def _refuse_store_failures(config: dict[str, Any], file: str, line: int | None) -> None:
    if config.get("store_failures") or config.get("store_failures_as"):
        raise CadenceError(
            "store_failures is not supported: cadence does not store failing rows",
            file=file,
            line=line,
            hint="remove store_failures; `cadence test` reports each test's failing-row count",
        )


def parse_singular_tests(
    test_files: tuple[SourceFile, ...],
    env: Any,
    errors: ErrorCollector,
) -> list[DataTest]:
    """Each ``tests/*.sql`` file rendered into a singular test (its ``{{ config(...) }}``
    gives its verdict configs); a test belongs to the models it refs."""
    from pathlib import PurePosixPath

    from cadence.load.context import RenderState
    from cadence.load.digests import env_digest

    out = []
    for f in test_files:
        state = RenderState(file=f.path)
        try:
            sql = env.render(f.text, state)
        except CadenceError as exc:
            errors.add(exc)
            continue
        if state.config.get("enabled", True) in (False, "false", "False"):
            continue
        try:
            configs = singular_configs(state.config, f.path)
        except CadenceError as exc:
            errors.add(exc)
            continue
        out.append(
            DataTest(
                name=PurePosixPath(f.path).stem,
                kind="singular",
                model=state.refs[-1] if state.refs else None,
                column=None,
                args={},
                where=None,
                file=f.path,
                line=1,
                sql=sql,
                refs=tuple(state.refs),
                env_vars=tuple(sorted((k, env_digest(v)) for k, v in state.env_vars.items())),
                **configs,
            )
        )
    return out


def singular_configs(config: dict[str, Any], file: str) -> dict[str, Any]:
    """The verdict configs a singular test sets with ``{{ config(...) }}``, as ``DataTest``
    fields (``severity``, ``warn_if``, ``error_if``, ``limit``, ``fail_calc``)."""
    known = {k: v for k, v in config.items() if k in TEST_CONFIG_KEYS}
    if "where" in known:
        raise CadenceError(
            "where applies to generic tests only (dbt ignores it on a singular test)",
            file=file,
            line=1,
            hint="write the condition into the test's query",
        )
    for key in config:
        if key not in TEST_CONFIG_KEYS and key not in ("description",):
            guess = did_you_mean(str(key), TEST_CONFIG_KEYS)
            raise CadenceError(
                f"unknown test config '{key}'",
                file=file,
                line=1,
                hint=f"did you mean '{guess}'?"
                if guess
                else "test configs: " + ", ".join(TEST_CONFIG_KEYS),
            )
    _refuse_store_failures(known, file, 1)
    severity, warn_if, error_if, limit, fail_calc, _where = _verdict_configs(known, file, 1)
    return {
        "severity": severity,
        "warn_if": warn_if,
        "error_if": error_if,
        "limit": limit,
        "fail_calc": fail_calc,
    }


def _verdict_configs(
    config: dict[str, Any], file: str, line: int | None
) -> tuple[str, str, str, int | None, str, Any]:
    severity = str(config.get("severity") or "error").lower()
    if severity not in ("error", "warn"):
        raise CadenceError(
            f"invalid severity '{config.get('severity')}'",
            file=file,
            line=line,
            hint="use severity: error (blocks publication) or warn",
        )
    conditions = []
    for key in ("warn_if", "error_if"):
        value = config.get(key)
        text = DEFAULT_CONDITION if value is None else str(value)
        if not _CONDITION.match(text):
            raise CadenceError(f"invalid {key} '{text}'", file=file, line=line, hint=CONDITION_HINT)
        conditions.append(text.strip())
    limit = config.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise CadenceError(
            f"invalid limit '{limit}'", file=file, line=line, hint="write limit: 100 (a count)"
        )
    fail_calc = str(config.get("fail_calc") or "count(*)")
    if ";" in fail_calc:
        raise CadenceError(
            "fail_calc must be one SQL expression",
            file=file,
            line=line,
            hint="e.g. fail_calc: count(*), or sum(n_records)",
        )
    return severity, conditions[0], conditions[1], limit, fail_calc, config.get("where")


def _unknown_test(kind: str, file: str, line: int | None, generic: GenericTests | None) -> None:
    known = list(GENERIC_TESTS)
    if generic is not None:
        known += [n[len("test_") :] for n in generic.env.macro_names if n.startswith("test_")]
    guess = did_you_mean(kind.split(".")[-1], known)
    if "." in kind:
        hint = (
            f"no {{% test {kind.split('.')[-1]} %}} in package '{kind.split('.')[0]}': is it "
            "installed in dbt_packages/ (dbt deps)?"
        )
    elif guess:
        hint = f"did you mean '{guess}'?"
    else:
        hint = (
            "tests: " + ", ".join(known) + "; define a new one with {% test name(model, "
            "column_name) %} in macros/ or tests/generic/"
        )
    raise CadenceError(f"unknown test '{kind}'", file=file, line=line, hint=hint)


def _check_builtin_args(
    kind: str, column: str | None, args: dict[str, Any], file: str, line: int | None
) -> None:
    allowed = BUILTIN_ARGS[kind]
    for key in args:
        if key not in allowed:
            guess = did_you_mean(str(key), allowed)
            raise CadenceError(
                f"unknown argument '{key}' for test '{kind}'",
                file=file,
                line=line,
                hint=f"did you mean '{guess}'?"
                if guess
                else f"{kind} takes: "
                + (", ".join(a for a in allowed if a != "column_name") or "no arguments"),
            )
    problem = _check_test_args(kind, column, args)
    if problem:
        raise CadenceError(problem[0], file=file, line=line, hint=problem[1])


def _check_test_args(kind: str, column: str | None, args: dict[str, Any]) -> tuple[str, str] | None:
    if kind in ("not_null", "unique", "accepted_values", "relationships") and column is None:
        return (f"test '{kind}' needs a column", "list it under the column's tests:")
    if kind == "accepted_values" and not isinstance(args.get("values"), list):
        return ("accepted_values needs a list of values", "write accepted_values: {values: [a, b]}")
    if kind == "relationships" and not (
        isinstance(args.get("to"), str) and args.get("to") and isinstance(args.get("field"), str)
    ):
        return (
            "relationships needs 'to' and 'field' (a model and a column)",
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
