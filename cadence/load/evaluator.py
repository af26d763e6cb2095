"""Rendering without compiling: the evaluator for the templates most models are.

Input: a template's text and the environment it renders in (its globals and the project's macro
names) -> output: the rendered text, or None when Jinja must compile the template. Two paths:
``render_static`` evaluates a text whose only Jinja is ``{{ ref(...) }}``-style calls of the
static functions with literal arguments (as dbt's static parser does), and ``Subset`` evaluates
Jinja's own syntax tree when every node of it is in a small subset (set, for, if, literals,
names, those calls). Invariant: each calls the very globals Jinja would call and joins the same
``str()`` of each output, so the text and what the render records are byte for byte what the
compiled template gives (tests/test_rendering.py compares them). Used by ``rendering`` only.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any, Protocol

import jinja2
import jinja2.nodes

from cadence.errors import CadenceError

_EXPRESSION = re.compile(r"{{(.*?)}}", re.S)
_STATIC_FUNCTIONS = frozenset({"ref", "source", "config", "var", "env_var"})
_STATIC_NAMES = frozenset({"this", "run_started_at", "tick"})


class RenderEnvironment(Protocol):
    """What the evaluator reads of a ``rendering.ModelEnvironment``."""

    @property
    def env(self) -> jinja2.Environment: ...  # its globals are what a template calls

    @property
    def macro_names(self) -> dict[str, str]: ...  # a macro shadows a global of its name


def render_static(env: RenderEnvironment, text: str) -> str | None:
    """Most models only call ref/source/config/var with literal arguments: evaluate those
    calls directly (the same functions Jinja would call) instead of compiling a template.
    Anything else -- blocks, filters, whitespace control, expressions -- returns None and
    goes through Jinja. The output is identical either way (as dbt's static parser does)."""
    if "{%" in text or "{#" in text:
        return None
    pieces: list[str] = []
    pos = 0
    for m in _EXPRESSION.finditer(text):
        try:
            value = _static_call(env, m.group(1))
        except CadenceError as exc:
            if exc.line is None:
                exc.line = text.count("\n", 0, m.start()) + 1
            raise
        if value is None:
            return None
        pieces.append(text[pos : m.start()])
        pieces.append(value)
        pos = m.end()
    if "{{" in text[pos:] or "}}" in text[pos:]:
        return None
    pieces.append(text[pos:])
    return "".join(pieces)


def _static_call(env: RenderEnvironment, expression: str) -> str | None:
    import ast

    if expression.startswith("-") or expression.endswith("-"):
        return None
    try:
        node = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError:
        return None
    if isinstance(node, ast.Name) and node.id in _STATIC_NAMES and node.id not in env.macro_names:
        return str(env.env.globals[node.id])
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and (node.func.id in _STATIC_FUNCTIONS or node.func.id in env.macro_names)
    ):
        return None
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if len(kwargs) != len(node.keywords) or any(isinstance(a, ast.Starred) for a in node.args):
        return None
    function: Any = env.env.globals[node.func.id]
    value = function(*args, **kwargs)
    return "None" if value is None else str(value)


_LOOP_ATTRS: dict[str, Callable[[int, int], Any]] = {  # (index0, length) -> loop.<attr>
    "index": lambda i, n: i + 1,
    "index0": lambda i, n: i,
    "revindex": lambda i, n: n - i,
    "revindex0": lambda i, n: n - i - 1,
    "first": lambda i, n: i == 0,
    "last": lambda i, n: i == n - 1,
    "length": lambda i, n: n,
}
_UNARY: dict[str, Callable[[Any], Any]] = {
    "Not": operator.not_,
    "Neg": operator.neg,
    "Pos": operator.pos,
}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    **{k: getattr(operator, k) for k in ("eq", "ne", "lt", "gt")},
    **{"lteq": operator.le, "gteq": operator.ge},
    **{"in": lambda a, b: a in b, "notin": lambda a, b: a not in b},
}


class Subset:
    """Templates that only set top-level names, loop, branch on simple tests and output
    literals, names and the static calls are parsed by Jinja (its lexer and parser: whitespace
    control, comments, ``{% raw %}`` are Jinja's own) and evaluated from the tree, not compiled
    to Python (which costs more than the parse). The values are what Jinja's code computes: the
    same globals called, each output through ``str()`` and joined, so the text is the same byte
    for byte (tests/test_rendering.py compares them). Anything else -- filters, attributes,
    operators, ``{% set %}`` below the top level -- is compiled by Jinja from the same tree, and
    so is a template whose evaluation raised: Jinja renders it again and reports the error."""

    def __init__(self, env: RenderEnvironment) -> None:
        self.jinja = env.env
        self.callable = _STATIC_FUNCTIONS | env.macro_names.keys()
        self.names = _STATIC_NAMES - env.macro_names.keys()
        self.assigned: frozenset[str | None] = frozenset()

    def plan(self, text: str) -> tuple[Any, bool]:
        """Jinja's syntax tree of ``text`` (None on a syntax error) and whether the evaluator
        knows every node of it."""
        try:
            tree = self.jinja.parse(text)
        except Exception:  # noqa: BLE001 - a syntax error: the compiled path reports it
            return None, False
        body: list[Any] = tree.body
        top = [getattr(n.target, "name", None) for n in body if isinstance(n, jinja2.nodes.Assign)]
        if len(set(top)) != len(top) or not all(isinstance(t, str) for t in top):
            return tree, False  # `{% set a, b = ... %}`, or a name set twice
        self.assigned = frozenset(top)
        bound: set[str] = set()  # names set so far, in order: none is read before it is set
        for node in body:
            if isinstance(node, jinja2.nodes.Assign):
                name = node.target.name  # type: ignore[attr-defined]
                if name == "loop" or name in self.jinja.globals:
                    return tree, False
                if not self._expr(node.node, bound, ()):
                    return tree, False
                bound.add(name)
            elif not self._stmt(node, bound, ()):
                return tree, False
        return tree, True

    def _stmt(self, node: Any, bound: set[str], loops: tuple[str, ...]) -> bool:
        nodes = jinja2.nodes
        if isinstance(node, nodes.Output):
            return all(
                isinstance(n, nodes.TemplateData) or self._expr(n, bound, loops) for n in node.nodes
            )
        if isinstance(node, nodes.For):
            target = node.target
            return (
                isinstance(target, nodes.Name)
                and target.name not in {*self.assigned, *loops, *self.jinja.globals, "loop"}
                and not node.else_
                and node.test is None
                and not node.recursive
                and self._expr(node.iter, bound, loops, loop_ok=False)
                and all(self._stmt(n, bound, (*loops, target.name)) for n in node.body)
            )
        if isinstance(node, nodes.If):
            return (
                self._expr(node.test, bound, loops)
                and all(self._stmt(n, bound, loops) for n in node.body)
                and all(self._stmt(n, bound, loops) for n in node.elif_)
                and all(self._stmt(n, bound, loops) for n in node.else_)
            )
        return False

    def _expr(
        self, node: Any, bound: set[str], loops: tuple[str, ...], *, loop_ok: bool = True
    ) -> bool:
        nodes = jinja2.nodes

        def ok(n: Any) -> bool:
            return self._expr(n, bound, loops, loop_ok=loop_ok)

        if isinstance(node, nodes.Const):
            return True
        if isinstance(node, (nodes.List, nodes.Tuple)):
            return all(ok(n) for n in node.items)
        if isinstance(node, nodes.Name):
            name = node.name
            if name in loops or name in bound:
                return True
            return name in self.names and name not in self.assigned
        if isinstance(node, nodes.Getattr):
            return (
                loop_ok
                and bool(loops)
                and node.attr in _LOOP_ATTRS
                and isinstance(node.node, nodes.Name)
                and node.node.name == "loop"
            )
        if isinstance(node, nodes.Call):
            return (
                isinstance(node.node, nodes.Name)
                and node.node.name in self.callable
                and node.node.name not in {*bound, *loops, *self.assigned}
                and node.dyn_args is None
                and node.dyn_kwargs is None
                and all(ok(n) for n in node.args)
                and all(ok(k.value) for k in node.kwargs)
            )
        if isinstance(node, (nodes.Not, nodes.Neg, nodes.Pos)):
            return ok(node.node)
        if isinstance(node, (nodes.And, nodes.Or)):
            return ok(node.left) and ok(node.right)
        if isinstance(node, nodes.Compare):
            return ok(node.expr) and all(op.op in _COMPARE and ok(op.expr) for op in node.ops)
        if isinstance(node, nodes.Concat):
            return all(ok(n) for n in node.nodes)
        if isinstance(node, nodes.CondExpr):
            return node.expr2 is not None and ok(node.test) and ok(node.expr1) and ok(node.expr2)
        return False

    def run(self, tree: Any) -> str | None:
        """The rendered text, or None when Jinja must render it (it then raises any error)."""
        out: list[str] = []
        scope: dict[str, Any] = {}
        try:
            for node in tree.body:
                if isinstance(node, jinja2.nodes.Assign):
                    scope[node.target.name] = self._value(node.node, scope)  # type: ignore[attr-defined]
                else:
                    self._exec(node, scope, out)
        except Exception:  # noqa: BLE001 - the calls are idempotent; Jinja says what failed
            return None
        return "".join(out)

    def _exec(self, node: Any, scope: dict[str, Any], out: list[str]) -> None:
        nodes = jinja2.nodes
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                out.append(
                    child.data
                    if isinstance(child, nodes.TemplateData)
                    else str(self._value(child, scope))
                )
        elif isinstance(node, nodes.For):
            values = self._value(node.iter, scope)
            if not isinstance(values, (list, tuple, str)):
                raise TypeError("a loop over something else: Jinja's LoopContext")
            name, length = node.target.name, len(values)  # type: ignore[attr-defined]
            for i, value in enumerate(values):
                inner = {**scope, name: value, "loop": (i, length)}
                for n in node.body:
                    self._exec(n, inner, out)
        else:  # If
            for branch in (node, *node.elif_):
                if self._value(branch.test, scope):
                    for n in branch.body:
                        self._exec(n, scope, out)
                    return
            for n in node.else_:
                self._exec(n, scope, out)

    def _value(self, node: Any, scope: dict[str, Any]) -> Any:
        nodes = jinja2.nodes
        if isinstance(node, nodes.Const):
            return node.value
        if isinstance(node, nodes.Name):
            return scope[node.name] if node.name in scope else self.jinja.globals[node.name]
        if isinstance(node, nodes.List):
            return [self._value(n, scope) for n in node.items]
        if isinstance(node, nodes.Tuple):
            return tuple(self._value(n, scope) for n in node.items)
        if isinstance(node, nodes.Getattr):
            return _LOOP_ATTRS[node.attr](*scope["loop"])
        if isinstance(node, nodes.Call):
            args = [self._value(n, scope) for n in node.args]
            kwargs = {k.key: self._value(k.value, scope) for k in node.kwargs}
            function: Any = self.jinja.globals[node.node.name]  # type: ignore[attr-defined]
            return function(*args, **kwargs)
        if isinstance(node, (nodes.Not, nodes.Neg, nodes.Pos)):
            return _UNARY[type(node).__name__](self._value(node.node, scope))
        if isinstance(node, nodes.And):
            return self._value(node.left, scope) and self._value(node.right, scope)
        if isinstance(node, nodes.Or):
            return self._value(node.left, scope) or self._value(node.right, scope)
        if isinstance(node, nodes.Compare):
            left, result = self._value(node.expr, scope), True
            for op in node.ops:  # chained as in Python: a < b < c is a < b and b < c
                right = self._value(op.expr, scope)
                if not (result := _COMPARE[op.op](left, right)):
                    return result
                left = right
            return result
        if isinstance(node, nodes.Concat):
            return "".join(str(self._value(n, scope)) for n in node.nodes)
        # CondExpr
        if self._value(node.test, scope):
            return self._value(node.expr1, scope)
        return self._value(node.expr2, scope)
