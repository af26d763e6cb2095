"""Shared fixtures: write small projects into ``tmp_path`` and drive the CLI with fixed times.

- ``make_project(files, cadence_yml=None)`` writes ``cadence.yml`` (the SPEC §2 channels by default)
  and every ``{relative path: text}`` into a fresh project folder and returns its path.
- ``copy_project(name)`` copies ``tests/projects/<name>/`` into ``tmp_path``.
- ``cli(project, *args)`` runs ``cadence`` through click's CliRunner with an absolute
  ``--project-dir``; ``run_results(project)`` reads ``target/run_results.json`` (in a dbt
  project ``<target-path>/cadence/run_results.json``).

Time is never read from the clock here: every test passes ``now=``/``--at``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from cadence.cli import main

PROJECTS = Path(__file__).parent / "projects"
BERLIN = ZoneInfo("Europe/Berlin")

DEFAULT_CADENCE_YML = """\
name: testproj
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: Europe/Berlin
channels:
  email:   {cadence: "daily at 05:00", kind: email}
  ads:     {cadence: "every 4 hours", kind: ads}
  web:     {cadence: "every 15 minutes", kind: web}
  routing: {cadence: "every 5 minutes", kind: routing}
"""


def at(text: str) -> dt.datetime:
    """A fixed, timezone-aware instant: naive ISO text is read in Europe/Berlin."""
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=BERLIN) if value.tzinfo is None else value


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def invoke(project: Path, *args: str) -> Result:
    """``cadence <args> --project-dir <project>``; never catches exceptions silently."""
    runner = CliRunner()
    result = runner.invoke(main, [*args, "--project-dir", str(project)], catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def read_run_results(project: Path) -> dict[str, Any]:
    from cadence.disk import artifacts

    return json.loads((artifacts.target_dir(project) / "run_results.json").read_text())


def last_run_id(project: Path) -> str | None:
    """The run id in ``target/run_results.json`` (None: none written yet). A run that builds,
    fails or delivers nothing leaves the file in place (SPEC §5): compare ids to tell."""
    path = project / "target" / "run_results.json"
    return json.loads(path.read_text())["run_id"] if path.exists() else None


def statuses(project: Path) -> dict[str, str]:
    """name -> status of the last run, from run_results.json."""
    return {r["name"]: r["status"] for r in read_run_results(project)["results"]}


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_project(files, cadence_yml=None) -> project root`` in ``tmp_path``."""
    counter = {"n": 0}

    def make(files: dict[str, str], cadence_yml: str | None = None) -> Path:
        counter["n"] += 1
        root = tmp_path / ("project" if counter["n"] == 1 else f"project{counter['n']}")
        root.mkdir(parents=True)
        yml = (
            DEFAULT_CADENCE_YML
            if cadence_yml is None
            else textwrap.dedent(cadence_yml).lstrip("\n")
        )
        (root / "cadence.yml").write_text(yml, encoding="utf-8")
        (root / "models").mkdir()
        write_files(root, files)
        return root

    return make


@pytest.fixture
def copy_project(tmp_path: Path) -> Callable[[str], Path]:
    """Factory: ``copy_project(name) -> copy of tests/projects/<name>`` in ``tmp_path``."""

    def copy(name: str) -> Path:
        source = PROJECTS / name
        assert (source / "cadence.yml").is_file(), f"no fixture project {name}"
        dest = tmp_path / name
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("target", "*.duckdb*"))
        return dest

    return copy


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli(project, *args)``: run the CLI against ``project`` (absolute path)."""
    return invoke


@pytest.fixture
def run_results() -> Callable[[Path], dict[str, Any]]:
    return read_run_results


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: a replay of many CLI invocations (deselect: -m 'not slow')"
    )
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # started in the background of a script (`cmd &` without job control): SIGINT is
        # ignored and every process the tests start would inherit that, which cadence keeps
        # (a `nohup` run); the tests of what a SIGINT does need the default
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _spark_skip_reason() -> str | None:
    """Why the Spark tests cannot run here (None: they can)."""
    import importlib.util
    import os

    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install 'cadence[spark]')"
    if not os.environ.get("CADENCE_SPARK_REMOTE"):
        return (
            "no Spark Connect server: set CADENCE_SPARK_REMOTE=sc://127.0.0.1:PORT "
            "(.ci/run starts one when a JDK is available)"
        )
    return None


@pytest.fixture(scope="session")
def spark_remote() -> str:
    """The suite's one Spark Connect server (started by .ci/run), or a skip saying why not."""
    import os

    reason = _spark_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    return os.environ["CADENCE_SPARK_REMOTE"]


@pytest.fixture(scope="session")
def spark_session(spark_remote: str) -> Any:
    """A client session on that server, for tests that read Spark directly."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pyspark.sql import SparkSession

        return SparkSession.builder.remote(spark_remote).getOrCreate()


def spark_yml(remote: str, schema: str, name: str = "sparkproj", extra: str = "") -> str:
    """cadence.yml for a Spark project in its own schema (tests share one server)."""
    return DEFAULT_CADENCE_YML.replace(
        "warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}",
        f'warehouse: {{engine: spark, remote: "{remote}", path: state.duckdb, threads: 1, '
        f"schema: {schema}{extra}}}",
    ).replace("name: testproj", f"name: {name}")
