"""A small activation project for the activation tests: two segments of one email channel in
priority order, a suppression seed and a holdout; helpers to change seeds and read exports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb

CADENCE_YML = """\
name: act
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: UTC
channels:
  email:
    cadence: "daily at 05:00"
    suppress: [unsubscribed]
    priority: [vip, regular]
    export: {format: parquet, columns: [email]}
  web: {cadence: "every 15 minutes"}
"""

FILES = {
    "models/vip.sql": "{{ config(channels=['email'], key='id') }}\n"
    "select id, email from {{ ref('people') }} where spend >= 500\n",
    "models/regular.sql": "{{ config(channels=['email'], key='id') }}\n"
    "select id, email from {{ ref('people') }} where spend < 500\n",
    "seeds/unsubscribed.csv": "id\n0\n",
}


def people_csv(rows: list[tuple[int, int]]) -> str:
    return "id,email,spend\n" + "".join(f"{i},u{i}@x.test,{spend}\n" for i, spend in rows)


def make_activation(
    make_project: Any,
    people: list[tuple[int, int]],
    cadence_yml: str = CADENCE_YML,
    extra: dict[str, str] | None = None,
) -> Path:
    files = {**FILES, "seeds/people.csv": people_csv(people), **(extra or {})}
    return make_project(files, cadence_yml=cadence_yml)


def set_people(root: Path, people: list[tuple[int, int]]) -> None:
    (root / "seeds" / "people.csv").write_text(people_csv(people))


def set_unsubscribed(root: Path, ids: list[int]) -> None:
    (root / "seeds" / "unsubscribed.csv").write_text("id\n" + "".join(f"{i}\n" for i in ids or [0]))


def manifests(root: Path, segment: str | None = None) -> list[dict[str, Any]]:
    out = []
    for path in sorted((root / "exports").rglob("*.manifest.json")):
        body = json.loads(path.read_text())
        if segment is None or body["segment"] == segment:
            body["_path"] = path
            out.append(body)
    return sorted(out, key=lambda m: (m["segment"], m["change_range"]["first_seq"]))


def rows_of(manifest: dict[str, Any]) -> list[tuple[Any, ...]]:
    data = Path(manifest["_path"]).with_name(manifest["file"])
    fmt = manifest["format"]
    reader = {"parquet": "read_parquet", "csv": "read_csv", "jsonl": "read_json"}[fmt]
    with duckdb.connect() as con:
        return con.sql(f"select * from {reader}('{data}')").fetchall()


def sent(root: Path, segment: str) -> list[tuple[str, str]]:
    """Every (key, change) delivered to the email channel for ``segment``, in seq order."""
    out = []
    for m in manifests(root, segment):
        for row in rows_of(m):
            out.append((str(row[1]), str(row[2])))
    return out


def query(root: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(sql).fetchall()


REPO = Path(__file__).resolve().parents[1]
FAULT_ENV = "CADENCE_TEST_FAULT"  # files.FAULT_ENV, roster.FAULT_ENV: kill -9 at a named step


def cadence(root: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    """``cadence <args>`` in a child process (so it can be killed with SIGKILL at ``fault``)."""
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run(
        [sys.executable, "-m", "cadence", *args, "--project-dir", str(root)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
