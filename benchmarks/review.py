"""Review-wing benchmarks (issue 10): cadence diff and cadence docs at 1,000 models.

    python benchmarks/review.py [--models 1000] [--repeat 3] [--cadence PATH] [--output FILE]

Generates a project (benchmarks/generate.py) into a temporary git repository, commits it, edits
one segment and measures, each number the median of --repeat whole-process runs (wall clock
around the subprocess):

  cold load    cadence ls after deleting target/                       (the baseline)
  diff         cadence diff --json after deleting target/ (cold: the working tree and the
               committed project are both loaded from files)           target: <= 2x two cold loads
  docs         cadence docs --out DIR (warm project cache)             target: <= 3 s
  interactive  headless Chromium opening the site: performance.now() when the page script has
               drawn everything (body[data-ready-ms])                  target: <= 2 s

Writes benchmarks/results/review.json and prints a table with PASS/MISS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}
AT = "2026-03-02T05:00"


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    return time.perf_counter() - start, done


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, env={**os.environ, **GIT_ENV}, check=True,
                   capture_output=True)


def chromium_ready_ms(index: Path) -> float | None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--dump-dom", index.as_uri()],
            capture_output=True, text=True, timeout=120,
        )
    found = re.search(r'data-ready-ms="(\d+)"', done.stdout)
    return float(found.group(1)) if found else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cadence", default=str(Path(sys.executable).parent / "cadence"))
    p.add_argument("--output", type=Path, default=HERE / "results" / "review.json")
    args = p.parse_args(argv)
    cadence = args.cadence
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        subprocess.run([sys.executable, str(HERE / "generate.py"), str(root), "--models",
                        str(args.models), "--events", "2000"], check=True, capture_output=True)
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "base")
        segment = sorted((root / "models" / "segments").rglob("*.sql"))[0]
        segment.write_text(segment.read_text() + "\n-- reviewed\nlimit 1000000\n")

        cold, diff, docs, ready = [], [], [], []
        for _ in range(args.repeat):
            shutil.rmtree(root / "target", ignore_errors=True)
            seconds, done = timed([cadence, "ls"], root)
            assert done.returncode == 0, done.stderr
            cold.append(seconds)
            shutil.rmtree(root / "target", ignore_errors=True)
            seconds, done = timed([cadence, "diff", "--json", "--at", AT], root)
            assert done.returncode == 0, done.stderr
            report = json.loads(done.stdout)
            diff.append(seconds)
            site = Path(tmp) / "site"
            seconds, done = timed([cadence, "docs", "--out", str(site), "--at", AT], root)
            assert done.returncode == 0, done.stderr
            docs.append(seconds)
            ms = chromium_ready_ms(site / "index.html")
            if ms is not None:
                ready.append(ms / 1000)
        changed = [c["name"] for c in report["changed"]]
    cold_s, diff_s, docs_s = (statistics.median(x) for x in (cold, diff, docs))
    ready_s = statistics.median(ready) if ready else None
    rows = [
        ("cold load (baseline)", cold_s, None, ""),
        ("diff, one model changed", diff_s, diff_s / (2 * cold_s), "<= 2x two cold loads"),
        ("docs", docs_s, None, "<= 3 s"),
        ("page interactive", ready_s, None, "<= 2 s"),
    ]
    verdict = {
        "diff_ratio": diff_s / (2 * cold_s) <= 2,
        "docs_s": docs_s <= 3,
        "interactive_s": ready_s is not None and ready_s <= 2,
    }
    print(f"review benchmarks at {args.models} models, median of {args.repeat}")
    print(f"  changed: {changed}")
    for name, value, ratio, target in rows:
        shown = "n/a (no chromium)" if value is None else f"{value:.3f} s"
        extra = f"  ratio {ratio:.2f}" if ratio is not None else ""
        print(f"  {name:<26} {shown:>12}{extra}  {target}")
    print("  " + ", ".join(f"{k}: {'PASS' if v else 'MISS'}" for k, v in verdict.items()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "models": args.models, "repeat": args.repeat, "changed": changed,
        "cold_s": cold_s, "diff_s": diff_s, "diff_ratio": diff_s / (2 * cold_s),
        "docs_s": docs_s, "interactive_s": ready_s, "verdict": verdict,
        "samples": {"cold": cold, "diff": diff, "docs": docs, "interactive": ready},
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
