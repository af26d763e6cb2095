"""Loading a dbt project: cadence's cold load next to ``dbt parse`` on the same project (issue 19).

    python benchmarks/dbt_load.py [--models 1000] [--repeat 3] [--cadence PATH] [--dbt PATH]
                                  [--output FILE] [--workdir DIR]

Generates a dbt-duckdb project of --models models (``generate``: 20 chains of refs, every 7th
model a fan-in of 2-4 earlier ones, every 5th a table, every 10th a ``config()`` and a project
macro, a ``schema.yml`` per folder of 100 with descriptions and not_null/unique tests, 5 seeds
with ``+schema: raw``, a profiles.yml), then measures, each number the median of --repeat
whole-process runs (wall clock around the subprocess), the two alternating in each repeat:

  cadence cold   cadence ls after deleting <target-path>/cadence/ (the load cache and all)
  dbt parse      dbt parse --no-partial-parse (dbt's own cold parse)      target: cadence <= 0.1x
  cadence warm   cadence ls again (the load cache serves it)

dbt is found as --dbt, else DBT_EXECUTABLE, else ``dbt`` on PATH; without it the dbt column
says "skipped (dbt is not installed)" and only cadence is measured. Writes
benchmarks/results/dbt-load-<models>.json and prints a table with PASS/MISS/skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 0.1


def generate(out: Path, models: int, seeds: int = 5, chains: int = 20, seed: int = 7) -> None:
    """A deterministic dbt-duckdb project of ``models`` models (see the module docstring)."""
    rnd = random.Random(seed)
    if out.exists():
        shutil.rmtree(out)
    (out / "seeds").mkdir(parents=True)
    (out / "macros").mkdir()
    name = f"bench{models}"
    (out / "dbt_project.yml").write_text(
        f"name: {name}\nversion: '1.0'\nconfig-version: 2\nprofile: bench\n"
        f"models:\n  {name}:\n    +materialized: view\n"
        f"seeds:\n  {name}:\n    +schema: raw\n"
    )
    (out / "profiles.yml").write_text(
        "bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: bench.duckdb\n      threads: 1\n"
    )
    (out / "macros" / "double_it.sql").write_text(
        "{% macro double_it(col) %}({{ col }} * 2){% endmacro %}\n"
    )
    for k in range(seeds):
        rows = ["id,grp,amount,ts"] + [
            f"{i},{rnd.choice('abcd')},{rnd.randint(1, 999)},2024-01-{i % 28 + 1:02d} 00:00:00"
            for i in range(1, 21)
        ]
        (out / "seeds" / f"seed_{k}.csv").write_text("\n".join(rows) + "\n")
    last: dict[int, str] = {}
    yml: dict[str, list[str]] = {}
    for i in range(models):
        model = f"m_{i:04d}"
        folder = f"models/layer_{i // 100:02d}"
        (out / folder).mkdir(parents=True, exist_ok=True)
        chain = i % chains
        source = (
            f"{{{{ ref('{last[chain]}') }}}}"
            if chain in last
            else (f"{{{{ ref('seed_{chain % seeds}') }}}}")
        )
        parts = []
        if i % 10 == 0:
            parts.append("{{ config(materialized='table', tags=['tenth']) }}")
        elif i % 5 == 0:
            parts.append("{{ config(materialized='table') }}")
        amount = "{{ double_it('amount') }}" if i % 10 == 0 else "amount + 1"
        body = f"select id, grp, {amount} as amount, ts from {source}"
        if i % 7 == 0 and i > 10:
            others = rnd.sample([f"m_{j:04d}" for j in range(i)], k=rnd.randint(2, 4))
            union = "\nunion all\n".join(
                f"select id, grp, amount, ts from {{{{ ref('{o}') }}}}" for o in others
            )
            body = (
                f"with base as (\n{body}\n), others as (\n{union}\n)\n"
                "select b.id, b.grp, b.amount + coalesce(sum(o.amount), 0) as amount, b.ts\n"
                "from base b left join others o on o.id = b.id\n"
                "group by b.id, b.grp, b.amount, b.ts"
            )
        parts.append(body)
        (out / folder / f"{model}.sql").write_text("\n".join(parts) + "\n")
        last[chain] = model
        entry = f"  - name: {model}\n    description: generated model {i}\n"
        if i % 10 == 0:
            entry += "    columns:\n      - name: id\n        data_tests: [not_null, unique]\n"
        yml.setdefault(folder, []).append(entry)
    for folder, entries in yml.items():
        (out / folder / "schema.yml").write_text("version: 2\nmodels:\n" + "".join(entries))


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    return time.perf_counter() - start, done.returncode, (done.stdout + done.stderr)[-2000:]


def find_dbt(given: str | None) -> str | None:
    return given or os.environ.get("DBT_EXECUTABLE") or shutil.which("dbt")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cadence", default=str(Path(sys.executable).parent / "cadence"))
    ap.add_argument("--dbt", default=None)
    ap.add_argument("--output", default=None)
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    dbt = find_dbt(a.dbt)
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="cadence-dbt-load-"))
    cad_root, dbt_root = work / "cadence_copy", work / "dbt_copy"
    generate(cad_root, a.models)
    shutil.copytree(cad_root, dbt_root)
    env = {**os.environ, "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    samples: dict[str, list[float]] = {"cadence_cold": [], "cadence_warm": [], "dbt_parse": []}
    failures: list[str] = []
    for _ in range(a.repeat):
        shutil.rmtree(cad_root / "target", ignore_errors=True)
        runs = [("cadence_cold", [a.cadence, "ls"], cad_root)]
        if dbt:
            cmd = [dbt, "--no-use-colors", "parse", "--no-partial-parse", "--profiles-dir", "."]
            runs.append(("dbt_parse", cmd, dbt_root))
        for key, cmd, cwd in runs if _ % 2 == 0 else list(reversed(runs)):
            if key == "cadence_cold":
                shutil.rmtree(cad_root / "target", ignore_errors=True)
            seconds, rc, tail = timed(cmd, cwd, env)
            if rc != 0:
                failures.append(f"{key} exited {rc}: {tail}")
            samples[key].append(seconds)
        seconds, rc, tail = timed([a.cadence, "ls"], cad_root, env)
        if rc != 0:
            failures.append(f"cadence_warm exited {rc}: {tail}")
        samples["cadence_warm"].append(seconds)
    medians = {k: statistics.median(v) for k, v in samples.items() if v}
    ratio = medians["cadence_cold"] / medians["dbt_parse"] if "dbt_parse" in medians else None
    verdict = (
        "skipped (dbt is not installed)"
        if ratio is None
        else ("PASS" if ratio <= TARGET_RATIO else "MISS")
    )
    result = {
        "models": a.models,
        "repeat": a.repeat,
        "dbt": dbt,
        "median_s": medians,
        "samples_s": samples,
        "cadence_cold_over_dbt_parse": ratio,
        "target": f"<= {TARGET_RATIO}",
        "verdict": verdict,
        "failures": failures,
    }
    out = Path(a.output) if a.output else HERE / "results" / f"dbt-load-{a.models}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    dbt_text = f"{medians['dbt_parse']:.3f} s" if "dbt_parse" in medians else "skipped"
    print(f"dbt project of {a.models} models, median of {a.repeat}:")
    print(f"  cadence cold load  {medians['cadence_cold']:.3f} s")
    print(f"  dbt parse          {dbt_text}")
    print(f"  cadence warm load  {medians['cadence_warm']:.3f} s")
    ratio_text = f"{ratio:.3f}x" if ratio is not None else "-"
    print(f"  cadence / dbt      {ratio_text} (target <= {TARGET_RATIO}x): {verdict}")
    for failure in failures:
        print("  failed:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
