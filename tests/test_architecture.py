"""The folder is the data flow (STYLE.md): imports flow downstream only, and each third-party
library stays in the one module that owns it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cadence"

# pipeline order: a module may import only modules before it (lazy imports included)
ORDER = [
    "errors", "cachefile", "yamlfile", "activation.urlpolicy", "channelconfig", "config",
    "relations",
    "artifacts", "files", "loader", "rendering", "testspecs", "seedconfig", "properties", "parser",
    "dag", "schedule", "cadences", "engines.base", "engines.duckdb",
    "engines.spark_dialect", "engines.spark_versions", "engines.spark_incremental",
    "engines.spark_audience", "engines.spark",
    "engines", "state", "snapshot", "activation", "activation.membership", "activation.roster",
    "due",
    "compiler", "datatests", "incremental", "parallel", "runner", "lock", "manifest", "selection", "reports",
    "testing",
    "activation.audience", "activation.outbox", "activation.files", "activation.webhook",
    "activation.deliver", "activation.render",
    "scaffold", "serve.snapshot", "serve.service", "serve.http", "serve.asgi", "serve.publish",
    "serve", "project", "review.cost", "review.lint", "review.diff", "review.site",
    "review.render", "review",
    "output", "cli", "__main__",
]
OWNERS = {
    "networkx": {"dag", "parser"},
    "croniter": {"schedule", "parser"},
    "duckdb": {"engines.duckdb"},
    "jinja2": {"rendering", "loader"},
    "click": {"cli", "output"},
    "rich": {"output"},
    "yaml": {"yamlfile"},
    "uvicorn": {"serve.asgi"},
    "sqlglot": {"engines.spark_dialect", "review.diff"},
    "pyspark": {"engines.spark"},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "cadence":
                found |= {f"cadence.{a.name}" for a in node.names}
    return found


def modules() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_place_in_the_pipeline() -> None:
    assert set(modules()) - {""} <= set(ORDER)


def test_imports_flow_downstream_only() -> None:
    rank = {name: i for i, name in enumerate(ORDER)}
    wrong = []
    for name, found in modules().items():
        if not name:
            continue
        for imported in found:
            if imported.startswith("cadence."):
                target = imported[len("cadence."):]
                if target in rank and rank[target] >= rank[name]:
                    wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_third_party_libraries_stay_in_their_module() -> None:
    wrong = []
    for name, found in modules().items():
        for imported in found:
            root = imported.split(".")[0]
            if root in OWNERS and name not in OWNERS[root]:
                wrong.append(f"{name} imports {root}")
    assert wrong == []


def test_nothing_reads_the_clock_but_the_cli() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for needle in ("datetime.now(", "dt.datetime.now(", "datetime.utcnow(", "date.today("):
            if needle in text and module_name(path) != "cli":
                offenders.append(f"{module_name(path)}: {needle}")
    assert offenders == []


def test_stage_modules_open_with_a_docstring() -> None:
    missing = [module_name(p) for p in PACKAGE.rglob("*.py")
               if module_name(p) not in ("__main__",) and ast.get_docstring(ast.parse(p.read_text())) is None]
    assert missing == []


def test_no_module_grows_past_the_split_size() -> None:
    sizes = {module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {n: s for n, s in sizes.items() if s > 700} == {}
