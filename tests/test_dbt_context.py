"""The Jinja context dbt models use (SPEC §12), rendered at load (dbt's parse: ``execute`` false)
in a dbt project; each expected value is what dbt 1.11 compiled for the same text (``execute``
and ``run_query`` as its parse sees them)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from cadence.errors import CadenceError
from cadence.project import Project

FIXTURE = Path(__file__).parent / "projects" / "dbt_shop"

CASES = [
    ("{{ target.name }}.{{ target.schema }}.{{ target.type }}", "dev.main.duckdb"),
    ("{{ target.database }}|{{ target.profile_name }}|{{ target.threads }}", "shop|dbt_shop|1"),
    ("{{ local_md5('abc') }}", "900150983cd24fb0d6963f7d28e17f72"),
    ("{{ tojson({'a': [1, 2]}) }}", '{"a": [1, 2]}'),
    ("{{ fromjson('{\"x\": 3}')['x'] + 1 }}", "4"),
    ("{{ fromyaml('a: [1, 2]')['a'][1] }}", "2"),
    ("{{ toyaml({'k': 'v'}) | trim }}", "k: v"),
    ("{{ modules.datetime.date(2024, 2, 29).isoformat() }}", "2024-02-29"),
    ("{{ modules.re.sub('a+', 'b', 'caaat') }}", "cbt"),
    ("{{ execute }}", "False"),
    ("{{ run_query('select 1') is none }}", "True"),
    ("{{ adapter.quote('x y') }}", '"x y"'),
    ("{{ api.Column.translate_type('string') }}", "TEXT"),
    ("{{ this }}", '"shop"."main"."probe_13"'),
    ("{{ this.database }}.{{ this.schema }}.{{ this.identifier }}", "shop.main.probe_14"),
    ("{{ ref('stg_orders').identifier }}", "stg_orders"),
    ("{{ config.get('materialized') }}", "view"),  # dbt_project.yml's folder config
    ("{{ var('min_amount_cents') }}", "0"),
    ("{{ project_name }}", "dbt_shop"),
    ("{% set xs = set([1, 1, 2]) %}{{ xs | length }}", "2"),
    ("{% for a, b in zip([1, 2], ['x', 'y']) %}{{ a }}{{ b }}{% endfor %}", "1x2y"),
    ("{{ log('hello', info=true) }}{{ print('hi') }}", ""),
    ('{{ dbt.string_literal(dbt.escape_single_quotes("it\'s")) }}', "'it''s'"),
    ("{{ default__generate_schema_name('raw', none) }}", "main_raw"),
    ("{{ generate_schema_name(none, none) }}", "main"),
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("ctx") / "dbt_shop"
    shutil.copytree(FIXTURE, root)
    for i, (text, _expected) in enumerate(CASES):
        (root / "models" / "staging" / f"probe_{i:02d}.sql").write_text(
            "{{ config(alias='probe_" + f"{i:02d}" + "') }}" + text
        )
    project = Project.load(root, use_cache=False)
    return {
        text: project.parsed.model(f"probe_{i:02d}").rendered for i, (text, _) in enumerate(CASES)
    }  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_context_renders_as_dbt(rendered: dict[str, str], text: str, expected: str) -> None:
    assert rendered[text] == expected


def test_raise_compiler_error_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "dbt_shop"
    shutil.copytree(FIXTURE, root)
    (root / "models" / "bad.sql").write_text(
        "select 1\n{{ exceptions.raise_compiler_error('no good: ' ~ target.name) }}\n"
    )
    with pytest.raises(CadenceError) as info:
        Project.load(root, use_cache=False)
    text = info.value.render()
    assert "models/bad.sql:2" in text and "no good: dev" in text


def test_dispatch_to_nothing_says_what_it_searched(tmp_path: Path) -> None:
    root = tmp_path / "dbt_shop"
    shutil.copytree(FIXTURE, root)
    (root / "models" / "bad.sql").write_text("select {{ adapter.dispatch('nope', 'minipkg')() }}\n")
    with pytest.raises(CadenceError) as info:
        Project.load(root, use_cache=False)
    assert "dbt_shop.duckdb__nope, dbt_shop.default__nope, minipkg.duckdb__nope" in str(info.value)


def test_a_packages_vars_and_macros_come_first_in_its_models(tmp_path: Path) -> None:
    root = tmp_path / "dbt_shop"
    shutil.copytree(FIXTURE, root)
    package = root / "dbt_packages" / "minipkg"
    (package / "dbt_project.yml").write_text(
        (package / "dbt_project.yml").read_text() + "vars:\n  pkg_only: 7\n  shared: package\n"
    )
    (root / "dbt_project.yml").write_text(
        (root / "dbt_project.yml")
        .read_text()
        .replace("vars:\n", "vars:\n  shared: root\n  minipkg:\n    scoped: 9\n")
    )
    (package / "models" / "pkg_vars.sql").write_text(
        "select {{ var('pkg_only') }} as a, '{{ var('shared') }}' as b, {{ var('scoped') }} as c,"
        " {{ twice(1) }} as d\n"
    )
    project = Project.load(root, use_cache=False)
    model = project.parsed.model("pkg_vars")
    assert model is not None and model.package == "minipkg"
    # the root project's vars win over the package's own; scoped ones apply to it alone
    assert model.rendered == "select 7 as a, 'root' as b, 9 as c, (1 * 2) as d\n"
    assert model.relation == '"main_pkg"."pkg_vars"'


def test_invocation_id_renders_again_per_run(tmp_path: Path) -> None:
    root = tmp_path / "dbt_shop"
    shutil.copytree(FIXTURE, root)
    (root / "models" / "stamped.sql").write_text("select '{{ invocation_id }}' as inv\n")
    project = Project.load(root)
    model = project.parsed.model("stamped")
    assert model is not None and model.per_run
    at = dt.datetime(2026, 3, 2, 5, tzinfo=dt.timezone.utc)
    first = project.compiler.compile("stamped", at, invocation_id="run-1").sql
    second = project.compiler.compile("stamped", at, invocation_id="run-2").sql
    assert first == "select 'run-1' as inv\n" and second == "select 'run-2' as inv\n"
