"""The Jinja environment models, macros and tests render in (dbt-compatible functions).

Input: macro files, vars, the relations known so far -> output: rendered SQL text in which each
``ref()`` is a placeholder token (``«ref:name»``) that the compiler later swaps for the real
relation, so a static model is rendered once per load, never per run.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import operator
import os
import re
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jinja2
import jinja2.sandbox

from cadence.errors import CadenceError
from cadence.load.relations import REF_TOKEN, Relation, quote, ref_token, relation_sql  # noqa: F401


class ReturnValue(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


@dataclass
class RenderState:
    """What one render saw: refs, sources, config() calls, env vars."""

    file: str
    this: Relation | None = None
    run_started_at: dt.datetime | None = None
    tick: dt.datetime | None = None
    incremental: bool = False
    refs: list[str] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    env_vars: dict[str, str | None] = field(default_factory=dict)
    resolve_ref: Callable[[str], Relation] | None = None
    per_run: bool = False  # read run_started_at, tick or is_incremental(): render again per run
    this_used: bool = False  # read `this`: the text depends on the model's final relation


_current: contextvars.ContextVar[RenderState] = contextvars.ContextVar("cadence_render")


def _state() -> RenderState:
    return _current.get()


class _ThisProxy:
    """``this`` resolves at use time to the relation of the model being rendered."""

    def _rel(self) -> Relation:
        state = _state()
        state.this_used = True
        rel = state.this
        if rel is None:
            raise CadenceError("'this' is only defined inside a model")
        return rel

    def __str__(self) -> str:
        return str(self._rel())

    def __html__(self) -> str:
        return str(self._rel())

    def __getattr__(self, item: str) -> Any:
        return getattr(self._rel(), item)


class _TimeProxy:
    """``run_started_at`` / ``tick``: the datetime of the run, read at render time."""

    def __init__(self, attr: str) -> None:
        self._attr = attr

    def _value(self) -> dt.datetime:
        state = _state()
        state.per_run = True
        value = getattr(state, self._attr)
        if value is None:
            value = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
        return value

    def __str__(self) -> str:
        return str(self._value())

    def __html__(self) -> str:
        return str(self._value())

    def __getattr__(self, item: str) -> Any:
        return getattr(self._value(), item)

    def __sub__(self, other: Any) -> Any:
        return self._value() - other

    def __add__(self, other: Any) -> Any:
        return self._value() + other


def _ref(*args: str, **kwargs: Any) -> Relation:
    name = args[-1] if args else kwargs.get("name", "")
    state = _state()
    if name not in state.refs:
        state.refs.append(name)
    if state.resolve_ref is not None:
        return state.resolve_ref(name)
    token = ref_token(name)
    return Relation(None, name, token)


def _config(*args: Any, **kwargs: Any) -> str:
    if args and isinstance(args[0], dict):
        kwargs = {**args[0], **kwargs}
    for key, value in kwargs.items():
        if _has_undefined(value):
            raise CadenceError(
                f"config({key}=...) uses a name that is not defined",
                hint="quote strings: config(materialized='table')",
            )
        _state().config[key] = value
    return ""


def _has_undefined(value: Any) -> bool:
    if isinstance(value, jinja2.Undefined):
        return True
    if isinstance(value, dict):
        return any(_has_undefined(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_undefined(v) for v in value)
    return False


def _is_incremental() -> bool:
    state = _state()
    state.per_run = True
    return state.incremental


def _env_var(name: str, default: Any = None) -> str:
    state = _state()
    value = os.environ.get(name)
    state.env_vars[name] = value
    if value is not None:
        return value
    if default is None:
        raise CadenceError(
            f"environment variable '{name}' is not set",
            file=state.file,
            hint=f"export {name}=..., or give a default: env_var('{name}', 'value')",
        )
    return str(default)


def _return(value: Any) -> Any:
    raise ReturnValue(value)


class _Exceptions:
    @staticmethod
    def raise_compiler_error(message: str) -> None:
        raise CadenceError(message, file=_state().file, hint="raised by the project's own Jinja")

    @staticmethod
    def warn(message: str) -> str:
        return ""


def _log(message: Any, info: bool = False) -> str:
    return ""


class Sandbox(jinja2.sandbox.SandboxedEnvironment):
    """Jinja with no reach into Python internals: the sandbox refuses ``_`` attributes and
    function internals; on top of that no attribute may lead to a module (``modules.re.enum.sys``
    would reach ``sys.modules``). Lists and dicts stay mutable (``{% do xs.append(x) %}``)."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(value, types.ModuleType):
            return False
        return bool(super().is_safe_attribute(obj, attr, value))


class ModelEnvironment:
    """A Jinja environment per project: vars, macros and the dbt-compatible globals."""

    def __init__(
        self,
        vars_: dict[str, Any],
        macro_files: tuple[tuple[str, str], ...],
        target: dict[str, Any],
        doc_blocks: dict[str, str] | None = None,
    ) -> None:
        self.vars = dict(vars_)
        # (source, table) -> relation SQL; set once the YAML is read (``set_sources``). Every
        # render of the project -- at load, per run, in tests, in forked workers, after a cache
        # load -- resolves source() here, so all of them agree.
        self.sources: dict[tuple[str, str], str] = {}
        self.env = Sandbox(
            undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
            keep_trailing_newline=True,
        )
        self.doc_blocks = doc_blocks or {}
        self.env.globals.update(
            ref=_ref,
            source=self._source,
            config=_ConfigCallable(),
            var=self._var,
            env_var=_env_var,
            is_incremental=_is_incremental,
            this=_ThisProxy(),
            run_started_at=_TimeProxy("run_started_at"),
            tick=_TimeProxy("tick"),
            invocation_id="",
            target=target,
            log=_log,
            exceptions=_Exceptions(),
            modules={"datetime": dt, "re": re},
            doc=self._doc,
            execute=False,
            flags={"FULL_REFRESH": False},
            zip=zip,
            set=set,
            **{"return": _return},
        )
        self.macro_errors: list[CadenceError] = []
        self._templates: dict[str, jinja2.Template] = {}  # a model renders twice when incremental
        self._plans: dict[str, tuple[Any, bool]] = {}  # text -> (Jinja's tree, in the subset)
        self.macro_names: dict[str, str] = {}
        for path, text in macro_files:
            self._load_macros(path, text)

    def set_sources(self, sources: Iterable[tuple[str, str, str]]) -> None:
        """The declared sources as (source name, table, relation SQL)."""
        self.sources = {(a, b): rel for a, b, rel in sources}

    def _source(self, source_name: str, table_name: str) -> Relation:
        state = _state()
        key = (str(source_name), str(table_name))
        if key not in state.sources:
            state.sources.append(key)
        found = self.sources.get(key)
        if found is None:
            from cadence.errors import did_you_mean

            guess = did_you_mean(f"{key[0]}.{key[1]}", [f"{a}.{b}" for a, b in self.sources])
            raise CadenceError(
                f"unknown source '{key[0]}.{key[1]}'",
                hint=(
                    f"did you mean '{guess}'?"
                    if guess
                    else "declare it under sources: in a YAML file beside your models"
                ),
            )
        return Relation(key[0], key[1], found)

    def _var(self, name: str, *default: Any) -> Any:
        if name in self.vars:
            return self.vars[name]
        if default:
            return default[0]  # var('x', none) is a valid default, as in dbt
        state = _current.get(None)
        raise CadenceError(
            f"unknown var '{name}'",
            file=state.file if state else None,
            hint=f"define it under vars: in cadence.yml, or call var('{name}', default)",
        )

    def _doc(self, name: str) -> str:
        if name not in self.doc_blocks:
            from cadence.errors import did_you_mean

            guess = did_you_mean(name, self.doc_blocks)
            raise CadenceError(
                f"unknown docs block '{name}'",
                hint=(
                    f"did you mean '{guess}'?"
                    if guess
                    else "define it in a .md file under models/: {% docs name %}...{% enddocs %}"
                ),
            )
        return self.doc_blocks[name]

    def _load_macros(self, path: str, text: str) -> None:
        try:
            template = self.env.from_string(text)
            template.name = path
            state = RenderState(file=path)
            token = _current.set(state)
            try:
                module = template.make_module()
            finally:
                _current.reset(token)
        except jinja2.TemplateSyntaxError as exc:
            self.macro_errors.append(
                CadenceError(
                    f"Jinja syntax error: {exc.message}",
                    file=path,
                    line=exc.lineno,
                    hint="check {% macro %}/{% endmacro %} pairs and brackets",
                )
            )
            return
        except Exception as exc:  # noqa: BLE001 - any macro-file failure is a user error
            self.macro_errors.append(
                CadenceError(f"error loading macros: {exc}", file=path, hint="fix the macro file")
            )
            return
        for name in dir(module):
            obj = getattr(module, name)
            if isinstance(obj, jinja2.runtime.Macro):
                self.env.globals[name] = _wrap_macro(obj)
                self.macro_names[name] = path

    def render(self, text: str, state: RenderState) -> str:
        """Render a template; Jinja problems become CadenceErrors with the template line."""
        token = _current.set(state)
        try:
            fast = self._render_static(text)
            if fast is not None:
                return fast
            plan = self._plans.get(text)
            if plan is None:
                plan = self._plans[text] = _Subset(self).plan(text)
            tree, subset = plan
            if subset and (done := _Subset(self).run(tree)) is not None:
                return done
            template = self._templates.get(text)
            if template is None:  # from the tree already parsed (a syntax error: parse again)
                template = self._templates[text] = self.env.from_string(tree or text)
            return template.render()
        except CadenceError as exc:
            if exc.file is None:
                exc.file = state.file
            if exc.line is None:
                exc.line = _template_line(state.file, sys.exc_info()[2])
            raise
        except jinja2.TemplateSyntaxError as exc:
            raise CadenceError(
                f"Jinja syntax error: {exc.message}",
                file=state.file,
                line=exc.lineno,
                hint=_syntax_hint(exc.message or ""),
            ) from None
        except jinja2.UndefinedError as exc:
            raise CadenceError(
                f"Jinja error: {exc.message}",
                file=state.file,
                line=_template_line(state.file, sys.exc_info()[2]),
                hint="define it with {% set %}, in vars:, or as a macro in macros/",
            ) from None
        except ReturnValue as exc:
            return str(exc.value)
        except jinja2.sandbox.SecurityError as exc:
            raise CadenceError(
                f"Jinja sandbox refused: {exc}",
                file=state.file,
                line=_template_line(state.file, sys.exc_info()[2]),
                hint="templates cannot reach Python internals ('_' attributes, modules); "
                "use ref(), source(), var(), macros and the dbt functions",
            ) from None
        except Exception as exc:  # noqa: BLE001 - template code is user code
            raise CadenceError(
                f"Jinja error: {type(exc).__name__}: {exc}",
                file=state.file,
                line=_template_line(state.file, sys.exc_info()[2]),
                hint="fix the expression on that line",
            ) from None
        finally:
            _current.reset(token)

    def _render_static(self, text: str) -> str | None:
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
                value = self._static_call(m.group(1))
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

    def _static_call(self, expression: str) -> str | None:
        import ast

        if expression.startswith("-") or expression.endswith("-"):
            return None
        try:
            node = ast.parse(expression.strip(), mode="eval").body
        except SyntaxError:
            return None
        if (
            isinstance(node, ast.Name)
            and node.id in _STATIC_NAMES
            and node.id not in self.macro_names
        ):
            return str(self.env.globals[node.id])
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and (node.func.id in _STATIC_FUNCTIONS or node.func.id in self.macro_names)
        ):
            return None
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None
        if len(kwargs) != len(node.keywords) or any(isinstance(a, ast.Starred) for a in node.args):
            return None
        function: Any = self.env.globals[node.func.id]
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


class _Subset:
    """Templates that only set top-level names, loop, branch on simple tests and output
    literals, names and the static calls are parsed by Jinja (its lexer and parser: whitespace
    control, comments, ``{% raw %}`` are Jinja's own) and evaluated from the tree, not compiled
    to Python (which costs more than the parse). The values are what Jinja's code computes: the
    same globals called, each output through ``str()`` and joined, so the text is the same byte
    for byte (tests/test_rendering.py compares them). Anything else -- filters, attributes,
    operators, ``{% set %}`` below the top level -- is compiled by Jinja from the same tree, and
    so is a template whose evaluation raised: Jinja renders it again and reports the error."""

    def __init__(self, env: ModelEnvironment) -> None:
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


_EXPRESSION = re.compile(r"{{(.*?)}}", re.S)
_STATIC_FUNCTIONS = frozenset({"ref", "source", "config", "var", "env_var"})
_STATIC_NAMES = frozenset({"this", "run_started_at", "tick"})


class _ConfigCallable:
    """``config(...)`` in models; also ``config.get(key)`` as dbt offers."""

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return _config(*args, **kwargs)

    def get(self, key: str, default: Any = None) -> Any:
        return _state().config.get(key, default)

    def require(self, key: str) -> Any:
        return _state().config[key]


def _wrap_macro(macro: Any) -> Callable[..., Any]:
    """Let macros use dbt's ``{{ return(x) }}``."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return macro(*args, **kwargs)
        except ReturnValue as exc:
            return exc.value

    call.__name__ = getattr(macro, "name", "macro")
    return call


def _template_line(file: str, tb: Any) -> int | None:
    """Line in the template: Jinja rewrites tracebacks so template frames carry template lines."""
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            return int(tb.tb_lineno)
        tb = tb.tb_next
    return None


def _syntax_hint(message: str) -> str:
    if "endif" in message or "endfor" in message or "end of template" in message:
        return "a {% if %}/{% for %} block is not closed"
    return "check the {{ }} and {% %} brackets on that line"
