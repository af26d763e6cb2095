"""Parsing models (SPEC §3): config precedence, Jinja functions, YAML properties, sources."""

from __future__ import annotations

import duckdb
import pytest
from conftest import DEFAULT_CADENCE_YML, at
from hypothesis import given, settings
from hypothesis import strategies as st

from cadence.errors import CadenceError
from cadence.project import Project


def load(make_project, files, cadence_yml=None) -> Project:
    return Project.load(make_project(files, cadence_yml))


def load_error(make_project, files, cadence_yml=None) -> CadenceError:
    root = make_project(files, cadence_yml)
    with pytest.raises(CadenceError) as info:
        Project.load(root)
    return info.value


def rendered(project: Project, name: str) -> str:
    return project.compiler.compile(name).sql


# --- configuration precedence ---------------------------------------------------------------

PRECEDENCE_YML = (
    DEFAULT_CADENCE_YML + "models:\n  segments: {materialized: view, +tags: [folder]}\n"
)


def test_yaml_config_beats_folder_defaults_and_config_call_beats_yaml(make_project):
    project = load(
        make_project,
        {
            "models/segments/both.sql": "{{ config(materialized='ephemeral', channels=['web'], tags=['sql']) }}\nselect 1 as id\n",
            "models/segments/yaml_only.sql": "select 1 as id\n",
            "models/segments/folder_only.sql": "select 1 as id\n",
            "models/segments/_props.yml": """
            version: 2
            models:
              - name: both
                config: {materialized: table, channels: [email], tags: [yaml]}
              - name: yaml_only
                config: {materialized: table, channels: [ads]}
            """,
        },
        PRECEDENCE_YML,
    )
    both = project.parsed.model("both").config
    assert (both.materialized, both.channels) == ("ephemeral", ("web",))
    yaml_only = project.parsed.model("yaml_only").config
    assert (yaml_only.materialized, yaml_only.channels) == ("table", ("ads",))
    assert project.parsed.model("folder_only").config.materialized == "view"


def test_tags_accumulate_from_folder_yaml_and_config_call(make_project):
    project = load(
        make_project,
        {
            "models/segments/m.sql": "{{ config(tags=['sql', 'shared']) }}\nselect 1 as id\n",
            "models/segments/_props.yml": """
            version: 2
            models:
              - name: m
                config: {tags: [yaml, shared]}
            """,
        },
        PRECEDENCE_YML,
    )
    tags = project.parsed.model("m").config.tags
    assert set(tags) == {"folder", "yaml", "sql", "shared"}
    assert len(tags) == len(set(tags)), "a tag given twice is kept once"


def test_yaml_entry_tags_and_config_tags_accumulate(make_project):
    project = load(
        make_project,
        {
            "models/m.sql": "select 1 as id\n",
            "models/m.yml": """
            version: 2
            models:
              - name: m
                tags: [entry]
                config: {tags: [configured]}
            """,
        },
    )
    assert set(project.parsed.model("m").config.tags) == {"entry", "configured"}


def test_unknown_key_in_config_call_is_an_error_with_did_you_mean(make_project):
    error = load_error(
        make_project,
        {
            "models/m.sql": "select 1 as id\n{{ config(chanels=['email']) }}\n",
        },
    )
    assert error.render().startswith("models/m.sql:2: error: unknown config key 'chanels'")
    assert error.hint == "did you mean 'channels'?"


def test_invalid_materialization_is_an_error_with_did_you_mean(make_project):
    error = load_error(
        make_project, {"models/m.sql": "{{ config(materialized='tabel') }}\nselect 1\n"}
    )
    assert "invalid materialized 'tabel'" in error.message
    assert error.hint == "did you mean 'table'?"


def test_unknown_key_in_yaml_model_entry_is_an_error_with_did_you_mean(make_project):
    error = load_error(
        make_project,
        {
            "models/m.sql": "select 1 as id\n",
            "models/m.yml": "version: 2\nmodels:\n  - name: m\n    desciption: typo\n",
        },
    )
    assert error.render().startswith(
        "models/m.yml:4: error: unknown key 'desciption' for model 'm'"
    )
    assert error.hint == "did you mean 'description'?"


@pytest.mark.parametrize("where", ["config_call", "yaml"])
def test_enabled_false_excludes_a_model(make_project, where):
    files = {"models/kept.sql": "select 1 as id\n"}
    if where == "config_call":
        files["models/retired.sql"] = "{{ config(enabled=false) }}\nselect 1 as id\n"
    else:
        files["models/retired.sql"] = "select 1 as id\n"
        files["models/retired.yml"] = (
            "version: 2\nmodels:\n  - name: retired\n    config: {enabled: false}\n"
        )
    project = load(make_project, files)
    assert project.model_names() == ["kept"]
    assert project.parsed.model("retired") is None


# --- Jinja: ref, seeds, macros, set/loops, var, env_var ---------------------------------------


def test_seeds_are_ref_able_by_file_stem_and_loaded_by_the_run(make_project):
    root = make_project(
        {
            "seeds/countries.csv": "code,name\nDE,Germany\nAT,Austria\n",
            "models/m.sql": "select count(*) as n from {{ ref('countries') }}\n",
        }
    )
    project = Project.load(root)
    assert project.dag.parents["m"] == ("countries",)
    assert project.dag.kinds["countries"] == "seed"
    result = project.run(at("2026-01-10T10:00"))
    assert {r.name: r.status for r in result.results} == {"countries": "success", "m": "success"}
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select n from m").fetchall() == [(2,)]


def test_macros_are_usable_in_every_model(make_project):
    project = load(
        make_project,
        {
            "macros/math.sql": "{% macro double(x) %}({{ x }} * 2){% endmacro %}\n"
            "{% macro triple(x) %}{{ return(x ~ ' * 3') }}{% endmacro %}\n",
            "models/a.sql": "select {{ double('id') }} as d from range(3) t(id)\n",
            "models/b.sql": "select {{ triple('id') }} as t from range(3) t(id)\n",
        },
    )
    assert "select (id * 2) as d" in rendered(project, "a")
    assert "select id * 3 as t" in rendered(project, "b")


def test_set_and_for_loops_render_like_dbt(make_project):
    project = load(
        make_project,
        {
            "models/m.sql": """
            {% set channels = ['email', 'ads', 'web'] %}
            select
            {%- for c in channels %}
                sum(case when channel = '{{ c }}' then 1 else 0 end) as n_{{ c }}{{ ',' if not loop.last }}
            {%- endfor %}
            from events
            """,
        },
    )
    sql = " ".join(rendered(project, "m").split())
    assert (
        "select sum(case when channel = 'email' then 1 else 0 end) as n_email, "
        "sum(case when channel = 'ads' then 1 else 0 end) as n_ads, "
        "sum(case when channel = 'web' then 1 else 0 end) as n_web from events"
    ) in sql


def test_var_reads_cadence_yml_vars_and_falls_back_to_the_default(make_project):
    yml = DEFAULT_CADENCE_YML + "vars: {threshold: 500, zero: 0}\n"
    project = load(
        make_project,
        {
            "models/m.sql": "select {{ var('threshold') }} as a, {{ var('missing', 7) }} as b,\n"
            "       {{ var('threshold', 1) }} as c, {{ var('zero', 9) }} as d\n",
        },
        yml,
    )
    assert "select 500 as a, 7 as b,\n       500 as c, 0 as d" in rendered(project, "m")


def test_unknown_var_is_an_error_naming_file_and_line(make_project):
    error = load_error(
        make_project, {"models/m.sql": "select 1\nwhere x > {{ var('threshhold') }}\n"}
    )
    assert error.render().startswith("models/m.sql:2: error: unknown var 'threshhold'")
    assert "vars:" in (error.hint or "")


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("high_value_treshold", "did you mean 'high_value_threshold'?"),  # a typo: the closest var
        ("nothing_like_it", "define it under vars: in cadence.yml"),
    ],
)
def test_unknown_var_suggests_the_closest_var_of_cadence_yml(make_project, name, hint):
    root = make_project(
        {"models/m.sql": f"select {{{{ var('{name}') }}}} as v\n"},
        "name: p\nwarehouse: {path: w.duckdb}\ntimezone: UTC\n"
        "vars: {high_value_threshold: 500, lapsed_days: 90}\n",
    )
    with pytest.raises(CadenceError) as info:
        Project.load(root)
    assert info.value.message == f"unknown var '{name}'"
    assert hint in (info.value.hint or "")


def test_env_var_in_a_model(make_project, monkeypatch):
    monkeypatch.setenv("CADENCE_TEST_REGION", "eu")
    monkeypatch.delenv("CADENCE_TEST_MISSING", raising=False)
    project = load(
        make_project,
        {
            "models/m.sql": "select '{{ env_var('CADENCE_TEST_REGION') }}' as region,\n"
            "       '{{ env_var('CADENCE_TEST_MISSING', 'dflt') }}' as other\n",
        },
    )
    assert "select 'eu' as region,\n       'dflt' as other" in rendered(project, "m")


def test_env_var_without_default_must_be_set(make_project, monkeypatch):
    monkeypatch.delenv("CADENCE_TEST_MISSING", raising=False)
    error = load_error(
        make_project, {"models/m.sql": "select '{{ env_var('CADENCE_TEST_MISSING') }}'\n"}
    )
    assert error.file == "models/m.sql"
    assert "environment variable 'CADENCE_TEST_MISSING' is not set" in error.message


# --- YAML properties ---------------------------------------------------------------------------


def test_doc_blocks_from_md_files_fill_yaml_descriptions(make_project):
    project = load(
        make_project,
        {
            "models/segments/vip.sql": "select 1 as customer_id\n",
            "models/segments/docs.md": "{% docs vip_doc %}\nCustomers worth a phone call.\n{% enddocs %}\n",
            "models/segments/vip.yml": """
            version: 2
            models:
              - name: vip
                description: "{{ doc('vip_doc') }}"
                columns:
                  - name: customer_id
                    description: plain text
            """,
        },
    )
    model = project.parsed.model("vip")
    assert model.description == "Customers worth a phone call."
    assert [(c.name, c.description) for c in model.columns] == [("customer_id", "plain text")]


def test_tests_and_data_tests_are_both_read(make_project):
    project = load(
        make_project,
        {
            "models/m.sql": "select 1 as id, 'a' as kind\n",
            "models/m.yml": """
            version: 2
            models:
              - name: m
                tests:
                  - row_count: {min: 1}
                columns:
                  - name: id
                    tests: [not_null]
                    data_tests: [unique]
                  - name: kind
                    data_tests:
                      - accepted_values: {values: [a, b]}
            """,
        },
    )
    found = sorted((t.kind, t.column) for t in project.parsed.tests if t.model == "m")
    assert found == [
        ("accepted_values", "kind"),
        ("not_null", "id"),
        ("row_count", None),
        ("unique", "id"),
    ]


def test_unknown_generic_test_is_an_error_with_did_you_mean(make_project):
    error = load_error(
        make_project,
        {
            "models/m.sql": "select 1 as id\n",
            "models/m.yml": "version: 2\nmodels:\n  - name: m\n    columns:\n"
            "      - name: id\n        tests: [not_nul]\n",
        },
    )
    assert "unknown test 'not_nul'" in error.message
    assert error.hint == "did you mean 'not_null'?"


def test_properties_for_a_missing_model_are_a_warning_not_an_error(make_project):
    project = load(
        make_project,
        {
            "models/orders.sql": "select 1 as id\n",
            "models/props.yml": "version: 2\nmodels:\n  - name: ordres\n",
        },
    )
    [warning] = [w for w in project.parsed.warnings if "ordres" in w.message]
    assert warning.severity == "warning"
    assert warning.hint == "did you mean 'orders'?"


# --- sources -------------------------------------------------------------------------------------


def test_source_with_external_location_reads_the_csv(make_project):
    root = make_project(
        {
            "data/events.csv": "user_id,kind\n1,open\n2,open\n2,buy\n",
            "models/sources.yml": """
            version: 2
            sources:
              - name: app
                tables:
                  - name: events
                    loaded_at: loaded_at
                    updates: every 10 minutes
                    config: {external_location: 'data/events.csv'}
            """,
            "models/buyers.sql": "select distinct user_id from {{ source('app', 'events') }} where kind = 'buy'\n",
        }
    )
    project = Project.load(root)
    [source] = project.parsed.sources
    assert (source.source_name, source.table, source.loaded_at, source.updates) == (
        "app",
        "events",
        "loaded_at",
        "every 10 minutes",
    )
    assert project.parsed.model("buyers").sources == (("app", "events"),)
    result = project.run(at("2026-01-10T10:00"))
    assert [(r.name, r.status, r.rows) for r in result.results] == [("buyers", "success", 1)]


def test_unknown_source_is_an_error_with_did_you_mean(make_project):
    error = load_error(
        make_project,
        {
            "models/sources.yml": "version: 2\nsources:\n  - name: app\n    tables:\n      - name: events\n",
            "models/m.sql": "select * from {{ source('app', 'event') }}\n",
        },
    )
    assert error.file == "models/m.sql"
    assert "unknown source 'app.event'" in error.message
    assert error.hint == "did you mean 'app.events'?"


def test_var_with_an_explicit_none_default_returns_none(make_project):
    project = load(
        make_project,
        {
            "models/m.sql": "select 1 as id{% if var('start_date', none) is not none %} where x{% endif %}\n",
        },
    )
    assert rendered(project, "m") == "select 1 as id\n"


def test_doc_of_an_unknown_block_is_reported(make_project):
    root = make_project(
        {
            "models/m.sql": "select 1 as id\n",
            "models/docs.md": "{% docs customers %}\nCustomers.\n{% enddocs %}\n",
            "models/m.yml": "version: 2\nmodels:\n  - name: m\n    description: \"{{ doc('customer') }}\"\n",
        }
    )
    try:
        project = Project.load(root)
    except CadenceError as exc:
        assert "customer" in exc.render()
    else:
        assert any("customer" in w.render() for w in project.parsed.warnings)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["ref(", "'a'", '"b"', "'c'", ", ", " ", "\n", ")", "x", "'", "ref( "]),
        max_size=14,
    )
)
def test_ref_positions_in_one_pass_are_where_the_search_per_name_finds_them(pieces) -> None:
    from cadence.load.positions import ref_position, ref_positions

    text = "".join(pieces)
    found = ref_positions(text)
    for name in ("a", "b", "c", "a'"):
        assert (found.get(name) or ref_position(text, name)) == ref_position(text, name), text


# --- a view or ephemeral whose SQL depends on the run (SPEC §4) ----------------------------

RUN_MACROS = {
    "macros/windows.sql": (
        "{% macro since(hours) %}timestamptz '{{ run_started_at - modules.datetime."
        "timedelta(hours=hours) }}'{% endmacro %}\n"
        "{% macro stamp() %}{{ return(modules.datetime.datetime.now().strftime('%Y%m%d')) }}"
        "{% endmacro %}\n"
        "{% macro first_of_month() %}{{ return(run_started_at.day == 1) }}{% endmacro %}\n"
    )
}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("select 1 as x", ""),
        ("select '{{ this }}' as me, {{ var('n', 3) }} as n", ""),
        ("{% if false %}{{ run_started_at }}{% endif %}select 1 as x", ""),
        ("select timestamptz '{{ run_started_at }}' as t", "run_started_at"),
        ("select '{{ tick.isoformat() }}' as t", "tick"),
        ("select {{ since(2) }} as t", "run_started_at"),  # through a macro
        ("select '{{ stamp() }}' as d", "modules.datetime"),  # the clock, through a macro
        ("select '{{ modules.datetime.date.today() }}' as d", "modules.datetime"),
        ("select '{{ invocation_id }}' as run", "invocation_id"),
        ("{% set t = var('as_of', run_started_at) %}select '{{ t }}' as t", "run_started_at"),
        ("select {{ 1 if first_of_month() else 0 }} as monthly", "run_started_at"),
        ("select {{ 1 if tick < run_started_at else 0 }} as late", "tick"),
    ],
)
@pytest.mark.parametrize("materialized", ["view", "ephemeral"])
def test_a_view_or_ephemeral_whose_sql_depends_on_the_run_is_flagged(
    make_project, materialized, body, why
):
    project = load(
        make_project,
        {
            **RUN_MACROS,
            "models/m.sql": f"{{{{ config(materialized='{materialized}') }}}}\n{body}\n",
        },
    )
    model = project.parsed.model("m")
    assert model.run_dependent == why
    assert model.per_run == bool(why)  # rendered again for each run that compiles it


def test_a_table_is_rendered_per_run_but_not_flagged_as_a_run_dependent_view(make_project):
    model = load(make_project, {"models/t.sql": "select '{{ run_started_at }}' as t\n"}).parsed
    assert model.model("t").per_run and model.model("t").run_dependent == ""


def test_a_run_value_read_without_instrumentation_is_found_by_a_second_render(
    make_project, monkeypatch
):
    """Whatever makes the text differ between two runs counts, not only the names that say
    they were read (a future ``run_query``): the parser renders again at another run."""
    from cadence.load import context

    monkeypatch.setattr(context, "reads_run", lambda name: context.current_render.get())
    project = load(
        make_project,
        {
            "models/v.sql": "{{ config(materialized='view') }}\n"
            "select '{{ run_started_at }}' as t\n",
            "models/w.sql": "{{ config(materialized='view') }}\nselect 1 as x\n",
        },
    )
    assert project.parsed.model("v").run_dependent == "renders differently at two run times"
    assert project.parsed.model("v").per_run
    assert project.parsed.model("w").run_dependent == ""


def test_the_clock_in_models_reads_the_run_time_not_the_machine_clock(make_project):
    """``modules.datetime`` now/today/utcnow are the run's time (``--at`` replays them)."""
    project = load(
        make_project,
        {
            "models/t.sql": "select '{{ modules.datetime.datetime.now() }}' as local_now,\n"
            "'{{ modules.datetime.datetime.utcnow() }}' as utc_now,\n"
            "'{{ modules.datetime.date.today() }}' as today\n",
        },
    )
    sql = project.compiler.compile("t", at("2026-03-02T00:30"), None).sql
    assert "'2026-03-02 00:30:00' as local_now" in sql
    assert "'2026-03-01 23:30:00' as utc_now" in sql
    assert "'2026-03-02' as today" in sql
