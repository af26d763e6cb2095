"""What users read when their project is wrong (SPEC §6): exit 2, no traceback, and a message
naming the file (and line) and what to do, compared with golden files.

Regenerate the goldens after an intended change and review the diff:

    CADENCE_REGEN_GOLDEN=1 python -m pytest tests/test_errors_golden.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "errors"
REGEN = os.environ.get("CADENCE_REGEN_GOLDEN") == "1"

SEGMENT = "{{ config(channels=['email']) }}\n"

CASES: dict[str, tuple[dict[str, str], str | None]] = {
    "unknown_ref": (
        {
            "models/staging/orders.sql": "select 1 as id\n",
            "models/segments/vip.sql": SEGMENT + "select *\nfrom   {{ ref('ordrs') }}\n",
        },
        None,
    ),
    "cycle": (
        {
            "models/a.sql": "select * from {{ ref('c') }}\n",
            "models/b.sql": "select * from {{ ref('a') }}\n",
            "models/c.sql": "select * from {{ ref('b') }}\n",
        },
        None,
    ),
    "duplicate": (
        {
            "models/staging/orders.sql": "select 1 as id\n",
            "models/marts/orders.sql": "select 2 as id\n",
        },
        None,
    ),
    "bad_cadence": (
        {
            "models/m.sql": "{{ config(cadence='evry 5 minutes') }}\nselect 1 as id\n",
        },
        None,
    ),
    "bad_channel_cadence": (
        {
            "models/m.sql": "select 1 as id\n",
        },
        'name: p\ntimezone: Europe/Berlin\nchannels:\n  web: {cadence: "every 15 minuts"}\n',
    ),
    "unknown_channel": (
        {
            "models/m.sql": "{{ config(channels=['emial']) }}\nselect 1 as id\n",
        },
        None,
    ),
    "unknown_config_key": (
        {
            "models/m.sql": "select 1 as id\n",
            "models/m.yml": "version: 2\nmodels:\n  - name: m\n    config:\n      materialised: table\n",
        },
        None,
    ),
    "unknown_project_key": (
        {
            "models/m.sql": "select 1 as id\n",
        },
        'name: p\ntimezone: Europe/Berlin\nchanels:\n  web: {cadence: "every 15 minutes"}\n',
    ),
    "bad_timezone": (
        {
            "models/m.sql": "select 1 as id\n",
        },
        "name: p\ntimezone: Europe/Berln\n",
    ),
    "yaml_syntax": (
        {
            "models/m.sql": "select 1 as id\n",
            "models/m.yml": "version: 2\nmodels:\n  - name: m\n    description: [unclosed\n",
        },
        None,
    ),
    "jinja_syntax": (
        {
            "models/m.sql": "select 1 as id\n{% if var('x', 1) %}\nwhere 1 = 1\n",
        },
        None,
    ),
    "jinja_undefined": (
        {
            "models/m.sql": "select 1 as id\nwhere id = {{ undefined_thing }}\n",
        },
        None,
    ),
    "unknown_var": (
        {
            "models/m.sql": "select 1 as id\nwhere id > {{ var('threshhold') }}\n",
        },
        None,
    ),
}


TIME_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d cadence .*\n", re.M)


def normalized(text: str, root: Path) -> str:
    """Paths relative to the project, so goldens do not depend on tmp_path; without the
    invocation's time line that ``run`` prints first (tests/test_cli.py checks it)."""
    text = TIME_LINE.sub("", text, count=1)
    for prefix in {str(root.resolve()), str(root)}:
        text = text.replace(prefix + os.sep, "").replace(prefix, "<project>")
    return text


def check_golden(case: str, text: str) -> None:
    path = GOLDEN / f"{case}.txt"
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}; run with CADENCE_REGEN_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_message_matches_golden(make_project, cli, case):
    files, cadence_yml = CASES[case]
    root = make_project(files, cadence_yml)
    result = cli(root, "run", "--at", "2026-01-10T10:00")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    assert str(root) not in result.output, "paths are relative to the project"
    assert not (root / "warehouse.duckdb").exists(), "a broken project never touches the warehouse"
    check_golden(case, normalized(result.output, root))


@pytest.mark.parametrize("command", [("compile",), ("ls",), ("plan",), ("run", "--due")])
def test_every_command_reports_project_errors_the_same_way(make_project, cli, command):
    files, cadence_yml = CASES["unknown_ref"]
    root = make_project(files, cadence_yml)
    result = (
        cli(root, *command, "--at", "2026-01-10T10:00")
        if command[0] != "ls"
        else cli(root, *command)
    )
    assert result.exit_code == 2
    assert normalized(result.output, root) == (GOLDEN / "unknown_ref.txt").read_text(
        encoding="utf-8"
    )


def test_every_golden_file_belongs_to_a_case():
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == sorted(CASES)


def test_problems_found_in_one_stage_are_reported_together(make_project, cli):
    root = make_project(
        {
            "models/a.sql": "select * from {{ ref('missing_one') }}\n",
            "models/b.sql": "select * from {{ ref('missing_two') }}\n",
            "models/c.sql": "{{ config(materialized='tabel') }}\nselect 1 as id\n",
            "models/d.sql": "{{ config(chanels=['email']) }}\nselect 1 as id\n",
        }
    )
    result = cli(root, "run", "--at", "2026-01-10T10:00")
    assert result.exit_code == 2
    assert "invalid materialized 'tabel'" in result.output
    assert "unknown config key 'chanels'" in result.output
    assert "unknown ref 'missing_one'" in result.output
    assert "unknown ref 'missing_two'" in result.output
    assert result.output.rstrip().endswith("4 errors found")


def test_every_problem_in_the_project_is_reported_at_once(make_project, cli):
    root = make_project(
        {
            "models/a.sql": "select * from {{ ref('missing_one') }}\n",
            "models/b.sql": "{{ config(channels=['emial']) }}\nselect 1 as id\n",
            "models/c.sql": "{{ config(materialized='tabel') }}\nselect 1 as id\n",
        }
    )
    result = cli(root, "run", "--at", "2026-01-10T10:00")
    assert result.exit_code == 2
    assert "unknown ref 'missing_one'" in result.output
    assert "unknown channel 'emial'" in result.output
    assert "invalid materialized 'tabel'" in result.output
    assert result.output.rstrip().endswith("3 errors found")
