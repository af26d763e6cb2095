"""Golden files for what users read: the compiled SQL of the template and the plan output.
Regenerate with CADENCE_REGEN_GOLDEN=1 and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadence.cli import main

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("CADENCE_REGEN_GOLDEN") == "1"
AT = "2026-06-01T05:00:00+02:00"


def check(path: Path, text: str) -> None:
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden {path}; run with CADENCE_REGEN_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("g") / "shop"
    assert CliRunner().invoke(main, ["init", str(root)]).exit_code == 0
    return root


def test_compiled_sql_of_the_template(shop: Path) -> None:
    result = CliRunner().invoke(main, ["compile", "--project-dir", str(shop), "--at", AT])
    assert result.exit_code == 0, result.output
    compiled = sorted((shop / "target" / "compiled").rglob("*.sql"))
    assert compiled
    names = []
    for path in compiled:
        rel = path.relative_to(shop / "target" / "compiled")
        names.append(rel.as_posix())
        check(GOLDEN / "compiled" / rel, path.read_text(encoding="utf-8"))
    assert sorted(p.relative_to(GOLDEN / "compiled").as_posix()
                  for p in (GOLDEN / "compiled").rglob("*.sql")) == names


def test_plan_output_of_a_fresh_template(shop: Path) -> None:
    result = CliRunner().invoke(main, ["plan", "--project-dir", str(shop), "--at", AT])
    assert result.exit_code == 0, result.output
    check(GOLDEN / "plan" / "shop_fresh.txt", result.output)
