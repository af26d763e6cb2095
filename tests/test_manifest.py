"""The manifest cache (issue: cheap when idle): an unchanged project loads without rendering,
a change re-renders only what it affects, a corrupt or stale cache is rebuilt silently."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cadence import manifest, parser
from cadence.project import Project


def project(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "cadence.yml").write_text("name: m\ntimezone: UTC\nvars: {n: 1}\n")
    for name in ("a", "b", "c"):
        (root / "models" / f"{name}.sql").write_text(f"select {{{{ var('n') }}}} as {name}\n")
    (root / "models" / "d.sql").write_text("select '{{ env_var('CADENCE_TEST_X', 'dflt') }}' as d\n")
    return root


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = parser._parse_model

    def spy(source_file, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(name)
        return real(source_file, name, *args, **kwargs)

    monkeypatch.setattr(parser, "_parse_model", spy)
    return calls


def test_unchanged_project_loads_from_cache_without_rendering(tmp_path: Path, rendered: list[str]) -> None:
    root = project(tmp_path)
    Project.load(root)
    assert sorted(rendered) == ["a", "b", "c", "d"]
    rendered.clear()
    loaded = Project.load(root)
    assert rendered == []
    assert [m.name for m in loaded.parsed.models] == ["a", "b", "c", "d"]


def test_one_changed_model_is_the_only_one_rendered_again(tmp_path: Path, rendered: list[str]) -> None:
    root = project(tmp_path)
    Project.load(root)
    rendered.clear()
    (root / "models" / "b.sql").write_text("select 2 as b_changed_and_longer\n")
    loaded = Project.load(root)
    assert rendered == ["b"]
    assert "b_changed_and_longer" in loaded.parsed.model("b").rendered


def test_same_size_edit_right_after_caching_is_seen(tmp_path: Path, rendered: list[str]) -> None:
    root = project(tmp_path)
    Project.load(root)
    path = root / "models" / "a.sql"
    stat = path.stat()
    path.write_text(path.read_text().replace(" as a", " as z"))  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
    rendered.clear()
    assert " as z" in Project.load(root).parsed.model("a").rendered
    assert rendered == ["a"]


def test_cadence_yml_change_renders_everything_again(tmp_path: Path, rendered: list[str]) -> None:
    root = project(tmp_path)
    Project.load(root)
    rendered.clear()
    (root / "cadence.yml").write_text("name: m\ntimezone: UTC\nvars: {n: 22}\n")
    loaded = Project.load(root)
    assert sorted(rendered) == ["a", "b", "c", "d"]
    assert "select 22 as a" in loaded.parsed.model("a").rendered


def test_env_var_change_invalidates_the_models_reading_it(tmp_path: Path, rendered: list[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path)
    assert "dflt" in Project.load(root).parsed.model("d").rendered
    rendered.clear()
    monkeypatch.setenv("CADENCE_TEST_X", "set")
    loaded = Project.load(root)
    assert rendered == ["d"]
    assert "'set'" in loaded.parsed.model("d").rendered


@pytest.mark.parametrize("garbage", [b"", b"not a pickle", b"\x80\x04\x95junk"])
def test_corrupt_cache_is_rebuilt_silently(tmp_path: Path, rendered: list[str], garbage: bytes) -> None:
    root = project(tmp_path)
    Project.load(root)
    (root / manifest.CACHE_FILE).write_bytes(garbage)
    rendered.clear()
    loaded = Project.load(root)
    assert sorted(rendered) == ["a", "b", "c", "d"]
    assert len(loaded.parsed.models) == 4
    assert manifest.cache_stats(root) == {"exists": True, "fresh": True}


def test_new_and_deleted_files_are_seen(tmp_path: Path) -> None:
    root = project(tmp_path)
    Project.load(root)
    (root / "models" / "c.sql").unlink()
    (root / "models" / "e.sql").write_text("select 1 as e\n")
    assert [m.name for m in Project.load(root).parsed.models] == ["a", "b", "d", "e"]
