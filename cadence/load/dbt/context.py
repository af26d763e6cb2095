"""The Jinja context dbt models use, installed into cadence's model environment (a ``Dialect``).

Input: the project's settings (target, layout of packages, their vars) and dbt_project.yml's
``dispatch`` -> output: the names a dbt template sees besides cadence's own (``ref``,
``source``, ``config``, ``var``, ``this``, ``is_incremental`` ...): ``target`` as dbt fills it,
``adapter`` (dispatch, introspection, quote), ``api``, the ``dbt`` namespace of cross-database
macros (``crossdb``) and the same names unprefixed, ``run_query``/``statement``/``load_result``,
``execute``, ``log``/``print``, ``exceptions``, ``modules``, ``fromjson``/``tojson``/``fromyaml``/
``toyaml``, ``local_md5``, ``invocation_id``, ``flags``, ``model``, ``graph``, the naming macros'
defaults, and each installed package as a namespace (``mypkg.macro()``).

Dispatch follows dbt: ``adapter.dispatch(name, namespace)`` looks for ``duckdb__name`` then
``default__name`` in each package of the namespace's search order (dbt_project.yml's
``dispatch:``, else the root project then the namespace), the built-ins answering for ``dbt``.
Everything runs in cadence's sandbox (SPEC §6): no name here reaches Python internals, and the
warehouse is reachable only during a run (``execute`` is false while the project loads).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from cadence.errors import CadenceError
from cadence.load.context import current_render, is_undefined
from cadence.load.dbt import crossdb
from cadence.load.dbt.adapter import Adapter, Api, run_query, warehouse_query
from cadence.load.dbt.naming import default_alias, default_database, default_schema
from cadence.load.projectconfig import ProjectConfig

if TYPE_CHECKING:
    from cadence.load.rendering import ModelEnvironment

PREFIXES = ("duckdb", "default")  # dbt-duckdb's adapter macro prefixes, in dispatch order
INTERNAL = "dbt"
DBT_VERSION = "1.11.0"


class _Execute:
    """``execute``: false while the project loads (dbt's parse), true during a run. Reading it
    means the text may differ per run, so it is rendered again then."""

    def _value(self) -> bool:
        state = current_render.get(None)
        if state is None:
            return False
        state.per_run = True
        return state.query is not None

    def __bool__(self) -> bool:
        return self._value()

    def __eq__(self, other: object) -> bool:
        return self._value() == other

    def __hash__(self) -> int:
        return hash(self._value())

    def __str__(self) -> str:
        return str(self._value())


class _Exceptions:
    @staticmethod
    def raise_compiler_error(message: Any, node: Any = None) -> None:
        state = current_render.get(None)
        raise CadenceError(
            f"Compilation Error: {message}",
            file=state.file if state else None,
            hint="raised by the project's own Jinja (exceptions.raise_compiler_error)",
        )

    @staticmethod
    def raise_not_implemented(message: Any) -> None:
        _Exceptions.raise_compiler_error(f"not implemented: {message}")

    @staticmethod
    def raise_fail_fast_error(message: Any, node: Any = None) -> None:
        _Exceptions.raise_compiler_error(message)

    @staticmethod
    def warn(message: Any, node: Any = None) -> str:
        return ""


class _Flags:
    """``flags``: what a dbt command line would hold (``flags.FULL_REFRESH``, ``flags.WHICH``)."""

    FULL_REFRESH = False
    STORE_FAILURES = False
    WHICH = "run"
    WARN_ERROR = False
    WARN_ERROR_OPTIONS: dict[str, Any] = {}
    USE_COLORS = False
    FAIL_FAST = False

    def __getattr__(self, item: str) -> Any:
        return None


class DbtNamespace:
    """``dbt.<macro>``: dispatched through the ``dbt`` namespace."""

    def __init__(self, dialect: DbtDialect) -> None:
        self._dialect = dialect

    def __getattr__(self, item: str) -> Any:
        if item.startswith("_"):
            raise AttributeError(item)
        return self._dialect.internal(item)


def _log(message: Any = "", info: bool = False) -> str:
    return ""  # the library never prints: a run's output is its events


def _print(*args: Any, **kwargs: Any) -> str:
    return ""


def _local_md5(value: Any) -> str:
    return hashlib.md5(str(value).encode(), usedforsecurity=False).hexdigest()


def _tojson(value: Any, sort_keys: bool = False) -> str:
    return json.dumps(value, sort_keys=sort_keys, default=str)


def _fromjson(value: Any, default: Any = None) -> Any:
    try:
        return json.loads(str(value))
    except ValueError:
        return default


def _fromyaml(value: Any, default: Any = None) -> Any:
    from cadence.load.dbt.project import plain
    from cadence.load.yamlfile import load_yaml

    try:
        return plain(load_yaml(str(value), "fromyaml"))
    except CadenceError:
        return default


def _toyaml(value: Any, default: Any = None) -> Any:
    from cadence.load.yamlfile import dump_yaml

    try:
        return dump_yaml(value)
    except Exception:  # noqa: BLE001 - dbt's toyaml returns the default on any failure
        return default


class DbtDialect:
    """The dbt names of one project (``rendering.Dialect``)."""

    def __init__(self, config: ProjectConfig, dispatch: tuple[tuple[str, tuple[str, ...]], ...]):
        self.config = config
        self.root = config.name
        self.dispatch_order = dict(dispatch)
        layout = config.layout
        self.package_names = tuple(p.name for p in layout.packages[1:])
        self.env: ModelEnvironment | None = None
        schema = config.warehouse.schema
        database = config.warehouse.database or config.name
        self.schema, self.database = schema, database

    def package_of(self, path: str) -> str | None:
        layout = self.config.layout
        for kind in ("macro", "test"):
            found = layout.locate(path, kind)
            if found is not None:
                return None if found[0] is layout.root else found[0].name
        return None

    def install(self, env: ModelEnvironment) -> None:
        self.env = env
        dbt = self.config.dbt
        if dbt is not None:
            env.project.package_vars = {k: dict(v) for k, v in dbt.package_vars.items()}
        g = self._globals()
        target = dict(g.get("target") or {})
        adapter = Adapter(self.database, self.dispatch)
        g.update(
            {
                "adapter": adapter,
                "load_relation": adapter.load_relation,
                "load_cached_relation": adapter.load_relation,
                "get_columns_in_query": self._columns_in_query,
                "api": Api(self.database),
                "dbt": DbtNamespace(self),
                "execute": _Execute(),
                "run_query": run_query,
                "statement": self._statement,
                "load_result": self._load_result,
                "store_result": self._store_result,
                "log": _log,
                "print": _print,
                "exceptions": _Exceptions(),
                "modules": {"datetime": dt, "re": re, "itertools": _itertools()},
                "fromjson": _fromjson,
                "tojson": _tojson,
                "fromyaml": _fromyaml,
                "toyaml": _toyaml,
                "local_md5": _local_md5,
                "flags": _Flags(),
                "project_name": self.root,
                "dbt_version": DBT_VERSION,
                "graph": {"nodes": {}, "sources": {}, "macros": {}, "exposures": {}},
                "selected_resources": [],
                "model": _Model(),
                "database": self.database,
                "schema": self.schema,
                "target": target,
                "builtins": {},
                "default__generate_schema_name": self._default_schema,
                "default__generate_alias_name": self._default_alias,
                "default__generate_database_name": self._default_database,
                "generate_schema_name_for_env": self._schema_for_env,
            }
        )
        for name in crossdb.BUILTINS:
            g[name] = self.internal(name)
        for name in crossdb.QUERYING:
            g[name] = self.internal(name)
        for name in ("generate_schema_name", "generate_alias_name", "generate_database_name"):
            g[name] = g[f"default__{name}"]
        for package in self.package_names:
            env.package_globals(package)

    def _globals(self) -> dict[str, Any]:
        assert self.env is not None
        return cast(dict[str, Any], self.env.env.globals)

    def loaded(self, env: ModelEnvironment) -> None:
        """Root macros named like a built-in replace it for unprefixed calls (as in dbt)."""

    # -- dispatch ------------------------------------------------------------------------
    def search_order(self, namespace: str | None) -> list[str | None]:
        if namespace is None:
            return [None]
        order = self.dispatch_order.get(namespace)
        if order:
            return list(order)
        if namespace == INTERNAL or namespace == self.root or namespace in self.package_names:
            return [self.root, namespace]
        return [None]

    def dispatch(
        self, macro_name: str, macro_namespace: str | None = None, packages: Any = None
    ) -> Callable[..., Any]:
        """``adapter.dispatch``: the first ``duckdb__``/``default__`` macro of the search order."""
        attempts = []
        for package in self.search_order(macro_namespace):
            for prefix in PREFIXES:
                name = f"{prefix}__{macro_name}"
                found = self._lookup(package, name)
                attempts.append(f"{package}.{name}" if package else name)
                if found is not None:
                    return found
        raise CadenceError(
            f"In dispatch: no macro named '{macro_name}' found within namespace "
            f"'{macro_namespace}' (searched for {', '.join(attempts)})",
            hint="define one of them in macros/, or install the package that has it",
        )

    def _lookup(self, package: str | None, name: str) -> Callable[..., Any] | None:
        env = self.env
        assert env is not None
        if package is None:
            state = current_render.get(None)
            local = state.package if state is not None else None
            if local is not None and name in env.packages.get(local, {}):
                return env.packages[local][name]  # type: ignore[no-any-return]
            if name in env.macro_names:
                return cast(Callable[..., Any], self._globals()[name])
            return self._builtin(name)
        if package == INTERNAL:
            return self._builtin(name)
        if package == self.root:
            return (
                cast(Callable[..., Any], self._globals()[name]) if name in env.macro_names else None
            )
        return env.packages.get(package, {}).get(name)

    def _builtin(self, name: str) -> Callable[..., Any] | None:
        base = name.split("__", 1)[1] if "__" in name else name
        if base in crossdb.BUILTINS:
            return crossdb.BUILTINS[base]
        if base in crossdb.QUERYING:
            function = crossdb.QUERYING[base]
            return lambda *a, **k: function(*a, **{**k, "query": _rows_only()})
        return None

    def internal(self, name: str) -> Callable[..., Any]:
        """``dbt.name``: dispatched (a project's ``duckdb__name`` wins), or dbt's own helper."""
        if name in crossdb.BUILTINS or name in crossdb.QUERYING:
            return lambda *a, **k: self.dispatch(name, INTERNAL)(*a, **k)
        if self.env is not None and name in self._globals():
            return cast(Callable[..., Any], self._globals()[name])
        raise CadenceError(
            f"'dbt.{name}' is not a macro cadence provides",
            hint="see docs/guides/dbt-projects.md for the dbt macros cadence renders",
        )

    # -- naming defaults -----------------------------------------------------------------
    def _default_schema(self, custom_schema_name: Any = None, node: Any = None) -> str:
        return default_schema(self.schema, _none(custom_schema_name))

    def _default_alias(self, custom_alias_name: Any = None, node: Any = None) -> str:
        name = node.get("name") if isinstance(node, dict) else getattr(node, "name", "")
        version = node.get("version") if isinstance(node, dict) else None
        return default_alias(str(name), _none(custom_alias_name), version)

    def _default_database(self, custom_database_name: Any = None, node: Any = None) -> str:
        return default_database(self.database, _none(custom_database_name))

    def _schema_for_env(self, custom_schema_name: Any = None, node: Any = None) -> str:
        """dbt's ``generate_schema_name_for_env``: the custom schema as is in target 'prod'."""
        custom = _none(custom_schema_name)
        target = (self._globals().get("target") or {}) if self.env else {}
        if target.get("name") == "prod" and custom is not None:
            return str(custom).strip()
        return self.schema

    def _columns_in_query(self, select_sql: Any) -> list[str]:
        """dbt's ``get_columns_in_query``: the column names a query returns (none while the
        project loads)."""
        query = warehouse_query()
        if query is None:
            return []
        names, _ = query(f"select * from (\n{select_sql}\n) as __dbt_sbq where false limit 0")
        return names

    # -- statement blocks ----------------------------------------------------------------
    def _statement(
        self,
        name: str | None = None,
        fetch_result: bool = False,
        auto_begin: bool = True,
        language: str = "sql",
        caller: Any = None,
    ) -> str:
        """``{% call statement('x', fetch_result=True) %}SQL{% endcall %}``: runs the SQL during
        a run (nothing while loading); ``load_result('x')`` reads what it returned."""
        sql = str(caller()) if caller is not None else ""
        query = warehouse_query()
        state = current_render.get(None)
        if query is None or state is None:
            return ""
        names, rows = query(sql)
        if name is not None:
            from cadence.load.dbt.adapter import Table

            results = state.__dict__.setdefault("statement_results", {})
            results[name] = {
                "response": {"code": "OK", "rows_affected": len(rows)},
                "data": [list(r) for r in rows] if fetch_result else [],
                "table": Table(names, rows) if fetch_result else None,
            }
        return ""

    def _load_result(self, name: str) -> Any:
        state = current_render.get(None)
        if state is None:
            return None
        return state.__dict__.get("statement_results", {}).get(name)

    def _store_result(self, name: str, response: Any = None, agate_table: Any = None) -> str:
        state = current_render.get(None)
        if state is not None:
            results = state.__dict__.setdefault("statement_results", {})
            results[name] = {"response": response, "table": agate_table, "data": []}
        return ""


class _Model:
    """``model``: the node being rendered, as dbt's naming macros and packages read it."""

    def _node(self) -> dict[str, Any]:
        state = current_render.get(None)
        return (state.node if state is not None else None) or {}

    def __getattr__(self, item: str) -> Any:
        if item.startswith("_"):
            raise AttributeError(item)
        return self._node().get(item)

    def __getitem__(self, item: str) -> Any:
        return self._node()[item]

    def get(self, item: str, default: Any = None) -> Any:
        return self._node().get(item, default)


def _rows_only() -> Callable[[str], list[tuple[Any, ...]]] | None:
    query = warehouse_query()
    if query is None:
        return None
    return lambda sql: query(sql)[1]


def _none(value: Any) -> Any:
    return None if value is None or is_undefined(value) else value


def _itertools() -> dict[str, Any]:
    import itertools

    return {
        name: getattr(itertools, name)
        for name in ("chain", "combinations", "groupby", "product", "permutations", "islice")
    }


__all__ = ["DbtDialect"]
