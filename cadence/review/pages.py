"""The docs site's page per model (SPEC §10).

Input: a loaded ``Project``, a model name, ``now`` and what the warehouse recorded of it (recent
builds, member count) -> output: the HTML of ``models/<name>.html``: its description (docs blocks
resolved), facts, columns with their descriptions and tests, cadence provenance, config, tests,
recent builds, the SQL as written and compiled.

Invariants: every value is HTML-escaped; the page links only to files of the site (no network);
a model that cannot compile still gets its page, saying why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
from collections.abc import Sequence
from typing import Any

from cadence.record.state import BuildRow
from cadence.review.lineage import colour


def _esc(value: object) -> str:
    return html.escape(str(value))


def _table(rows: list[tuple[str, str]], raw: frozenset[str] = frozenset()) -> str:
    """Key/value rows; values are escaped unless their key is in ``raw`` (built here, safe)."""
    body = "".join(
        f"<tr><th>{_esc(k)}</th><td>{v if k in raw else _esc(v)}</td></tr>" for k, v in rows
    )
    return f"<table class='kv'>{body}</table>"


def _when(t: dt.datetime | None, tz: Any) -> str:
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if t else "-"


def _prose(text: str, css: str = "description") -> str:
    """A description as paragraphs (blank lines split them; line breaks are kept by CSS)."""
    paragraphs = [p.strip() for p in text.strip().split("\n\n") if p.strip()]
    return "".join(f"<p class='{css}'>{_esc(p)}</p>" for p in paragraphs)


def _columns(model: Any, tests: Sequence[Any]) -> str:
    """Columns from YAML ``columns:`` (name, type, description) with the tests on each; columns
    only tests name are listed too."""
    by_column: dict[str, list[str]] = {}
    for t in tests:
        if t.column:
            by_column.setdefault(t.column, []).append(t.kind)
    names = [c.name for c in model.columns]
    rows = []
    for c in model.columns:
        rows.append((c.name, c.data_type or "", c.description, by_column.get(c.name, [])))
    for name, kinds in by_column.items():
        if name not in names:
            rows.append((name, "", "", kinds))
    if not rows:
        return "<p>no columns documented (add <code>columns:</code> to the model's YAML)</p>"
    body = "".join(
        f"<tr><td><code>{_esc(n)}</code></td><td>{_esc(kind)}</td>"
        f"<td>{_prose(desc) if desc else ''}</td><td>{_esc(', '.join(kinds))}</td></tr>"
        for n, kind, desc, kinds in rows
    )
    return (
        "<table id='columns'><thead><tr><th>column</th><th>type</th><th>description</th>"
        f"<th>tests</th></tr></thead><tbody>{body}</tbody></table>"
    )


def model_page(
    project: Any,
    name: str,
    now: dt.datetime,
    builds: Sequence[BuildRow],
    members: int | None,
) -> str:
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
            f"<tr><td>{_esc(t.kind)}</td><td>{_esc(t.column or '')}</td>"
            f"<td>{_esc(t.severity)}</td><td>{_esc(t.file)}</td></tr>"
            for t in tests
        )
        or "<tr><td colspan='4'>no tests</td></tr>"
    )
    build_rows = (
        "".join(
            f"<tr><td>{_esc(_when(b.started_at, tz))}</td>"
            f"<td>{_esc(b.status or '-')}</td>"
            f"<td>{'-' if b.duration_s is None else f'{b.duration_s:.3f} s'}</td>"
            f"<td>{'-' if b.rows is None else b.rows}</td></tr>"
            for b in builds
        )
        or "<tr><td colspan='4'>no recorded builds</td></tr>"
    )
    if members is None:
        member_text = "no membership recorded" if model.config.key else "not a segment (no key)"
    else:
        member_text = str(members)

    def links(names: tuple[str, ...]) -> str:
        parts = [
            f"<a href='{_esc(n)}.html'>{_esc(n)}</a>" if project.parsed.model(n) else _esc(n)
            for n in names
        ]
        return ", ".join(parts) or "-"

    col, band = colour(project, name)
    cadence_cell = f"<span class='swatch' style='background:{col}'></span> {_esc(cad.describe())}"
    facts = _table(
        [
            ("path", model.path),
            ("materialized", model.materialized),
            ("relation", model.relation),
            ("cadence", cadence_cell),
            ("colour band", band),
            ("channels", ", ".join(cad.channels) or "-"),
            ("members", member_text),
            ("reads", links(project.dag.parents.get(name, ()))),
            ("read by", links(project.dag.children.get(name, ()))),
        ],
        raw=frozenset({"cadence", "reads", "read by"}),
    )
    description = _prose(model.description) if model.description else ""
    project_name = _esc(project.parsed.config.name)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(name)} - cadence docs</title>
<link rel="stylesheet" href="../assets/site.css"></head>
<body class="model-page"><header><a href="../index.html#{_esc(name)}">&larr; {project_name}</a>
<h1 id="model-name">{_esc(name)}</h1></header><main>
<div id="description">{description}</div>
{facts}
<h2>Columns</h2>{_columns(model, tests)}
<h2>Cadence provenance</h2><p id="provenance">{_esc(cad.provenance())}</p>
<h2>Config</h2>{_table(config_rows)}
<h2>Tests</h2><table><thead><tr><th>test</th><th>column</th><th>severity</th><th>file</th></tr>
</thead><tbody>{test_rows}</tbody></table>
<h2>Recent builds</h2><table id="builds"><thead><tr><th>started</th><th>status</th><th>duration</th>
<th>rows</th></tr></thead><tbody>{build_rows}</tbody></table>
<h2>SQL</h2><pre class="sql" id="sql">{_esc(model.raw_sql)}</pre>
<h2>Compiled SQL</h2><pre class="sql" id="compiled">{_esc(compiled)}</pre>
</main></body></html>
"""
