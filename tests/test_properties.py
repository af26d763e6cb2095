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
from cadence.plan.schedule import CadenceSyntaxError, parse_cadence
from cadence.project import Project

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


# -- file-system shapes (SPEC §6): links, loops, broken links, FIFOs, huge, binary, unwritable ----

import os  # noqa: E402
import signal  # noqa: E402
from contextlib import contextmanager  # noqa: E402

from click.testing import CliRunner  # noqa: E402

from cadence.cli import main  # noqa: E402
from cadence.disk import files  # noqa: E402

FOLDERS = ["models", "models/staging", "macros", "seeds", "tests"]
SUFFIX = {"models": ".sql", "models/staging": ".sql", "macros": ".sql", "seeds": ".csv",
          "tests": ".sql"}
SHAPES = ["text", "binary", "latin1", "nul", "huge", "empty", "fifo", "dir", "unreadable_dir",
          "link_inside", "link_outside", "link_parent", "link_self", "link_broken", "link_cycle",
          "yaml", "bad_yaml"]
shape_entries = st.lists(
    st.tuples(st.sampled_from(FOLDERS), st.sampled_from(["a", "b", "m", "x_1"]),
              st.sampled_from(SHAPES), st.binary(max_size=40)),
    min_size=1, max_size=6)


@contextmanager
def bounded(seconds: int):
    def expired(signum, frame):
        raise TimeoutError(f"hung for {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def build_shapes(root: Path, outside: Path, entries: list) -> None:
    write(root, "name: p\ntimezone: UTC\nchannels:\n  web: {cadence: every 15 minutes}\n")
    (outside / "secret.sql").write_text("select 'SECRET' as s\n")
    for folder, name, shape, data in entries:
        base = root / folder
        base.mkdir(parents=True, exist_ok=True)
        path = base / (name + (".yml" if "yaml" in shape else SUFFIX[folder]))
        if any(q.exists() or q.is_symlink() for q in (path, base / name)):
            continue
        if shape == "text":
            path.write_text("select 1 as id\n" if folder != "seeds" else "id\n1\n")
        elif shape == "binary":
            path.write_bytes(data + b"\xff\xfe")
        elif shape == "latin1":
            path.write_bytes(b"select '\xe9' as x\n")
        elif shape == "nul":
            path.write_bytes(b"select 1\x00\n")
        elif shape == "huge":
            with open(path, "wb") as fh:
                fh.truncate(files.MAX_TEXT_BYTES + 1)
        elif shape == "empty":
            path.write_bytes(b"")
        elif shape == "fifo":
            os.mkfifo(path)
        elif shape in ("dir", "unreadable_dir"):
            (base / name).mkdir(exist_ok=True)
            (base / name / ("inner" + SUFFIX[folder])).write_text("select 2 as id\n")
            if shape == "unreadable_dir":
                (base / name).chmod(0)
        elif shape == "link_inside":
            os.symlink(root / "models" / "staging" / "m.sql", path)
        elif shape == "link_outside":
            os.symlink(outside / "secret.sql", path)
        elif shape == "link_parent":
            os.symlink("..", base / name)
        elif shape == "link_self":
            os.symlink(path.name, path)
        elif shape == "link_broken":
            os.symlink("does_not_exist", path)
        elif shape == "link_cycle":
            other = base / (name + "_2" + SUFFIX[folder])
            if not other.exists() and not other.is_symlink():
                os.symlink(other.name, path)
                os.symlink(path.name, other)
        elif shape == "yaml":
            path.write_text("version: 2\nmodels:\n  - name: m\n")
        elif shape == "bad_yaml":
            path.write_bytes(b"version: 2\nmodels: [\x00" + data)


def unlock(root: Path) -> None:
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            p = Path(dirpath) / d
            if not p.is_symlink():
                p.chmod(0o700)


@given(entries=shape_entries)
@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_any_file_system_shape_loads_or_raises_a_located_error(
        tmp_path_factory: pytest.TempPathFactory, entries: list) -> None:
    root = tmp_path_factory.mktemp("p")
    outside = tmp_path_factory.mktemp("outside")
    build_shapes(root, outside, entries)
    try:
        with bounded(20):
            load_or_error(root)
            load_or_error(root)  # and again, through the cache when the first one wrote it
    finally:
        unlock(root)


@given(entries=shape_entries, command=st.sampled_from(["ls", "compile", "run", "lint"]),
       target=st.sampled_from(["absent", "file", "fifo"]))
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_any_file_system_shape_gives_exit_0_1_or_2_never_3_or_a_hang(
        tmp_path_factory: pytest.TempPathFactory, entries: list, command: str,
        target: str) -> None:
    root = tmp_path_factory.mktemp("p")
    outside = tmp_path_factory.mktemp("outside")
    build_shapes(root, outside, entries)
    if target == "file":
        (root / "target").write_text("in the way\n")
    elif target == "fifo":
        os.mkfifo(root / "target")
    args = [command, "--project-dir", str(root)]
    if command in ("run", "compile"):
        args += ["--at", "2026-03-02T05:00"]
    try:
        with bounded(60):
            result = CliRunner().invoke(main, args)
    finally:
        unlock(root)
    assert result.exit_code in (0, 1, 2), result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert "SECRET" not in result.output
    if result.exit_code == 2:
        assert ": error: " in result.output
