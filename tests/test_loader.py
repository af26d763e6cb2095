"""Loading a project from disk (SPEC §2): cadence.yml validation, folder defaults, env vars."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import DEFAULT_CADENCE_YML, at

from cadence.errors import CadenceError, ProjectErrors
from cadence.project import Project

ONE_MODEL = {"models/staging/stg.sql": "select 1 as id\n"}


def load_error(make_project, cadence_yml: str, files: dict[str, str] | None = None) -> CadenceError:
    root = make_project(files if files is not None else ONE_MODEL, cadence_yml)
    with pytest.raises(CadenceError) as info:
        Project.load(root)
    return info.value


def test_default_project_loads_channels_timezone_and_warehouse(make_project):
    project = Project.load(make_project(ONE_MODEL))
    config = project.parsed.config
    assert config.name == "testproj"
    assert config.timezone == "Europe/Berlin"
    assert [(c.name, c.cadence) for c in config.channels] == [
        ("email", "daily at 05:00"),
        ("ads", "every 4 hours"),
        ("web", "every 15 minutes"),
        ("routing", "every 5 minutes"),
    ]
    assert config.warehouse.engine == "duckdb"
    assert config.warehouse.path == "warehouse.duckdb"


def test_project_is_found_from_a_sub_folder(make_project):
    root = make_project(ONE_MODEL)
    project = Project.load(root / "models" / "staging")
    assert project.root == root.resolve()
    assert project.model_names() == ["stg"]


def test_missing_project_file_is_an_error_with_a_hint(tmp_path: Path):
    with pytest.raises(CadenceError) as info:
        Project.load(tmp_path)
    assert "no cadence.yml or dbt_project.yml found" in info.value.message
    assert "cadence init" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("edit", "line", "message", "hint"),
    [
        pytest.param(
            lambda y: y + "chanels: {}\n",
            9,
            "unknown cadence.yml key 'chanels'",
            "did you mean 'channels'?",
            id="top-level",
        ),
        pytest.param(
            lambda y: y.replace("path: warehouse.duckdb", "pth: warehouse.duckdb"),
            2,
            "unknown warehouse key 'pth'",
            "did you mean 'path'?",
            id="warehouse",
        ),
        pytest.param(
            lambda y: y.replace('{cadence: "every 4 hours"', '{cadance: "every 4 hours"'),
            6,
            "unknown channel key 'cadance'",
            "did you mean 'cadence'?",
            id="channel",
        ),
        pytest.param(
            lambda y: y + "models:\n  staging: {+materialised: view}\n",
            10,
            "unknown config key '+materialised' in folder defaults",
            "did you mean 'materialized'?",
            id="folder-defaults-plus",
        ),
        pytest.param(
            lambda y: y + "models:\n  staging:\n    materialised: view\n",
            11,
            "unknown config key 'materialised' in folder defaults",
            "did you mean 'materialized'?",
            id="folder-defaults",
        ),
    ],
)
def test_unknown_keys_are_errors_with_did_you_mean(make_project, edit, line, message, hint):
    error = load_error(make_project, edit(DEFAULT_CADENCE_YML))
    rendered = error.render()
    assert f"cadence.yml:{line}: error: {message}" in rendered
    assert f"hint: {hint}" in rendered


def test_every_problem_in_cadence_yml_is_reported_at_once(make_project):
    yml = DEFAULT_CADENCE_YML.replace("Europe/Berlin", "Mars/Olympus") + "chanels: {}\nvar: {}\n"
    error = load_error(make_project, yml)
    assert isinstance(error, ProjectErrors)
    messages = [e.message for e in error.errors]
    assert "unknown timezone 'Mars/Olympus'" in messages
    assert "unknown cadence.yml key 'chanels'" in messages
    assert "unknown cadence.yml key 'var'" in messages
    assert error.render().endswith("3 errors found")


def test_bad_timezone_names_the_line_and_suggests_iana_names(make_project):
    error = load_error(make_project, DEFAULT_CADENCE_YML.replace("Europe/Berlin", "Mars/Olympus"))
    assert error.render().startswith("cadence.yml:3: error: unknown timezone 'Mars/Olympus'")
    assert "IANA" in (error.hint or "")


def test_cadence_yml_must_be_a_mapping(make_project):
    error = load_error(make_project, "- just\n- a list\n")
    assert "must be a mapping" in error.message
    assert error.file == "cadence.yml"


def test_bad_channel_cadence_names_the_channel_and_the_accepted_forms(make_project):
    error = load_error(
        make_project, DEFAULT_CADENCE_YML.replace("every 4 hours", "every four hours")
    )
    rendered = error.render()
    assert "cadence.yml:6: error: unknown cadence 'every four hours' (for channel ads)" in rendered
    assert "did you mean 'every 4 hours'?" in rendered
    assert "daily at HH:MM" in rendered


def test_warehouse_path_env_var_default_is_used_when_unset(make_project, monkeypatch):
    monkeypatch.delenv("CADENCE_TEST_WH", raising=False)
    yml = DEFAULT_CADENCE_YML.replace(
        "path: warehouse.duckdb", "path: \"{{ env_var('CADENCE_TEST_WH', 'fallback.duckdb') }}\""
    )
    project = Project.load(make_project(ONE_MODEL, yml))
    assert project.parsed.config.warehouse.path == "fallback.duckdb"


def test_warehouse_path_env_var_is_read_and_the_run_writes_there(make_project, monkeypatch):
    yml = DEFAULT_CADENCE_YML.replace(
        "path: warehouse.duckdb", "path: \"{{ env_var('CADENCE_TEST_WH', 'fallback.duckdb') }}\""
    )
    monkeypatch.setenv("CADENCE_TEST_WH", "from_env.duckdb")
    root = make_project(ONE_MODEL, yml)
    project = Project.load(root)
    assert project.parsed.config.warehouse.path == "from_env.duckdb"
    result = project.run(at("2026-01-10T10:00"))
    assert [r.status for r in result.results] == ["success"]
    assert (root / "from_env.duckdb").exists()
    assert not (root / "fallback.duckdb").exists()


def test_warehouse_env_var_without_default_must_be_set(make_project, monkeypatch):
    monkeypatch.delenv("CADENCE_TEST_UNSET", raising=False)
    yml = DEFAULT_CADENCE_YML.replace(
        "path: warehouse.duckdb", "path: \"{{ env_var('CADENCE_TEST_UNSET') }}\""
    )
    error = load_error(make_project, yml)
    assert error.render().startswith(
        "cadence.yml:2: error: environment variable 'CADENCE_TEST_UNSET' is not set"
    )
    assert "CADENCE_TEST_UNSET" in (error.hint or "")


FOLDERS = {
    "models/top.sql": "select 1 as id\n",
    "models/staging/stg.sql": "select 1 as id\n",
    "models/staging/deep/eph.sql": "select 1 as id\n",
    "models/staging/deep/own.sql": "{{ config(materialized='table') }}\nselect 1 as id\n",
    "models/marts/mart.sql": "select 1 as id\n",
}


def test_folder_defaults_nearest_folder_wins_with_and_without_plus(make_project):
    yml = DEFAULT_CADENCE_YML + (
        "models:\n"
        "  +materialized: view\n"
        "  staging:\n"
        "    +materialized: table\n"
        "    deep:\n"
        "      materialized: ephemeral\n"
        "  marts: {materialized: table}\n"
    )
    project = Project.load(make_project(FOLDERS, yml))
    mats = {m.name: m.materialized for m in project.parsed.models}
    assert mats == {
        "top": "view",
        "stg": "table",
        "eph": "ephemeral",
        "own": "table",
        "mart": "table",
    }


def test_folder_defaults_may_nest_under_the_project_name_like_dbt(make_project):
    yml = DEFAULT_CADENCE_YML + "models:\n  testproj:\n    staging:\n      +materialized: view\n"
    project = Project.load(make_project(FOLDERS, yml))
    assert project.parsed.model("stg").materialized == "view"
    assert project.parsed.model("mart").materialized == "table"  # the built-in default


def test_folder_defaults_for_a_missing_folder_suggest_the_closest(make_project):
    error = load_error(
        make_project, DEFAULT_CADENCE_YML + "models:\n  stagin: {materialized: view}\n", FOLDERS
    )
    assert "folder defaults name models/stagin, which does not exist" in error.message
    assert error.hint == "did you mean 'staging'?"


def test_folder_default_channels_reach_every_model_below(make_project):
    yml = DEFAULT_CADENCE_YML + "models:\n  marts: {+channels: [email]}\n"
    project = Project.load(make_project(FOLDERS, yml))
    assert project.parsed.model("mart").config.channels == ("email",)
    assert project.parsed.model("stg").config.channels == ()


@pytest.mark.parametrize(
    ("history", "message", "hint"),
    [
        ("{keep_day: 90}", "unknown history key 'keep_day'", "did you mean 'keep_days'?"),
        ("{keep_days: 0}", "history.keep_days must be a whole number of days", "keep_days: 90"),
        ("{keep_days: '90'}", "got '90'", "keep_days: 90"),
        ("{keep_days: true}", "got True", "keep_days: 90"),
        ("90", "'history' must be a mapping", "history: {keep_days: 90}"),
    ],
)
def test_history_keep_days_is_validated(make_project, history, message, hint):
    root = make_project({"models/m.sql": "select 1 as id\n"}, DEFAULT_CADENCE_YML + f"history: {history}\n")
    with pytest.raises(CadenceError) as exc:
        Project.load(root, use_cache=False)
    text = exc.value.render()
    assert message in text and hint in text and "cadence.yml:" in text


def test_history_keep_days_is_read(make_project):
    root = make_project({"models/m.sql": "select 1 as id\n"}, DEFAULT_CADENCE_YML + "history: {keep_days: 90}\n")
    assert Project.load(root, use_cache=False).parsed.config.history_keep_days == 90


WAREHOUSE_YML = """\
name: p
timezone: UTC
warehouse:
  engine: duckdb
  {line}
"""


@pytest.mark.parametrize(
    "line, message",
    [
        ("threads: 100000", "threads: 100000 is more than cadence allows (64)"),
        ("threads: 0", "threads must be a whole number from 1 to 64, not 0"),
        ("threads: many", "threads must be a whole number from 1 to 64, not 'many'"),
        ("threads: true", "threads must be a whole number from 1 to 64, not True"),
        ("settings: {threads: 100000}", "settings.threads: threads: 100000 is more than"),
        ("settings: {worker_threads: -1}", "settings.worker_threads: threads must be"),
    ],
)
def test_absurd_thread_counts_name_cadence_yml_and_line(make_project, line, message):
    error = load_error(make_project, WAREHOUSE_YML.format(line=line))
    assert error.file == "cadence.yml"
    assert error.line == 5
    assert message in error.message
    assert "1 to 64" in (error.hint or "")


def test_threads_on_the_command_line_are_bounded_too(make_project, cli):
    root = make_project(ONE_MODEL)
    result = cli(root, "run", "--threads", "100000", "--at", "2026-03-02T05:00")
    assert result.exit_code == 2
    assert "--threads: threads: 100000 is more than cadence allows (64)" in result.output
    assert not (root / "warehouse.duckdb").exists()  # refused before anything was opened
    with pytest.raises(CadenceError, match="more than cadence allows"):
        Project.load(root).run(at("2026-03-02T05:00"), threads=100000)


@pytest.mark.parametrize("tz", ["x" * 300, "Europe/" + "x" * 300, "../../etc/passwd", "Europe", ""])
def test_timezones_that_are_not_iana_names_are_errors(make_project, tz):
    error = load_error(make_project, f"name: p\ntimezone: '{tz}'\n")
    assert error.file == "cadence.yml" and error.line == 2
    assert error.message.startswith("unknown timezone")
    assert len(error.message) < 100  # a 300-character value is cut, not echoed


@pytest.mark.parametrize(
    "path, message",
    [
        ("{{ env_var() }}", "env_var() needs the name of an environment variable"),
        ("{{ 1/0 }}", "ZeroDivisionError"),
        ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", "SecurityError"),
        ("{{ nope(", "TemplateSyntaxError"),
    ],
)
def test_bad_templates_in_the_warehouse_path_are_errors(make_project, path, message):
    yml = f'name: p\nwarehouse:\n  engine: duckdb\n  path: "{path}"\n'
    error = load_error(make_project, yml)
    assert error.file == "cadence.yml" and error.line == 4
    assert message in error.message
    assert "env_var('NAME', 'default')" in (error.hint or "")


@pytest.mark.parametrize(
    "value", ["['httpfs; drop table x']", "['../../evil']", "[{a: 1}]", "{a: 1}", '[""]']
)
def test_extension_names_are_identifiers(make_project, value):
    error = load_error(make_project, f"name: p\nwarehouse:\n  extensions: {value}\n")
    assert error.file == "cadence.yml" and error.line == 3
    assert "extension" in error.message


def test_a_valid_extension_loads_and_a_missing_one_is_exit_2(make_project, cli):
    ok = make_project(ONE_MODEL, "name: p\nwarehouse:\n  extensions: json\n")
    assert Project.load(ok).parsed.config.warehouse.extensions == ("json",)
    assert cli(ok, "run", "--at", "2026-03-02T05:00").exit_code == 0
    bad = make_project(ONE_MODEL, "name: p\nwarehouse:\n  extensions: [no_such_extension]\n")
    result = cli(bad, "run", "--at", "2026-03-02T05:00")
    assert result.exit_code == 2
    assert "cadence.yml: error: cannot load DuckDB extension 'no_such_extension'" in result.output


@pytest.mark.parametrize(
    ("cost", "message", "hint"),
    [
        ("{per_compute_hour: 0.4, curency: EUR}", "unknown cost key 'curency'", "'currency'"),
        ("{per_compute_hour: -1}", "cost.per_compute_hour must be a number", "0.40"),
        ("{per_compute_hour: '0.40'}", "got '0.40'", "per_compute_hour: 0.40"),
        ("{currency: EUR}", "got None", "per_compute_hour: 0.40"),
        ("{per_compute_hour: 1, currency: '<b>'}", "cost.currency must be a short", "EUR"),
        ("0.40", "'cost' must be a mapping", "cost: {per_compute_hour: 0.40, currency: EUR}"),
    ],
)
def test_cost_is_validated(make_project, cost, message, hint):
    yml = DEFAULT_CADENCE_YML + f"cost: {cost}\n"
    root = make_project({"models/m.sql": "select 1 as id\n"}, yml)
    with pytest.raises(CadenceError) as exc:
        Project.load(root, use_cache=False)
    text = exc.value.render()
    assert message in text and hint in text and "cadence.yml:" in text


def test_cost_is_read(make_project):
    from cadence.load.costconfig import CostConfig

    yml = DEFAULT_CADENCE_YML + "cost: {per_compute_hour: 0.40, currency: EUR}\n"
    root = make_project({"models/m.sql": "select 1 as id\n"}, yml)
    assert Project.load(root, use_cache=False).parsed.config.cost == CostConfig(0.4, "EUR")
    root = make_project({"models/m.sql": "select 1 as id\n"})
    assert Project.load(root, use_cache=False).parsed.config.cost is None
