"""A channel's audience (SPEC §7): suppression, holdout (the same stable hash in SQL and
Python), priority decided first."""

from __future__ import annotations

import hashlib

import duckdb
import pytest
from activation_project import CADENCE_YML, make_activation, query

from cadence.activation.audience import (
    audience_sql,
    check_channel,
    holdout_sql,
    is_held_out,
    segments_of,
)
from cadence.errors import CadenceError
from cadence.project import Project


def test_is_held_out_matches_the_documented_formula():
    # fixed values: the same on every machine and Python version (no hash())
    assert [k for k in ("a", "b", "zz", "42") if is_held_out("s", k, 10)] == ["a", "zz"]
    for key in map(str, range(200)):
        value = int.from_bytes(hashlib.sha256(f"spring:{key}".encode()).digest()[:8], "big")
        assert is_held_out("spring", key, 25) == (value % 100 < 25)


def test_holdout_sql_agrees_with_python_and_keeps_its_share():
    keys = [str(i) for i in range(5000)] + ["ü-ñ", "a'b", ""]
    with duckdb.connect() as con:
        con.execute("create table k(key varchar)")
        con.executemany("insert into k values (?)", [(k,) for k in keys])
        found = dict(con.sql(f"select key, {holdout_sql('x', 'key', 10)} from k").fetchall())
    assert found == {k: is_held_out("x", k, 10) for k in keys}
    share = sum(found.values()) / len(found)
    assert 0.08 < share < 0.12
    assert holdout_sql("x", "key", 0) == "false"


def yml_with(extra_email: str) -> str:
    return CADENCE_YML.replace("    suppress: [unsubscribed]\n", extra_email)


def audience(root):
    project = Project.load(root)
    sql = audience_sql(project.parsed, "email")
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return sorted(con.sql(sql).fetchall())


def test_suppress_priority_and_holdout(make_project, cli):
    people = [(i, 900 if i % 2 else 10) for i in range(1, 41)]
    root = make_activation(
        make_project,
        people,
        extra={
            "seeds/unsubscribed.csv": "id\n3\n4\n",
            # regular also contains every vip member: priority decides where they go
            "models/regular.sql": "{{ config(channels=['email'], key='id', "
            "holdout={'percent': 30, 'salt': 'q1'}) }}\nselect id, email from {{ ref('people') }}\n",
            "models/vip.sql": "{{ config(channels=['email'], key='id', "
            "holdout={'percent': 50, 'salt': 'v'}) }}\n"
            "select id, email from {{ ref('people') }} where spend >= 500\n",
        },
    )
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    rows = audience(root)
    by_key = {}
    for segment, key, held in rows:
        assert key not in by_key, "a key goes to one segment of a priority list"
        by_key[key] = (segment, held)
    assert "3" not in by_key and "4" not in by_key  # suppressed
    for i in range(1, 41):
        if i in (3, 4):
            continue
        segment = "vip" if i % 2 else "regular"
        salt, pct = ("v", 50) if segment == "vip" else ("q1", 30)
        # priority first: a vip member held out of vip gets nothing, not regular
        assert by_key[str(i)] == (segment, is_held_out(salt, str(i), pct))


def test_segments_order_and_channel_checks(make_project):
    root = make_activation(
        make_project,
        [(1, 1)],
        cadence_yml=yml_with("    suppress: [unsubscribd]\n").replace(
            "priority: [vip, regular]", "priority: [regular, vipp]"
        ),
    )
    parsed = Project.load(root).parsed
    assert [m.name for m in segments_of(parsed, "email")] == ["regular", "vip"]
    with pytest.raises(CadenceError) as info:
        check_channel(parsed, "email")
    text = info.value.render()
    assert "cadence.yml:7:" in text and "did you mean 'unsubscribed'" in text
    assert "cadence.yml:8:" in text and "did you mean 'vip'" in text


def test_missing_suppression_list_delivers_nothing(make_project, cli):
    root = make_activation(
        make_project,
        [(1, 900)],
        cadence_yml=yml_with("    suppress: [optouts]\n"),
        extra={"models/optouts.sql": "{{ config(cadence='on demand') }}\nselect 1 as id"},
    )
    result = cli(root, "run", "-s", "vip regular people", "--at", "2026-01-01T06:00")
    assert result.exit_code == 1, result.output
    assert "suppression list 'optouts' does not exist" in result.output
    assert not (root / "exports").exists()
    assert query(root, "select count(*) from _cadence.delivered") == [(0,)]


def test_a_key_missing_from_a_suppression_list_fails_that_segment_only(make_project, cli):
    """The key names a column the segment has but its channel's suppression list lacks: that
    segment's delivery fails naming where the key is set and the list; the other segment of
    the channel is delivered; the dry run says so on stderr and exits 1."""
    root = make_activation(
        make_project,
        [(1, 900), (2, 10)],
        extra={
            "models/vip.sql": "{{ config(channels=['email'], key='email') }}\n"
            "select id, email from {{ ref('people') }} where spend >= 500\n"
        },
    )
    result = cli(root, "run", "--at", "2026-01-01T06:00")
    assert result.exit_code == 1
    expected = (
        "models/vip.sql:1: key 'email' of segment 'vip' is not a column of suppression list "
        "'unsubscribed' (cadence.yml:7)"
    )
    assert f"error: delivery email/vip failed: {expected}" in result.stderr
    assert "its columns: id" in result.stderr
    assert "Binder Error" not in result.output
    assert "delivered email/regular: 1 entered" in result.stdout
    preview = cli(root, "export", "--dry-run")
    assert preview.exit_code == 1
    assert f"error: email/vip: {expected}" in preview.stderr
    assert "email/regular: 0 entered" in preview.stdout


def test_a_key_missing_from_an_earlier_priority_segment_names_that_segment(make_project, cli):
    root = make_activation(make_project, [(1, 900), (2, 10)])
    assert cli(root, "run", "--at", "2026-01-01T06:00").exit_code == 0
    # vip (first in priority) now names a key its live relation lacks
    (root / "models/vip.sql").write_text(
        "{{ config(channels=['email'], key='ident') }}\n"
        "select id as ident, email from {{ ref('people') }} where spend >= 500\n"
    )
    (root / "models/regular.sql").write_text(
        (root / "models/regular.sql").read_text().replace("spend < 500", "spend < 600")
    )
    result = cli(root, "run", "-s", "regular", "--at", "2026-01-02T06:00")
    assert result.exit_code == 1
    assert (
        "error: delivery email/regular failed: models/vip.sql:1: key 'ident' of segment 'vip' "
        "is not a column of segment 'vip' (earlier in priority)"
    ) in result.stderr
    assert "Binder Error" not in result.output
