"""What a file system can hold (SPEC §6): links, loops, broken links, FIFOs, unreadable folders,
binary and huge files. Every command ends with exit 2 naming the file and a hint; nothing hangs
and nothing outside the project is read."""

from __future__ import annotations

import inspect
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cadence.disk import files
from cadence.errors import CadenceError
from cadence.project import Project

ONE_MODEL = {"models/staging/stg.sql": "select 1 as id\n"}
AT = "2026-03-02T05:00"


@contextmanager
def within(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the block takes longer than ``seconds``."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"did not finish within {seconds}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def errors_of(root: Path) -> list[CadenceError]:
    with within(20), pytest.raises(CadenceError) as info:
        Project.load(root, use_cache=False)
    return list(getattr(info.value, "errors", (info.value,)))


def only_error(root: Path, file: str) -> CadenceError:
    errors = errors_of(root)
    assert [e.file for e in errors] == [file], [e.render() for e in errors]
    assert errors[0].hint
    return errors[0]


@pytest.mark.parametrize(
    "command, code",  # lint reports project errors with exit 1 (SPEC §10)
    [(("run", "--at", AT), 2), (("lint",), 1), (("ls",), 2), (("compile",), 2)],
)
def test_a_fifo_named_like_a_model_is_refused_not_opened(make_project, cli, command, code):
    root = make_project(ONE_MODEL)
    os.mkfifo(root / "models" / "x.sql")
    with within(30):
        result = cli(root, *command)
    assert result.exit_code == code, result.output
    assert "models/x.sql: error: is a FIFO (named pipe), not a regular file" in result.output
    assert "hint:" in result.output


def test_a_symlink_loop_in_models_is_reported_and_ends(make_project, cli):
    root = make_project(ONE_MODEL)
    os.symlink("..", root / "models" / "loop")
    with within(30):
        result = cli(root, "run", "--at", AT)
    assert result.exit_code == 2, result.output
    assert "models/loop: error: symbolic link loop" in result.output
    assert "rm models/loop" in result.output


def test_a_link_to_its_own_folder_and_a_cycle_of_links_are_reported(make_project):
    root = make_project(ONE_MODEL)
    os.symlink(".", root / "models" / "staging" / "self")
    os.symlink("b.sql", root / "models" / "a.sql")
    os.symlink("a.sql", root / "models" / "b.sql")
    found = {e.file: e.message for e in errors_of(root)}
    assert set(found) == {"models/staging/self", "models/a.sql", "models/b.sql"}
    assert "loop" in found["models/staging/self"]
    assert "cannot follow symbolic link" in found["models/a.sql"]


def test_a_broken_symlink_is_named(make_project, cli):
    root = make_project(ONE_MODEL)
    os.symlink("gone.sql", root / "models" / "x.sql")
    result = cli(root, "ls")
    assert result.exit_code == 2
    assert "models/x.sql: error: broken symbolic link (to gone.sql)" in result.output


def test_broken_links_the_project_does_not_use_are_ignored(make_project):
    root = make_project(ONE_MODEL)
    os.symlink("nowhere", root / "models" / "notes.txt")
    assert Project.load(root, use_cache=False).model_names() == ["stg"]


def test_links_inside_the_project_are_followed(make_project):
    root = make_project({**ONE_MODEL, "shared/common.sql": "select 2 as id\n"})
    os.symlink("../shared", root / "models" / "shared")
    os.symlink("staging/stg.sql", root / "models" / "alias_of_stg.sql")
    project = Project.load(root, use_cache=False)
    assert sorted(project.model_names()) == ["alias_of_stg", "common", "stg"]


@pytest.mark.parametrize(
    "rel", ["models/x.sql", "models/schema.yml", "macros/m.sql", "tests/t.sql", "seeds/s.csv"]
)
def test_a_file_linking_outside_the_project_is_never_read(make_project, tmp_path, cli, rel):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:SECRET-HASH:19000:0:99999:7:::\n")
    root = make_project(ONE_MODEL)
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(secret, root / rel)
    result = cli(root, "compile")
    assert result.exit_code == 2, result.output
    assert f"{rel}: error: symbolic link resolves outside the project folder" in result.output
    assert "SECRET-HASH" not in result.output
    compiled = root / "target" / "compiled"
    written = (
        [p.read_text() for p in compiled.rglob("*") if p.is_file()] if compiled.exists() else []
    )
    assert not any("SECRET-HASH" in text for text in written)


def test_a_folder_linking_outside_the_project_is_an_error(make_project, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "y.sql").write_text("select 1 as y\n")
    root = make_project(ONE_MODEL)
    os.symlink(outside, root / "models" / "linked")
    error = only_error(root, "models/linked")
    assert "outside the project" in error.message


def test_cadence_yml_linking_outside_the_project_is_an_error(make_project, tmp_path):
    root = make_project(ONE_MODEL)
    real = tmp_path / "real.yml"
    real.write_text((root / "cadence.yml").read_text())
    (root / "cadence.yml").unlink()
    os.symlink(real, root / "cadence.yml")
    only_error(root, "cadence.yml")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_an_unreadable_folder_is_named(make_project):
    root = make_project(ONE_MODEL)
    locked = root / "models" / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        error = only_error(root, "models/locked")
    finally:
        locked.chmod(0o700)
    assert "cannot read folder" in error.message


def test_binary_and_non_utf8_files_are_named(make_project):
    root = make_project(ONE_MODEL)
    (root / "models" / "bin.sql").write_bytes(b"select 1\x00\x01\x02")
    (root / "models" / "latin1.sql").write_bytes(b"select '\xe9' as x")
    found = {e.file: e.message for e in errors_of(root)}
    assert "NUL" in found["models/bin.sql"]
    assert "not UTF-8" in found["models/latin1.sql"]


def test_a_huge_file_is_refused_without_reading_it(make_project):
    root = make_project(ONE_MODEL)
    with open(root / "models" / "huge.sql", "wb") as fh:
        fh.truncate(files.MAX_TEXT_BYTES + 1)  # sparse: costs no disk
    error = only_error(root, "models/huge.sql")
    assert "too large" in error.message


def test_a_folder_named_like_a_model_is_walked_not_read(make_project):
    root = make_project({**ONE_MODEL, "models/odd.sql/inner.sql": "select 3 as id\n"})
    assert sorted(Project.load(root, use_cache=False).model_names()) == ["inner", "stg"]


def test_deep_folders_do_not_exhaust_the_stack(tmp_path):
    deep = tmp_path / "models"
    for _ in range(200):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (deep / "deep.sql").write_text("select 4 as id\n")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)  # a walk that recursed would need 200+
    try:
        found = files.walk(tmp_path, "models", (".sql",), [])
    finally:
        sys.setrecursionlimit(limit)
    assert found == [deep / "deep.sql"]


def test_the_cache_never_hides_a_file_system_problem(make_project):
    root = make_project(ONE_MODEL)
    Project.load(root)  # writes the cache
    os.mkfifo(root / "models" / "x.sql")
    with within(20), pytest.raises(CadenceError) as info:
        Project.load(root)  # with the cache
    assert "models/x.sql" in info.value.render()


def test_read_bytes_refuses_a_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "p")
    with within(5), pytest.raises(CadenceError) as info:
        files.read_bytes(tmp_path, tmp_path / "p")
    assert info.value.file == "p"
