"""``cadence docs`` (cadence/review/site.py and its assets): the files it writes, and the page in a
real browser (headless Chromium: every model present, one graph node per model, the refresh
count per channel for a day, no console errors, a screenshot that is not blank) for the template
and a generated 1,000-model project (SPEC §10)."""

from __future__ import annotations

import datetime as dt
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
from pathlib import Path

import pytest
from click.testing import CliRunner

from cadence.cli import main
from cadence.project import Project
from tests.conftest import BERLIN, at

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DAY = "2026-06-01T05:00"
# the template on 2026-06-01 (Europe/Berlin): what each channel receives that day, its own ticks
# times its segments (email: high_value and lapsed once; ads: high_value at 6 ticks, though
# high_value is built 7 times: its 05:00 build is for email, SPEC §7 "When")
TEMPLATE_REFRESHES = {"email": 1 * 2, "ads": 6, "web": 96, "routing": 288}


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
    data = data_of(out)
    assert [n["name"] for n in data["nodes"]] == list(project.dag.order)
    assert {c["name"]: c["refreshes"] for c in data["channels"]} == TEMPLATE_REFRESHES


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


def test_the_layout_puts_every_model_right_of_what_it_reads(shop):
    data = data_of(shop / "target" / "docs")
    nodes = data["nodes"]
    assert all(nodes[a]["x"] < nodes[b]["x"] for a, b in data["edges"])
    assert len({(n["x"], n["y"]) for n in nodes}) == len(nodes)  # no two nodes on one spot


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


def assert_not_blank(page: Path, tmp: Path) -> None:
    shot = tmp / "shot.png"
    done = chromium(page.as_uri(), f"--screenshot={shot}")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (1400, 1000)
    # a blank page is one colour: its filtered scanlines hold a handful of byte values, and it
    # compresses to far less than a page with a graph and timelines
    assert len(Counter(pixels)) > 64
    blank_page = tmp / "blank.html"
    blank_page.write_text("<!doctype html><html><body></body></html>")
    blank = tmp / "blank.png"
    assert chromium(blank_page.as_uri(), f"--screenshot={blank}").returncode == 0
    assert len(Counter(png_pixels(blank)[2])) < 16
    assert shot.stat().st_size > 5 * blank.stat().st_size


def check_page(root: Path, out: Path, day: dt.datetime, tmp: Path) -> str:
    project = Project.load(root)
    html, console = dom(out / "index.html")
    assert console == []
    names = project.model_names()
    rows = re.findall(r'<tr class="model-row" data-name="([^"]+)"', html)
    assert sorted(rows) == sorted(names), "every model listed once"
    graph = re.findall(r'<g class="node" data-name="([^"]+)"', html)
    assert len(graph) == len(set(graph)) == len(project.dag.order)
    assert set(names) <= set(graph), "one graph node per model"
    # refreshes per channel for that day, counted by the page from what it drew
    start = dt.datetime.combine(day.date(), dt.time(), tzinfo=BERLIN)
    end = dt.datetime.combine(day.date() + dt.timedelta(days=1), dt.time(), tzinfo=BERLIN)
    drawn = dict(
        re.findall(r'<div class="channel" data-channel="([^"]+)" data-refreshes="(\d+)"', html)
    )
    # a channel receives at its own ticks, once per segment (not at every build of a segment)
    expected = {
        ch.name: len(
            project.cadences.channels[ch.name].ticks_between(
                start - dt.timedelta(seconds=1), end - dt.timedelta(seconds=1), BERLIN
            )
        )
        * sum(1 for m in project.parsed.models if ch.name in m.config.channels)
        for ch in project.parsed.config.channels
    }
    assert {k: int(v) for k, v in drawn.items()} == expected
    assert_not_blank(out / "index.html", tmp)
    return html


@needs_chromium
def test_template_site_in_chromium(shop, tmp_path):
    html = check_page(shop, shop / "target" / "docs", at(DAY), tmp_path)
    drawn = dict(re.findall(r'data-channel="([^"]+)" data-refreshes="(\d+)"', html))
    assert {k: int(v) for k, v in drawn.items()} == TEMPLATE_REFRESHES


@needs_chromium
def test_focus_and_search_in_chromium(shop):
    out = shop / "target" / "docs"
    html, console = dom(out / "index.html", "#stg_orders")
    assert console == []
    near = set(re.findall(r'<g class="node near" data-name="([^"]+)"', html))
    assert near == {"orders", "stg_orders", "high_value", "lapsed"}  # its up- and downstream
    html, console = dom(out / "index.html", "?q=cart")
    assert console == []
    matches = set(re.findall(r'<g class="node match" data-name="([^"]+)"', html))
    assert matches == {"carts", "stg_carts", "cart_abandoners"}
    shown = re.findall(r'<tr class="model-row" data-name="([^"]+)"', html)
    assert set(shown) == {"stg_carts", "cart_abandoners"}


@needs_chromium
def test_a_model_page_in_chromium(shop):
    html, console = dom(shop / "target" / "docs" / "models" / "cart_abandoners.html")
    assert console == []
    assert '<h1 id="model-name">cart_abandoners</h1>' in html


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big") / "p1000"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "generate.py"),
            str(root),
            "--models",
            "1000",
            "--events",
            "2000",
        ],
        check=True,
        capture_output=True,
    )
    return root


@needs_chromium
def test_a_1000_model_site_in_chromium(big, tmp_path):
    out = tmp_path / "docs"
    at_text = "2026-03-02T05:00"
    # in its own process: parsing 1,000 models forks workers, which is not safe in a process
    # that already runs threads (this one does); the project cache it leaves is loaded below
    cadence = Path(sys.executable).parent / "cadence"
    done = subprocess.run(
        [str(cadence), "docs", "--project-dir", str(big), "--out", str(out), "--at", at_text],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    html = check_page(big, out, at(at_text), tmp_path)
    assert len(re.findall(r'<tr class="model-row"', html)) == 1000
