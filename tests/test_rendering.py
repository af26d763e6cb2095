"""Jinja runs sandboxed (SPEC §6): no template (model, macro, YAML, test, cadence.yml) reaches
Python internals or a module, the static fast path included; dbt's Jinja keeps working."""

from __future__ import annotations

from pathlib import Path

import pytest

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
