"""Rendering: every way a model is rendered resolves refs, sources, vars, macros and ``this``
the same (issue 7 item 1): the static fast path, the full Jinja render at load, the per-run
render in the compiler (incremental, ``run_started_at``, ``tick``), singular tests, forked parse
workers and a project loaded from the cache.

Jinja runs sandboxed (SPEC §6): no template (model, macro, YAML, test, cadence.yml) reaches
Python internals or a module, the static fast path included; dbt's Jinja keeps working."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadence.errors import CadenceError
from cadence.project import Project

ESCAPES = [
    "cycler.__init__.__globals__.os.popen('touch PWNED').read()",
    "joiner.__init__.__globals__['os'].system('touch PWNED')",
    "modules.datetime.sys.modules['os'].system('touch PWNED')",
    "modules.re.enum.sys.modules['os'].system('touch PWNED')",
    "modules['re']['enum']",
    "this.__class__.__mro__[1].__subclasses__()",
    "ref('a').__class__.__init__.__globals__",
    "config.__call__.__globals__",
    "''.__class__.__mro__[1].__subclasses__()",
    "lipsum.__globals__['os'].system('touch PWNED')",
    "namespace.__init__.__globals__",
    "exceptions.raise_compiler_error.__globals__",
]


def load_error(root: Path) -> CadenceError:
    with pytest.raises(CadenceError) as info:
        Project.load(root, use_cache=False)
    errors = getattr(info.value, "errors", (info.value,))
    assert len(errors) == 1, info.value.render()
    return errors[0]


@pytest.mark.parametrize("expression", ESCAPES)
def test_a_model_cannot_reach_python_internals(make_project, monkeypatch, expression):
    root = make_project(
        {
            "models/a.sql": "select 1 as id\n",
            "models/x.sql": f"select 1\n-- {{{{ {expression} }}}}\n",
        }
    )
    monkeypatch.chdir(root)
    error = load_error(root)
    assert error.file == "models/x.sql" and error.line == 2
    assert not (root / "PWNED").exists()


@pytest.mark.parametrize("expression", ESCAPES[:4])
def test_macros_yaml_and_tests_are_sandboxed_too(make_project, monkeypatch, expression):
    files = {
        "models/a.sql": "select {{ evil() }} as id\n",
        "macros/evil.sql": f"{{% macro evil() %}}{{{{ {expression} }}}}{{% endmacro %}}\n",
    }
    root = make_project(files)
    monkeypatch.chdir(root)
    with pytest.raises(CadenceError):
        Project.load(root, use_cache=False)
    assert not (root / "PWNED").exists()
    root = make_project(
        {
            "models/a.sql": "select 1 as id\n",
            "models/a.yml": "version: 2\nmodels:\n  - name: a\n    description: "
            f'"{{{{ {expression} }}}}"\n',
            "tests/t.sql": "select * from {{ ref('a') }} where 1 = 0\n",
        }
    )
    monkeypatch.chdir(root)
    with pytest.raises(CadenceError):
        Project.load(root, use_cache=False)
    assert not (root / "PWNED").exists()


def test_the_static_fast_path_is_no_way_around_the_sandbox(make_project, monkeypatch):
    # `{{ evil('id') }}` (a macro with literal arguments) is evaluated by the fast path, which
    # calls the macro directly: the macro itself must have been compiled in the sandbox
    root = make_project(
        {
            "models/x.sql": "select {{ evil('id') }} as id\n",
            "macros/evil.sql": "{% macro evil(c) %}{{ c }}{{ lipsum.__globals__['os']"
            ".system('touch PWNED') }}{% endmacro %}\n",
        }
    )
    monkeypatch.chdir(root)
    error = load_error(root)
    assert error.message.startswith("Jinja sandbox refused")
    assert not (root / "PWNED").exists()


def test_the_sandbox_error_says_why(make_project):
    root = make_project({"models/x.sql": "select 1\n{{ cycler.__init__.__globals__ }}\n"})
    error = load_error(root)
    assert error.message.startswith("Jinja sandbox refused")
    assert "Python internals" in (error.hint or "")


def test_dbt_jinja_keeps_working_in_the_sandbox(make_project):
    root = make_project(
        {
            "models/a.sql": "select 1 as id\n",
            "macros/cols.sql": """\
                {% macro cols(names) %}
                  {%- set out = [] -%}
                  {%- for n in names -%}{% do out.append(n ~ ' as ' ~ n ~ '_x') %}{%- endfor -%}
                  {{ return(out | join(', ')) }}
                {% endmacro %}
                """,
            "models/b.sql": """\
                {% set ns = namespace(total=0) %}
                {% for i in range(3) %}{% set ns.total = ns.total + i %}{% endfor %}
                {% set d = {} %}{% do d.update({'k': 'v'}) %}
                select {{ cols(['id']) }}, {{ ns.total }} as total, '{{ d.k }}' as k,
                  '{{ modules.datetime.date(2026, 3, 2).isoformat() }}' as day,
                  '{{ modules.re.sub('[0-9]', '', 'a1b2') }}' as letters,
                  '{{ "x,y".split(",") | join("-") }}' as parts
                from {{ ref('a') }}
                """,
        }
    )
    project = Project.load(root, use_cache=False)
    sql = project.parsed.model("b").rendered
    assert "id as id_x" in sql
    assert "3 as total" in sql and "'v' as k" in sql
    assert "'2026-03-02' as day" in sql and "'ab' as letters" in sql and "'x-y' as parts" in sql


NOW = dt.datetime(2026, 1, 2, 6, 0, tzinfo=dt.timezone.utc)
TICK = dt.datetime(2026, 1, 2, 5, 0, tzinfo=dt.timezone.utc)

SOURCES_YML = """\
sources:
  - name: app
    schema: raw
    tables: [{name: events}]
"""


def test_incremental_model_reads_source_schema_on_every_build(make_project, cli) -> None:
    """The repro of issue 7 item 1: the second (incremental) build used "app"."events"."""
    root = make_project(
        {
            "models/_sources.yml": SOURCES_YML,
            "models/inc.sql": "{{ config(materialized='incremental') }}\n"
            "select * from {{ source('app', 'events') }}\n",
        },
        "name: t\nwarehouse: {path: w.duckdb, threads: 1}\ntimezone: UTC\n",
    )
    con = duckdb.connect(str(root / "w.duckdb"))
    con.execute("create schema raw; create table raw.events as select 1 as id")
    con.close()
    for at in ("2026-01-01T06:00", "2026-01-02T06:00"):
        result = cli(root, "run", "--at", at)
        assert result.exit_code == 0, result.output
    compiled = (root / "target/compiled/models/inc.sql").read_text()
    assert '"raw"."events"' in compiled and '"app"' not in compiled
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    assert con.execute("select count(*) from inc").fetchone() == (2,)
    con.close()


def test_this_names_the_configured_relation_at_load(make_project) -> None:
    """config(schema=..., alias=...) decides `this`, also when the model is rendered once."""
    root = make_project(
        {"models/m.sql": "{{ config(schema='seg', alias='m_tbl') }}\nselect '{{ this }}' as t\n"}
    )
    compiled = Project.load(root, use_cache=False).compiler.compile("m", NOW, TICK).sql
    assert '\'"seg"."m_tbl"\'' in compiled


PIECES = (
    "select 1 as a",
    "{{ ref('up') }}",
    "{{ ref('eph') }}",
    "{{ source('app', 'events') }}",
    "{{ source('app','events').identifier }}",
    "{{ var('v') }}",
    "{{ var('nope', 'dflt') }}",
    "{{ shout('x') }}",
    "{{ env_var('CADENCE_RENDER_PT', 'fallback') }}",
    "{% set n = 2 %}{{ n * 3 }}",
    "{{ ref('up') | string }}",
    "{{ 'lit' }}",
    "{{ this }}",
    "{{ this.identifier }}",
)
THIS_PIECES = ("{{ this }}", "{{ this.identifier }}")
PER_RUN = "{% if is_incremental() %}{% endif %}{{ '' if run_started_at else '' }}"
VARIANTS = ("variant_static", "variant_jinja", "variant_perrun")


def _project(
    root: Path, body: str, materialized: str, schema: str | None, alias: bool, eph_per_run: bool
) -> None:
    root.mkdir()
    (root / "cadence.yml").write_text(
        "name: pt\nwarehouse: {path: w.duckdb, threads: 1}\ntimezone: UTC\n"
        "vars: {v: 42}\n" + (f"models:\n  segs: {{schema: {schema}}}\n" if schema else "")
    )
    (root / "models" / "segs").mkdir(parents=True)
    (root / "macros").mkdir()
    (root / "tests").mkdir()
    (root / "macros" / "m.sql").write_text(
        "{% macro shout(x) %}upper('{{ x }}') /* {{ var('v') }} */{% endmacro %}\n"
    )
    (root / "models" / "_sources.yml").write_text(SOURCES_YML)
    (root / "models" / "up.sql").write_text("select 1 as id\n")
    (root / "models" / "eph.sql").write_text(
        "{{ config(materialized='ephemeral') }}\nselect * from {{ source('app', 'events') }} "
        "where v = {{ var('v') }}" + (PER_RUN if eph_per_run else "") + "\n"
    )
    texts = {
        "variant_static": body,
        "variant_jinja": body + "{# a comment forces the full Jinja render #}",
        "variant_perrun": body + PER_RUN,
    }
    yml = ["models:"]
    for name, text in texts.items():
        (root / "models" / "segs" / f"{name}.sql").write_text(text)
        extra = f", alias: {name}_tbl" if alias else ""
        yml.append(f"  - name: {name}\n    config: {{materialized: {materialized}{extra}}}")
    (root / "models" / "segs" / "_models.yml").write_text("\n".join(yml) + "\n")
    test_body = body
    for piece in THIS_PIECES:
        test_body = test_body.replace(piece, "")
    (root / "models" / "segs" / "variant_test.sql").write_text(test_body)
    (root / "tests" / "check_variant.sql").write_text(test_body)


def _normalized(project: Project, name: str, sql: str) -> str:
    model = project.parsed.model(name)
    assert model is not None
    return sql.replace(model.relation, "THIS").replace(model.identifier, "IDENT")


FORKED = """
import json, sys
from cadence import parser
from cadence.project import Project
from tests.test_rendering import NOW, TICK, _compiled_everywhere
parser.PARALLEL_PARSE_MIN = 0  # render in forked workers
project = Project.load(sys.argv[1], use_cache=False)
print(json.dumps([[list(k), v] for k, v in _compiled_everywhere(project).items()]))
"""


def _forked(root: Path) -> dict[tuple[str, str, bool], str]:
    """The parse in forked workers, in a process of its own (forking the test process, which
    runs threads, could deadlock)."""
    done = subprocess.run(
        [sys.executable, "-c", FORKED, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    return {(k[0], k[1], k[2]): v for k, v in json.loads(done.stdout)}


def _compiled_everywhere(project: Project) -> dict[tuple[str, str, bool], str]:
    out = {}
    for name in VARIANTS:
        for incremental in (False, True):
            sql = project.compiler.compile(name, NOW, TICK, incremental).sql
            out[(name, "compile", incremental)] = _normalized(project, name, sql)
    return out


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    pieces=st.lists(st.sampled_from(PIECES), min_size=1, max_size=6),
    seps=st.lists(st.sampled_from([" ", "\n", ", ", "\n\n  "]), min_size=6, max_size=6),
    materialized=st.sampled_from(["table", "incremental", "view"]),
    schema=st.sampled_from([None, "custom"]),
    alias=st.booleans(),
    eph_per_run=st.booleans(),
)
def test_every_render_path_gives_the_same_sql(
    pieces: list[str],
    seps: list[str],
    materialized: str,
    schema: str | None,
    alias: bool,
    eph_per_run: bool,
) -> None:
    body = "".join(p + seps[i] for i, p in enumerate(pieces)) + "\n"
    tmp = Path(tempfile.mkdtemp(prefix="cadence-render-"))
    try:
        root = tmp / "p"
        _project(root, body, materialized, schema, alias, eph_per_run)
        fresh = Project.load(root, use_cache=False)  # in-process parse, then writes the cache
        fresh_again = Project.load(root)  # written by the load above: the cache path
        assert fresh_again.parsed is not fresh.parsed
        results = [_compiled_everywhere(p) for p in (fresh, fresh_again)]
        results.append(_forked(root))
        every = {sql for r in results for sql in r.values()}
        assert len(every) == 1, "\n----\n".join(sorted(every))
        sql = every.pop()
        if "source(" in body:
            assert '"raw"."events"' in sql or "events" in sql
            assert '"app".' not in sql
        if "ref('eph')" in body:
            assert '"raw"."events"' in sql and "42" in sql
        if "shout(" in body:
            assert "upper('x') /* 42 */" in sql
        # a singular test with the same text compiles to the same SQL as a model
        for project in (fresh, fresh_again):
            test = next(t for t in project.parsed.tests if t.name == "check_variant")
            as_test = project.compiler.compile_sql(test.sql or "", NOW)
            as_model = project.compiler.compile("variant_test", NOW, TICK).sql
            assert as_test.rstrip() == as_model.rstrip()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
