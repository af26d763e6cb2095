"""``cadence docs``: a static site of the project that works from ``file://`` (SPEC §10).

Input: a loaded ``Project``, ``now``, and read-only history (recent builds, member counts, build
durations) -> output: files under the output folder: ``index.html`` (lineage graph coloured by
cadence, a 24-hour timeline per channel of what it receives: each segment at the channel's own
ticks, the model list), ``data.js`` (the data the page
draws, as a script: ``fetch`` does not work from ``file://``), ``assets/`` (the JS and CSS shipped
inside the wheel, ``cadence/review/assets``) and ``models/<name>.html`` (SQL, compiled SQL,
config, tests, cadence provenance, member count, recent builds).

Invariants: nothing is fetched from the network (no external URL in any page); every file written
is owner-only (0600, folders 0700) and written under a temporary name, then renamed; the graph is
laid out here, in Python, by layers of the DAG, so the page only draws.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadence.engines.base import EngineError
from cadence.errors import CadenceError
from cadence.record.state import BuildRow, read_member_counts, read_recent_builds
from cadence.review.cost import channel_ticks

ASSETS = Path(__file__).parent / "assets"
ASSET_FILES = ("site.js", "site.css")
X_STEP, Y_STEP = 240, 28

# colour by the fastest tick interval (minutes): faster is warmer
BANDS: tuple[tuple[float, str, str], ...] = (
    (5, "#d7301f", "every 5 minutes or faster"),
    (15, "#fc8d59", "up to every 15 minutes"),
    (60, "#fdbb84", "up to hourly"),
    (240, "#74a9cf", "up to every 4 hours"),
    (1440, "#2b8cbe", "up to daily"),
    (float("inf"), "#045a8d", "slower than daily"),
)
ON_DEMAND = ("#bdbdbd", "on demand / no ticks")


@dataclass(frozen=True)
class History:
    """What the warehouse recorded, read-only (all empty without a warehouse)."""

    builds: dict[str, tuple[BuildRow, ...]] = dataclasses.field(default_factory=dict)
    members: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class SiteResult:
    out: Path
    index: Path
    models: int
    day: dt.date


def colour(project: Any, name: str) -> tuple[str, str]:
    cad = project.cadences.of(name)
    interval = cad.ticks.nominal_interval() if cad.has_ticks else None
    if interval is None:
        return ON_DEMAND
    minutes = interval.total_seconds() / 60
    for limit, col, label in BANDS:
        if minutes <= limit:
            return col, label
    return ON_DEMAND  # pragma: no cover - the last band is unbounded


def layout(project: Any) -> dict[str, tuple[int, int]]:
    """(layer, row) per node: layer = longest path from a root; rows ordered by the mean row of
    the parents (one barycentre sweep), so edges mostly run left to right without crossing."""
    dag = project.dag
    layer: dict[str, int] = {}
    for name in dag.order:
        parents = dag.parents.get(name, ())
        layer[name] = 1 + max((layer[p] for p in parents if p in layer), default=-1)
    by_layer: dict[int, list[str]] = {}
    for name in dag.order:
        by_layer.setdefault(layer[name], []).append(name)
    row: dict[str, float] = {}
    for depth in sorted(by_layer):
        names = by_layer[depth]
        if depth == 0:
            names.sort(key=lambda n: (dag.kinds.get(n, ""), n))
        else:
            names.sort(
                key=lambda n: (
                    sum(row[p] for p in dag.parents.get(n, ()) if p in row)
                    / max(1, len([p for p in dag.parents.get(n, ()) if p in row])),
                    n,
                )
            )
        for i, n in enumerate(names):
            row[n] = i
    return {n: (layer[n], int(row[n])) for n in dag.order}


def site_data(project: Any, now: dt.datetime, history: History) -> dict[str, Any]:
    """Everything index.html draws: nodes with positions, edges, channel timelines."""
    tz = project.tz
    pos = layout(project)
    names = list(project.dag.order)
    index = {n: i for i, n in enumerate(names)}
    nodes = []
    for n in names:
        x, y = pos[n]
        model = project.parsed.model(n)
        if model is not None:
            col, band = colour(project, n)
            cad = project.cadences.of(n)
            extra = {
                "materialized": model.materialized,
                "cadence": cad.describe(),
                "channels": list(cad.channels),
                "path": model.path,
                "page": f"models/{n}.html",
            }
        else:
            col, band = "#ffffff", "seed"
            extra = {"materialized": "seed", "cadence": "-", "channels": [], "path": "", "page": ""}
        nodes.append(
            {"name": n, "x": x * X_STEP + 20, "y": y * Y_STEP + 20, "color": col, "band": band}
            | extra
        )
    edges = [[index[p], index[c]] for c in names for p in project.dag.parents.get(c, ())]
    start = dt.datetime.combine(now.astimezone(tz).date(), dt.time(), tzinfo=tz)
    end = dt.datetime.combine(start.date() + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    second = dt.timedelta(seconds=1)  # ticks in [start, end): (start - 1s, end - 1s]
    # a local day may be 23 or 25 hours long: minutes are real minutes since local midnight
    length = (end - start).total_seconds() / 60
    channels = []
    for ch in project.parsed.config.channels:
        # what the channel receives from each segment: at its own ticks (SPEC §7 "When"), not
        # at every rebuild of a segment it shares with a faster channel
        ticks = channel_ticks(project.cadences, ch.name, start - second, end - second, tz)
        received = [round((t - start).total_seconds() / 60) for t in ticks]
        segments = [
            {"name": m.name, "times": list(received)}
            for m in project.parsed.models
            if ch.name in m.config.channels
        ]
        channels.append(
            {
                "name": ch.name,
                "cadence": ch.cadence,
                "refreshes": sum(len(s["times"]) for s in segments),
                "segments": segments,
            }
        )
    return {
        "project": project.parsed.config.name,
        "generated_at": now.isoformat(),
        "day": start.date().isoformat(),
        "timezone": str(tz),
        "day_minutes": length,
        "legend": [[c, label] for _, c, label in BANDS] + [list(ON_DEMAND)],
        "nodes": nodes,
        "edges": edges,
        "channels": channels,
        "members": history.members,
    }


# -- writing -----------------------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    """Owner-only, complete or absent: temporary name, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def write_site(project: Any, out: Path, now: dt.datetime, history: History) -> SiteResult:
    """Write the whole site under ``out`` (created owner-only); returns where index.html is."""
    _private_dir(out)
    for folder in (out / "assets", out / "models"):
        _private_dir(folder)
    data = site_data(project, now, history)
    _write(
        out / "data.js", "window.CADENCE_DATA = " + json.dumps(data, separators=(",", ":")) + ";\n"
    )
    for name in ASSET_FILES:
        _write(out / "assets" / name, (ASSETS / name).read_text(encoding="utf-8"))
    _write(out / "index.html", _index(data))
    keep = {f"{m}.html" for m in project.model_names()}
    for stale in (out / "models").glob("*.html"):
        if stale.name not in keep:  # a model that no longer exists
            stale.unlink()
    for name in project.model_names():
        _write(out / "models" / f"{name}.html", _model_page(project, name, now, history))
    return SiteResult(
        out, out / "index.html", len(project.model_names()), dt.date.fromisoformat(data["day"])
    )


def _index(data: dict[str, Any]) -> str:
    title = html.escape(data["project"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - cadence docs</title>
<link rel="stylesheet" href="assets/site.css">
</head><body>
<header><h1>{title}</h1>
<input id="search" type="search" placeholder="Search models (name, path, channel)"
 autocomplete="off">
<button id="clear" type="button">Show all</button>
<span id="status"></span></header>
<main>
<section id="graph-section"><h2>Lineage</h2><div id="legend"></div>
<div id="graph-wrap"><svg id="graph" xmlns="http://www.w3.org/2000/svg"></svg></div>
<div id="focus"></div></section>
<section id="timeline-section"><h2>Refreshes on <span id="day"></span></h2>
<div id="timeline"></div></section>
<section id="models-section"><h2>Models</h2><table id="models"><thead><tr><th>model</th>
<th>materialized</th><th>cadence</th><th>channels</th></tr></thead><tbody></tbody></table></section>
</main>
<script src="data.js"></script>
<script src="assets/site.js"></script>
</body></html>
"""


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table class='kv'>{body}</table>"


def _when(t: dt.datetime | None, tz: Any) -> str:
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if t else "-"


def _model_page(project: Any, name: str, now: dt.datetime, history: History) -> str:
    model = project.parsed.model(name)
    cad = project.cadences.of(name)
    tz = project.tz
    try:
        latest = cad.ticks.latest_tick(now, tz) if cad.has_ticks else None
        compiled = project.compiler.compile(name, now, latest, False).sql
    except Exception as exc:  # noqa: BLE001 - a page shows why it cannot compile
        compiled = f"-- cannot compile: {exc}"
    config = {k: v for k, v in dataclasses.asdict(model.config).items() if k != "origins"}
    config_rows = [
        (k, json.dumps(v, default=str)) for k, v in config.items() if v not in (None, (), [], {})
    ]
    tests = [t for t in project.parsed.tests if t.model == name]
    test_rows = (
        "".join(
            f"<tr><td>{html.escape(t.kind)}</td><td>{html.escape(t.column or '')}</td>"
            f"<td>{html.escape(t.severity)}</td><td>{html.escape(t.file)}</td></tr>"
            for t in tests
        )
        or "<tr><td colspan='4'>no tests</td></tr>"
    )
    builds = history.builds.get(name, ())
    build_rows = (
        "".join(
            f"<tr><td>{html.escape(_when(b.started_at, tz))}</td>"
            f"<td>{html.escape(b.status or '-')}</td>"
            f"<td>{'-' if b.duration_s is None else f'{b.duration_s:.3f} s'}</td>"
            f"<td>{'-' if b.rows is None else b.rows}</td></tr>"
            for b in builds
        )
        or "<tr><td colspan='4'>no recorded builds</td></tr>"
    )
    members = history.members.get(name)
    if members is None:
        member_text = "no membership recorded" if model.config.key else "not a segment (no key)"
    else:
        member_text = str(members)
    parents = project.dag.parents.get(name, ())
    children = project.dag.children.get(name, ())

    def links(names: tuple[str, ...]) -> str:
        parts = [
            f"<a href='{html.escape(n)}.html'>{html.escape(n)}</a>"
            if project.parsed.model(n)
            else html.escape(n)
            for n in names
        ]
        return ", ".join(parts) or "-"

    col, band = colour(project, name)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(name)} - cadence docs</title>
<link rel="stylesheet" href="../assets/site.css"></head>
<body class="model-page"><header><a href="../index.html">&larr; {
        html.escape(project.parsed.config.name)
    }</a>
<h1 id="model-name">{html.escape(name)}</h1></header><main>
<p>{html.escape(model.description or "")}</p>
{
        _table(
            [
                ("path", model.path),
                ("materialized", model.materialized),
                ("relation", model.relation),
                ("cadence", cad.describe()),
                ("channels", ", ".join(cad.channels) or "-"),
                ("colour band", band),
                ("members", member_text),
            ]
        )
    }
<p>reads: {links(parents)}<br>read by: {links(children)}</p>
<h2>Cadence provenance</h2><p id="provenance">{html.escape(cad.provenance())}</p>
<h2>Config</h2>{_table(config_rows)}
<h2>Tests</h2><table><thead><tr><th>test</th><th>column</th><th>severity</th><th>file</th></tr></thead>
<tbody>{test_rows}</tbody></table>
<h2>Recent builds</h2><table id="builds"><thead><tr><th>started</th><th>status</th><th>duration</th>
<th>rows</th></tr></thead><tbody>{build_rows}</tbody></table>
<h2>SQL</h2><pre class="sql" id="sql">{html.escape(model.raw_sql)}</pre>
<h2>Compiled SQL</h2><pre class="sql" id="compiled">{html.escape(compiled)}</pre>
<span class="swatch" style="background:{col}"></span>
</main></body></html>
"""


def read_history(project: Any) -> History:
    """Recent builds and member counts, read-only; empty without a warehouse or while a run
    holds it (the site is still written, saying "no recorded builds")."""
    from cadence.build.lock import current_holder

    if not project.warehouse_exists() or current_holder(project.root) is not None:
        return History()
    try:
        engine = project.open_engine(read_only=True)
    except (CadenceError, EngineError):
        return History()
    try:
        return History(read_recent_builds(engine), read_member_counts(engine))
    except EngineError:
        return History()
    finally:
        engine.close()


def build_docs(project: Any, out: Path | None, now: dt.datetime) -> SiteResult:
    """The one library call behind ``cadence docs``: default folder target/docs."""
    folder = out if out is not None else project.root / "target" / "docs"
    if folder.exists() and not folder.is_dir():
        raise CadenceError(f"{folder} is a file", hint="pass --out with a folder")
    try:
        return write_site(project, folder, now, read_history(project))
    except OSError as exc:
        raise CadenceError(
            f"cannot write the docs site to {folder}: {exc.strerror or exc}",
            hint="pass --out with a folder you can write",
        ) from None
