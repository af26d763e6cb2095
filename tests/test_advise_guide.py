"""docs/guides/choosing-cadences.md's worked example stays true: its replay script, run in a fresh
`cadence init` project as the page says, gives the `cadence advise` output the page shows (compute
seconds and money aside: they come from the build durations of the machine that ran it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "guides" / "choosing-cadences.md"


def masked(text: str) -> list[str]:
    """Lines with the duration-dependent figures (s/day, money) replaced, spaces collapsed."""
    out = []
    for line in text.strip().splitlines():
        line = re.sub(r"\d+\.\d+(?= EUR)", "#", line)
        line = re.sub(r"\d+\.\d(?=\s+# EUR)", "#", line)  # a candidate's s/day column
        line = re.sub(r"[\d.]+(?= s/day)", "#", line)
        out.append(" ".join(line.split()))
    return out


def blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)\n```", section, re.S)


@pytest.mark.slow
def test_the_worked_example_gives_the_output_shown(tmp_path: Path) -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    section = guide[guide.index("### A worked example") : guide.index("### What advise cannot")]
    (script,) = blocks(section, "python")
    (commands,) = blocks(section, "sh")
    found = re.search(r"```\n(cadence advise at .*?)\n```", section, re.S)
    assert found, "the page shows advise's output"
    shown = found.group(1)
    lines = commands.splitlines()
    assert lines[0] == "cadence init shop && cd shop"
    cadence = [sys.executable, "-m", "cadence"]
    done = subprocess.run([*cadence, "init", "shop"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shop = tmp_path / "shop"
    (shop / "replay.py").write_text(script + "\n")
    output = ""
    for line in lines[1:]:
        if line.startswith("echo "):
            text, _, target = line[len("echo ") :].partition(" >> ")
            with (shop / target).open("a") as fh:
                fh.write(text.strip('"') + "\n")
            continue
        program, *args = line.split(" ", 1)
        argv = {"python": [sys.executable], "cadence": cadence}[program] + args[0].split()
        done = subprocess.run(argv, cwd=shop, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        output = done.stdout
    assert masked(output) == masked(shown)
