"""Selecting models with dbt-compatible syntax (SPEC §5), on the `shop` fixture project:

customers, orders (seeds) -> stg_customers, stg_orders (views) -> customer_totals (ephemeral)
-> high_value [email, ads, tag vip], lapsed [email]; stg_page_views -> browsing_now [web],
cart_abandoners [routing]; stg_customers -> survey_list (on demand)
"""

from __future__ import annotations

import pytest
from conftest import at

from cadence.errors import UsageError
from cadence.plan.selection import feeding
from cadence.project import Project, Selection

NOW = at("2026-01-10T10:00")
SEGMENTS = {"high_value", "lapsed", "browsing_now", "cart_abandoners"}


@pytest.fixture
def shop(copy_project):
    return Project.load(copy_project("shop"))


def chosen(
    project: Project, *select: str, exclude: tuple[str, ...] = (), channels: tuple[str, ...] = ()
) -> set[str]:
    return project.selected(Selection(select=select, exclude=exclude, channels=channels), None, NOW)


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        pytest.param(("high_value",), {"high_value"}, id="name"),
        pytest.param(
            ("+high_value",),
            {"high_value", "customer_totals", "stg_customers", "stg_orders", "customers", "orders"},
            id="ancestors",
        ),
        pytest.param(
            ("1+high_value",),
            {"high_value", "customer_totals", "stg_customers"},
            id="ancestors-depth",
        ),
        pytest.param(
            ("stg_orders+",),
            {"stg_orders", "customer_totals", "high_value", "lapsed"},
            id="descendants",
        ),
        pytest.param(("tag:vip",), {"high_value"}, id="tag"),
        pytest.param(
            ("tag:staging",),
            {"stg_customers", "stg_orders", "stg_page_views"},
            id="tag-from-folder-defaults",
        ),
        pytest.param(("path:models/segments",), SEGMENTS, id="path"),
        pytest.param(("path:models/staging/stg_orders.sql",), {"stg_orders"}, id="path-file"),
        pytest.param(("channel:email",), {"high_value", "lapsed"}, id="channel"),
        pytest.param(("channel:web",), {"browsing_now"}, id="channel-web"),
        pytest.param(("tag:vip lapsed",), {"high_value", "lapsed"}, id="space-is-union"),
        pytest.param(
            ("tag:vip", "browsing_now"), {"high_value", "browsing_now"}, id="repeated-flag-is-union"
        ),
        pytest.param(
            ("tag:segment,channel:email",), {"high_value", "lapsed"}, id="comma-is-intersection"
        ),
        pytest.param(("channel:email,channel:ads",), {"high_value"}, id="intersection-of-channels"),
        pytest.param(
            ("+lapsed,tag:staging",),
            {"stg_customers", "stg_orders"},
            id="intersection-with-graph-operator",
        ),
    ],
)
def test_selectors(shop, select, expected):
    assert chosen(shop, *select) == expected


def test_no_selector_selects_every_model_and_seed(shop):
    assert chosen(shop) == set(shop.dag.order)


def test_exclude_removes_from_the_selection(shop):
    assert chosen(shop, "path:models/segments", exclude=("channel:web",)) == {
        "high_value",
        "lapsed",
        "cart_abandoners",
    }
    assert chosen(shop, "+high_value", exclude=("tag:staging", "customers orders")) == {
        "high_value",
        "customer_totals",
    }


def test_exclude_alone_excludes_from_everything(shop):
    assert chosen(shop, exclude=("path:models/staging",)) == set(shop.dag.order) - {
        "stg_customers",
        "stg_orders",
        "stg_page_views",
    }


def test_channel_option_intersects_with_select(shop):
    assert chosen(shop, channels=("email",)) == {"high_value", "lapsed"}  # suppress: a seed
    assert chosen(shop, "tag:vip", channels=("email",)) == {"high_value"}
    assert chosen(shop, "browsing_now", channels=("email",)) == set()


def test_due_true_selects_what_run_due_would_build(copy_project, cli):
    root = copy_project("shop")
    assert cli(root, "run", "--at", "2026-01-10T10:00").exit_code == 0
    project = Project.load(root)
    later = at("2026-01-10T10:05")  # a routing tick only
    assert project.selected(Selection(select=("due:true",)), None, later) == {"cart_abandoners"}
    not_due = project.selected(Selection(select=("due:false",)), None, later)
    assert "cart_abandoners" not in not_due
    assert {"high_value", "browsing_now"} <= not_due
    assert (
        project.selected(Selection(select=("due:true",), exclude=("cart_abandoners",)), None, later)
        == set()
    )


@pytest.mark.parametrize(
    ("select", "message", "hint"),
    [
        pytest.param(
            "high_valu",
            "no model or seed named 'high_valu'",
            "did you mean 'high_value'?",
            id="unknown-name",
        ),
        pytest.param(
            "+lapsd",
            "no model or seed named 'lapsd'",
            "did you mean 'lapsed'?",
            id="unknown-name-with-operator",
        ),
        pytest.param(
            "channel:emial",
            "unknown channel 'emial' in selector",
            "did you mean 'email'?",
            id="unknown-channel",
        ),
        pytest.param(
            "tga:vip", "unknown selector method 'tga:'", "did you mean 'tag:'?", id="unknown-method"
        ),
    ],
)
def test_unknown_selectors_are_usage_errors_with_did_you_mean(shop, select, message, hint):
    with pytest.raises(UsageError) as info:
        chosen(shop, select)
    assert info.value.message == message
    assert info.value.hint == hint


def test_unknown_name_on_the_command_line_exits_2_with_did_you_mean(copy_project, cli):
    root = copy_project("shop")
    result = cli(root, "run", "-s", "high_valu", "--at", "2026-01-10T10:00")
    assert result.exit_code == 2
    assert "no model or seed named 'high_valu'" in result.output
    assert "did you mean 'high_value'?" in result.output
    assert "Traceback" not in result.output
    assert not (root / "target" / "run_results.json").exists()


def test_unknown_exclude_and_channel_on_the_command_line_exit_2(copy_project, cli):
    root = copy_project("shop")
    result = cli(root, "run", "--exclude", "lapsd", "--at", "2026-01-10T10:00")
    assert result.exit_code == 2
    assert "did you mean 'lapsed'?" in result.output
    result = cli(root, "run", "--channel", "emial", "--at", "2026-01-10T10:00")
    assert result.exit_code == 2
    assert "unknown channel 'emial'" in result.output
    assert "did you mean 'email'?" in result.output


def test_a_selected_run_builds_only_the_selection(copy_project, cli, run_results):
    root = copy_project("shop")
    result = cli(
        root, "run", "-s", "+lapsed", "--exclude", "customer_totals", "--at", "2026-01-10T10:00"
    )
    assert result.exit_code == 0, result.output
    results = {r["name"]: r["status"] for r in run_results(root)["results"]}
    # run_results lists only the models the run considered (seeds it loaded are not models);
    # the excluded ephemeral is still inlined
    assert results == {name: "success" for name in ("stg_customers", "stg_orders", "lapsed")}


@pytest.mark.parametrize(
    "args",
    [
        ("ls", "-s", "tag:nosuch"),
        ("ls", "-s", "tag:vip,channel:web"),  # an intersection that is empty
        ("run", "-s", "tag:nosuch", "--at", "2026-01-10T10:00"),
        ("run", "--due", "-s", "tag:nosuch", "--at", "2026-01-10T10:00"),
        ("compile", "-s", "tag:nosuch", "--at", "2026-01-10T10:00"),
        ("plan", "-s", "tag:nosuch", "--at", "2026-01-10T10:00"),
    ],
)
def test_a_selector_matching_nothing_warns_and_exits_0(copy_project, cli, args):
    root = copy_project("shop")
    result = cli(root, *args)
    assert result.exit_code == 0, result.output
    term = args[args.index("-s") + 1]
    assert f"warning: the selection criterion '{term}' does not match any model or seed" in (
        result.output
    )


def test_only_the_term_matching_nothing_is_named(copy_project, cli):
    root = copy_project("shop")
    result = cli(root, "ls", "-s", "tag:vip tag:nosuch")
    assert result.exit_code == 0
    assert "'tag:nosuch'" in result.output and "'tag:vip'" not in result.output
    assert "high_value" in result.output
    quiet = cli(root, "ls", "-s", "tag:vip", "-s", "due:true")  # due: matching nothing is normal
    assert "warning" not in quiet.output


def test_channel_option_selects_the_models_its_deliveries_read(make_project):
    """A suppression list that is a model is read by every delivery of the channel: it is
    selected with the channel's segments (SPEC §7 "When")."""
    yml = (
        "name: p\ntimezone: UTC\nchannels:\n  email:\n    cadence: daily at 05:00\n"
        "    suppress: [unsub]\n  ads: {cadence: every 4 hours}\n"
    )
    root = make_project(
        {
            "models/seg.sql": "{{ config(channels=['email'], key='id') }}\nselect 1 as id\n",
            "models/ad.sql": "{{ config(channels=['ads'], key='id') }}\nselect 1 as id\n",
            "models/unsub.sql": "select 1 as id\n",
        },
        cadence_yml=yml,
    )
    project = Project.load(root)
    assert feeding(project.parsed, ["email"]) == {"seg", "unsub"}
    assert feeding(project.parsed, ["ads"]) == {"ad"}
