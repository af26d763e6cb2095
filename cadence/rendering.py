"""The Jinja environment models, macros and tests render in (dbt-compatible functions).

Input: macro files, vars, the relations known so far -> output: rendered SQL text in which each
``ref()`` is a placeholder token (``«ref:name»``) that the compiler later swaps for the real
relation, so a static model is rendered once per load, never per run.
"""

from __future__ import annotations

import contextvars
import datetime as dt
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
from cadence.relations import REF_TOKEN, Relation, quote, ref_token, relation_sql  # noqa: F401


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
            template = self._templates.get(text)
            if template is None:
                template = self._templates[text] = self.env.from_string(text)
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
