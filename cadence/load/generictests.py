"""Custom generic tests: dbt's ``{% test name(model, column_name, ...) %}`` blocks.

Input: the text of a macro file (macros/, tests/generic/) -> output: the same text with each
``{% test name(...) %}...{% endtest %}`` written as ``{% macro test_name(...) %}...{% endmacro %}``
(as dbt compiles them; line numbers unchanged), so the block loads like any macro. Then, at
parse time, ``GenericTests`` finds the macro a YAML test names (``is_positive``, or
``package.is_positive``) and renders it with dbt's arguments -- ``model`` (the tested relation,
narrowed by ``where`` to ``(select * from ... where ...) dbt_subquery``), ``column_name`` and the
test's own arguments, those that read like ``ref(...)``/``source(...)``/``var(...)`` evaluated
first -- into the SQL of the failing rows, with ref placeholders the compiler later resolves
(the tested model's to its staging relation while a build is gated). Also dbt's synthesized
test names. Used by ``rendering`` (the text) and ``testspecs`` (resolution and rendering).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from cadence.errors import CadenceError
from cadence.load.relations import Relation, ref_token

_TEST_OPEN = re.compile(r"({%[-+]?\s*)test(\s+)([A-Za-z_]\w*)(\s*\()")
_TEST_CLOSE = re.compile(r"({%[-+]?\s*)endtest(\s*[-+]?%})")
# test arguments dbt evaluates as an expression before passing them (e.g. ``to: ref('x')``)
_LOOKS_LIKE_CALL = re.compile(r"^\s*(env_var|ref|var|source|doc)\s*\(.+\)\s*$", re.S)
_TEST_NAME = re.compile(r"^(?:([A-Za-z_]\w*)\.)?([A-Za-z_]\w*)$")


def as_macros(text: str) -> str:
    """``{% test x(...) %}`` -> ``{% macro test_x(...) %}``, ``{% endtest %}`` -> ``endmacro``."""
    if "test" not in text:
        return text
    text = _TEST_OPEN.sub(
        lambda m: f"{m.group(1)}macro{m.group(2)}test_{m.group(3)}{m.group(4)}", text
    )
    return _TEST_CLOSE.sub(lambda m: f"{m.group(1)}endmacro{m.group(2)}", text)


def synthesized_name(kind: str, target: str, args: dict[str, Any]) -> str:
    """dbt's name for a generic test without ``name:``: the test, the model and the flattened
    argument values (``accepted_values_orders_status__placed__shipped``)."""
    flat: list[str] = []
    for key in sorted(args):
        value = args[key]
        if isinstance(value, dict):
            parts = list(value.values())
        elif isinstance(value, (list, tuple)):
            parts = list(value)
        else:
            parts = [value]
        flat.extend(str(p) for p in parts)
    unique = "__".join(re.sub("[^0-9a-zA-Z_]+", "_", p) for p in flat)
    return f"{kind}_{target}_{unique}"


def short_name(full: str, kind: str, target: str) -> str:
    """dbt's file-safe short form of a long test name (first 30 chars + md5)."""
    if len(full) < 64:
        return full
    return f"{(kind + '_' + target)[:30]}_{hashlib.md5(full.encode()).hexdigest()}"  # noqa: S324


class GenericTests:
    """The custom generic tests an environment holds, and how to render one."""

    def __init__(self, env: Any) -> None:  # a rendering.ModelEnvironment (which imports this)
        self.env = env

    def find(self, kind: str) -> Any:
        """The macro implementing test ``kind`` (``name`` or ``package.name``), or None."""
        m = _TEST_NAME.match(kind)
        if m is None:
            return None
        namespace, name = m.groups()
        globals_ = self.env.env.globals
        if namespace is not None:
            holder = globals_.get(namespace)
            found = _member(holder, f"test_{name}") if holder is not None else None
            if found is not None:
                return found
            return None
        return globals_.get(f"test_{name}") if f"test_{name}" in self.env.macro_names else None

    def package_with(self, kind: str) -> str | None:
        """The installed package that defines test ``kind`` (a name without package), when the
        project itself does not: dbt finds such a test only as ``package.kind``."""
        for name, holder in self.env.env.globals.items():
            # a package's macros (load.dbt); asked of the class: proxies such as `this` answer
            # any attribute only inside a render
            has = getattr(type(holder), "has_macro", None)
            if callable(has) and has(holder, f"test_{kind}"):
                return str(name)
        return None

    def render(
        self,
        macro: Any,
        kind: str,
        model: str,
        relation: Relation,
        column: str | None,
        where: str | None,
        args: dict[str, Any],
        file: str,
        line: int | None,
    ) -> tuple[str, tuple[str, ...]]:
        """The failing-rows SQL of one test and the refs it reads (the tested model first)."""
        from cadence.load.context import RenderState, current_render

        state = RenderState(file=file)
        state.refs.append(model)
        token = current_render.set(state)
        try:
            kwargs = {k: self._argument(k, v, file) for k, v in args.items()}
            if column is not None:
                kwargs["column_name"] = column
            target: Any = relation
            if where:
                target = f"(select * from {relation} where {where}) dbt_subquery"
            sql = str(macro(model=target, **kwargs))
        except CadenceError as exc:
            exc.file, exc.line = file, line
            exc.message = f"test '{kind}' on '{model}': {exc.message}"
            raise
        except Exception as exc:  # noqa: BLE001 - the test macro is user code
            raise CadenceError(
                f"test '{kind}' on '{model}' failed to render: {type(exc).__name__}: {exc}",
                file=file,
                line=line,
                hint="check the arguments the test is given against its "
                f"{{% test {kind.split('.')[-1]}(model, column_name, ...) %}} signature",
            ) from None
        finally:
            current_render.reset(token)
        return sql, tuple(state.refs)

    def _argument(self, key: str, value: Any, file: str) -> Any:
        if isinstance(value, dict):
            return {k: self._argument(k, v, file) for k, v in value.items()}
        if isinstance(value, list):
            return [self._argument(key, v, file) for v in value]
        if not isinstance(value, str) or key == "column_name":
            return value
        if _LOOKS_LIKE_CALL.match(value):
            return self._evaluate(value.strip(), file)
        if "{{" in value or "{%" in value:
            from cadence.load.context import current_render

            return self.env.render(value, current_render.get())
        return value

    def _evaluate(self, expression: str, file: str) -> Any:
        """``ref('x')`` -> the relation (a placeholder until compile), ``var('y')`` -> its value
        (a list stays a list), as dbt's native rendering gives them."""
        import ast

        try:
            node = ast.parse(expression, mode="eval").body
            assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        except (SyntaxError, ValueError, AssertionError, TypeError):
            from cadence.load.context import current_render

            return self.env.render("{{ " + expression + " }}", current_render.get())
        function: Any = self.env.env.globals[node.func.id]
        return function(*args, **kwargs)


def _member(holder: Any, name: str) -> Any:
    if isinstance(holder, dict):
        return holder.get(name)
    try:
        return getattr(holder, name, None)
    except Exception:  # noqa: BLE001 - a proxy (`this`) answers only inside a render
        return None


def test_model_relation(model: str) -> Relation:
    """What ``model`` stands for in a test rendered at load time: a placeholder the compiler
    resolves to the live relation (``cadence test``) or the staging one (a gated build)."""
    return Relation(None, model, ref_token(model))
