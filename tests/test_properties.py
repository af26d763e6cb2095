"""Property-based hardening (SPEC §6): whatever a user writes, the loader either loads it or
raises a CadenceError that names a place — never another exception."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadence.errors import CadenceError
from cadence.project import Project
from cadence.schedule import CadenceSyntaxError, parse_cadence

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

cadence_words = st.sampled_from(["every", "daily", "at", "minutes", "hours", "weekdays", "mondays",
                                 "on", "demand", "@daily", "@hourly", "*", "*/15", "5", "0", "90",
                                 "25:00", "05:00", "hourly", "sundays", "1-5", "L", "#", "?"])
cadence_strings = st.one_of(
    st.text(max_size=40),
    st.lists(cadence_words, min_size=1, max_size=6).map(" ".join),
)


@given(cadence_strings)
@settings(max_examples=400, deadline=None)
def test_any_cadence_string_parses_or_raises_a_syntax_error(text: str) -> None:
    try:
        schedule = parse_cadence(text)
    except CadenceSyntaxError as exc:
        assert exc.hint  # the accepted forms are always offered
        return
    assert schedule.text


scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False),
                    st.text(string.printable, max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.text(string.ascii_letters + "_+", min_size=1, max_size=12), inner, max_size=4)),
    max_leaves=12)
config_keys = st.sampled_from(["name", "warehouse", "timezone", "channels", "models", "vars", "seeds",
                               "engine", "path", "threads", "cadence", "materialized", "channels",
                               "staging", "+materialized", "tags", "unknown_key", "kind", "suppress"])
cadence_docs = st.dictionaries(config_keys, values, max_size=6)


def write(root: Path, cadence_yml: str, model_sql: str = "select 1 as id\n",
          model_yml: str | None = None) -> None:
    (root / "models" / "staging").mkdir(parents=True, exist_ok=True)
    (root / "cadence.yml").write_text(cadence_yml)
    (root / "models" / "staging" / "m.sql").write_text(model_sql)
    if model_yml is not None:
        (root / "models" / "staging" / "m.yml").write_text(model_yml)


def load_or_error(root: Path) -> None:
    try:
        Project.load(root, use_cache=False)
    except CadenceError as exc:
        errors = getattr(exc, "errors", (exc,))
        for e in errors:
            assert e.file, f"error without a file: {e.render()}"
            assert e.message


@given(doc=cadence_docs)
@FAST
def test_random_cadence_yml_loads_or_raises_located_error(tmp_path_factory: pytest.TempPathFactory,
                                                         doc: dict) -> None:
    root = tmp_path_factory.mktemp("p")
    write(root, yaml.safe_dump({"name": "p", **doc}))
    load_or_error(root)


@given(text=st.text(string.printable, max_size=200))
@FAST
def test_random_text_as_cadence_yml(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    root = tmp_path_factory.mktemp("p")
    write(root, text)
    load_or_error(root)


model_config_keys = st.sampled_from(["channels", "cadence", "materialized", "key", "unique_key",
                                     "tags", "enabled", "on_error", "refresh", "schema", "alias",
                                     "holdout", "materialised", "chanels"])


@given(config=st.dictionaries(model_config_keys, values, max_size=4))
@FAST
def test_random_model_config_in_yaml(tmp_path_factory: pytest.TempPathFactory, config: dict) -> None:
    root = tmp_path_factory.mktemp("p")
    write(root, "name: p\nchannels:\n  email: {cadence: daily at 05:00}\n",
          model_yml=yaml.safe_dump({"version": 2, "models": [{"name": "m", "config": config}]}))
    load_or_error(root)


@given(config=st.dictionaries(model_config_keys, values, max_size=3))
@FAST
def test_random_config_call_in_sql(tmp_path_factory: pytest.TempPathFactory, config: dict) -> None:
    root = tmp_path_factory.mktemp("p")
    args = ", ".join(f"{k}={v!r}" for k, v in config.items())
    write(root, "name: p\nchannels:\n  email: {cadence: daily at 05:00}\n",
          model_sql=f"{{{{ config({args}) }}}}\nselect 1 as id\n")
    load_or_error(root)


@given(sql=st.text(string.printable, max_size=80))
@FAST
def test_random_jinja_in_model(tmp_path_factory: pytest.TempPathFactory, sql: str) -> None:
    root = tmp_path_factory.mktemp("p")
    write(root, "name: p\n", model_sql="{{ " + sql + " }}\nselect 1 as id\n")
    load_or_error(root)


@given(doc=values)
@FAST
def test_random_properties_yaml(tmp_path_factory: pytest.TempPathFactory, doc: object) -> None:
    root = tmp_path_factory.mktemp("p")
    write(root, "name: p\n", model_yml=yaml.safe_dump({"version": 2, "models": doc}))
    load_or_error(root)
