"""The Jinja environment models, macros and tests render in (dbt-compatible functions).

Input: macro files, vars, the relations known so far -> output: rendered SQL text in which each
``ref()`` is a placeholder token (``«ref:name»``) that the compiler later swaps for the real
relation, so a static model is rendered once per load, never per run.

This module owns the sandbox, the macros and the order a text is tried in: the static fast path
and the subset evaluator (``evaluator``) first, a compiled Jinja template (kept per text) last;
Jinja's errors become CadenceErrors with the template line. The names templates see and what a
render records come from ``context``. Used by ``parser`` (at load) and ``build.compiler``.

The seam for a project of another kind (a dbt project, ``load.dbt.context``) is a ``Dialect``:
it installs more names, and says which package each macro file belongs to. A package's macros
live in a namespace of their own (``mypkg.macro()``), see their own package's macros first, and
a template of that package (one of its models) renders with them; the sandbox is the same.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable
from typing import Any, Protocol

import jinja2
import jinja2.sandbox

from cadence.errors import CadenceError
from cadence.load.context import (
    ProjectContext,
    RenderState,
    ReturnValue,
    current_render,
    model_globals,
    wrap_macro,
)
from cadence.load.evaluator import Subset, render_static
from cadence.load.generictests import as_macros


class Sandbox(jinja2.sandbox.SandboxedEnvironment):
    """Jinja with no reach into Python internals: the sandbox refuses ``_`` attributes and
    function internals; on top of that no attribute may lead to a module (``modules.re.enum.sys``
    would reach ``sys.modules``). Lists and dicts stay mutable (``{% do xs.append(x) %}``)."""

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(value, types.ModuleType):
            return False
        if isinstance(obj, Namespace):  # a package's macros, `_private` ones included
            return obj.has_macro(attr)
        return bool(super().is_safe_attribute(obj, attr, value))


class Dialect(Protocol):
    """What a project of another kind adds to the environment (``load.dbt.context``)."""

    def install(self, env: ModelEnvironment) -> None: ...  # more globals, before the macros

    def package_of(self, path: str) -> str | None: ...  # a macro file's package (None: root)

    def loaded(self, env: ModelEnvironment) -> None: ...  # after every macro file is loaded


class Namespace:
    """A package's macros as a template sees them: ``mypkg.status_label(...)`` (and its
    ``_private`` ones, which packages call among themselves); nothing else of the object."""

    def __init__(self, name: str, macros: dict[str, Any]) -> None:
        self.ns_name = name
        self.ns_macros = macros

    def has_macro(self, item: str) -> bool:
        return item in self.ns_macros

    def __getattr__(self, item: str) -> Any:
        if item.startswith("__") or item in ("ns_name", "ns_macros"):
            raise AttributeError(item)
        try:
            return self.ns_macros[item]
        except KeyError:
            raise AttributeError(f"'{self.ns_name}' has no macro '{item}'") from None

    def __contains__(self, item: str) -> bool:
        return item in self.ns_macros


class ModelEnvironment:
    """A Jinja environment per project: vars, macros and the dbt-compatible globals."""

    def __init__(
        self,
        vars_: dict[str, Any],
        macro_files: tuple[tuple[str, str], ...],
        target: dict[str, Any],
        doc_blocks: dict[str, str] | None = None,
        *,
        dialect: Dialect | None = None,
        cli_vars: dict[str, Any] | None = None,
    ) -> None:
        self.project = ProjectContext(vars_, doc_blocks, cli_vars)
        self.env = Sandbox(
            undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
            keep_trailing_newline=True,
        )
        self.env.globals.update(model_globals(self.project, target))
        self.macro_errors: list[CadenceError] = []
        self._templates: dict[str, jinja2.Template] = {}  # a model renders twice when incremental
        self._plans: dict[str, tuple[Any, bool]] = {}  # text -> (Jinja's tree, in the subset)
        self.macro_names: dict[str, str] = {}
        self.packages: dict[str, dict[str, Any]] = {}  # package -> its macros (its globals)
        self.dialect = dialect
        if dialect is not None:
            dialect.install(self)
        for path, text in macro_files:
            self._load_macros(path, text)
        if dialect is not None:
            dialect.loaded(self)

    def package_globals(self, package: str) -> dict[str, Any]:
        """The macros of ``package``, which its own templates see before everything else."""
        found = self.packages.get(package)
        if found is None:
            found = self.packages[package] = {}
            self.env.globals.setdefault(package, Namespace(package, found))
        return found

    def set_sources(self, sources: Iterable[tuple[str, str, str]]) -> None:
        """The declared sources as (source name, table, relation SQL)."""
        self.project.sources = {(a, b): rel for a, b, rel in sources}

    def _load_macros(self, path: str, text: str) -> None:
        package = self.dialect.package_of(path) if self.dialect is not None else None
        own = self.package_globals(package) if package is not None else None
        try:
            template = self.env.from_string(as_macros(text), globals=own)  # {% test %}: macros
            template.name = path
            state = RenderState(file=path)
            token = current_render.set(state)
            try:  # Jinja's make_module, keeping `_private` macros (dbt exposes them too)
                context = template.new_context()
                for _ in template.root_render_func(context):
                    pass
                defined = dict(context.vars)
            finally:
                current_render.reset(token)
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
        for name, obj in sorted(defined.items()):
            if isinstance(obj, jinja2.runtime.Macro):
                if own is not None:
                    own[name] = wrap_macro(obj)
                    continue
                self.env.globals[name] = wrap_macro(obj)
                self.macro_names[name] = path

    def render(self, text: str, state: RenderState) -> str:
        """Render a template; Jinja problems become CadenceErrors with the template line."""
        token = current_render.set(state)
        try:
            if state.package is not None and state.package in self.packages:
                return self._package_template(text, state.package).render()
            fast = render_static(self, text)
            if fast is not None:
                return fast
            plan = self._plans.get(text)
            if plan is None:
                plan = self._plans[text] = Subset(self).plan(text)
            tree, subset = plan
            if subset and (done := Subset(self).run(tree)) is not None:
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
            current_render.reset(token)

    def _package_template(self, text: str, package: str) -> jinja2.Template:
        """A template of a package (one of its models): its own macros first."""
        key = f"{package}\0{text}"
        template = self._templates.get(key)
        if template is None:
            own = self.package_globals(package)
            template = self._templates[key] = self.env.from_string(text, globals=own)
        return template


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
