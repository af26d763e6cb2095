"""``cadence docs`` (cadence/review/site.py, lineage.py, timeline.py, pages.py and the page's
scripts): the files it writes, the week's timeline, the model pages, and the page in a real
browser (headless Chromium): every box, label and edge read back from the DOM for the template
and generated 50- and 1,000-model projects (no two boxes overlap, no edge through a box but its
ends, channels as nodes fed by their segments and suppression lists, receives and rebuilds right
on a weekday and a Sunday, no console errors, a screenshot that is not blank) (SPEC §10)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadence.cli import main
from cadence.project import Project
from cadence.review.cost import count_builds
from cadence.review.lineage import CHAR_W, PAD_X
from cadence.review.site import History, site_data, write_site
from tests.conftest import BERLIN, at

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DAY = "2026-06-01T05:00"
# the template on 2026-06-01 (Europe/Berlin): segments and their builds that day
TEMPLATE_REFRESHES = {"email": 7 + 1, "ads": 7, "web": 96, "routing": 288}


def data_of(out: Path) -> dict:
    text = (out / "data.js").read_text()
    return json.loads(text[text.index("=") + 1 : text.rindex(";")])


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site") / "shop"
    assert CliRunner().invoke(main, ["init", str(root)]).exit_code == 0
    run = CliRunner().invoke(main, ["run", "--project-dir", str(root), "--at", DAY])
    assert run.exit_code == 0, run.output
    result = CliRunner().invoke(main, ["docs", "--project-dir", str(root), "--at", DAY])
    assert result.exit_code == 0, result.output
    return root


def test_writes_index_data_assets_and_a_page_per_model(shop):
    out = shop / "target" / "docs"
    project = Project.load(shop)
    names = project.model_names()
    assert sorted(p.stem for p in (out / "models").glob("*.html")) == sorted(names)
    assert (out / "assets" / "site.js").is_file() and (out / "assets" / "site.css").is_file()
    for script in ("graph.js", "timeline.js", "models.js"):
        assert (out / "assets" / script).is_file()
    data = data_of(out)
    models = [n["name"] for n in data["graph"]["nodes"] if n["kind"] in ("model", "seed")]
    assert models == list(project.dag.order)
    channels = [n["name"] for n in data["graph"]["nodes"] if n["kind"] == "channel"]
    assert channels == ["email", "ads", "web", "routing"]
    timeline = data["timeline"]
    monday = {  # 2026-06-01 is a Monday: the first day of the week shown
        ch["name"]: sum(len(timeline["patterns"][s["builds"][0]]) for s in ch["segments"])
        for ch in timeline["channels"]
    }
    assert monday == TEMPLATE_REFRESHES


def test_every_file_is_owner_only(shop):
    out = shop / "target" / "docs"
    for path in [out, *out.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


def test_nothing_is_fetched_from_the_network(shop):
    out = shop / "target" / "docs"
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text()
            urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text))
            assert urls <= {"http://www.w3.org/2000/svg"}, (path, urls)  # a namespace, not a URL


def test_a_model_page_has_sql_compiled_sql_config_tests_provenance_members_builds(shop):
    page = (shop / "target" / "docs" / "models" / "high_value.html").read_text()
    project = Project.load(shop)
    model = project.parsed.model("high_value")
    assert "{{ ref(" in page.replace("&#x27;", "'") or "ref(" in page  # the SQL as written
    assert '"main"."stg_orders"' in page.replace("&quot;", '"')  # compiled: refs resolved
    assert project.cadences.of("high_value").provenance() in page
    assert "not_null" in page or "unique" in page  # its YAML tests
    assert model.config.key and "members" in page
    builds = re.search(r"<table id=\"builds\">.*?</table>", page, re.S).group(0)
    assert "success" in builds and " s</td>" in builds  # the build recorded by the run, timed


def test_the_layout_puts_every_node_right_of_what_it_reads(shop):
    data = data_of(shop / "target" / "docs")
    full = data["graph"]["full"]
    pos = full["pos"]  # (column, x, y, width) per node
    assert all(pos[a][0] < pos[b][0] for a, b, _, _ in full["edges"])
    assert len({(p[1], p[2]) for p in pos}) == len(pos)  # no two nodes on one spot
    # channels are the last column, fed by their segments; the unsubscribed seed suppresses email
    nodes = data["graph"]["nodes"]
    last = max(p[0] for p in pos)
    assert {n["name"] for n, p in zip(nodes, pos) if p[0] == last} == {
        "email",
        "ads",
        "web",
        "routing",
    }
    suppress = {(nodes[a]["name"], nodes[b]["name"]) for a, b, _, s in full["edges"] if s}
    assert suppress == {("email_unsubscribed", "email")}


def test_a_file_as_out_folder_is_a_clear_error(shop, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    result = CliRunner().invoke(main, ["docs", "--project-dir", str(shop), "--out", str(target)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_a_removed_model_loses_its_page(shop, tmp_path):
    out = tmp_path / "site"
    args = ["docs", "--project-dir", str(shop), "--out", str(out), "--at", DAY]
    assert CliRunner().invoke(main, args).exit_code == 0
    (out / "models" / "gone.html").write_text("old")
    assert CliRunner().invoke(main, args).exit_code == 0
    assert not (out / "models" / "gone.html").exists()


# -- model pages and the week (no browser) ----------------------------------------------------

WEEK_YML = """
name: week
warehouse: {engine: duckdb, path: warehouse.duckdb}
timezone: Europe/Berlin
channels:
  digest: {cadence: "weekdays at 09:00", suppress: [optouts]}
  sunday: {cadence: "sundays at 10:00"}
  ads: {cadence: "every 4 hours"}
"""
WEEK_FILES = {
    "seeds/optouts.csv": "customer_id\n1\n",
    "models/base.sql": "select 1 as customer_id, 'a' as email",
    "models/weekly.sql": (
        "{{ config(materialized='table', channels=['digest', 'sunday'], key='customer_id') }}\n"
        "select * from {{ ref('base') }}"
    ),
    "models/reach.sql": (
        "{{ config(materialized='table', channels=['ads'], key='customer_id') }}\n"
        "select * from {{ ref('base') }}"
    ),
    "models/schema.yml": """
version: 2
models:
  - name: weekly
    description: '{{ doc("weekly_doc") }}'
    columns:
      - name: customer_id
        description: The customer, one row each.
        tests: [unique]
      - name: email
        description: Where the digest goes.
""",
    "models/docs.md": "{% docs weekly_doc %}\nWho gets the weekday digest.\n{% enddocs %}\n",
    "models/customers_who_opened_every_newsletter_this_quarter.sql": (
        "select * from {{ ref('base') }}"
    ),
}


@pytest.fixture
def week(make_project) -> Project:
    return Project.load(make_project(WEEK_FILES, WEEK_YML))


def day_block(data: dict, channel: str, date: str) -> dict:
    """Receives and per-segment rebuilds on ``date`` as the timeline holds them."""
    t = data["timeline"]
    d = [x["date"] for x in t["days"]].index(date)
    ch = next(c for c in t["channels"] if c["name"] == channel)
    return {
        "receives": len(t["patterns"][ch["receives"][d]]),
        "segments": {s["name"]: len(t["patterns"][s["builds"][d]]) for s in ch["segments"]},
    }


@pytest.mark.parametrize(
    "channel, date, receives, segments",
    [
        ("digest", "2026-03-04", 1, {"weekly": 1}),  # Wednesday: 09:00
        ("digest", "2026-03-08", 0, {"weekly": 1}),  # Sunday: rebuilt for the sunday channel
        ("digest", "2026-03-07", 0, {"weekly": 0}),  # Saturday: nothing
        ("sunday", "2026-03-04", 0, {"weekly": 1}),
        ("sunday", "2026-03-08", 1, {"weekly": 1}),
        ("ads", "2026-03-07", 6, {"reach": 6}),
    ],
)
def test_the_timeline_is_a_week_with_each_channels_own_ticks(
    week, channel, date, receives, segments
):
    # --at on a Saturday: the week shown is Monday 2026-03-02 to Sunday 2026-03-08
    data = site_data(week, at("2026-03-07T12:00"), History())
    assert [d["date"] for d in data["timeline"]["days"]][::6] == ["2026-03-02", "2026-03-08"]
    assert day_block(data, channel, date) == {"receives": receives, "segments": segments}


def test_a_channel_varies_by_weekday_and_a_dst_day_is_23_hours(week):
    data = site_data(week, at("2026-03-25T12:00"), History())  # the week of 2026-03-29
    varies = {c["name"]: c["varies"] for c in data["timeline"]["channels"]}
    assert varies == {"digest": True, "sunday": True, "ads": True}  # ads: Sunday is 23 hours
    assert [d["minutes"] for d in data["timeline"]["days"]] == [1440] * 6 + [1380]
    # a plain week: every 4 hours looks the same every day
    data = site_data(week, at("2026-03-04T12:00"), History())
    assert {c["name"]: c["varies"] for c in data["timeline"]["channels"]}["ads"] is False


def test_a_long_name_is_cut_in_its_box_and_whole_in_the_data(week):
    data = site_data(week, at("2026-03-04T12:00"), History())
    long = "customers_who_opened_every_newsletter_this_quarter"
    node = next(n for n in data["graph"]["nodes"] if n["name"] == long)
    assert node["label"] == long[:35] + "\u2026"
    widths = [p[3] for p in data["graph"]["full"]["pos"]]
    assert max(widths) == round(36 * CHAR_W + 2 * PAD_X)


def test_a_model_page_shows_columns_docs_blocks_and_no_stray_swatch(week, tmp_path):
    write_site(week, tmp_path / "site", at("2026-03-04T12:00"), History())
    page = (tmp_path / "site" / "models" / "weekly.html").read_text()
    assert "Who gets the weekday digest." in page  # the docs block behind its description
    columns = re.search(r"<table id='columns'>.*?</table>", page, re.S).group(0)
    assert "<code>customer_id</code>" in columns and "The customer, one row each." in columns
    assert "<code>email</code>" in columns and "Where the digest goes." in columns
    assert "unique" in columns  # the column's tests
    # the cadence colour sits in the facts table, nothing trails the page
    assert re.search(r"</pre>\s*</main>", page)
    assert all(m.start() < page.index("</table>") for m in re.finditer("swatch", page))


# -- in a real browser -------------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)"
)


def chromium(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: nothing can load
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1400,1000",
                "--virtual-time-budget=5000",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )


def console_messages(stderr: str) -> list[str]:
    """Every console message and uncaught error the page produced (the page logs nothing)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def dom(page: Path, query: str = "") -> tuple[str, list[str]]:
    done = chromium(page.as_uri() + query, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, console_messages(done.stderr)


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG (enough to tell blank from not)."""
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind = blob[pos + 4 : pos + 8]
        body = blob[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


@functools.cache
def blank_size() -> int:
    """The size of a blank page's screenshot (made once)."""
    with tempfile.TemporaryDirectory() as tmp:
        blank_page = Path(tmp) / "blank.html"
        blank_page.write_text("<!doctype html><html><body></body></html>")
        blank = Path(tmp) / "blank.png"
        assert chromium(blank_page.as_uri(), f"--screenshot={blank}").returncode == 0
        assert len(Counter(png_pixels(blank)[2])) < 16
        return blank.stat().st_size


def assert_not_blank(page: Path, shot: Path) -> None:
    done = chromium(page.as_uri(), f"--screenshot={shot}")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (1400, 1000)
    # a blank page is one colour: its filtered scanlines hold a handful of byte values, and it
    # compresses to far less than a page with a graph and timelines
    assert len(Counter(pixels)) > 64
    assert shot.stat().st_size > 5 * blank_size()


# what the browser laid out, read back from the DOM: every node's box and its label's (as
# rendered, in SVG units) and every edge's path as drawn (its d attribute, flattened below)
PROBE_JS = """
document.addEventListener("DOMContentLoaded", function () {
  var svg = document.getElementById("graph"), out = {boxes: [], edges: []};
  var frame = svg.getBoundingClientRect(), vb = svg.viewBox.baseVal, k = vb.width / frame.width;
  function box(el) {  // in the SVG's own units, whatever the zoom or transforms
    var r = el.getBoundingClientRect();
    return [(r.left - frame.left) * k + vb.x, (r.top - frame.top) * k + vb.y, r.width * k,
            r.height * k];
  }
  svg.querySelectorAll("g.node").forEach(function (g, i) {
    if (getComputedStyle(g).display === "none") { return; }
    var index = g.hasAttribute("data-index") ? +g.getAttribute("data-index") : i;
    out.boxes.push([index, g.getAttribute("data-name"), g.getAttribute("class"), box(g),
      box(g.querySelector("text"))]);
  });
  svg.querySelectorAll("path.edge").forEach(function (p) {
    if (getComputedStyle(p).display === "none") { return; }
    out.edges.push([+p.getAttribute("data-from"), +p.getAttribute("data-to"),
      p.getAttribute("class"), p.getAttribute("d")]);
  });
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
"""


def flatten(d: str) -> list[tuple[float, float]]:
    """An SVG path of absolute M, L, H, V and C commands as a polyline (curves cut every ~4 px)."""
    tokens = re.findall(r"[MLHVC]|-?[\d.]+(?:e-?\d+)?", d)
    points: list[tuple[float, float]] = []
    i, cmd = 0, ""
    while i < len(tokens):
        if tokens[i] in "MLHVC":
            cmd, i = tokens[i], i + 1
            continue
        nums = [float(t) for t in tokens[i : i + {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6}[cmd]]]
        i += len(nums)
        x0, y0 = points[-1] if points else (0.0, 0.0)
        if cmd in "ML":
            points.append((nums[0], nums[1]))
        elif cmd == "H":
            points.append((nums[0], y0))
        elif cmd == "V":
            points.append((x0, nums[0]))
        else:
            (x1, y1, x2, y2, x3, y3) = nums
            steps = max(4, int((abs(x3 - x0) + abs(y3 - y0)) / 4))
            for k in range(1, steps + 1):
                t = k / steps
                u = 1 - t
                points.append(
                    (
                        u**3 * x0 + 3 * u * u * t * x1 + 3 * u * t * t * x2 + t**3 * x3,
                        u**3 * y0 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t**3 * y3,
                    )
                )
    return points


def crosses(a: tuple[float, float], b: tuple[float, float], box: list[float]) -> bool:
    """Whether segment a-b enters the inside of box (x, y, w, h), shrunk by half a pixel."""
    x, y, w, h = box[0] + 0.5, box[1] + 0.5, box[2] - 1, box[3] - 1
    t0, t1 = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    for p, q in ((-dx, a[0] - x), (dx, x + w - a[0]), (-dy, a[1] - y), (dy, y + h - a[1])):
        if p == 0:
            if q <= 0:
                return False
            continue
        r = q / p
        if p < 0:
            t0 = max(t0, r)
        else:
            t1 = min(t1, r)
        if t0 >= t1:
            return False
    return True


def probe(out: Path, query: str = "") -> tuple[dict, str]:
    """The laid-out graph of ``out``/index.html (a copy of it with the probe script), and the
    DOM as drawn."""
    (out / "probe.js").write_text(PROBE_JS)
    index = (out / "index.html").read_text()
    (out / "probe.html").write_text(
        index.replace("</body>", '<script src="probe.js"></script></body>')
    )
    html_text, console = dom(out / "probe.html", query)
    assert console == []
    found = re.search(r'<pre id="probe">(.*?)</pre>', html_text, re.S)
    assert found, "the probe ran"
    raw = found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    got = json.loads(raw)
    return {
        "boxes": {
            b[0]: {"name": b[1], "class": b[2].split(), "box": b[3], "label": b[4]}
            for b in got["boxes"]
        },
        "edges": [
            {"from": e[0], "to": e[1], "class": e[2].split(), "path": e[3]} for e in got["edges"]
        ],
    }, html_text


CELL = 64


def cells(x: float, y: float, w: float, h: float) -> list[tuple[int, int]]:
    return [
        (cx, cy)
        for cx in range(int(x // CELL), int((x + w) // CELL) + 1)
        for cy in range(int(y // CELL), int((y + h) // CELL) + 1)
    ]


def assert_readable(drawn: dict) -> None:
    """No two boxes overlap, each label inside its box, no edge through a box but its ends."""
    boxes = drawn["boxes"]
    assert boxes, "a graph was drawn"
    grid: dict[tuple[int, int], list[int]] = {}
    overlaps = []
    for i, b in boxes.items():
        x, y, w, h = b["box"]
        lx, ly, lw, lh = b["label"]
        assert x - 0.5 <= lx and lx + lw <= x + w + 0.5, (b["name"], "label wider than its box")
        assert y - 0.5 <= ly and ly + lh <= y + h + 0.5, (b["name"], "label taller than its box")
        for cell in cells(x, y, w, h):
            for j in grid.get(cell, ()):
                X, Y, W, H = boxes[j]["box"]
                if x < X + W and X < x + w and y < Y + H and Y < y + h:
                    overlaps.append((b["name"], boxes[j]["name"]))
            grid.setdefault(cell, []).append(i)
    assert overlaps == []
    through = set()
    for e in drawn["edges"]:
        line = flatten(e["path"])
        ends = (e["from"], e["to"])
        for (ax, ay), (bx, by) in zip(line, line[1:]):
            x0, x1 = (ax, bx) if ax <= bx else (bx, ax)
            y0, y1 = (ay, by) if ay <= by else (by, ay)
            for cx in range(int(x0 // CELL), int(x1 // CELL) + 1):
                for cy in range(int(y0 // CELL), int(y1 // CELL) + 1):
                    for j in grid.get((cx, cy), ()):
                        x, y, w, h = boxes[j]["box"]
                        if x1 <= x or x0 >= x + w or y1 <= y or y0 >= y + h or j in ends:
                            continue
                        if crosses((ax, ay), (bx, by), boxes[j]["box"]):
                            names = [boxes[k]["name"] for k in (*ends, j)]
                            through.add(tuple(names))
    assert sorted(through) == [], "edges (from, to) through the box of a third node"


class Blocks(HTMLParser):
    """The timeline's day blocks: per block its attributes and its segment rows."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "div" and "day" in cls:
            self.blocks.append(
                {
                    "channel": a["data-channel"],
                    "days": (a["data-days"] or "").split(),
                    "receives": int(a["data-receives"] or 0),
                    "rebuilds": int(a["data-rebuilds"] or 0),
                    "segments": {},
                    "hidden": "hidden" in cls,
                }
            )
        elif tag == "div" and "segment" in cls:
            self.blocks[-1]["segments"][a["data-segment"]] = int(a["data-refreshes"] or 0)


def day_blocks(html_text: str) -> list[dict]:
    parser = Blocks()
    parser.feed(html_text)
    return parser.blocks


def shown_on(blocks: list[dict], channel: str, date: str) -> dict:
    found = [b for b in blocks if b["channel"] == channel and date in b["days"]]
    assert len(found) == 1, (channel, date, found)
    return found[0]


def expected_on(project: Project, channel: str, date: str) -> dict:
    """Receives (the channel's own ticks) and rebuilds per segment that day, from the schedule
    and the cost model."""
    day = dt.date.fromisoformat(date)
    start = dt.datetime.combine(day, dt.time(), tzinfo=BERLIN) - dt.timedelta(seconds=1)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=BERLIN)
    end -= dt.timedelta(seconds=1)
    counts = count_builds(project.parsed, project.dag, project.cadences, start, end, BERLIN)
    segments = {
        m.name: counts.builds.get(m.name, 0)
        for m in project.parsed.models
        if channel in m.config.channels
    }
    return {
        "receives": len(project.cadences.channels[channel].ticks_between(start, end, BERLIN)),
        "rebuilds": sum(segments.values()),
        "segments": segments,
    }


def check_site(root: Path, out: Path, dates: tuple[str, ...]) -> list[dict]:
    """The page in Chromium: readable graph, every model a node, channels as nodes fed by their
    segments and suppression lists, refresh counts right on each of ``dates``."""
    project = Project.load(root)
    drawn, html_text = probe(out)
    assert_readable(drawn)
    boxes = drawn["boxes"]
    kinds: dict[str, set[str]] = {}
    for b in boxes.values():
        kinds.setdefault(b["class"][1], set()).add(b["name"])
    assert kinds["model"] == set(project.model_names()), "one node per model"
    config = project.parsed.config
    assert kinds["channel"] == {c.name for c in config.channels}, "channels are nodes"
    into_channels = {
        (boxes[e["from"]]["name"], boxes[e["to"]]["name"], "suppress" in e["class"])
        for e in drawn["edges"]
        if "channel" in boxes[e["to"]]["class"]
    }
    feeds = {(m.name, ch, False) for m in project.parsed.models for ch in m.config.channels}
    suppress = {(name, c.name, True) for c in config.channels for name in c.suppress}
    assert into_channels == feeds | suppress
    rows = re.findall(r'<tr class="model-row" data-name="([^"]+)"', html_text)
    assert sorted(rows) == sorted(project.model_names()), "every model listed once"
    blocks = day_blocks(html_text)
    for date in dates:
        for ch in config.channels:
            shown = shown_on(blocks, ch.name, date)
            want = expected_on(project, ch.name, date)
            assert {k: shown[k] for k in want} == want, (ch.name, date)
    return blocks


@needs_chromium
def test_template_site_in_chromium(shop, tmp_path):
    out = shop / "target" / "docs"
    blocks = check_site(shop, out, ("2026-06-01", "2026-06-07"))  # Monday, Sunday
    assert {ch: shown_on(blocks, ch, "2026-06-01")["rebuilds"] for ch in TEMPLATE_REFRESHES} == (
        TEMPLATE_REFRESHES
    )
    assert_not_blank(out / "index.html", tmp_path / "shot.png")


@needs_chromium
def test_focus_and_search_in_chromium(shop):
    out = shop / "target" / "docs"
    html_text, console = dom(out / "index.html", "#stg_orders")
    assert console == []
    near = {
        name
        for cls, name in re.findall(r'<g class="([^"]+)" data-name="([^"]+)"', html_text)
        if "near" in cls.split()
    }
    # its up- and downstream, the channels its segments feed included
    assert near == {"orders", "stg_orders", "high_value", "lapsed", "email", "ads"}
    # the focused lineage is restacked: still no overlap, no edge through a box
    drawn, _ = probe(out, "#stg_orders")
    shown = {i for i, b in drawn["boxes"].items() if "near" in b["class"]}
    assert_readable(
        {
            "boxes": {i: drawn["boxes"][i] for i in shown},
            "edges": [e for e in drawn["edges"] if e["from"] in shown and e["to"] in shown],
        }
    )
    html_text, console = dom(out / "index.html", "?q=cart")
    assert console == []
    matches = {
        name
        for cls, name in re.findall(r'<g class="([^"]+)" data-name="([^"]+)"', html_text)
        if "match" in cls.split()
    }
    assert matches == {"carts", "stg_carts", "cart_abandoners"}
    shown_rows = re.findall(r'<tr class="model-row" data-name="([^"]+)"', html_text)
    assert set(shown_rows) == {"stg_carts", "cart_abandoners"}


@needs_chromium
def test_a_model_page_in_chromium(shop):
    html_text, console = dom(shop / "target" / "docs" / "models" / "cart_abandoners.html")
    assert console == []
    assert '<h1 id="model-name">cart_abandoners</h1>' in html_text


# a generated project (benchmarks/generate.py) with a weekday channel added, fed by a few
# segments and suppressing one: the shapes a real project has at 50 and at 1,000 models
AT = "2026-03-04T05:00"  # a Wednesday
WEDNESDAY, SUNDAY = "2026-03-04", "2026-03-08"


def generated(root: Path, models: int) -> Path:
    subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "generate.py"),
            str(root),
            "--models",
            str(models),
            "--events",
            "2000",
        ],
        check=True,
        capture_output=True,
    )
    segments = sorted((root / "models" / "segments").rglob("seg_*.sql"))
    yml = (root / "cadence.yml").read_text()
    (root / "cadence.yml").write_text(
        yml.replace(
            "channels:\n",
            'channels:\n  digest: {cadence: "weekdays at 09:00", kind: email, '
            f"suppress: [{segments[0].stem}]}}\n",
            1,
        )
    )
    for path in segments[1:4]:
        text = path.read_text()
        path.write_text(text.replace("config(channels=[", "config(channels=['digest', ", 1))
    return root


def docs_in_a_process(root: Path, out: Path) -> None:
    # in its own process: parsing many models forks workers, which is not safe in a process
    # that already runs threads (this one does); the project cache it leaves is loaded after
    cadence = Path(sys.executable).parent / "cadence"
    done = subprocess.run(
        [str(cadence), "docs", "--project-dir", str(root), "--out", str(out), "--at", AT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@needs_chromium
@pytest.mark.parametrize("models", [50, 1000])
def test_a_generated_site_in_chromium(models, tmp_path):
    root = generated(tmp_path / f"p{models}", models)
    out = tmp_path / "docs"
    docs_in_a_process(root, out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.parent == out)
    assert size < 1_500_000, "index.html and data.js stay small"
    blocks = check_site(root, out, (WEDNESDAY, SUNDAY))
    # the weekday channel: a row per day, once on Wednesday, not on Sunday
    assert shown_on(blocks, "digest", WEDNESDAY)["days"] == [WEDNESDAY]
    assert shown_on(blocks, "digest", WEDNESDAY)["receives"] == 1
    assert shown_on(blocks, "digest", SUNDAY)["receives"] == 0
    # a channel none of whose segments the weekday channel touches is the same every day
    project = Project.load(root)
    touched = {
        ch
        for m in project.parsed.models
        if "digest" in m.config.channels
        for ch in m.config.channels
    }
    steady = [c.name for c in project.parsed.config.channels if c.name not in touched]
    assert steady and all(len(shown_on(blocks, ch, SUNDAY)["days"]) == 7 for ch in steady)
    if models == 1000:  # the overview by folder is as readable
        drawn, _ = probe(out, "?view=folders")
        assert_readable(drawn)
        assert {b["name"] for b in drawn["boxes"].values()} >= {"models/segments/g000", "digest"}
    if models == 50:  # a chosen day: the other days' rows are hidden
        html_text, console = dom(out / "index.html", f"?day={SUNDAY}")
        assert console == []
        shown = {
            b["days"][0] if len(b["days"]) == 1 else "every day"
            for b in day_blocks(html_text)
            if not b["hidden"]
        }
        assert shown == {SUNDAY, "every day"}
    assert_not_blank(out / "index.html", tmp_path / "shot.png")
