"""Unit tests: dbt's ``unit_tests:`` in the YAML property files, read into ``UnitTest`` values.

Input: the ``unit_tests:`` entries, the fixture files (``tests/fixtures/*.csv|sql``), the names
of the project's models, seeds and sources -> output: one ``UnitTest`` per entry: the model it
tests, each ``given`` input (``ref('x')``, ``source('a', 'b')`` or ``this``) and the ``expect``ed
output as rows (``format: dict`` or ``csv``, inline or ``fixture:``; csv values are text, an
empty one is null, as dbt reads them) or SQL (``format: sql``), and the ``overrides`` of vars,
macros (``is_incremental``) and env vars. A ``dict`` input of a seed with no rows takes the
seed's own rows. Every problem is reported with file and line; nothing runs here
(``build.unittests`` runs them, in memory).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from cadence.errors import CadenceError, ErrorCollector, did_you_mean
from cadence.load.loader import SourceFile
from cadence.load.yamlfile import line_of

UNIT_TEST_KEYS = (
    "name",
    "model",
    "given",
    "expect",
    "overrides",
    "description",
    "config",
    "versions",
)
FIXTURE_KEYS = ("input", "rows", "format", "fixture")
FORMATS = ("dict", "csv", "sql")
OVERRIDE_KEYS = ("vars", "macros", "env_vars")
UNIT_CONFIG_KEYS = ("tags", "enabled", "meta")
_REF = re.compile(r"^ref\(\s*(?:['\"][^'\"]*['\"]\s*,\s*)?['\"]([^'\"]+)['\"]\s*\)$")
_SOURCE = re.compile(r"^source\(\s*['\"]([^'\"]+)['\"]\s*,\s*['\"]([^'\"]+)['\"]\s*\)$")


@dataclass(frozen=True)
class UnitFixture:
    """Rows standing in for one input (or the expected output) of a unit test."""

    input: str  # ref:<name> | source:<source>.<table> | this | "" (the expected output)
    format: str  # dict | csv | sql
    rows: Any  # dict/csv: list of {column: value}; sql: the query; None: a seed's own rows
    fixture: str | None  # the fixture file the rows came from

    @property
    def ref(self) -> str | None:
        return self.input[4:] if self.input.startswith("ref:") else None

    @property
    def source(self) -> tuple[str, str] | None:
        if not self.input.startswith("source:"):
            return None
        source, _, table = self.input[7:].partition(".")
        return source, table


@dataclass(frozen=True)
class UnitTest:
    name: str
    model: str
    file: str
    line: int | None
    given: tuple[UnitFixture, ...]
    expect: UnitFixture
    vars: dict[str, Any]
    macros: dict[str, Any]
    env_vars: dict[str, Any]
    description: str = ""


def parse_unit_tests(
    entries: list[tuple[dict[str, Any], str]],
    fixtures: tuple[SourceFile, ...],
    models: set[str],
    seeds: set[str],
    sources: set[tuple[str, str]],
    errors: ErrorCollector,
    snapshots: set[str] | frozenset[str] = frozenset(),
    broken: frozenset[str] = frozenset(),
) -> list[UnitTest]:
    """One ``UnitTest`` per entry (``models`` may be given as inputs; ``snapshots`` of them
    cannot be tested). A test of, or with an input from, a ``broken`` model or seed (one that
    failed to load, its error reported) is left out, not reported as naming nothing."""
    files = {PurePosixPath(f.path).name: f for f in fixtures}
    out: list[UnitTest] = []
    seen: dict[tuple[str, str], str] = {}
    for entry, file in entries:
        if _names_broken(entry, broken):
            continue
        try:
            test = _parse_one(entry, file, files, models, seeds, sources, snapshots)
        except CadenceError as exc:
            errors.add(exc)
            continue
        if test is None:
            continue
        key = (test.model, test.name)
        if key in seen:
            errors.add(
                CadenceError(
                    f"unit test '{test.name}' of model '{test.model}' is defined twice",
                    file=file,
                    line=test.line,
                    hint=f"also defined in {seen[key]}; give one another name",
                )
            )
            continue
        seen[key] = file
        out.append(test)
    return out


def _names_broken(entry: dict[str, Any], broken: frozenset[str]) -> bool:
    """Whether a unit test's model or one of its ``ref()`` inputs failed to load."""
    if not broken:
        return False
    if entry.get("model") in broken:
        return True
    given = entry.get("given")
    for item in given if isinstance(given, list) else []:
        raw = str(item.get("input") or "").strip() if isinstance(item, dict) else ""
        m = _REF.match(raw)
        if m and m.group(1) in broken:
            return True
    return False


def _parse_one(
    entry: dict[str, Any],
    file: str,
    files: dict[str, SourceFile],
    models: set[str],
    seeds: set[str],
    sources: set[tuple[str, str]],
    snapshots: set[str] | frozenset[str],
) -> UnitTest | None:
    name = str(entry["name"])
    line = line_of(entry, "name")

    def fail(message: str, key: str | None = None, hint: str | None = None) -> CadenceError:
        return CadenceError(
            f"unit test '{name}': {message}",
            file=file,
            line=line_of(entry, key) if key else line,
            hint=hint,
        )

    _check_keys(entry, UNIT_TEST_KEYS, "unit test", file)
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        raise fail("config must be a mapping", "config")
    _check_keys(config, UNIT_CONFIG_KEYS, "unit test config", file)
    if config.get("enabled", True) in (False, "false", "False"):
        return None
    model = entry.get("model")
    if isinstance(model, str) and model in snapshots:
        raise fail(f"'{model}' is a snapshot; unit tests test models", "model")
    if not isinstance(model, str) or model not in models:
        guess = did_you_mean(str(model), models)
        raise fail(
            f"unknown model '{model}'" if model else "model is missing",
            "model",
            f"did you mean '{guess}'?" if guess else "model: names the model under test",
        )
    given_raw = entry.get("given")
    if not isinstance(given_raw, list):
        raise fail(
            "given must be a list of inputs",
            "given",
            "write given: [{input: ref('x'), rows: [...]}]",
        )
    given = []
    for item in given_raw:
        if not isinstance(item, dict):
            raise fail("each given input must be a mapping", "given")
        given.append(_fixture(item, fail, files, models, seeds, sources, file, expect=False))
    inputs = [g.input for g in given]
    for i in set(inputs):
        if inputs.count(i) > 1:
            raise fail(f"input {_describe(i)} is given twice", "given")
    expect_raw = entry.get("expect")
    if not isinstance(expect_raw, dict):
        raise fail("expect must be a mapping with rows", "expect", "write expect: {rows: [...]}")
    expect = _fixture(expect_raw, fail, files, models, seeds, sources, file, expect=True)
    overrides = entry.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise fail("overrides must be a mapping", "overrides")
    _check_keys(overrides, OVERRIDE_KEYS, "overrides", file)
    parts = {}
    for key in OVERRIDE_KEYS:
        value = overrides.get(key) or {}
        if not isinstance(value, dict):
            raise fail(f"overrides.{key} must be a mapping", "overrides")
        parts[key] = _plain(dict(value))
    return UnitTest(
        name=name,
        model=model,
        file=file,
        line=line,
        given=tuple(given),
        expect=expect,
        vars=parts["vars"],
        macros=parts["macros"],
        env_vars={k: str(v) for k, v in parts["env_vars"].items()},
        description=str(entry.get("description") or ""),
    )


def _plain(value: Any) -> Any:
    """YAML dates and times as the text they were written as (the cache holds plain values;
    the rows are cast to the columns' types when the test runs)."""
    import datetime as dt

    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return str(value)
    return value


def _describe(input_: str) -> str:
    if input_.startswith("ref:"):
        return f"ref('{input_[4:]}')"
    if input_.startswith("source:"):
        source, _, table = input_[7:].partition(".")
        return f"source('{source}', '{table}')"
    return input_


def _check_keys(mapping: dict[str, Any], allowed: tuple[str, ...], what: str, file: str) -> None:
    for key in mapping:
        if key not in allowed:
            guess = did_you_mean(str(key), allowed)
            raise CadenceError(
                f"unknown {what} key '{key}'",
                file=file,
                line=line_of(mapping, key),
                hint=f"did you mean '{guess}'?" if guess else "allowed: " + ", ".join(allowed),
            )


def _fixture(
    item: dict[str, Any],
    fail: Any,
    files: dict[str, SourceFile],
    models: set[str],
    seeds: set[str],
    sources: set[tuple[str, str]],
    file: str,
    *,
    expect: bool,
) -> UnitFixture:
    _check_keys(
        item, FIXTURE_KEYS if not expect else ("rows", "format", "fixture"), "fixture", file
    )
    input_ = ""
    if not expect:
        raw = str(item.get("input") or "").strip()
        if raw == "this":
            input_ = "this"
        elif m := _REF.match(raw):
            if m.group(1) not in models and m.group(1) not in seeds:
                guess = did_you_mean(m.group(1), models | seeds)
                raise fail(
                    f"given input {raw}: no model or seed of that name",
                    "given",
                    f"did you mean '{guess}'?" if guess else None,
                )
            input_ = f"ref:{m.group(1)}"
        elif m := _SOURCE.match(raw):
            if (m.group(1), m.group(2)) not in sources:
                raise fail(f"given input {raw}: no such source", "given")
            input_ = f"source:{m.group(1)}.{m.group(2)}"
        else:
            raise fail(
                f"given input '{raw}' must be ref('model'), source('src', 'table') or this",
                "given",
            )
    fmt = str(item.get("format") or "dict")
    if fmt not in FORMATS:
        raise fail(f"invalid format '{fmt}'", "given", "use format: dict, csv or sql")
    fixture_name = item.get("fixture")
    rows = item.get("rows")
    if fixture_name is not None:
        if fmt == "dict":
            raise fail("a fixture file needs format: csv or sql", "given")
        wanted = f"{fixture_name}.{fmt}"
        found = files.get(wanted)
        if found is None:
            raise fail(
                f"no fixture file {wanted}",
                "given",
                "put it in tests/fixtures/ (dbt: <test-paths>/fixtures/)",
            )
        rows = found.text
    if fmt == "dict":
        if rows is None:
            if input_.startswith("ref:") and input_[4:] in seeds:
                return UnitFixture(input_, fmt, None, None)  # the seed's own rows
            raise fail("rows are missing", "given" if not expect else "expect")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise fail("format dict needs rows: a list of mappings", "given")
        return UnitFixture(input_, fmt, [_plain(dict(r)) for r in rows], None)
    if not isinstance(rows, str):
        raise fail(f"format {fmt} needs rows as text (or fixture: a file name)", "given")
    if fmt == "sql":
        return UnitFixture(input_, fmt, rows, fixture_name)
    reader = csv.DictReader(io.StringIO(rows.strip("\n")))
    parsed = []
    for number, row in enumerate(reader, 2):
        if None in row or None in row.values():
            raise fail(
                f"csv row {number} has {'more' if None in row else 'fewer'} values than its header",
                "given" if not expect else "expect",
                f"in {fixture_name}.csv" if fixture_name else "check the commas of that row",
            )
        parsed.append({k.strip(): (None if v == "" else v) for k, v in row.items()})
    return UnitFixture(input_, fmt, parsed, fixture_name)
