"""``cadence lint`` (cadence/review/lint.py): each rule fires with file:line and a hint, and only
where it should; exit 0 with warnings, 1 with errors or under --strict (SPEC §10)."""

from __future__ import annotations

import pytest

from cadence.project import Project
from cadence.review.lint import lint

YML = """\
name: lintproj
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: Europe/Berlin
channels:
  email:   {cadence: "daily at 05:00", kind: email}
  ads:     {cadence: "every 4 hours", kind: ads}
  web:     {cadence: "every 15 minutes", kind: web}
  routing: {cadence: "every 5 minutes", kind: routing}
"""
SEGS = {
    "models/e.sql": "{{ config(channels=['email'], key='id') }}\nselect 1 as id\n",
    "models/a.sql": "{{ config(channels=['ads'], key='id') }}\nselect 1 as id\n",
    "models/w.sql": "{{ config(channels=['web'], key='id') }}\nselect 1 as id\n",
    "models/r.sql": "{{ config(channels=['routing'], key='id') }}\nselect 1 as id\n",
}


def rules(root) -> list[tuple[str, str]]:
    """(rule, "file:line") of every warning."""
    out = []
    for w in lint(Project.load(root)):
        rule = w.message.rsplit("[", 1)[-1].rstrip("]")
        out.append((rule, f"{w.file}:{w.line}"))
    return out


def test_a_clean_project_has_no_warnings(make_project):
    assert rules(make_project(SEGS, YML)) == []


def test_slower_upstream_points_at_the_ref(make_project):
    root = make_project(
        {
            **SEGS,
            "models/hourly.sql": "{{ config(cadence='hourly') }}\nselect 1 as id\n",
            "models/fast_minutes.sql": "{{ config(cadence='every 1 minutes') }}\nselect 1 as id\n",
            "models/r.sql": (
                "{{ config(channels=['routing'], key='id') }}\n"
                "select h.id from {{ ref('hourly') }} h\n"
                "join {{ ref('fast_minutes') }} f using (id)\n"
            ),
        },
        YML,
    )
    # hourly is slower than routing's 5 minutes; a faster explicit upstream is fine
    assert rules(root) == [("slower-upstream", "models/r.sql:2")]
    message = lint(Project.load(root))[0]
    assert "cannot be fresher than 'hourly'" in message.message
    assert "models/hourly.sql:1" in message.hint


def test_slower_upstream_through_a_view(make_project):
    root = make_project(
        {
            **SEGS,
            "models/daily.sql": "{{ config(cadence='daily') }}\nselect 1 as id\n",
            "models/v.sql": "{{ config(materialized='view') }}\nselect * from {{ ref('daily') }}\n",
            "models/w.sql": "{{ config(channels=['web'], key='id') }}\n\nselect * from {{ ref('v') }}\n",
        },
        YML,
    )
    assert rules(root) == [("slower-upstream", "models/w.sql:3")]


SOURCES = """\
version: 2
sources:
  - name: app
    tables:
      - name: users
        updates: daily at 06:00
      - name: events
        updates: every 10 minutes
      - name: undeclared
"""


@pytest.mark.parametrize(
    ("reads", "expected"),
    [
        pytest.param(["users"], [("faster-than-source", "models/w.sql:None")], id="slow-source"),
        pytest.param(["users", "events"], [], id="one-source-lands-fast-enough"),
        pytest.param(["users", "undeclared"], [], id="unknown-updates"),
    ],
)
def test_faster_than_the_sources_updates(make_project, reads, expected):
    sql = " union all ".join(f"select 1 as id from {{{{ source('app', '{t}') }}}}" for t in reads)
    root = make_project(
        {
            **SEGS,
            "models/sources.yml": SOURCES,
            "models/w.sql": "{{ config(channels=['web'], key='id') }}\n" + sql + "\n",
        },
        YML,
    )
    assert rules(root) == expected


def test_faster_than_source_through_an_upstream_names_the_source_file(make_project):
    root = make_project(
        {
            **SEGS,
            "models/sources.yml": SOURCES,
            "models/stg.sql": "select 1 as id from {{ source('app', 'users') }}\n",
            "models/r.sql": "{{ config(channels=['routing'], key='id') }}\nselect * from {{ ref('stg') }}\n",
        },
        YML,
    )
    found = [w for w in lint(Project.load(root)) if "faster-than-source" in w.message]
    assert sorted(w.file for w in found) == ["models/r.sql", "models/stg.sql"]
    assert all("models/sources.yml:5" in w.hint for w in found)


def test_ads_channel_faster_than_hourly_and_unused_channel(make_project):
    yml = YML.replace('ads:     {cadence: "every 4 hours", kind: ads}', 'ads:     {cadence: "every 30 minutes", kind: ads}')
    yml += '  spare:   {cadence: "daily at 07:00", kind: email}\n'
    root = make_project(SEGS, yml)
    assert rules(root) == [
        ("ads-faster-than-hourly", "cadence.yml:6"),
        ("unused-channel", "cadence.yml:9"),
    ]
    hourly = make_project(SEGS, YML.replace('"every 4 hours", kind: ads', '"hourly", kind: ads'))
    assert rules(hourly) == []  # hourly itself is fine


def test_segment_feeding_an_export_without_key(make_project):
    yml = YML.replace(
        'email:   {cadence: "daily at 05:00", kind: email}',
        'email:   {cadence: "daily at 05:00", kind: email, export: {format: csv}}',
    )
    root = make_project(
        {**SEGS, "models/e.sql": "{{ config(channels=['email']) }}\nselect 1 as id\n"}, yml
    )
    found = rules(root)
    assert found == [("export-without-key", "models/e.sql:1")]
    root2 = make_project(
        {**SEGS, "models/w.sql": "{{ config(channels=['web']) }}\nselect 1 as id\n"}, yml
    )
    assert rules(root2) == [("segment-without-key", "models/w.sql:1")]


def test_a_model_nothing_refreshes(make_project):
    root = make_project(
        {
            **SEGS,
            "models/orphan.sql": "select 1 as id\n",
            "models/manual.sql": "{{ config(cadence='on demand') }}\nselect 1 as id\n",
            "models/behind_manual.sql": "select 1 as id\n",
            "models/manual2.sql": (
                "{{ config(cadence='on demand') }}\nselect * from {{ ref('behind_manual') }}\n"
            ),
            "models/a_view.sql": "{{ config(materialized='view') }}\nselect 1 as id\n",
        },
        YML,
    )
    # explicit 'on demand' is deliberate; a view needs no refresh; what only it reads does
    assert sorted(rules(root)) == [
        ("never-refreshed", "models/behind_manual.sql:None"),
        ("never-refreshed", "models/orphan.sql:None"),
    ]


def test_exit_codes_strict_and_errors(make_project, cli):
    root = make_project({**SEGS, "models/orphan.sql": "select 1 as id\n"}, YML)
    result = cli(root, "lint")
    assert result.exit_code == 0
    assert "models/orphan.sql: warning: nothing refreshes 'orphan'" in result.output
    assert "hint:" in result.output and "1 warning(s)" in result.output
    assert cli(root, "lint", "--strict").exit_code == 1
    assert cli(make_project(SEGS, YML), "lint", "--strict").exit_code == 0
    broken = make_project(
        {**SEGS, "models/x.sql": "select * from {{ ref('nosuch') }}\n", "models/y.sql": "{{ config(cadence='sometimes') }}\nselect 1\n"},
        YML,
    )
    result = cli(broken, "lint")
    assert result.exit_code == 1, result.output
    assert "unknown ref 'nosuch'" in result.output and "sometimes" in result.output
    assert "Traceback" not in result.output


HOLDOUT_YML = """\
name: act
warehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}
timezone: UTC
channels:
  email:
    cadence: "daily at 05:00"
    export: {format: csv}
"""


def holdout_project(make_project, salt: str):
    people = "id\n" + "".join(f"{i}\n" for i in range(1, 201))
    return make_project(
        {
            "seeds/people.csv": people,
            "models/vip.sql": (
                "{{ config(channels=['email'], key='id', "
                f"holdout={{'percent': 20, 'salt': '{salt}'}}) }}}}\n"
                "select id from {{ ref('people') }}\n"
            ),
        },
        HOLDOUT_YML,
    )


def test_holdout_changed_on_a_live_segment(make_project, cli):
    from cadence.review.lint import recorded_groups

    root = holdout_project(make_project, "spring")
    assert cli(root, "run", "--at", "2026-01-10T05:00").exit_code == 0
    delivered = recorded_groups(Project.load(root))
    assert len(delivered["vip"]) == 200 and any(held for _k, held in delivered["vip"])
    assert cli(root, "lint", "--strict").exit_code == 0  # what was delivered matches the config
    vip = root / "models/vip.sql"
    vip.write_text(vip.read_text().replace("'spring'", "'summer'"))
    result = cli(root, "lint")
    assert "models/vip.sql:1: warning: the holdout of live segment 'vip' changed" in result.output
    assert "[holdout-changed]" in result.output and "hint:" in result.output
    assert cli(root, "lint", "--strict").exit_code == 1
    vip.write_text(vip.read_text().replace(", holdout={'percent': 20, 'salt': 'summer'}", ""))
    assert "now no holdout" in cli(root, "lint").output  # removing it moves the held-out back


def test_holdout_is_not_checked_before_anything_was_delivered(make_project, cli):
    root = holdout_project(make_project, "spring")
    assert "holdout" not in cli(root, "lint").output


def test_unknown_suppress_and_priority_names_are_warned_before_any_run(make_project):
    yml = YML.replace(
        'email:   {cadence: "daily at 05:00", kind: email}',
        'email:\n    cadence: "daily at 05:00"\n    kind: email\n'
        "    suppress: [unsubscribd]\n    priority: [e, nosuch]",
    )
    files = {**SEGS, "seeds/unsubscribed.csv": "id\n1\n"}
    root = make_project(files, yml)
    found = lint(Project.load(root))
    named = [w for w in found if w.message.endswith("[unknown-audience-name]")]
    assert [(w.file, w.line) for w in named] == [("cadence.yml", 8), ("cadence.yml", 9)]
    assert "'unsubscribd'" in named[0].message and named[0].hint == "did you mean 'unsubscribed'?"
    assert "'nosuch'" in named[1].message
    fixed = make_project(files, yml.replace("unsubscribd", "unsubscribed").replace(", nosuch", ""))
    assert rules(fixed) == []


def test_a_suppression_list_with_its_own_slower_cadence_names_the_suppress_line(make_project):
    yml = YML.replace(
        'email:   {cadence: "daily at 05:00", kind: email}',
        'email:\n    cadence: "daily at 05:00"\n    kind: email\n    suppress: [unsub, optout_seed]',
    )
    files = {
        **SEGS,
        "models/unsub.sql": "{{ config(cadence='weekly') }}\nselect 1 as id\n",
        "seeds/optout_seed.csv": "id\n1\n",
    }
    found = lint(Project.load(make_project(files, yml)))
    (slower,) = [w for w in found if w.message.endswith("[slower-suppression]")]
    assert (slower.file, slower.line) == ("cadence.yml", 8)
    assert "suppresses with 'unsub', whose own cadence (weekly) is slower" in slower.message
    assert slower.hint.startswith("models/unsub.sql:1: remove the cadence of 'unsub'")
    # without its own cadence it takes the channel's ticks; a faster one is fine too
    for sql in ("select 1 as id\n", "{{ config(cadence='hourly') }}\nselect 1 as id\n"):
        files["models/unsub.sql"] = sql
        assert rules(make_project(files, yml)) == []
