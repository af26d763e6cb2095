"""The names a template sees, and what one render of it recorded (``RenderState``).

Input: the project's vars, declared sources, docs blocks and ``target`` -> output: the globals of
the model environment (``model_globals``): ``ref``, ``source``, ``config``, ``var``, ``env_var``,
``this``, ``is_incremental``, ``run_started_at``, ``tick``, ``log``, ``exceptions``, ``return``
and the other dbt-compatible names. Each call records what it read into the ``RenderState`` of
the render in progress (``current_render``), so the parser learns a model's refs, sources,
config and env vars, and whether it must render again per run. ``ref()`` returns a placeholder
token unless the render resolves refs itself.

Used by ``rendering`` (which installs these globals and sets the current render), by the
evaluator (through the installed globals) and by ``parser`` and ``build.compiler`` (RenderState).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jinja2

from cadence.errors import CadenceError
from cadence.load.relations import Relation, ref_token


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
    invocation_id: str | None = None
    resolve_ref: Callable[[str], Relation] | None = None
    per_run: bool = False  # read a per-run value or is_incremental(): render again per run
    run_value: str | None = None  # the first per-run value read (``reads_run``)
    this_used: bool = False  # read `this`: the text depends on the model's final relation
    package: str | None = None  # an installed package's template: its macros and vars first
    query: Callable[[str], tuple[list[str], list[tuple[Any, ...]]]] | None = None  # a run's
    base_config: dict[str, Any] = field(default_factory=dict)  # config from YAML and folders
    node: dict[str, Any] | None = None  # what dbt's ``model`` holds (name, fqn, config, ...)


# The render in progress: the functions below read and record into it.
current_render: contextvars.ContextVar[RenderState] = contextvars.ContextVar("cadence_render")


def _state() -> RenderState:
    return current_render.get()


# What a render without a run sees (at load): fixed values, so a second render at other fixed
# values (``parser``) tells whether the text depends on the run.
LOAD_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
LOAD_INVOCATION_ID = "00000000-0000-0000-0000-000000000000"


def reads_run(name: str) -> RenderState:
    """Record that the render in progress read ``name``, a value that depends on the run."""
    state = _state()
    state.per_run = True
    if state.run_value is None:
        state.run_value = name
    return state


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
        return _run_time(self._attr)

    def __str__(self) -> str:
        return str(self._value())

    def __html__(self) -> str:
        return str(self._value())

    def __getattr__(self, item: str) -> Any:
        return getattr(self._value(), item)

    def __sub__(self, other: Any) -> Any:
        return self._value() - other

    def __rsub__(self, other: Any) -> Any:
        return other - self._value()

    def __add__(self, other: Any) -> Any:
        return self._value() + other

    __radd__ = __add__

    # compared, the value is read too: `{% if run_started_at.day == 1 %}` or `tick < x`
    def __eq__(self, other: object) -> bool:
        return self._value() == (other._value() if isinstance(other, _TimeProxy) else other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __lt__(self, other: Any) -> bool:
        return self._value() < other

    def __le__(self, other: Any) -> bool:
        return self._value() <= other

    def __gt__(self, other: Any) -> bool:
        return self._value() > other

    def __ge__(self, other: Any) -> bool:
        return self._value() >= other

    def __hash__(self) -> int:
        return hash(self._value())


def _run_time(attr: str = "run_started_at", name: str | None = None) -> dt.datetime:
    """The run's time (``run_started_at``) or the tick it serves, recorded as ``name`` read."""
    state = reads_run(name or attr)
    value: dt.datetime | None = getattr(state, attr)
    if value is None and attr == "tick":
        value = state.run_started_at
    return value if value is not None else LOAD_TIME


class _InvocationId:
    """``invocation_id``: the id of the run (its ``run_id``), read at render time."""

    def _value(self) -> str:
        state = reads_run("invocation_id")
        return state.invocation_id if state.invocation_id is not None else LOAD_INVOCATION_ID

    def __str__(self) -> str:
        return self._value()

    def __html__(self) -> str:
        return self._value()

    def __getattr__(self, item: str) -> Any:
        return getattr(self._value(), item)

    def __eq__(self, other: object) -> bool:
        return self._value() == str(other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self._value())

    def __len__(self) -> int:
        return len(self._value())

    def __add__(self, other: Any) -> Any:
        return self._value() + other

    def __radd__(self, other: Any) -> Any:
        return other + self._value()


class _RunDatetime(dt.datetime):
    """``modules.datetime.datetime``: the clock reads the run's time (now or ``--at``) as the
    project's wall clock, so a model reading it renders the same in a replay, and is known to
    depend on the run."""

    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
        value = _run_time(name="modules.datetime")
        return value.astimezone(tz) if tz is not None else value.replace(tzinfo=None)

    @classmethod
    def today(cls) -> dt.datetime:  # type: ignore[override]
        return cls.now()

    @classmethod
    def utcnow(cls) -> dt.datetime:  # type: ignore[override]
        return _run_time(name="modules.datetime").astimezone(dt.timezone.utc).replace(tzinfo=None)


class _RunDate(dt.date):
    """``modules.datetime.date``: ``today()`` is the run's date in the project timezone."""

    @classmethod
    def today(cls) -> dt.date:  # type: ignore[override]
        return _run_time(name="modules.datetime").date()


class _DatetimeModule:
    """What ``modules.datetime`` offers: Python's datetime module with the run's clock."""

    datetime = _RunDatetime
    date = _RunDate
    time = dt.time
    timedelta = dt.timedelta
    timezone = dt.timezone
    tzinfo = dt.tzinfo
    MINYEAR = dt.MINYEAR
    MAXYEAR = dt.MAXYEAR


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


def is_undefined(value: Any) -> bool:
    """A name a template used that is not defined (Jinja's ``Undefined``)."""
    return isinstance(value, jinja2.Undefined)


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


class _ConfigCallable:
    """``config(...)`` in models; also ``config.get(key)`` as dbt offers."""

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return _config(*args, **kwargs)

    def get(self, key: str, default: Any = None) -> Any:
        state = _state()
        if key in state.config:
            return state.config[key]
        return state.base_config.get(key, default)

    def require(self, key: str) -> Any:
        state = _state()
        if key in state.config:
            return state.config[key]
        if key in state.base_config:
            return state.base_config[key]
        raise CadenceError(f"config '{key}' is required here", hint=f"set {key} in config()")


def wrap_macro(macro: Any) -> Callable[..., Any]:
    """Let macros use dbt's ``{{ return(x) }}``."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return macro(*args, **kwargs)
        except ReturnValue as exc:
            return exc.value

    call.__name__ = getattr(macro, "name", "macro")
    return call


class ProjectContext:
    """The names whose values come from the project: ``source()``, ``var()``, ``doc()``.
    ``var()`` reads ``--vars`` first, then a package's own vars (in its templates), then the
    project's."""

    def __init__(
        self,
        vars_: dict[str, Any],
        doc_blocks: dict[str, str] | None = None,
        cli_vars: dict[str, Any] | None = None,
    ) -> None:
        self.vars = dict(vars_)
        self.cli_vars = dict(cli_vars or {})
        self.package_vars: dict[str, dict[str, Any]] = {}
        # (source, table) -> relation SQL; set once the YAML is read (``set_sources``). Every
        # render of the project -- at load, per run, in tests, in forked workers, after a cache
        # load -- resolves source() here, so all of them agree.
        self.sources: dict[tuple[str, str], str] = {}
        self.doc_blocks = doc_blocks or {}

    def source(self, source_name: str, table_name: str) -> Relation:
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

    def var(self, name: str, *default: Any) -> Any:
        if name in self.cli_vars:
            return self.cli_vars[name]
        state = current_render.get(None)
        if state is not None and state.package is not None:
            scoped = self.package_vars.get(state.package)
            if scoped is not None and name in scoped:
                return scoped[name]
        if name in self.vars:
            return self.vars[name]
        if default:
            return default[0]  # var('x', none) is a valid default, as in dbt
        from cadence.errors import did_you_mean

        state = current_render.get(None)
        guess = did_you_mean(name, [str(v) for v in self.vars])
        define = f"define it under vars: in cadence.yml, or call var('{name}', default)"
        raise CadenceError(
            f"unknown var '{name}'",
            file=state.file if state else None,
            hint=f"did you mean '{guess}'? (defined under vars:)" if guess else define,
        )

    def doc(self, name: str) -> str:
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


def model_globals(project: ProjectContext, target: dict[str, Any]) -> dict[str, Any]:
    """The globals a model, macro or test renders with (macros are added as they load)."""
    return {
        "ref": _ref,
        "source": project.source,
        "config": _ConfigCallable(),
        "var": project.var,
        "env_var": _env_var,
        "is_incremental": _is_incremental,
        "this": _ThisProxy(),
        "run_started_at": _TimeProxy("run_started_at"),
        "tick": _TimeProxy("tick"),
        "invocation_id": _InvocationId(),
        "target": target,
        "log": _log,
        "exceptions": _Exceptions(),
        "modules": {"datetime": _DatetimeModule(), "re": re},
        "doc": project.doc,
        "execute": False,
        "flags": {"FULL_REFRESH": False},
        "zip": zip,
        "set": set,
        "return": _return,
    }
