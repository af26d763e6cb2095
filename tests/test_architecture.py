"""The folder is the data flow (STYLE.md): imports flow downstream only, and each third-party
library stays in the one module that owns it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cadence"

# The packages in import order (docs/architecture.md): a module may import only from packages
# before its own (or from modules before it in its own package's order). Stages, then wings, then
# the facade and the CLI. ``record`` sits below ``build``: a build's record is written inside its
# publish transaction, so the runner calls record's writers.
PACKAGES = [
    "errors",
    "disk",
    "outbound",
    "load",
    "plan",
    "engines",
    "record",
    "build",
    "activation",
    "observe",
    "serve",
    "review",
    "scaffold",
    "project",
    "output",
    "cli",
    "__main__",
]
TOP_LEVEL_MODULES = {"errors", "scaffold", "project", "output"}
OWNERS = {
    "networkx": {"plan.dag", "load.parser"},
    "croniter": {"plan.schedule", "load.parser"},
    "duckdb": {"engines.duckdb"},
    "jinja2": {"load.rendering", "load.context", "load.evaluator", "load.envtemplate"},
    "click": {"cli", "cli.common", "cli.pipeline", "cli.wings", "output"},
    "rich": {"output"},
    "yaml": {"load.yamlfile"},
    "uvicorn": {"serve.asgi"},
    "sqlglot": {"engines.spark_dialect", "review.diff"},
    "pyspark": {"engines.spark_session"},
    "prometheus_client": {"observe.metrics"},
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


def package_of(name: str) -> str:
    return name.split(".")[0]


def test_every_module_has_a_place_in_the_order() -> None:
    names = set(modules()) - {""}
    assert {package_of(n) for n in names} <= set(PACKAGES)
    top = {n for n in names if "." not in n and not (PACKAGE / n).is_dir()}
    assert top <= TOP_LEVEL_MODULES | {"__main__"}
    assert len(top - {"__main__"}) <= 8


def test_imports_flow_downstream_only() -> None:
    rank = {name: i for i, name in enumerate(PACKAGES)}
    wrong = []
    for name, found in modules().items():
        if not name:
            continue
        for imported in found:
            if imported.startswith("cadence.") and imported != "cadence.__version__":
                target = imported[len("cadence.") :]
                if rank.get(package_of(target), -1) > rank[package_of(name)]:
                    wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_no_cycle_between_modules() -> None:
    """Inside a package too, imports (lazy ones included) never go round in a circle."""
    graph = {name: set() for name in modules()}
    for name, found in modules().items():
        for imported in found:
            target = imported[len("cadence.") :] if imported.startswith("cadence.") else None
            while target and target not in graph:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    seen: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in seen:
                visit(nxt, path + [nxt])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [node])
    assert cycles == []


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
            if needle in text and module_name(path) != "cli.common":
                offenders.append(f"{module_name(path)}: {needle}")
    assert offenders == []


def test_stage_modules_open_with_a_docstring() -> None:
    missing = [
        module_name(p)
        for p in PACKAGE.rglob("*.py")
        if module_name(p) not in ("__main__",)
        and ast.get_docstring(ast.parse(p.read_text())) is None
    ]
    assert missing == []


def test_no_module_grows_past_the_split_size() -> None:
    sizes = {module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {n: s for n, s in sizes.items() if s > 600} == {}
