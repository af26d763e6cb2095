"""The dependency graph: deterministic order, unknown refs, cycles, duplicate names (SPEC §3, §6)."""

from __future__ import annotations

import pytest

from cadence.errors import CadenceError, ProjectErrors
from cadence.project import Project

DIAMOND = {
    "seeds/raw.csv": "id\n1\n",
    "models/staging/stg_b.sql": "select * from {{ ref('raw') }}\n",
    "models/staging/stg_a.sql": "select * from {{ ref('raw') }}\n",
    "models/marts/zeta.sql": "select * from {{ ref('stg_a') }} join {{ ref('stg_b') }} using (id)\n",
    "models/marts/alpha.sql": "select * from {{ ref('stg_b') }}\n",
    "models/marts/solo.sql": "select 1 as id\n",
}


def load_error(make_project, files) -> CadenceError:
    root = make_project(files)
    with pytest.raises(CadenceError) as info:
        Project.load(root)
    return info.value


def test_order_is_topological_with_names_breaking_ties(make_project):
    project = Project.load(make_project(DIAMOND))
    assert project.dag.order == ("raw", "solo", "stg_a", "stg_b", "alpha", "zeta")
    assert project.dag.parents["zeta"] == ("stg_a", "stg_b")
    assert project.dag.children["raw"] == ("stg_a", "stg_b")
    assert project.dag.ancestors("zeta") == {"stg_a", "stg_b", "raw"}
    assert project.dag.descendants("stg_b") == {"alpha", "zeta"}
    assert project.dag.kinds["raw"] == "seed"


def test_order_does_not_depend_on_the_order_files_were_written(make_project):
    first = Project.load(make_project(DIAMOND)).dag
    second = Project.load(make_project(dict(reversed(list(DIAMOND.items()))))).dag
    assert first.order == second.order
    assert first.parents == second.parents


def test_unknown_ref_names_file_line_column_and_the_closest_name(make_project):
    error = load_error(
        make_project,
        {
            "models/staging/orders.sql": "select 1 as id\n",
            "models/segments/vip.sql": "select *\nfrom   {{ ref('ordrs') }}\n",
        },
    )
    assert error.render() == (
        "models/segments/vip.sql:2:11: error: unknown ref 'ordrs'\n"
        "  hint: did you mean 'orders'? (models/staging/orders.sql)"
    )


def test_unknown_ref_without_a_close_name_says_what_names_are(make_project):
    error = load_error(make_project, {"models/m.sql": "select * from {{ ref('zzqqxx') }}\n"})
    assert error.message == "unknown ref 'zzqqxx'"
    assert "file stems" in (error.hint or "")


def test_every_unknown_ref_is_reported_at_once(make_project):
    error = load_error(
        make_project,
        {
            "models/orders.sql": "select 1 as id\n",
            "models/a.sql": "select * from\n  {{ ref('ordrs') }}\n",
            "models/b.sql": "select * from {{ ref('ordes') }}\n",
        },
    )
    assert isinstance(error, ProjectErrors)
    assert [(e.file, e.line, e.message) for e in error.errors] == [
        ("models/a.sql", 2, "unknown ref 'ordrs'"),
        ("models/b.sql", 1, "unknown ref 'ordes'"),
    ]


def test_unknown_ref_in_a_singular_test_is_reported(make_project):
    error = load_error(
        make_project,
        {
            "models/orders.sql": "select 1 as id\n",
            "tests/orders_ok.sql": "select * from {{ ref('order') }} where id is null\n",
        },
    )
    assert error.file == "tests/orders_ok.sql"
    assert error.message == "unknown ref 'order'"
    assert "did you mean 'orders'?" in (error.hint or "")


def test_cycle_is_reported_with_its_path(make_project):
    error = load_error(
        make_project,
        {
            "models/a.sql": "select * from {{ ref('c') }}\n",
            "models/b.sql": "select * from {{ ref('a') }}\n",
            "models/c.sql": "select * from {{ ref('b') }}\n",
            "models/outside.sql": "select 1\n",
        },
    )
    assert error.message == "dependency cycle: a -> b -> c -> a"
    assert error.file == "models/a.sql"


def test_self_reference_is_a_cycle(make_project):
    error = load_error(make_project, {"models/a.sql": "select * from {{ ref('a') }}\n"})
    assert error.message == "dependency cycle: a -> a"


def test_every_cycle_is_reported(make_project):
    error = load_error(
        make_project,
        {
            "models/a.sql": "select * from {{ ref('b') }}\n",
            "models/b.sql": "select * from {{ ref('a') }}\n",
            "models/x.sql": "select * from {{ ref('y') }}\n",
            "models/y.sql": "select * from {{ ref('x') }}\n",
        },
    )
    assert isinstance(error, ProjectErrors)
    assert [e.message for e in error.errors] == [
        "dependency cycle: a -> b -> a",
        "dependency cycle: x -> y -> x",
    ]


def test_duplicate_model_names_name_both_files(make_project):
    error = load_error(
        make_project,
        {
            "models/staging/orders.sql": "select 1 as id\n",
            "models/marts/orders.sql": "select 2 as id\n",
        },
    )
    rendered = error.render()
    assert "duplicate model name 'orders'" in rendered
    assert "models/staging/orders.sql" in rendered
    assert "models/marts/orders.sql" in rendered


def test_a_model_named_like_a_seed_is_a_duplicate(make_project):
    error = load_error(
        make_project,
        {
            "seeds/orders.csv": "id\n1\n",
            "models/orders.sql": "select 1 as id\n",
        },
    )
    assert error.message == "duplicate model name 'orders'"
    assert error.file == "models/orders.sql"
    assert "seeds/orders.csv" in (error.hint or "")


def test_ref_to_a_disabled_model_says_it_is_disabled(make_project):
    error = load_error(
        make_project,
        {
            "models/retired.sql": "{{ config(enabled=false) }}\nselect 1 as id\n",
            "models/uses_it.sql": "select * from {{ ref('retired') }}\n",
        },
    )
    assert error.message == "unknown ref 'retired'" or "disabled" in error.message
    assert "disabled" in error.render()


def test_two_models_built_into_one_relation_is_an_error(make_project):
    """Before: the second overwrote the first's table at every build."""
    root = make_project(
        {
            "models/a.sql": "{{ config(alias='shared') }}\nselect 1 as id\n",
            "models/b.sql": "{{ config(alias='shared') }}\nselect 2 as id\n",
        }
    )
    from cadence.errors import CadenceError
    from cadence.project import Project

    with pytest.raises(CadenceError) as info:
        Project.load(root, use_cache=False)
    text = info.value.render()
    assert "model 'b' is built into \"main\".\"shared\", which models/a.sql is built into too" in text


def test_a_broken_model_is_reported_once_not_as_an_unknown_ref_of_its_tests(make_project):
    """One model that fails to render: its error, not 'unknown ref' from the tests on it."""
    root = make_project(
        {
            "models/vip.sql": "select 1 as id where id > {{ var('treshold') }}\n",
            "models/vip.yml": "version: 2\nmodels:\n  - name: vip\n    columns:\n"
            "      - name: id\n        tests:\n          - relationships: {to: ref('vip'), "
            "field: id}\n",
            "tests/vip_ok.sql": "select * from {{ ref('vip') }} where id is null\n",
        },
        cadence_yml="name: t\nwarehouse: {path: w.duckdb}\ntimezone: UTC\n"
        "vars: {threshold: 500}\n",
    )
    with pytest.raises(CadenceError) as info:
        Project.load(root)
    found = list(info.value.errors) if isinstance(info.value, ProjectErrors) else [info.value]
    assert [(e.file, e.message) for e in found] == [("models/vip.sql", "unknown var 'treshold'")]
    assert "did you mean 'threshold'?" in (found[0].hint or "")
