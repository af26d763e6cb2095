"""The wheel carries the project template: built, installed into a fresh venv, `cadence init`
works from it (a wheel that only works from a checkout is a bug)."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"  # build from a copy: the checkout is never written to
    patterns = shutil.ignore_patterns(
        ".git", "dist", "*.egg-info", "target", "__pycache__", ".pytest_cache", "*.duckdb*")

    def ignore(folder: str, names: list[str]) -> set[str]:
        # a stale top-level build/ (setuptools output) is skipped; cadence/build is a package
        top = {"build"} if Path(folder) == REPO else set()
        return set(patterns(folder, names)) | (top & set(names))

    shutil.copytree(REPO, source, ignore=ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(work / "dist"), str(source)], check=True, capture_output=True)
    wheels = list((work / "dist").glob("cadence-*.whl"))
    assert len(wheels) == 1
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # dependencies come from this interpreter's site-packages (no network); cadence from the wheel
    deps = [p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if Path(p).is_dir()]
    Path(purelib, "_deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
                    str(wheels[0])], check=True, capture_output=True)
    return venv


def test_wheel_contains_template_and_init_runs_from_it(wheel_venv: Path, tmp_path: Path) -> None:
    py = wheel_venv / "bin" / "python"
    where = subprocess.run([str(py), "-c", "import cadence.scaffold as s; print(s.template_dir())"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout.strip()
    assert str(wheel_venv) in where, f"template not taken from the wheel: {where}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cadence = str(wheel_venv / "bin" / "cadence")
    subprocess.run([cadence, "init", "demo"], check=True, cwd=tmp_path, env=env, capture_output=True)
    demo = tmp_path / "demo"
    assert (demo / "cadence.yml").is_file() and (demo / ".gitignore").is_file()
    assert "name: demo" in (demo / "cadence.yml").read_text()
    run = subprocess.run([cadence, "run"], cwd=demo, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "cart_abandoners" in run.stdout


def test_wheel_ships_the_docs_site_assets(wheel_venv: Path, tmp_path: Path) -> None:
    """`cadence docs` works from the wheel: its JS and CSS are package data."""
    py = wheel_venv / "bin" / "python"
    where = subprocess.run(
        [str(py), "-c", "import cadence.review.site as s; print(s.ASSETS); print(*s.ASSET_FILES)"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout.splitlines()
    where, files = where[0], where[1].split()
    assert str(wheel_venv) in where
    assert {"site.js", "site.css", "graph.js", "timeline.js"} <= set(files)
    assert all((Path(where) / name).is_file() for name in files)  # every section's script
