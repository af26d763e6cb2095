"""STYLE.md: ruff (lint + format, line length 100) and mypy stay clean on cadence/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def test_ruff_lint_is_clean() -> None:
    result = run("ruff", "check", "cadence")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run("ruff", "format", "--check", "cadence")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = run("mypy", "cadence", "--cache-dir", "/dev/null")
    assert result.returncode == 0, result.stdout + result.stderr
