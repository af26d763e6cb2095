"""Fuzzed input never exits 3 (SPEC §6 "Bad input gets a clear message"): a small, valid
project whose cadence.yml and YAML property file are mutated at random places (a value replaced
by another type, NUL bytes and templates in strings, keys removed or added, nesting hundreds of
levels deep). ``cadence lint`` and, when the project loads, ``cadence run`` must exit 0, 1 or 2
and print no traceback. Seeded (derandomized) and bounded: 200 examples, a few seconds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import invoke, write_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CADENCE_YML: dict[str, Any] = {
    "name": "fuzz",
    "warehouse": {
        "engine": "duckdb",
        "path": "warehouse.duckdb",
        "threads": 1,
        "settings": {"memory_limit": "1GB"},
        "extensions": ["json"],
        "allowed_paths": ["data"],
    },
    "timezone": "Europe/Berlin",
    "history": {"keep_days": 30},
    "vars": {"threshold": 1, "nested": {"a": [1, 2]}},
    "models": {"staging": {"materialized": "view"}, "+tags": ["t"]},
    "seeds": {"column_types": {"people": {"id": "integer"}}},
    "channels": {
        "email": {
            "cadence": "daily at 05:00",
            "kind": "email",
            "suppress": ["unsub"],
            "export": {
                "format": "csv",
                "mode": "changes",
                "path": "exports/{channel}/{segment}/{export_id}.{format}",
                "columns": ["id"],
            },
        },
        "ads": {"cadence": "every 4 hours", "kind": "ads", "serve": True, "priority": ["seg"]},
        "hook": {  # fed by no segment: validated, never called
            "cadence": "every 15 minutes",
            "export": {
                "kind": "webhook",
                "url": "https://example.com/hook",
                "secret_env": "FUZZ_WEBHOOK_SECRET",
                "batch_size": 2,
            },
        },
    },
}
PROPERTIES: dict[str, Any] = {
    "version": 2,
    "sources": [
        {
            "name": "app",
            "schema": "main",
            "tables": [
                {"name": "events", "loaded_at": "ts", "external_location": "data/events.csv"}
            ],
            "updates": "hourly",
        }
    ],
    "models": [
        {
            "name": "seg",
            "description": "a segment",
            "config": {"key": "id", "channels": ["email", "ads"], "materialized": "table"},
            "columns": [
                {
                    "name": "id",
                    "tests": ["not_null", "unique", {"accepted_values": {"values": [2, 5]}}],
                }
            ],
            "tests": [
                {"row_count": {"min": 0, "max": 100}},
                {"max_change": 0.5},
                {
                    "relationships": {
                        "column_name": "id",
                        "to": "ref('stg')",
                        "field": "id",
                        "config": {"severity": "warn", "where": "id > 0"},
                    }
                },
            ],
        },
        {"name": "stg", "config": {"materialized": "view"}},
    ],
    "seeds": [{"name": "people", "config": {"column_types": {"id": "integer"}}}],
}
FILES = {
    "models/staging/stg.sql": "select id from {{ ref('people') }}\n",
    "models/seg.sql": "select id from {{ ref('stg') }} where id > {{ var('threshold') }}\n"
    "union all select id from {{ source('app', 'events') }}\n",
    "seeds/people.csv": "id,name\n1,a\n2,b\n",
    "seeds/unsub.csv": "id\n3\n",
    "data/events.csv": "id,ts\n5,2026-01-01 00:00:00\n",
}
DEEP = "__cadence_fuzz_deep_{}__"  # replaced, after dumping, by flow nesting this deep

TOKENS = [*"az09_ -./:;'\"%[]*\\\0\n\té", "{{", "}}", "..", "{%", "{export_id}", "s3://"]
TEXT = st.lists(st.sampled_from(TOKENS), max_size=8).map("".join)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.sampled_from(["email", "ads", "people", "seg", "id", "daily at 05:00", "/", ""]),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)


def places(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``doc`` (mapping keys and list indexes)."""
    out = [path] if path else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += places(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += places(value, (*path, i))
    return out


def mutate(doc: Any, path: tuple[Any, ...], action: str, value: Any) -> None:
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "add" and isinstance(parent, dict):
        parent[str(value)[:10] or "x"] = value
    else:
        parent[last] = value


MUTATION = st.tuples(
    st.sampled_from(["cadence.yml", "models/props.yml"]),
    st.integers(min_value=0, max_value=10_000),  # which place (modulo their number)
    st.sampled_from(["replace", "replace", "replace", "delete", "add", "deep"]),
    VALUE,
    st.integers(min_value=20, max_value=999),  # nesting depth of a "deep" value
)


def write_project(root: Path, mutations: list[tuple[Any, ...]]) -> None:
    import copy

    docs = {
        "cadence.yml": copy.deepcopy(CADENCE_YML),
        "models/props.yml": copy.deepcopy(PROPERTIES),
    }
    deep: dict[str, int] = {}
    for file, index, action, value, depth in mutations:
        found = places(docs[file])
        if not found:
            continue
        if action == "deep":
            value = DEEP.format(len(deep))
            deep[value] = depth
        mutate(docs[file], found[index % len(found)], action, value)
    texts = {}
    for file, doc in docs.items():
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
        for marker, depth in deep.items():
            text = text.replace(marker, "[" * depth + "]" * depth)
        texts[file] = text
    write_files(root, {**FILES, **texts})


def check(root: Path, *args: str) -> int:
    result = invoke(root, *args)
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output)
    assert "Traceback" not in result.output and "internal error" not in result.output, (
        args,
        result.output,
    )
    return int(result.exit_code)


def test_the_base_project_runs(tmp_path):
    """The fuzzer starts from a project that works: a failure below is the mutation's."""
    write_project(tmp_path, [])
    assert check(tmp_path, "lint") == 0
    assert check(tmp_path, "run", "--at", "2026-03-02T05:00") == 0


FUZZ = settings(
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(FUZZ, max_examples=200)
@given(st.lists(MUTATION, min_size=1, max_size=3))
def test_fuzzed_project_files_never_exit_3(mutations):
    """Loading, linting and planning: where bad input is met (cheap, so 200 examples)."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_project(root, mutations)
        if check(root, "lint") == 0:
            check(root, "plan", "--at", "2026-03-02T05:00")


@settings(FUZZ, max_examples=12)
@given(st.lists(MUTATION, min_size=1, max_size=2))
def test_fuzzed_projects_that_load_also_run_without_exit_3(mutations):
    """A run (build, tests, delivery, serve snapshot) of what loads (a run costs ~0.5 s)."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_project(root, mutations)
        if check(root, "lint") == 0:
            check(root, "run", "--at", "2026-03-02T05:00")


EXPORT = 'channels:\n  email:\n    cadence: "daily at 05:00"\n    export: {path: "PATH"}\n'


@pytest.mark.parametrize(
    ("files", "where", "message"),
    [
        (
            {"models/s.yml": "version: 2\nsources: [{name: app, tables: 2}]\n"},
            "models/s.yml:2:",
            "'tables' of source 'app' must be a list",
        ),
        (
            {"models/s.yml": "version: 2\nmodels: " + "[" * 250 + "]" * 250 + "\n"},
            "models/s.yml:2:",
            "YAML nested more than 64 levels deep",
        ),
        (
            {"models/s.yml": "version: 2\nmodels:\n  - name: m\n    meta: " + "{a: " * 999},
            "models/s.yml:",  # libyaml's own limit (1000) or ours, whichever comes first
            "nest",
        ),
        (
            {"cadence.yml+": "vars: " + "[" * 500 + "]" * 500 + "\n"},
            "cadence.yml:3:",
            "YAML nested more than 64 levels deep",
        ),
        (
            {"cadence.yml+": EXPORT.replace("PATH", "exports/{export_id}\\0.csv")},
            "cadence.yml:6:",
            "path must not contain control characters",
        ),
        (
            {"cadence.yml+": EXPORT.replace("PATH", "exports/{export_id}.manifest.json")},
            "cadence.yml:6:",
            "the file name must not end in '.manifest.json'",
        ),
    ],
)
def test_input_that_exited_3_is_an_error_naming_file_and_line(tmp_path, files, where, message):
    """The inputs issue 17 found exiting 3: each is now a load error with file, line and hint,
    from `cadence lint` and `cadence run` alike (before any run)."""
    yml = "name: p\nwarehouse: {path: warehouse.duckdb, threads: 1}\n"
    extra = files.pop("cadence.yml+", "")
    write_files(tmp_path, {"cadence.yml": yml + extra, "models/m.sql": "select 1 as x\n", **files})
    for args in (("lint",), ("run", "--at", "2026-03-02T05:00")):
        result = invoke(tmp_path, *args)
        assert result.exit_code in (1, 2), (args, result.output)
        assert where in result.output and message in result.output, result.output
        assert "hint:" in result.output and "internal error" not in result.output
