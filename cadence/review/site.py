"""``cadence docs``: a static site of the project that works from ``file://`` (SPEC §10).

Input: a loaded ``Project``, ``now``, and read-only history (recent builds, member counts, and
``advise``'s reach and cost per candidate cadence) -> output: files under the output folder:
``index.html`` (a frame of sections, ``SECTIONS``: the lineage graph with channels as nodes, the
refresh timeline of the week holding ``now``, per channel its lag and the chart of cost against
reach delay (``speed``), the model list), ``data.js`` (what the sections draw, as a script:
``fetch`` does not work from ``file://``), ``assets/`` (the JS and CSS shipped inside the wheel,
``cadence/review/assets``, a script per section) and ``models/<name>.html``
(``pages.model_page``).

Invariants: nothing is fetched from the network (no external URL in any page); every file written
is owner-only (0600, folders 0700) and written under a temporary name, then renamed; the graph is
laid out here, in Python (``lineage``), so the page only draws.
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

from cadence.disk import artifacts
from cadence.engines.base import EngineError
from cadence.errors import CadenceError
from cadence.record.state import BuildRow, read_member_counts, read_recent_builds
from cadence.review.advise import ADVISE_SINCE, Advice, advise
from cadence.review.lineage import lineage
from cadence.review.pages import model_page
from cadence.review.speed import speed_section
from cadence.review.timeline import timeline

ASSETS = Path(__file__).parent / "assets"
# the page's sections, in order: (id, title, script drawing it from data.js); a new section is
# one more entry here, its script in assets/ and its part of data.js in site_data
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("graph", "Lineage", "graph.js"),
    ("timeline", "Refreshes", "timeline.js"),
    ("speed", "Speed and cost", "speed.js"),
    ("models", "Models", "models.js"),
)
ASSET_FILES = ("site.js", "site.css", *(script for _, _, script in SECTIONS))


@dataclass(frozen=True)
class History:
    """What the warehouse recorded, read-only (all empty without a warehouse)."""

    builds: dict[str, tuple[BuildRow, ...]] = dataclasses.field(default_factory=dict)
    members: dict[str, int] = dataclasses.field(default_factory=dict)
    advice: Advice | None = None  # reach and cost per candidate cadence (``advise``)
    advice_note: str | None = None  # why there is none


@dataclass(frozen=True)
class SiteResult:
    out: Path
    index: Path
    models: int
    day: dt.date


def site_data(project: Any, now: dt.datetime, history: History) -> dict[str, Any]:
    """Everything index.html draws: the laid-out lineage, the week's timeline, member counts."""
    return {
        "project": project.parsed.config.name,
        "generated_at": now.isoformat(),
        "sections": [name for name, _, _ in SECTIONS],
        "graph": lineage(project),
        "timeline": timeline(project, now),
        "speed": speed_section(project, now, history.advice, history.advice_note),
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
        page = model_page(
            project, name, now, history.builds.get(name, ()), history.members.get(name)
        )
        _write(out / "models" / f"{name}.html", page)
    return SiteResult(
        out,
        out / "index.html",
        len(project.model_names()),
        dt.date.fromisoformat(data["timeline"]["at"]),
    )


def _index(data: dict[str, Any]) -> str:
    """The page's frame: a header with the search box, one empty section per ``SECTIONS`` entry
    (its script fills it from data.js), the scripts."""
    title = html.escape(data["project"])
    sections = "\n".join(
        f'<section id="{name}-section" data-section="{name}"><h2>{html.escape(heading)}</h2>'
        "</section>"
        for name, heading, _ in SECTIONS
    )
    scripts = "\n".join(f'<script src="assets/{script}"></script>' for _, _, script in SECTIONS)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - cadence docs</title>
<link rel="stylesheet" href="assets/site.css">
</head><body>
<header><h1>{title}</h1>
<input id="search" type="search" placeholder="Search models (name, path, channel, cadence)"
 autocomplete="off">
<button id="clear" type="button">Show all</button>
<span id="status"></span></header>
<main>
{sections}
</main>
<script src="data.js"></script>
<script src="assets/site.js"></script>
{scripts}
</body></html>
"""


def read_history(project: Any, now: dt.datetime) -> History:
    """Recent builds, member counts and what speed buys (``advise`` over the last 30 days),
    read-only; empty without a warehouse or while a run holds it (the site is still written,
    saying "no recorded builds")."""
    from cadence.build.lock import current_holder

    if not project.warehouse_exists():
        return History(advice_note="no warehouse yet: nothing was run")
    holder = current_holder(project.root)
    if holder is not None:
        return History(advice_note=f"a cadence run held the warehouse ({holder})")
    try:
        engine = project.open_engine(read_only=True)
    except (CadenceError, EngineError) as exc:
        return History(advice_note=f"the warehouse could not be read: {exc}")
    try:
        history = History(read_recent_builds(engine), read_member_counts(engine))
    except EngineError:
        return History()
    finally:
        engine.close()
    try:
        advice = advise(project, now, now - ADVISE_SINCE)
    except (CadenceError, EngineError) as exc:
        return dataclasses.replace(history, advice_note=f"no reach figures: {exc}")
    return dataclasses.replace(history, advice=advice)


def build_docs(project: Any, out: Path | None, now: dt.datetime) -> SiteResult:
    """The one library call behind ``cadence docs``: default folder target/docs."""
    folder = out if out is not None else artifacts.target_dir(project.root) / "docs"
    if folder.exists() and not folder.is_dir():
        raise CadenceError(f"{folder} is a file", hint="pass --out with a folder")
    try:
        return write_site(project, folder, now, read_history(project, now))
    except OSError as exc:
        raise CadenceError(
            f"cannot write the docs site to {folder}: {exc.strerror or exc}",
            hint="pass --out with a folder you can write",
        ) from None
