"""``cadence init``: write a new project from the template shipped with the package, or, inside a
dbt project, the cadence.yml that adds channels to it.

Input: a target folder -> output: the project files on disk. Refuses to write into a non-empty
folder (or over an existing cadence.yml), so nothing a user made is overwritten; files are 0600
and folders 0700, like everything cadence writes.
"""

from __future__ import annotations

import re
from pathlib import Path

from cadence.disk import artifacts
from cadence.errors import CadenceError

PLACEHOLDER = "__PROJECT_NAME__"
RENDERED = (".yml", ".md")


def template_dir() -> Path:
    """The template: inside the installed package, or at the checkout's root when editable."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "project_template", here.parent / "project_template"):
        if (candidate / "cadence.yml").is_file():
            return candidate
    raise CadenceError(
        "the project template is missing from this installation",
        hint="reinstall cadence (pip install --force-reinstall cadence)",
    )


def init_project(target: Path) -> Path:
    name = target.name
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", name):
        raise CadenceError(
            f"invalid project name '{name}'",
            hint="use letters, digits, '_' or '-', starting with a letter",
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CadenceError(
            f"'{target}' already exists and is not empty",
            hint="choose a new name or empty the folder; init never overwrites files",
        )
    source = template_dir()
    artifacts.private_dir(target)
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if "__pycache__" in rel.parts or path.name.endswith(".pyc"):
            continue
        dest = target / rel
        if path.is_dir():
            artifacts.private_dir(dest)
            continue
        if path.suffix in RENDERED or path.name == ".gitignore":
            text = path.read_text(encoding="utf-8").replace(PLACEHOLDER, name.replace("-", "_"))
            artifacts.write_text(dest, text, durable=False)
        else:
            artifacts.write_bytes(dest, path.read_bytes(), durable=False)
    artifacts.private_dir(target / "logs")
    return target


DBT_CADENCE_YML = """\
# cadence beside the dbt project {name}: dbt_project.yml and your profile stay as they are --
# cadence reads them (models, seeds, schemas, vars, the DuckDB target). This file adds what dbt
# has no word for. See docs/guides/dbt-projects.md and docs/reference/config.md.
timezone: UTC                 # IANA name; channel ticks are evaluated in it
channels:                     # who reads the models, and how fresh they must be
  daily: {{cadence: "daily at 05:00", kind: email, description: "everything, refreshed daily"}}
models:                       # dbt's form: +channels, +key, +cadence, +event_time (folder, model)
  {name}:
    +channels: [daily]        # every model feeds the daily channel; narrow it per folder
history: {{keep_days: 90}}
# warehouse: {{path: warehouse.duckdb}}   # uncomment to use this instead of the dbt profile
"""


def init_dbt(root: Path) -> Path:
    """Add cadence.yml to the dbt project at ``root``; never over an existing one."""
    import re as _re

    target = root / "cadence.yml"
    if target.exists():
        raise CadenceError(
            f"{target} already exists",
            file="cadence.yml",
            hint="edit it; init never overwrites files",
        )
    text = (root / "dbt_project.yml").read_text(encoding="utf-8", errors="replace")
    found = _re.search(r"^name:\s*['\"]?([A-Za-z0-9_]+)", text, _re.M)
    name = found.group(1) if found else root.name
    artifacts.write_text(target, DBT_CADENCE_YML.format(name=name), durable=False)
    return target
