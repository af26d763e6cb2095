"""Everything cadence writes is owner-only whatever the umask (SPEC §6), through the library as
well as the CLI; writes are atomic; a target/ or warehouse folder that cannot be written is an
error naming it (exit 2), never a traceback."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import at

from cadence.disk import artifacts
from cadence.errors import CadenceError
from cadence.project import Project

FILES = {
    "models/staging/stg.sql": "select 1 as customer_id\n",
    "models/segments/seg.sql": "{{ config(channels=['web'], key='customer_id') }}\n"
    "select * from {{ ref('stg') }}\n",
    "seeds/countries.csv": "code,name\nde,Germany\n",
}
AT = "2026-03-02T05:00"


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)  # cron's default
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def written_by_cadence(root: Path) -> list[Path]:
    out = [p for p in root.iterdir() if p.name.startswith("warehouse.duckdb")]
    target = root / "target"
    out += [target, *target.rglob("*")] if target.exists() else []
    return out


def assert_owner_only(paths: list[Path]) -> None:
    assert paths
    loose = {
        str(p): oct(mode(p))
        for p in paths
        if mode(p) != (artifacts.DIR_MODE if p.is_dir() else artifacts.FILE_MODE)
    }
    assert loose == {}


def test_cli_run_and_compile_write_owner_only_under_umask_022(make_project, cli, umask_022):
    root = make_project(FILES)
    assert cli(root, "run", "--at", AT).exit_code == 0
    assert cli(root, "compile", "--at", AT).exit_code == 0
    paths = written_by_cadence(root)
    names = {p.name for p in paths}
    assert {"warehouse.duckdb", "run_results.json", "seg.sql", "cadence.lock"} <= names
    assert_owner_only(paths)


def test_the_library_alone_writes_owner_only_too(make_project, umask_022):
    root = make_project(FILES)
    project = Project.load(root)
    assert project.run(at(AT)).ok
    project.compile(at(AT))
    Project.load(root)  # the manifest cache
    assert (root / "target" / "manifest.pickle").exists() or any(
        p.name.startswith("manifest") for p in (root / "target").iterdir()
    )
    assert_owner_only(written_by_cadence(root))
    assert os.umask(0o022) == 0o022  # the caller's umask is given back


def test_the_wal_duckdb_creates_during_a_run_is_owner_only(make_project, umask_022):
    # the .wal exists only while a connection writes (a clean close checkpoints it away):
    # look at it from inside a run, when a model's SQL is being executed
    root = make_project(FILES)
    project = Project.load(root)
    seen: dict[str, int] = {}
    original = project.open_engine

    def open_engine(*, read_only: bool = False):  # type: ignore[no-untyped-def]
        engine = original(read_only=read_only)
        engine.execute("create or replace table main.probe as select 1 as x")
        wal = root / "warehouse.duckdb.wal"
        seen["wal"] = mode(wal) if wal.exists() else -1
        return engine

    project.open_engine = open_engine  # type: ignore[method-assign]
    assert project.run(at(AT)).ok
    assert seen["wal"] == artifacts.FILE_MODE, "DuckDB wrote no WAL: the test saw nothing"


def test_files_left_readable_by_an_older_version_are_tightened(make_project, cli, umask_022):
    root = make_project(FILES)
    old = root / "target" / "compiled" / "models" / "old.sql"
    old.parent.mkdir(parents=True)
    old.write_text("select 'customer data'\n")
    (root / "warehouse.duckdb").unlink(missing_ok=True)
    assert mode(old) == 0o644 and mode(root / "target") == 0o755
    assert cli(root, "run", "--at", AT).exit_code == 0
    assert mode(old) == artifacts.FILE_MODE
    assert mode(root / "target") == artifacts.DIR_MODE


def test_cadence_init_writes_owner_only(tmp_path, monkeypatch, umask_022):
    from click.testing import CliRunner

    from cadence.cli import main

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["init", "shop"])
    assert result.exit_code == 0, result.output
    paths = [tmp_path / "shop", *(tmp_path / "shop").rglob("*")]
    assert_owner_only(paths)


def test_write_bytes_is_atomic_and_leaves_no_temporary_file(tmp_path, umask_022):
    path = tmp_path / "a" / "b" / "x.json"
    artifacts.write_bytes(path, b"one")
    artifacts.write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700 and mode(tmp_path / "a") == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json"]


def test_a_failed_write_names_the_file_and_removes_its_temporary(tmp_path):
    (tmp_path / "x.json").mkdir()  # rename onto a folder fails after the data was written
    with pytest.raises(CadenceError) as info:
        artifacts.write_bytes(tmp_path / "x.json", b"data", tmp_path)
    assert info.value.file == "x.json"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.parametrize("command", [("run", "--at", AT), ("compile", "--at", AT), ("seed",)])
def test_target_that_is_a_file_is_exit_2_naming_it(make_project, cli, command):
    root = make_project(FILES)
    (root / "target").write_text("not a folder\n")
    result = cli(root, *command)
    assert result.exit_code == 2, result.output
    assert "target: error: cannot write target" in result.output
    assert "hint:" in result.output


def test_a_warehouse_folder_that_is_a_file_is_exit_2(make_project, cli):
    root = make_project(
        FILES,
        "name: p\ntimezone: UTC\nwarehouse: {path: data/warehouse.duckdb}\n"
        "channels:\n  web: {cadence: every 15 minutes}\n",
    )
    (root / "data").write_text("a file\n")
    result = cli(root, "run", "--at", AT)
    assert result.exit_code == 2, result.output
    assert "cannot write data" in result.output


def test_a_missing_warehouse_folder_is_created_owner_only(make_project, cli, umask_022):
    root = make_project(
        FILES,
        "name: p\ntimezone: UTC\nwarehouse: {path: data/warehouse.duckdb}\n"
        "channels:\n  web: {cadence: every 15 minutes}\n",
    )
    assert cli(root, "run", "--at", AT).exit_code == 0
    assert mode(root / "data") == 0o700
    assert mode(root / "data" / "warehouse.duckdb") == 0o600


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_project_folder_is_exit_2(make_project, cli):
    root = make_project(FILES)
    root.chmod(0o500)
    try:
        result = cli(root, "run", "--at", AT)
    finally:
        root.chmod(0o700)
    assert result.exit_code == 2, result.output
    assert "cannot write target" in result.output


def test_an_interrupted_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    artifacts.write_bytes(path, b"old")

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt()

    monkeypatch.setattr(artifacts.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        artifacts.write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def _compiled(root: Path) -> Path:
    return root / artifacts.compiled_path("models/x.sql", root)


def _same_text_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("select 1\n")
    path.chmod(0o600)


def _symlink_to_same_text(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "elsewhere.sql").write_text("select 1\n")
    path.symlink_to(path.parent / "elsewhere.sql")


def _fifo(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path, 0o600)


def _readable_same_text(path: Path) -> None:
    _same_text_file(path)
    path.chmod(0o644)


def _hard_linked_same_text(path: Path) -> None:
    _same_text_file(path)
    os.link(path, path.parent / "other.sql")


def _other_text(path: Path) -> None:
    _same_text_file(path)
    path.write_text("select 2\n")


def _same_text_and_more(path: Path) -> None:
    _same_text_file(path)
    path.write_text("select 1\n-- and more\n")


@pytest.mark.parametrize(
    ("there", "kept"),
    [
        (_same_text_file, True),  # the one case left alone: no temporary file, no rename
        (_symlink_to_same_text, False),  # replaced by a file; the link's target untouched
        (_fifo, False),  # never opened for a blocking read; replaced
        (_readable_same_text, False),  # 0644: written again, owner-only
        (_hard_linked_same_text, False),  # another name shares it: a file of its own
        (_other_text, False),
        (_same_text_and_more, False),
    ],
)
def test_compiled_sql_already_on_disk_is_written_only_when_it_differs(
    tmp_path, monkeypatch, there, kept
):
    path = _compiled(tmp_path)
    there(path)
    before = os.lstat(path).st_ino
    renames: list[str] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        renames.append(str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(artifacts.os, "replace", replace)
    assert artifacts.write_compiled(tmp_path, "models/x.sql", "select 1") == str(
        path.relative_to(tmp_path)
    )
    assert path.read_text() == "select 1\n"
    assert stat.S_ISREG(os.lstat(path).st_mode) and mode(path) == 0o600
    assert (os.lstat(path).st_ino == before) is kept
    assert renames == ([] if kept else [str(path)])
    if there is _symlink_to_same_text:
        assert (path.parent / "elsewhere.sql").read_text() == "select 1\n"
    if there is _hard_linked_same_text:
        assert os.lstat(path.parent / "other.sql").st_nlink == 1


def test_a_second_run_leaves_unchanged_compiled_sql_in_place(make_project, cli):
    root = make_project(FILES)
    assert cli(root, "run", "--at", AT).exit_code == 0
    compiled = sorted((root / "target" / "compiled").rglob("*.sql"))
    inodes = {p: os.lstat(p).st_ino for p in compiled}
    assert len(compiled) == 2
    (root / "models/staging/stg.sql").write_text("select 2 as customer_id\n")
    assert cli(root, "run", "--at", "2026-03-03T05:00").exit_code == 0
    moved = {p.name for p in compiled if os.lstat(p).st_ino != inodes[p]}
    assert moved == {"stg.sql"}  # only the model whose SQL changed was written again
    assert (root / "target/compiled/models/staging/stg.sql").read_text() == (
        "select 2 as customer_id\n"
    )


@pytest.mark.parametrize(
    "name",
    [
        "one_query.txt",
        "wake.json",
        "observe.json",
        "unrecorded_builds.json",
        "manifest.json",
        "cadence.lock.json",
        "state_snapshot.json",
    ],
)
def test_a_fifo_in_place_of_a_file_cadence_keeps_never_hangs_a_command(make_project, cli, name):
    """SPEC §6: a FIFO where cadence keeps a file of its own (target/) is read as no file --
    never a blocked open or read -- and the next write replaces it."""
    import subprocess
    import sys

    root = make_project({"models/seg.sql": "{{ config(channels=['email'], key='id') }}\n"
                         "select 1 as id\n"})  # fmt: skip
    assert cli(root, "run", "--at", "2026-01-10T05:00").exit_code == 0
    path = root / "target" / name
    path.unlink(missing_ok=True)
    os.mkfifo(path, 0o600)
    for args in (
        ["run", "--due", "--at", "2026-01-10T05:01"],
        ["run", "--at", "2026-01-10T05:02"],
        ["status", "--json", "--at", "2026-01-10T05:03"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "cadence", *args, "--project-dir", str(root)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode in (0, 1, 2), done.stderr
        assert "Traceback" not in done.stderr + done.stdout


def test_a_first_run_leaves_each_model_s_compiled_sql_as_it_ran(make_project, cli):
    """Every file a run writes under target/compiled holds what its model ran, per-run values,
    inlined ephemerals and an incremental model's SQL included: the same files ``cadence
    compile`` writes for that time."""
    root = make_project(
        {
            "models/base.sql": "select 1 as id\n",
            "models/stamp.sql": (
                "{{ config(materialized='ephemeral') }}\nselect '{{ run_started_at }}' as t\n"
            ),
            "models/uses_stamp.sql": "select * from {{ ref('stamp') }}\n",
            "models/plain_view.sql": (
                "{{ config(materialized='view') }}\nselect * from {{ ref('base') }}\n"
            ),
            "models/grows.sql": (
                "{{ config(materialized='incremental') }}\nselect * from {{ ref('base') }}\n"
                "{% if is_incremental() %}where id > (select max(id) from {{ this }}){% endif %}\n"
            ),
        }
    )
    assert cli(root, "run", "--at", "2026-01-10T10:00").exit_code == 0
    compiled = root / "target" / "compiled"
    ran = {p.relative_to(compiled): p.read_text() for p in compiled.rglob("*.sql")}
    assert len(ran) == 4 and "2026-01-10" in ran[Path("models/uses_stamp.sql")]
    assert cli(root, "compile", "--at", "2026-01-10T10:00").exit_code == 0
    again = {p.relative_to(compiled): p.read_text() for p in compiled.rglob("*.sql")}
    assert {path: again[path] for path in ran} == ran  # (compile also writes the ephemeral's)

