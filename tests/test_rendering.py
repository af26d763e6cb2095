"""Rendering: every way a model is rendered resolves refs, sources, vars, macros and ``this``
the same (issue 7 item 1): the static fast path, the full Jinja render at load, the per-run
render in the compiler (incremental, ``run_started_at``, ``tick``), singular tests, forked parse
workers and a project loaded from the cache.

Jinja runs sandboxed (SPEC §6): no template (model, macro, YAML, test, cadence.yml) reaches
Python internals or a module, the static fast path included; dbt's Jinja keeps working."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cadence.errors import CadenceError
from cadence.load import forking
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
VARIANTS = ("variant_static", "variant_jinja", "variant_subset", "variant_perrun")


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
        "variant_jinja": body + "{{ '' | lower }}",  # a filter: compiled by Jinja
        "variant_subset": body + "{# a comment: Jinja's parse, the subset evaluator #}",
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
from cadence.load import forking
from cadence.project import Project
from tests.test_rendering import NOW, TICK, _compiled_everywhere
forking.PARALLEL_PARSE_MIN = 0  # render in forked workers
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


# -- the subset evaluator (evaluator.Subset): the same text as Jinja's compiled template --------

SUBSET_MACROS = (("macros/m.sql", "{% macro shout(x) %}upper('{{ x }}'){% endmacro %}\n"),)
DATA = st.text(alphabet="ab ,'\n\t-()", max_size=6)
LITERAL = st.one_of(
    st.integers(-3, 12).map(str),
    st.sampled_from(["'x'", '"y z"', "none", "true", "false", "1.5", "''"]),
    st.lists(st.integers(0, 3).map(str), max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.lists(st.sampled_from(["'a'", "'b'"]), min_size=1, max_size=3).map(
        lambda xs: "(" + ",".join(xs) + ",)"
    ),
)
CALLS = st.sampled_from(
    [
        "ref('up')",
        "ref('pkg', 'other')",
        "source('app', 'events')",
        "var('v')",
        "var('nope', 'dflt')",
        "config(materialized='table', tags=['t'])",
        "shout('q')",
        "env_var('CADENCE_SUBSET_ENV', 'fb')",
        "this",
    ]
)
OPEN = st.sampled_from(["{{", "{{-", "{{ "])
CLOSE = st.sampled_from(["}}", "-}}", " }}"])
TAG_OPEN = st.sampled_from(["{%", "{%-"])
TAG_CLOSE = st.sampled_from(["%}", "-%}"])
# outside the subset: the template is compiled by Jinja (and must still come out the same)
OUTSIDE = st.sampled_from(
    ["'a' | upper", "1 + 2", "this.identifier", "[1, 2] | join('-')", "range(2) | list"]
)


@st.composite
def _expression(draw, names: tuple[str, ...], in_loop: bool) -> str:
    choices = [LITERAL, CALLS]
    if names:
        choices.append(st.sampled_from(names))
    if in_loop:
        choices.append(st.sampled_from(["loop.index", "loop.first", "loop.last", "loop.length"]))
    atom = st.one_of(*choices)
    kind = draw(st.sampled_from(["atom", "atom", "compare", "concat", "cond", "not", "bool"]))
    a, b = draw(atom), draw(atom)
    if kind == "compare":
        op = draw(st.sampled_from(["==", "!=", "<", ">=", "in", "not in"]))
        return f"{a} {op} {b}"
    if kind == "concat":
        return f"{a} ~ {b}"
    if kind == "cond":
        return f"{a} if {b} else {draw(atom)}"
    if kind == "not":
        return f"not {a}"
    if kind == "bool":
        return f"{a} {draw(st.sampled_from(['and', 'or']))} {b}"
    return a


@st.composite
def _block(draw, names: tuple[str, ...], depth: int, in_loop: bool, outside: bool) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["data", "out", "out", "for", "if", "comment"]))
        if kind == "data":
            parts.append(draw(DATA))
        elif kind == "comment":
            parts.append("{# note #}")
        elif kind == "out":
            expr = draw(OUTSIDE) if outside and draw(st.booleans()) else None
            expr = expr or draw(_expression(names, in_loop))
            parts.append(f"{draw(OPEN)} {expr} {draw(CLOSE)}")
        elif kind == "for" and depth < 2:
            var = f"v{depth}"
            values = draw(st.one_of(st.sampled_from(names or ("[1, 2]",)), LITERAL))
            body = draw(_block((*names, var), depth + 1, True, outside))
            parts.append(
                f"{draw(TAG_OPEN)} for {var} in {values} {draw(TAG_CLOSE)}{body}"
                f"{draw(TAG_OPEN)} endfor {draw(TAG_CLOSE)}"
            )
        elif kind == "if" and depth < 2:
            test = draw(_expression(names, in_loop))
            body = draw(_block(names, depth + 1, in_loop, outside))
            other = draw(_block(names, depth + 1, in_loop, outside))
            parts.append(
                f"{draw(TAG_OPEN)} if ({test}) {draw(TAG_CLOSE)}{body}"
                f"{draw(TAG_OPEN)} elif ({draw(_expression(names, in_loop))}) {draw(TAG_CLOSE)}"
                f"{draw(DATA)}{draw(TAG_OPEN)} else {draw(TAG_CLOSE)}{other}"
                f"{draw(TAG_OPEN)} endif {draw(TAG_CLOSE)}"
            )
    return "".join(parts)


@st.composite
def _template(draw, outside: bool) -> str:
    names: tuple[str, ...] = ()
    parts = []
    for i in range(draw(st.integers(0, 2))):
        parts.append(f"{{% set s{i} = {draw(LITERAL)} %}}{draw(DATA)}")
        names = (*names, f"s{i}")
    parts.append(draw(_block(names, 0, False, outside)))
    return "".join(parts) + draw(st.sampled_from(["", "\n", "\n\n"]))


class _NoPlans(dict):
    def get(self, key, default=None):
        return (None, False)  # no tree: Jinja compiles the text, as before the evaluator


def _outcome(text: str, compiled: bool) -> tuple[object, ...]:
    """What rendering ``text`` gives: the text and what the render recorded, or the error."""
    from cadence.load import context, relations, rendering

    env = rendering.ModelEnvironment({"v": 42}, SUBSET_MACROS, {"schema": "main"})
    env.set_sources([("app", "events", '"raw"."events"')])
    if compiled:  # the code before the evaluator: every template compiled by Jinja
        env._plans = _NoPlans()
    this = relations.Relation("main", "m", '"main"."m"')
    state = context.RenderState(file="models/m.sql", this=this)
    try:
        out: object = env.render(text, state)
    except CadenceError as exc:
        out = ("error", exc.message, exc.line)
    return out, state.refs, state.sources, state.config, state.env_vars, state.this_used


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_template(outside=False))
def test_the_subset_evaluator_renders_what_jinja_renders(text: str) -> None:
    from cadence.load import evaluator, rendering

    env = rendering.ModelEnvironment({"v": 42}, SUBSET_MACROS, {"schema": "main"})
    tree, subset = evaluator.Subset(env).plan(text)
    assert tree is not None and subset, text  # every generated template is in the subset
    assert _outcome(text, compiled=False) == _outcome(text, compiled=True), text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_template(outside=True))
def test_templates_outside_the_subset_render_as_before(text: str) -> None:
    assert _outcome(text, compiled=False) == _outcome(text, compiled=True), text


@pytest.mark.parametrize(
    "text",
    [
        "{% for x in 3 %}{{ x }}{% endfor %}",  # not iterable: Jinja's TypeError
        "{% for x in [1] %}{{ ref(x) }}{% endfor %}\n{{ source('app', 'nope') }}",
        "{% set a = 1 %}{% set a = 2 %}{{ a }}",  # set twice: compiled
        "{{ b }}{% set b = 1 %}",  # read before it is set: Jinja's undefined
        "{% for x in [1, 2] %}{% set y = x %}{{ y }}{% endfor %}",  # set inside a loop
        "{% for loop in [1] %}{{ loop }}{% endfor %}",
        "{% set loop = 1 %}{% for x in [1] %}{{ loop }}{% endfor %}",
        "{% for x in [1] %}{{ loop }}{% endfor %}",
        "{% for a, b in [(1, 2)] %}{{ a }}{{ b }}{% endfor %}",
        "{% for x in [1, 2] if x > 1 %}{{ x }}{% endfor %}",
        "{% for x in [] %}{{ x }}{% else %}empty{% endfor %}",
        "{% if x %}{% endif %}",
        "{% if true %}{{ undefined_name }}{% endif %}",
        "{% set ref = 1 %}{{ ref }}",
        "{{ config(materialized=undefined_thing) }}{% if true %}{% endif %}",
        "{% for x in [1] %}{{ shout(x) ~ shout('y') }}{% endfor %}",
        "{% raw %}{{ not rendered }}{% endraw %}{% if true %}x{% endif %}",
        "{% if true %}\n  {%- for x in [1,2] -%}\n  {{ x }},\n  {%- endfor %}\n{% endif %}",
        "{% if %}",  # a syntax error: reported with its line as before
        "line\n{% for x in [1] %}\n{{ env_var('CADENCE_SUBSET_UNSET') }}{% endfor %}",
    ],
)
def test_the_subset_evaluator_edge_cases(text: str) -> None:
    assert _outcome(text, compiled=False) == _outcome(text, compiled=True)


WORKER_SIGNALS = """
import json, os, signal
from cadence.cli import signals
from cadence.load import forking

def handlers(item):
    names = {signal.SIG_IGN: "ignored", signal.SIG_DFL: "default"}
    return [os.getpid()] + [names.get(signal.getsignal(s), "cadence's") for s in signals.SIGNALS]

forking.PARALLEL_PARSE_MIN = 0
signals.interrupt_on_signals()  # as a command runs: a signal raises where the work is
found = forking.map_models(handlers, [(i, None) for i in range(8)])
print(json.dumps({"workers": [r[1:] for r in found if r[0] != os.getpid()],
                  "parent": handlers(None)[1:]}))
"""


def test_forked_workers_leave_signals_to_the_run() -> None:
    """The workers that render a large project ignore Ctrl-C (the run handles it) and die at
    the pool's SIGTERM: with cadence's handlers inherited, a worker could outlive the SIGTERM
    the pool ends it with, and the load waited for it forever (a cold 1,000-model run hung)."""
    done = subprocess.run(
        [sys.executable, "-c", WORKER_SIGNALS],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["workers"] and all(w == ["ignored", "default"] for w in found["workers"])
    assert found["parent"] == ["cadence's", "cadence's"]


@pytest.mark.parametrize("delay", [0.2, 0.4, 0.6])
def test_ctrl_c_during_a_forked_render_exits_130_and_leaves_no_worker(tmp_path, delay) -> None:
    """A large project renders in forked workers; Ctrl-C (SIGINT to the process group, as a
    terminal sends it) while they work ends the run with 130 and takes its workers along."""
    root = tmp_path / "big"
    (root / "models").mkdir(parents=True)
    (root / "cadence.yml").write_text(
        "name: big\nwarehouse: {engine: duckdb, path: warehouse.duckdb, threads: 1}\n"
        "channels:\n  email: {cadence: 'daily at 05:00'}\n"
    )
    for i in range(forking.PARALLEL_PARSE_MIN + 700):
        body = "{% set n = " + str(i) + " %}select {{ n }} as id, '{{ 'x' * 3 }}' as t\n"
        (root / "models" / f"m{i:04d}.sql").write_text(body)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cadence", "ls", "--project-dir", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's job
    )
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err  # 0: it had finished before the signal
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _processes_naming(str(root)):
        time.sleep(0.1)
    assert _processes_naming(str(root)) == []


def _processes_naming(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found
