"""``cadence diff`` (cadence/review/diff.py, review/render.py): exactly the affected models and
channels, builds/day before -> after, from git objects only (SPEC §10)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}
AT = "2026-01-10T00:00"

# SPEC §2 channels: email daily at 05:00, ads every 4 hours, web every 15 minutes, routing every
# 5 minutes. Two independent families, so "unrelated" is easy to see.
FILES = {
    ".gitignore": "target/\n*.duckdb*\n",
    "macros/money.sql": "{% macro money(c) %}cast({{ c }} as decimal(12, 2)){% endmacro %}\n",
    "models/stg_orders.sql": "select 1 as customer_id, {{ money('100') }} as amount\n",
    "models/stg_visits.sql": "select 1 as customer_id, {{ var('window', 30) }} as window_min\n",
    "models/stg_env.sql": "select '{{ env_var('REGION', 'eu') }}' as region, 1 as customer_id\n",
    "models/big_spenders.sql": (
        "{{ config(channels=['email', 'ads'], key='customer_id') }}\n"
        "select customer_id from {{ ref('stg_orders') }}\n"
    ),
    "models/browsing.sql": (
        "{{ config(channels=['web'], key='customer_id') }}\n"
        "select customer_id from {{ ref('stg_visits') }}\n"
    ),
    "models/regional.sql": (
        "{{ config(channels=['routing'], key='customer_id') }}\n"
        "select customer_id from {{ ref('stg_env') }}\n"
    ),
    "models/lonely.sql": "{{ config(channels=['email'], key='id') }}\nselect 7 as id\n",
}


def git(root: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def repo(make_project) -> Path:
    root = make_project(FILES)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    git(root, "checkout", "-qb", "feature")
    return root


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text, text
    path.write_text(text.replace(old, new))


def diff_json(cli, root: Path, *args: str) -> dict:
    result = cli(root, "diff", "--json", "--at", AT, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def listed(data: dict) -> set[str]:
    """Every model name the report mentions anywhere."""
    names = {c["name"] for c in data["changed"]} | set(data["downstream"])
    names |= {c["name"] for c in data["cadence_changes"]} | {m["name"] for m in data["models"]}
    return names


def test_a_macro_change_lists_exactly_the_models_using_it_and_downstream(repo, cli):
    edit(repo, "macros/money.sql", "decimal(12, 2)", "decimal(14, 2)")
    data = diff_json(cli, repo)
    assert [(c["name"], c["reasons"]) for c in data["changed"]] == [("stg_orders", ["SQL"])]
    assert data["downstream"] == ["big_spenders"]
    assert data["channels"] == ["ads", "email"]
    assert listed(data) == {"stg_orders", "big_spenders"}


def test_a_var_change_lists_exactly_the_models_using_it(repo, cli):
    with (repo / "cadence.yml").open("a") as fh:
        fh.write("vars: {window: 45}\n")
    data = diff_json(cli, repo)
    assert [c["name"] for c in data["changed"]] == ["stg_visits"]
    assert listed(data) == {"stg_visits", "browsing"}
    assert data["channels"] == ["web"]


def test_an_env_var_default_change_lists_only_its_model(repo, cli, monkeypatch):
    monkeypatch.delenv("REGION", raising=False)
    edit(repo, "models/stg_env.sql", "'eu'", "'us'")
    data = diff_json(cli, repo)
    assert listed(data) == {"stg_env", "regional"}
    # the environment is the same on both sides: a set variable changes nothing
    git(repo, "checkout", "-q", "--", "models/stg_env.sql")
    monkeypatch.setenv("REGION", "ap")
    assert listed(diff_json(cli, repo)) == set()


def test_comments_and_whitespace_are_not_changes(repo, cli):
    edit(
        repo,
        "models/stg_orders.sql",
        "select 1 as customer_id,",
        "-- who\nselect  1 as customer_id ,\n",
    )
    data = diff_json(cli, repo)
    assert data["changed"] == [] and data["models"] == []
    text = cli(repo, "diff", "--at", AT).output
    assert "no model changed" in text


def test_config_added_and_removed_models(repo, cli):
    edit(repo, "models/lonely.sql", "key='id'", "key='id', tags=['vip']")
    (repo / "models/stg_visits.sql").unlink()
    (repo / "models/browsing.sql").write_text(
        "{{ config(channels=['web'], key='customer_id') }}\nselect 2 as customer_id\n"
    )
    (repo / "models/new_seg.sql").write_text(
        "{{ config(channels=['ads'], key='id') }}\nselect 1 as id\n"
    )
    data = diff_json(cli, repo)
    changes = {c["name"]: (c["change"], c["reasons"]) for c in data["changed"]}
    assert changes == {
        "lonely": ("changed", ["config: tags [] -> ['vip']"]),
        "browsing": ("changed", ["SQL"]),
        "new_seg": ("added", []),
        "stg_visits": ("removed", []),
    }
    assert listed(data) == set(changes)
    removed = {m["name"]: m for m in data["models"]}["stg_visits"]
    assert removed["builds_per_day"] == {"before": 96.0, "after": 0.0}


def test_builds_per_day_before_and_after_for_mixed_cadences(repo, cli):
    # big_spenders: email + ads (1 + 6 a day) -> routing (288); stg_orders is pulled along
    edit(repo, "models/big_spenders.sql", "channels=['email', 'ads']", "channels=['routing']")
    # browsing: web (96) -> ads (6)
    edit(repo, "models/browsing.sql", "channels=['web']", "channels=['ads']")
    data = diff_json(cli, repo)
    cost = {m["name"]: m["builds_per_day"] for m in data["models"]}
    assert cost == {
        "stg_orders": {"before": 7.0, "after": 288.0},
        "big_spenders": {"before": 7.0, "after": 288.0},
        "stg_visits": {"before": 96.0, "after": 6.0},
        "browsing": {"before": 96.0, "after": 6.0},
    }
    cadence = {c["name"]: (c["before"], c["after"]) for c in data["cadence_changes"]}
    assert cadence["stg_orders"] == ("daily at 05:00 + every 4 hours", "every 5 minutes")
    assert (
        "from channel routing via big_spenders"
        in {c["name"]: c["after_provenance"] for c in data["cadence_changes"]}["stg_orders"]
    )
    channels = {c["name"]: c["builds_per_day"] for c in data["channel_costs"]}
    assert channels["web"] == {"before": 192.0, "after": 0.0}
    assert channels["routing"]["after"] - channels["routing"]["before"] == 576.0
    # unchanged: lonely (email, 1/day) is not listed although the email channel's figure moved
    assert "lonely" not in listed(data) and "regional" not in listed(data)
    total = data["total"]["builds_per_day"]
    assert total["after"] - total["before"] == pytest.approx(2 * 281 - 2 * 90)


def test_durations_come_from_recorded_builds_and_gate_ci(repo, cli):
    assert cli(repo, "run", "--at", "2026-01-09T23:00").exit_code == 0
    edit(repo, "models/browsing.sql", "channels=['web']", "channels=['routing']")
    data = diff_json(cli, repo)
    browsing = {m["name"]: m for m in data["models"]}["browsing"]
    before, after = browsing["compute_s_per_day"]["before"], browsing["compute_s_per_day"]["after"]
    assert before is not None and after == pytest.approx(before * 3, abs=0.005)  # 96 -> 288
    assert data["cost_increase_pct"] > 10
    assert cli(repo, "diff", "--at", AT, "--fail-on-cost-increase", "10").exit_code == 1
    assert cli(repo, "diff", "--at", AT, "--fail-on-cost-increase", "100000").exit_code == 0


def test_default_ref_is_the_merge_base_and_a_ref_can_be_named(repo, cli):
    edit(repo, "models/lonely.sql", "7 as id", "8 as id")
    git(repo, "commit", "-qam", "on feature")
    git(repo, "checkout", "-q", "main")
    edit(repo, "models/regional.sql", "select customer_id", "select distinct customer_id")
    git(repo, "commit", "-qam", "on main")
    git(repo, "checkout", "-q", "feature")
    data = diff_json(cli, repo)  # main moved on: its change is not this branch's
    assert data["ref"] == "merge base with main"
    assert [c["name"] for c in data["changed"]] == ["lonely"]
    named = diff_json(cli, repo, "main")  # against main's tip both differ
    assert {c["name"] for c in named["changed"]} == {"lonely", "regional"}
    assert diff_json(cli, repo, "HEAD")["changed"] == []


def test_never_touches_the_working_tree(repo, cli):
    edit(repo, "models/lonely.sql", "7 as id", "8 as id")
    (repo / "target").mkdir(exist_ok=True)
    (repo / "target" / "keep.txt").write_text("mine")
    before = git(repo, "status", "--porcelain", "--ignored")
    diff_json(cli, repo)
    assert git(repo, "status", "--porcelain", "--ignored") == before
    assert (repo / "target" / "keep.txt").read_text() == "mine"
    assert (repo / "models/lonely.sql").read_text().endswith("select 8 as id\n")


def test_project_in_a_subfolder_of_the_repository(tmp_path, make_project, cli):
    outer = tmp_path / "repo"
    outer.mkdir()
    root = make_project(FILES)
    project = outer / "analytics"
    root.rename(project)
    git(outer, "init", "-q", "-b", "master")
    git(outer, "add", "-A")
    git(outer, "commit", "-qm", "base")
    git(outer, "checkout", "-qb", "feature")
    edit(project, "models/lonely.sql", "7 as id", "8 as id")
    data = diff_json(cli, project)
    assert data["ref"] == "merge base with master"
    assert listed(data) == {"lonely"}


def test_markdown_block_for_a_pull_request(repo, cli):
    edit(repo, "models/browsing.sql", "channels=['web']", "channels=['routing']")
    result = cli(repo, "diff", "--format", "markdown", "--at", AT)
    assert result.exit_code == 0
    text = result.output
    assert text.startswith("### cadence diff against `merge base with main`")
    assert "| `browsing` | changed | config: channels ['web'] -> ['routing'] |" in text
    assert "| `browsing` | 96.0 -> 288.0 (+192.0) |" in text
    assert "| **total** |" in text and "lonely" not in text


def test_clear_errors_outside_git_and_for_a_bad_ref(make_project, repo, cli):
    plain = make_project(FILES)  # not a repository (tmp_path is outside any)
    result = cli(plain, "diff")
    assert result.exit_code == 2 and "not inside a git repository" in result.output
    # what to do, not only what is wrong (a fresh `cadence init` project is not in git)
    assert "hint: make it one and commit this version: git init && git add -A" in result.output
    git(plain, "init", "-q")
    result = cli(plain, "diff")
    assert result.exit_code == 2 and "has no commit yet" in result.output
    assert "hint: commit this version first: git add -A && git commit" in result.output
    result = cli(repo, "diff", "no-such-branch")
    assert result.exit_code == 2
    assert "unknown git ref 'no-such-branch'" in result.output
    assert "Traceback" not in result.output


def test_a_ref_where_the_project_did_not_exist_lists_everything_as_added(repo, cli):
    git(repo, "checkout", "-q", "--orphan", "empty")
    git(repo, "rm", "-rq", "--cached", ".")
    (repo / "README").write_text("x")
    git(repo, "add", "README")
    git(repo, "commit", "-qm", "empty")
    git(repo, "checkout", "-qf", "feature")
    data = diff_json(cli, repo, "empty")
    assert {c["change"] for c in data["changed"]} == {"added"}
    assert len(data["changed"]) == 7


def test_the_documented_github_workflow_is_valid_and_uses_real_options():
    import re as _re

    import yaml

    from cadence.cli import main

    guide = (Path(__file__).resolve().parents[1] / "docs/guides/reviewing-changes.md").read_text()
    block = guide.split("```yaml", 1)[1].split("```", 1)[0]
    workflow = yaml.safe_load(block)
    steps = workflow["jobs"]["diff"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps)
    options = set(_re.findall(r"cadence diff [^\n]*?(--[a-z-]+)", script))
    assert options == {"--format", "--fail-on-cost-increase"}
    known = {o for p in main.commands["diff"].params for o in getattr(p, "opts", [])}
    assert options <= known
    assert "--strict" in script and any(
        s.get("with", {}).get("fetch-depth") == 0 for s in steps
    )


def test_paths_resolved_against_the_project_folder_are_not_changes(repo, cli):
    (repo / "models/sources.yml").write_text(
        "version: 2\nsources:\n  - name: lake\n    tables:\n      - name: events\n"
        "        config: {external_location: 'data/events.csv'}\n"
    )
    (repo / "models/from_lake.sql").write_text(
        "{{ config(channels=['web'], key='id') }}\nselect 1 as id from {{ source('lake', 'events') }}\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "lake")
    assert str(repo) in (Project_load(repo).parsed.model("from_lake").rendered)
    edit(repo, "models/lonely.sql", "7 as id", "8 as id")
    data = diff_json(cli, repo, "HEAD")  # the commit that has the lake source
    assert listed(data) == {"lonely"}, data["changed"]


def Project_load(root: Path):
    from cadence.project import Project

    return Project.load(root)


def test_money_per_month_before_and_after_with_a_price(repo, cli):
    yml = repo / "cadence.yml"
    yml.write_text(yml.read_text() + "cost: {per_compute_hour: 2, currency: USD}\n")
    assert cli(repo, "run", "--at", "2026-01-09T23:00").exit_code == 0
    edit(repo, "models/browsing.sql", "channels=['web']", "channels=['routing']")
    data = diff_json(cli, repo)
    assert data["currency"] == "USD"
    browsing = {m["name"]: m for m in data["models"]}["browsing"]
    for side in ("before", "after"):
        compute = browsing["compute_s_per_day"][side]
        expected = compute * 30 / 3600 * 2
        assert browsing["cost_per_month"][side] == pytest.approx(expected, abs=1e-4)
    text = cli(repo, "diff", "--at", AT).output
    assert "money per month" in text and "USD ->" in text
    markdown = cli(repo, "diff", "--at", AT, "--format", "markdown").output
    assert "| per month |" in markdown and " USD -> " in markdown


WEB = 'web:     {cadence: "every 15 minutes", kind: web}'
MODELS = {p.removeprefix("models/").removesuffix(".sql") for p in FILES if p.startswith("models/")}


def yml_line(root: Path, text: str) -> int:
    lines = (root / "cadence.yml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


@pytest.mark.parametrize(
    ("old", "new", "key", "models", "channels"),
    [
        pytest.param(
            WEB,
            WEB.replace("every 15 minutes", "every 5 minutes"),
            "cadence",
            {"stg_visits", "browsing"},
            ["web"],
            id="channel-cadence",
        ),
        pytest.param(
            'email:   {cadence: "daily at 05:00", kind: email}',
            'email:   {cadence: "daily at 05:00", kind: email, export: {format: csv}}',
            "export",
            {"big_spenders", "lonely"},  # what the channel delivers
            ["email"],
            id="channel-export",
        ),
        pytest.param(
            "timezone: Europe/Berlin",
            "timezone: UTC",
            "timezone",
            MODELS,
            ["ads", "email", "routing", "web"],
            id="timezone",
        ),
        pytest.param(WEB, WEB + '\n  sms:     {cadence: "hourly"}', None, set(), ["sms"], id="new"),
    ],
)
def test_a_cadence_yml_change_is_listed_with_what_it_reaches(
    repo, cli, old, new, key, models, channels
):
    """The change of cadence.yml itself is listed (where it is, before -> after) with the models
    and channels it reaches, and the channels it reaches are among "channels reached"."""
    edit(repo, "cadence.yml", old, new)
    data = diff_json(cli, repo)
    (change,) = data["config_changes"]
    assert change["key"] == key
    assert set(change["models"]) == models and change["channels"] == channels
    assert change["line"] == yml_line(repo, new.splitlines()[-1].strip())
    assert set(channels) <= set(data["channels"])
    assert data["changed"] == []  # no model's SQL or own config changed


def test_a_channel_cadence_edit_shows_in_text_and_markdown_with_its_builds_per_day(repo, cli):
    edit(repo, "cadence.yml", WEB, WEB.replace("every 15 minutes", "every 5 minutes"))
    line = yml_line(repo, "web:")
    text = cli(repo, "diff", "--at", AT).output
    assert (
        f"  cadence.yml:{line}: channel web: cadence 'every 15 minutes' -> 'every 5 minutes'; "
        "reaches models "
    ) in text
    assert "channels web (builds/day 192.0 -> 576.0 (+384.0))" in text
    assert "channels reached: web" in text and "no model changed" not in text
    markdown = cli(repo, "diff", "--format", "markdown", "--at", AT).output
    assert f"| `cadence.yml:{line}` | channel web: cadence 'every 15 minutes' -> " in markdown
    assert "**Channels reached:** `web`" in markdown
    assert "| model | change | why |" not in markdown  # no empty table of changed models
