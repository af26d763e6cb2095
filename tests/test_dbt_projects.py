"""A dbt project is a cadence project (SPEC §12): dbt_project.yml and the profile are read,
relations are named as dbt names them, packages installed in dbt_packages/ load, cadence.yml is
optional and adds channels, and cadence's own files stay out of dbt's way.

The fixture tests/projects/dbt_shop is a small dbt-duckdb project written for these tests (with a
package of its own in dbt_packages/); tests/golden/dbt_shop.relations.json is what
``dbt seed && dbt run`` (dbt 1.11, dbt-duckdb 1.11) built from it. ``test_dbt_itself_agrees``
runs dbt again when it is installed (``dbt`` on PATH or ``DBT_EXECUTABLE``), else is skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cadence.disk import artifacts
from cadence.errors import CadenceError
from cadence.load.layout import LoadOptions
from cadence.project import Project
from tests.conftest import read_run_results

FIXTURE = Path(__file__).parent / "projects" / "dbt_shop"
GOLDEN = json.loads((Path(__file__).parent / "golden" / "dbt_shop.relations.json").read_text())
AT = dt.datetime(2026, 3, 2, 5, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    root = tmp_path / "dbt_shop"
    shutil.copytree(FIXTURE, root)
    return root


def relations(db: Path) -> list[dict[str, Any]]:
    """Every user relation of a DuckDB file: schema, name, type, columns, rows."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        found = con.execute(
            "select schema_name, table_name, 'table' from duckdb_tables() where not internal "
            "union all select schema_name, view_name, 'view' from duckdb_views() "
            "where not internal order by 1, 2"
        ).fetchall()
        out = []
        for schema, name, kind in found:
            if schema == "_cadence":
                continue
            columns = con.execute(
                "select column_name, data_type from duckdb_columns() where schema_name = ? "
                "and table_name = ? order by column_index",
                [schema, name],
            ).fetchall()
            order = ", ".join(str(i + 1) for i in range(len(columns)))
            rows = con.execute(f'select * from "{schema}"."{name}" order by {order}').fetchall()
            out.append(
                {
                    "schema": schema,
                    "name": name,
                    "type": kind,
                    "columns": [{"name": c, "type": t} for c, t in columns],
                    "row_count": len(rows),
                    "rows": [[_plain(v) for v in r] for r in rows],
                }
            )
        return out
    finally:
        con.close()


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def test_a_dbt_project_builds_what_dbt_builds(shop: Path) -> None:
    """Same relations in the same schemas (seeds with +schema: raw in main_raw, a package's
    models with its +schema, a config(schema=...) model, an alias), same column names and types
    (seeds typed as dbt-duckdb types them), same rows; the dbt namespace, dispatch and the
    package's macros render as in dbt."""
    project = Project.load(shop)
    result = project.run(AT)
    assert result.ok, [r.error for r in result.results if r.error]
    assert relations(shop / "shop.duckdb") == GOLDEN["relations"]


def test_cadence_keeps_its_files_under_target_cadence(shop: Path) -> None:
    (shop / "target").mkdir()
    (shop / "target" / "run_results.json").write_text('{"dbt": "its own"}')
    Project.load(shop).run(AT)
    own = artifacts.target_dir(shop)
    assert own == shop / "target" / "cadence"
    assert {"run_results.json", "manifest.json", "state_snapshot.json"} <= {
        p.name for p in own.iterdir()
    }
    assert (shop / "target" / "run_results.json").read_text() == '{"dbt": "its own"}'
    assert not (shop / "target" / "manifest.json").exists()
    assert (own / "compiled" / "models" / "staging" / "stg_orders.sql").is_file()


def test_dbt_target_path_moves_them(shop: Path) -> None:
    text = (shop / "dbt_project.yml").read_text()
    (shop / "dbt_project.yml").write_text(text + 'target-path: "build_out"  # dbt writes here\n')
    Project.load(shop).run(AT)
    assert (shop / "build_out" / "cadence" / "run_results.json").is_file()
    assert not (shop / "target").exists()


def test_disabled_by_a_jinja_config_value_and_enabled_by_vars(shop: Path) -> None:
    """``+enabled: "{{ var('enable_optional', false) }}"`` is rendered, read as a boolean."""
    assert Project.load(shop).parsed.model("optional_model") is None
    enabled = Project.load(shop, options=LoadOptions(vars=(("enable_optional", True),)))
    model = enabled.parsed.model("optional_model")
    assert model is not None and model.materialized == "view"


def test_a_folder_tag_that_is_not_a_list_is_read_as_one_tag(shop: Path) -> None:
    """``+tags: 3`` in dbt_project.yml: one tag '3', as the config merge reads it (it was an
    internal error while naming the models, exit 3)."""
    yml = shop / "dbt_project.yml"
    yml.write_text(
        yml.read_text().replace("      +schema: marts\n", "      +schema: marts\n      +tags: 3\n")
    )
    assert "3" in Project.load(shop, use_cache=False).parsed.model("customer_totals").config.tags


def test_cli_vars_win_over_the_projects(shop: Path) -> None:
    options = LoadOptions(vars=(("min_amount_cents", 1000),))
    project = Project.load(shop, options=options)
    assert project.run(AT).ok
    con = duckdb.connect(str(shop / "shop.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from main.stg_orders").fetchone() == (2,)
    finally:
        con.close()


def test_target_chooses_the_profile_output(shop: Path) -> None:
    project = Project.load(shop, options=LoadOptions(target="other"))
    assert project.parsed.config.warehouse.path == "other.duckdb"
    by_name = {m.name: m for m in project.parsed.models}
    assert by_name["customer_totals"].relation == '"analytics_marts"."dim_customer_totals"'
    assert {s.name: s.schema for s in project.parsed.seeds} == {
        "customers": "analytics_raw",
        "orders": "analytics_raw",
    }


def test_profiles_are_found_in_dbts_order(
    shop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".dbt").mkdir(parents=True)
    profile = (shop / "profiles.yml").read_text()
    (home / ".dbt" / "profiles.yml").write_text(profile.replace("shop.duckdb", "home.duckdb"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "profiles.yml").write_text(profile.replace("shop.duckdb", "env.duckdb"))
    flag = tmp_path / "flag"
    flag.mkdir()
    (flag / "profiles.yml").write_text(profile.replace("shop.duckdb", "flag.duckdb"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DBT_PROFILES_DIR", raising=False)

    def path(**options: Any) -> str:
        return Project.load(shop, options=LoadOptions(**options)).parsed.config.warehouse.path

    assert path() == "shop.duckdb"  # the project folder
    monkeypatch.setenv("DBT_PROFILES_DIR", str(elsewhere))
    assert path() == "env.duckdb"
    assert path(profiles_dir=str(flag)) == "flag.duckdb"  # --profiles-dir wins
    monkeypatch.delenv("DBT_PROFILES_DIR")
    (shop / "profiles.yml").unlink()
    assert path() == "home.duckdb"  # ~/.dbt last


def test_cadence_yml_adds_channels_over_dbt_configs(shop: Path) -> None:
    (shop / "cadence.yml").write_text(
        "timezone: Europe/Berlin\n"
        "channels:\n  email: {cadence: 'daily at 05:00', kind: email}\n"
        "models:\n  dbt_shop:\n    marts:\n      +channels: [email]\n"
        "      customer_totals:\n        +key: customer_id\n"
    )
    project = Project.load(shop)
    totals = project.parsed.model("customer_totals")
    assert totals is not None
    assert totals.config.channels == ("email",) and totals.config.key == "customer_id"
    assert totals.materialized == "table"  # dbt_project.yml's, under cadence.yml's
    assert project.parsed.config.timezone == "Europe/Berlin"
    assert project.parsed.config.warehouse.path == "shop.duckdb"  # still the profile's


def test_cadence_yml_warehouse_replaces_the_profile(shop: Path) -> None:
    (shop / "profiles.yml").unlink()
    (shop / "cadence.yml").write_text("warehouse: {path: mine.duckdb, schema: analytics}\n")
    project = Project.load(shop)
    assert project.parsed.config.warehouse.path == "mine.duckdb"
    assert {s.schema for s in project.parsed.seeds} == {"analytics_raw"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"profiles.yml": None}, "no profiles.yml found for profile 'dbt_shop'"),
        (
            {"profiles.yml": "dbt_shop:\n  target: dev\n  outputs:\n    dev: {type: postgres}\n"},
            "of type 'postgres'; cadence runs dbt projects on DuckDB",
        ),
        (
            {
                "profiles.yml": "dbt_shop:\n  outputs:\n    dev: {type: duckdb, path: x.duckdb, "
                "attach: [{path: other.duckdb}]}\n  target: dev\n"
            },
            "profile key 'attach' (dbt_shop.dev) is not supported",
        ),
        (
            {
                "packages.yml": "packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.3.0\n"
                "  - local: minipkg_src\n"
            },
            "2 package(s) are specified in packages.yml, but only 1 are installed",
        ),
        (
            {"models/py_model.py": "def model(dbt, session):\n    return None\n"},
            "Python models are not supported",
        ),
        (
            {"dbt_project.yml": "name: dbt_shop\nprofile: dbt_shop\nmodle-paths: [models]\n"},
            "unknown dbt_project.yml key 'modle-paths'",
        ),
    ],
)
def test_what_cadence_cannot_run_is_an_error_naming_it(
    shop: Path, change: dict[str, str | None], message: str
) -> None:
    for rel, text in change.items():
        if text is None:
            (shop / rel).unlink()
        else:
            (shop / rel).write_text(text)
    with pytest.raises(CadenceError) as info:
        Project.load(shop, use_cache=False)
    assert message in info.value.render()


def test_the_projects_own_generate_schema_name_decides(shop: Path) -> None:
    (shop / "macros" / "naming.sql").write_text(
        "{% macro generate_schema_name(custom_schema_name, node) -%}\n"
        "  {%- if custom_schema_name is none -%}{{ target.schema }}"
        "{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}\n"
        "{%- endmacro %}\n"
    )
    project = Project.load(shop)
    assert {s.schema for s in project.parsed.seeds} == {"raw"}
    by_name = {m.name: m.schema for m in project.parsed.models}
    assert by_name["customer_totals"] == "marts" and by_name["stg_orders"] == "main"


def test_a_cached_load_imports_no_dbt_code(shop: Path) -> None:
    """The idle ``run --due`` path: a load the cache serves never imports cadence.load.dbt."""
    script = (
        "import sys\nfrom cadence.project import Project\n"
        f"p = Project.load({str(shop)!r})\n"
        "print(p.parsed.config.warehouse.path, p.parsed.config.is_dbt, "
        "any(m.startswith('cadence.load.dbt') for m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert run() == "shop.duckdb True True"  # the first load reads the dbt files
    assert run() == "shop.duckdb True False"  # then the cache serves it
    profile = (shop / "profiles.yml").read_text()
    (shop / "profiles.yml").write_text(profile.replace("shop.duckdb", "x.duckdb"))
    assert run() == "x.duckdb True True"  # a changed profile is an input like any other


def test_env_var_in_a_profile_is_never_cached(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_DB", "secret_name_4242")
    (shop / "profiles.yml").write_text(
        (shop / "profiles.yml")
        .read_text()
        .replace("path: shop.duckdb", "path: \"{{ env_var('SHOP_DB') }}.duckdb\"")
    )
    assert Project.load(shop).parsed.config.warehouse.path == "secret_name_4242.duckdb"
    cache = (artifacts.target_dir(shop) / "manifest.json").read_bytes()
    assert b"secret_name_4242" not in cache
    assert Project.load(shop).parsed.config.warehouse.path == "secret_name_4242.duckdb"
    monkeypatch.setenv("SHOP_DB", "other")
    assert Project.load(shop).parsed.config.warehouse.path == "other.duckdb"


def _dbt() -> str | None:
    return os.environ.get("DBT_EXECUTABLE") or shutil.which("dbt")


@pytest.mark.skipif(_dbt() is None, reason="dbt is not installed (set DBT_EXECUTABLE)")
def test_dbt_itself_agrees(tmp_path: Path) -> None:
    """Runs dbt seed && dbt run on the fixture and cadence on a copy: same relations."""
    dbt_root, cadence_root = tmp_path / "dbt", tmp_path / "cadence"
    shutil.copytree(FIXTURE, dbt_root)
    shutil.copytree(FIXTURE, cadence_root)
    env = {**os.environ, "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    for command in ("seed", "run"):
        done = subprocess.run(
            [str(_dbt()), "--no-use-colors", command, "--profiles-dir", "."],
            cwd=dbt_root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-2000:]
    assert Project.load(cadence_root).run(AT).ok
    assert relations(cadence_root / "shop.duckdb") == relations(dbt_root / "shop.duckdb")


def test_every_command_takes_vars_target_and_profiles_dir(shop: Path, cli: Any) -> None:
    result = cli(shop, "ls", "--vars", "{enable_optional: true}")
    assert result.exit_code == 0 and "optional_model" in result.output
    assert "optional_model" not in cli(shop, "ls").output
    other = shop.parent / "profiles_elsewhere"
    other.mkdir()
    (other / "profiles.yml").write_text(
        (shop / "profiles.yml").read_text().replace("shop.duckdb", "elsewhere.duckdb")
    )
    result = cli(shop, "run", "--profiles-dir", str(other), "--target", "dev", "--at", "2026-03-02")
    assert result.exit_code == 0, result.output
    assert (shop / "elsewhere.duckdb").is_file() and not (shop / "shop.duckdb").exists()
    result = cli(shop, "plan", "--target", "nope")
    assert result.exit_code == 2
    assert "target 'nope' is not in profile 'dbt_shop'" in result.output
    result = cli(shop, "status", "--vars", "[not a mapping]")
    assert result.exit_code == 2 and "--vars must be a mapping" in result.output


def test_target_is_only_for_dbt_projects(make_project: Any, cli: Any) -> None:
    root = make_project({"models/m.sql": "select 1 as id\n"})
    result = cli(root, "ls", "--target", "prod")
    assert result.exit_code == 2
    assert "--target is for dbt projects" in result.output


def test_init_inside_a_dbt_project_adds_cadence_yml(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from cadence.cli import main

    monkeypatch.chdir(shop)
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in shop.iterdir() if p.is_dir()) == [
        "dbt_packages",
        "macros",
        "models",
        "seeds",
        "tests",
    ]  # no demo sub-folder
    text = (shop / "cadence.yml").read_text()
    assert "dbt_shop:\n    +channels: [daily]" in text
    project = Project.load(shop)
    totals = project.parsed.model("customer_totals")
    assert totals is not None and totals.config.channels == ("daily",)
    again = CliRunner().invoke(main, ["init"])
    assert again.exit_code == 2 and "already exists" in again.output


def test_a_channel_over_some_models_builds_exactly_them_at_its_ticks(shop: Path, cli: Any) -> None:
    """cadence.yml adds a channel over one dbt model; ``run --due`` replayed over ticks builds
    that model (and what it reads, when never built) at the channel's ticks, and nothing else."""
    (shop / "cadence.yml").write_text(
        "timezone: UTC\nchannels:\n  ads: {cadence: every 4 hours, kind: ads}\n"
        "models:\n  dbt_shop:\n    marts:\n      customer_totals:\n        +channels: [ads]\n"
    )
    built: dict[str, set[str]] = {}
    for at in ("00:00", "00:30", "03:59", "04:00", "04:01", "08:00", "09:00"):
        result = cli(shop, "run", "--due", "--at", f"2026-03-02T{at}")
        assert result.exit_code == 0, result.output
        built[at] = (
            {r["name"] for r in read_run_results(shop)["results"] if r["status"] == "success"}
            if "built" in result.output
            else set()
        )
    first = {"stg_customers", "stg_orders", "customer_totals"}  # seeds are not in run_results
    assert built == {
        "00:00": first,
        "00:30": set(),
        "03:59": set(),
        "04:00": {"customer_totals"},
        "04:01": set(),
        "08:00": {"customer_totals"},
        "09:00": set(),
    }


INTROSPECTED = """\
{{ config(materialized='table') }}
{%- set cols = adapter.get_columns_in_relation(ref('stg_customers')) -%}
{%- set counted = run_query("select count(*) as n from " ~ ref('stg_orders')) -%}
select
  {% for c in cols if c.name != 'score' %}{{ adapter.quote(c.name) }}, {% endfor %}
  {{ counted.columns[0].values()[0] if execute else 0 }} as n_orders,
  '{{ this.schema }}.{{ this.identifier }}' as me,
  {{ 'true' if adapter.get_relation(this.database, 'main', 'stg_orders') else 'false' }} as found
from {{ ref('stg_customers') }}
"""


def test_run_query_and_adapter_read_the_warehouse_during_a_run(shop: Path) -> None:
    """``execute`` is false while the project loads (dbt's parse) and true during the run, when
    ``run_query`` and ``adapter`` read the warehouse; dbt 1.11 built the same rows."""
    (shop / "models" / "marts" / "introspected.sql").write_text(INTROSPECTED)
    project = Project.load(shop)
    model = project.parsed.model("introspected")
    assert model is not None and model.per_run  # rendered again per run
    assert project.run(AT).ok
    rows = [r for r in relations(shop / "shop.duckdb") if r["name"] == "introspected"]
    assert rows[0]["schema"] == "main_marts"
    assert [(c["name"], c["type"]) for c in rows[0]["columns"]] == [
        *(("customer_id", "INTEGER"), ("name", "VARCHAR"), ("zip", "VARCHAR")),
        *(("signed_up", "DATE"), ("active", "BOOLEAN"), ("n_orders", "INTEGER")),
        *(("me", "VARCHAR"), ("found", "BOOLEAN")),
    ]
    assert rows[0]["rows"][0] == [
        1,
        "Ada",
        "01234",
        "2024-01-05",
        True,
        4,
        "main_marts.introspected",
        True,
    ]


def test_analyses_are_compiled_not_run(shop: Path, cli: Any) -> None:
    (shop / "analyses").mkdir()
    (shop / "analyses" / "big_orders.sql").write_text(
        "select * from {{ ref('stg_orders') }} where amount > {{ var('min_amount_cents') }}\n"
    )
    result = cli(shop, "compile")
    assert result.exit_code == 0, result.output
    compiled = shop / "target" / "cadence" / "compiled" / "analyses" / "big_orders.sql"
    assert compiled.read_text() == 'select * from "shop"."main"."stg_orders" where amount > 0\n'
    assert not (shop / "shop.duckdb").exists()  # nothing was run


def test_a_model_without_materialized_is_a_view_as_in_dbt(tmp_path: Path) -> None:
    """Before: a table (cadence's default) where dbt builds a view."""
    (tmp_path / "models").mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: v\nprofile: v\n")
    (tmp_path / "profiles.yml").write_text(
        "v:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: v.duckdb}\n"
    )
    (tmp_path / "models" / "m.sql").write_text("select 1 as id\n")
    model = Project.load(tmp_path).parsed.model("m")
    assert model is not None and model.materialized == "view"


def test_config_paths_that_apply_to_nothing_are_warnings(shop: Path, cli: Any) -> None:
    text = (shop / "dbt_project.yml").read_text()
    (shop / "dbt_project.yml").write_text(
        text.replace("    optional:\n", "    stagign:\n      +tags: [x]\n    optional:\n")
        + "sources:\n  dbt_shop:\n    +enabled: false\n"
    )
    lint = cli(shop, "lint")
    assert "warning: the config path 'dbt_shop.stagign' applies to no resource" in lint.output
    assert "sources config enabled in dbt_project.yml is not applied by cadence" in lint.output


def test_a_snapshots_custom_schema_is_named_as_dbt_names_it(shop: Path) -> None:
    (shop / "snapshots").mkdir()
    (shop / "snapshots" / "snap.sql").write_text(
        "{% snapshot cust_snap %}\n{{ config(schema='snap', unique_key='customer_id',"
        " strategy='check', check_cols='all') }}\nselect * from {{ ref('customers') }}\n"
        "{% endsnapshot %}\n"
    )
    assert Project.load(shop).parsed.model("cust_snap").relation == '"main_snap"."cust_snap"'  # type: ignore[union-attr]
    (shop / "macros" / "naming.sql").write_text(
        "{% macro generate_schema_name(custom_schema_name, node) -%}"
        "{{ custom_schema_name or target.schema }}{%- endmacro %}\n"
    )
    assert Project.load(shop).parsed.model("cust_snap").relation == '"snap"."cust_snap"'  # type: ignore[union-attr]


def test_a_folder_configs_unknown_key_is_reported_once(shop: Path, cli: Any) -> None:
    """A folder config applies to every model in the folder; its bad key is one problem."""
    text = (shop / "dbt_project.yml").read_text()
    (shop / "dbt_project.yml").write_text(
        text.replace("      +schema: marts\n", "      +schema: marts\n      +materialise: view\n")
    )
    result = cli(shop, "run")
    assert result.exit_code == 2
    assert result.output.count("unknown config key 'materialise'") == 1
    assert "errors found" not in result.output


def test_a_jinja_error_in_a_config_value_names_its_line(shop: Path) -> None:
    text = (shop / "dbt_project.yml").read_text()
    (shop / "dbt_project.yml").write_text(
        text.replace("      +schema: marts\n", '      +schema: "{{ nope( }}"\n')
    )
    line = 1 + (shop / "dbt_project.yml").read_text().splitlines().index(
        '      +schema: "{{ nope( }}"'
    )
    with pytest.raises(CadenceError) as info:
        Project.load(shop, use_cache=False)
    assert f"dbt_project.yml:{line}: error: Jinja syntax error" in info.value.render()


def test_a_profile_setting_duckdb_refuses_names_the_profile(shop: Path, cli: Any) -> None:
    profile = shop / "profiles.yml"
    text = profile.read_text()
    profile.write_text(
        text.replace(
            "path: shop.duckdb\n", "path: shop.duckdb\n      settings: {no_such_setting: 1}\n"
        )
    )
    (shop / "cadence.yml").write_text("timezone: UTC\n")
    result = cli(shop, "run")
    assert result.exit_code == 2
    assert "profiles.yml: error: cannot open the warehouse" in result.output
    assert "cadence.yml" not in result.output


def test_a_problem_file_in_a_package_is_named_by_its_path_in_the_project(shop: Path) -> None:
    package = next((shop / "dbt_packages").iterdir())
    (package / "macros").mkdir(exist_ok=True)
    os.mkfifo(package / "macros" / "piped.sql")
    with pytest.raises(CadenceError) as info:
        Project.load(shop, use_cache=False)
    rel = f"dbt_packages/{package.name}/macros/piped.sql"
    assert f"{rel}: error: is a FIFO (named pipe)" in info.value.render()


@pytest.mark.parametrize(
    "block",
    [
        "models:\n  dbt_shop:\n    cust_snap:\n      +cadence: daily\n      +channels: [email]\n",
        "snapshots:\n  dbt_shop:\n    +cadence: daily\n    cust_snap:\n      +channels: [email]\n",
    ],
)
def test_cadence_yml_configures_snapshots(shop: Path, cli: Any, block: str) -> None:
    """cadence.yml gives a snapshot a cadence and channels without a dbt file edited: a
    ``models:`` path naming it, or a ``snapshots:`` block of dbt's form (SPEC §12)."""
    (shop / "snapshots").mkdir()
    (shop / "snapshots" / "snap.sql").write_text(
        "{% snapshot cust_snap %}\n{{ config(unique_key='customer_id',"
        " strategy='check', check_cols='all') }}\nselect * from {{ ref('customers') }}\n"
        "{% endsnapshot %}\n"
    )
    (shop / "cadence.yml").write_text(
        "channels:\n  email: {cadence: 'daily at 05:00', kind: email}\n" + block
    )
    snap = Project.load(shop, use_cache=False).parsed.model("cust_snap")
    assert snap is not None
    assert snap.config.channels == ("email",) and snap.config.cadence == "daily"
    lint = cli(shop, "lint")
    assert "applies to no resource" not in lint.output
    assert "error" not in lint.output


UNIT_TEST = """
unit_tests:
  - name: totals_add_up
    model: customer_totals
    given:
      - input: ref('stg_orders')
        rows: [{customer_id: 1, amount: 5}]
    expect:
      rows: [{customer_id: 1}]
  - name: reads_totals
    model: stg_customers
    given:
      - input: ref('customer_totals')
        rows: [{customer_id: 1}]
    expect:
      rows: [{customer_id: 1}]
"""


@pytest.mark.parametrize("problem", ["fifo", "symlink", "folder_config"])
def test_only_the_real_error_is_reported(shop: Path, cli: Any, problem: str) -> None:
    """A seed that cannot be read, or a folder config that breaks its models, is one error:
    refs to them are not 'unknown', unit tests of them do not 'name nothing'."""
    (shop / "models" / "units.yml").write_text("version: 2\n" + UNIT_TEST)
    if problem == "fifo":
        (shop / "seeds" / "customers.csv").unlink()
        os.mkfifo(shop / "seeds" / "customers.csv")
        real = "is a FIFO"
    elif problem == "symlink":
        (shop / "seeds" / "customers.csv").unlink()
        (shop / "seeds" / "customers.csv").symlink_to(shop.parent / "elsewhere.csv")
        real = "customers.csv"
    else:
        text = (shop / "dbt_project.yml").read_text()
        (shop / "dbt_project.yml").write_text(
            text.replace("      +schema: marts\n", "      +schema: \"{{ var('nope') }}\"\n")
        )
        real = "nope"
    result = cli(shop, "run")
    assert result.exit_code == 2
    assert real in result.output
    assert "error:" in result.output
    assert result.output.count("error:") == 1, result.output
    assert "unknown ref" not in result.output and "did you mean 'stg_" not in result.output
    assert "no model or seed of that name" not in result.output
    assert "unknown model" not in result.output
