"""What a new user follows stays true (issue 18): docs/quickstart.md and the README's quick start
are run, command by command, in a fresh ``cadence init`` project; every command exits 0 and
every output the quickstart shows is what cadence prints.

A ```sh (or ```bash) block holds commands; a plain ``` block right after it holds their output,
compared with the output of all its ``cadence`` commands, after normalising what changes from
run to run (durations, and the compute seconds computed from them). ``<!-- clock: T -->``
before a block sets the wall clock of the commands after it, so recorded times are fixed
(commands the doc shows with ``--at`` use that). ``cd`` moves, ``git`` runs (with an identity
of its own), ``pip``, ``python`` and activating a virtualenv are the install and test steps this
checkout has already done; ``cadence serve`` is started and stopped with SIGTERM (exit 0).
``CADENCE_REGEN_GOLDEN=1`` rewrites the output blocks of docs/quickstart.md from what cadence
prints: review the diff.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadence.cli import common, main

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "docs" / "quickstart.md"
README = REPO / "README.md"
REGEN = os.environ.get("CADENCE_REGEN_GOLDEN") == "1"
CLOCK = re.compile(r"<!-- clock: (\S+) -->")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


@dataclass
class Block:
    commands: list[str]
    clock: str | None
    expected: list[str] | None = None  # output lines, when the doc shows them
    span: tuple[int, int] | None = None  # line indexes of the output (between the fences)
    outputs: list[str] = field(default_factory=list)


def parse(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks: list[Block] = []
    clock: str | None = None
    i = 0
    while i < len(lines):
        found = CLOCK.search(lines[i])
        if found:
            clock = found.group(1)
        if lines[i].strip() in ("```sh", "```bash"):
            end = lines.index("```", i + 1)
            block = Block(lines[i + 1 : end], clock)
            j = end + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and lines[j] == "```":
                out_end = lines.index("```", j + 1)
                block.expected = lines[j + 1 : out_end]
                block.span = (j + 1, out_end)
                end = out_end
            blocks.append(block)
            i = end
        i += 1
    return blocks


DURATION = re.compile(r"\((\d+\.\d+)s")
DONE_IN = re.compile(r"done in \d+\.\d+s")
COST_ROW = re.compile(r"^(\s+\S+\s+[\d.]+\s+[\d.]+\s+)([\d.]+|-)(\s+)([\d.]+|-)")
PER_DAY = re.compile(r"[\d.]+ s/day")


PROGRESS = re.compile(r"^\[\s*\d+/(\d+)\]")
CHANGE_ID = re.compile(r"^\s+\d+(\s+\d{4}-\d\d-\d\d )")  # members --changes


def normalised(lines: list[str]) -> list[str]:
    """What may differ between two runs of the same commands: how long builds took, and the
    order in which parallel builds finished (a run's ``[i/n]`` lines are compared as a set;
    change ids, numbered across segments as they publish, are not compared)."""
    out: list[str] = []
    group: list[str] = []
    for line in [*lines, ""]:
        line = DURATION.sub("(~s", line)
        line = DONE_IN.sub("done in ~s", line)
        line = COST_ROW.sub(r"\1~\3~", line)
        line = PER_DAY.sub("~ s/day", line)
        line = CHANGE_ID.sub(r"~\1", line)
        line = re.sub(r"[ \t]+", " ", line).rstrip()
        if PROGRESS.match(line):
            group.append(PROGRESS.sub(r"[~/\1]", line))
            continue
        out += sorted(group)
        group = []
        out.append(line)
    return out[:-1]


class Shell:
    """The commands of a doc, one after another, as a user types them."""

    def __init__(self, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cwd = cwd
        self.monkeypatch = monkeypatch

    def run_block(self, block: Block) -> list[str]:
        if block.clock:
            wall = dt.datetime.fromisoformat(block.clock)
            self.monkeypatch.setattr(common, "_now", lambda: wall)
        output: list[str] = []
        for line in block.commands:
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words:
                    output += self.run(words)
        return output

    def run(self, words: list[str]) -> list[str]:
        if words[0] == "cd":
            self.cwd = (self.cwd / words[1]).resolve()
            return []
        if words[0] in ("pip", "python", ".", "source"):
            return []  # installing cadence and running its tests: done by this checkout
        if words[0] == "git":
            done = subprocess.run(
                words, cwd=self.cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True
            )
            assert done.returncode == 0, f"{shlex.join(words)}: {done.stderr}"
            return []
        assert words[0] == "cadence", f"the docs run only cadence, git, pip, python: {words}"
        if words[1:2] == ["serve"]:
            return self.serve(words[1:])
        self.monkeypatch.chdir(self.cwd)
        result = CliRunner().invoke(main, words[1:], catch_exceptions=False)
        assert result.exit_code == 0, f"{shlex.join(words)} exited {result.exit_code}:\n{result.output}"
        return result.output.splitlines()

    def serve(self, args: list[str]) -> list[str]:
        """Start the server as a user would, see it serve, stop it like Ctrl-C's kin."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "cadence", *args, "--port", "0"],
            cwd=self.cwd,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            first = proc.stderr.readline()
            assert first.startswith("serving "), first + proc.stderr.read()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return []


def test_the_quickstart_shows_what_cadence_prints(tmp_path, monkeypatch):
    text = QUICKSTART.read_text(encoding="utf-8")
    blocks = parse(text)
    assert sum(b.expected is not None for b in blocks) >= 5, "the quickstart shows outputs"
    shell = Shell(tmp_path, monkeypatch)
    lines = text.splitlines()
    for block in blocks:
        block.outputs = shell.run_block(block)
    if REGEN:
        for block in reversed(blocks):
            if block.span is not None:
                lines[block.span[0] : block.span[1]] = block.outputs
        QUICKSTART.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return
    for block in blocks:
        if block.expected is not None:
            assert normalised(block.outputs) == normalised(block.expected), block.commands


def test_every_command_of_the_readme_quick_start_exits_0(tmp_path, monkeypatch):
    """The README's quick start, literally: init, run, then each command listed for the demo."""
    section = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = parse(section)
    commands = [c for b in blocks for c in b.commands]
    assert any(c.strip().startswith("cadence serve") for c in commands)
    assert any(c.strip().startswith("cadence diff") for c in commands)
    shell = Shell(tmp_path, monkeypatch)
    monkeypatch.setattr(common, "_now", lambda: dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.timezone.utc))
    for block in blocks:
        shell.run_block(block)  # each command asserts its exit code 0
