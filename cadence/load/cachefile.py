"""The cache file format: frozen values as column tables in JSON, data only.

Input: a frozen value built from a fixed registry of dataclasses (with tuples, dicts and plain
values inside) -> output: the JSON read at once, the JSON read on first use of a lazy field and
the text blob (bytes); and back. Loading runs no code:
only the registered classes are constructed, with the values JSON decoding gave.

Every instance of a registered class is a row of its class's table; for the classes declared
*shared*, equal rows are stored once (10,000 models carry ~44,000 schedules: a handful of
rows). A table is stored by column, and each column is decoded in one pass by a converter
chosen from the field's type annotation (``tuple[str, ...]`` -> ``map(tuple, column)``, a
dataclass -> rows of its table by index), then the rows are built with one constructor call
each. Long lazy text columns (SQL) are kept out of the JSON in one UTF-8 blob, sliced by
length; the caller reads the lazy part only when it is first needed.
``Codec.schema`` is a digest of every class's field names and types: a cache written by code
with other fields is never decoded into the wrong ones. Values typed ``Any`` (YAML config
values) keep a small tagged encoding: ``{"(": [...]}`` a tuple, ``{"s": [...]}`` a set,
``{"{": [[k, v], ...]}`` a dict with keys that are not strings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import types
import typing
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from cadence.errors import CadenceError

TEXT_COLUMN_CHARS = 1 << 16  # a str column this long in total (and long on average): the blob
_TAGS = frozenset({"(", "{", "s"})
_PLAIN = (str, int, float, bool, type(None))

Decoder = Callable[[Any], Any]


# -- shapes: what a type annotation says about how its values are stored --------------------
# ("p",) plain JSON value | ("any",) tagged | ("err",) CadenceError | ("cls", C) a row of C's
# table | ("opt", shape) None or shape | ("tuple", shape) | ("fixed", (shapes)) | ("dict", shape)
# | ("skip",) a field left out of the cache (stored as null, decoded as None)
Shape = tuple[Any, ...]


def _shape(tp: Any, registry: frozenset[type]) -> Shape:
    if tp is Any:
        return ("any",)
    if tp in _PLAIN or typing.get_origin(tp) is typing.Literal:
        return ("p",)
    if isinstance(tp, type) and issubclass(tp, CadenceError):
        return ("err",)
    if tp in registry:
        return ("cls", tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        shapes = [_shape(a, registry) for a in args if a is not type(None)]
        if all(s == ("p",) for s in shapes):
            return ("p",)
        if len(shapes) == 1:
            return ("opt", shapes[0])
        return ("any",)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return ("tuple", _shape(args[0], registry))
        return ("fixed", tuple(_shape(a, registry) for a in args))
    if origin is dict and args and args[0] is str:
        return ("dict", _shape(args[1], registry))
    raise TypeError(f"no cache format for {tp!r}")


def _plain(shape: Shape) -> bool:
    """Values of this shape come out of JSON as they went in."""
    return shape in (("p",), ("skip",)) or (shape[0] == "dict" and _plain(shape[1]))


class Codec:
    """Encoder and decoder for values of ``root`` made of ``classes``.

    ``shared``: classes whose equal rows are stored once. ``skip``: (class, field) pairs left
    out (stored as null, decoded as None). ``lazy``: (class, field) pairs decoded on first use
    (the class's ``__getattr__`` must be ``lazy_field``); tables reached only through lazy
    fields are decoded then too. Cheap to build: no value is looked at.
    """

    def __init__(
        self,
        root: type,
        classes: Iterable[type],
        shared: Iterable[type] = (),
        skip: Iterable[tuple[type, str]] = (),
        lazy: Iterable[tuple[type, str]] = (),
    ) -> None:
        self.root = root
        self.classes = {c.__name__: c for c in (root, *classes)}
        self.shared = frozenset(shared)
        skipped = set(skip)
        registry = frozenset(self.classes.values())
        self.fields: dict[type, list[tuple[str, Shape]]] = {}
        for cls in registry:
            if getattr(cls, "__post_init__", None) is not None or hasattr(cls, "__slots__"):
                raise TypeError(f"{cls.__name__}: rows are built without __init__")
            hints = typing.get_type_hints(cls)
            self.fields[cls] = [
                (f.name, ("skip",) if (cls, f.name) in skipped else _shape(hints[f.name], registry))
                for f in dataclasses.fields(cls)
            ]
        self.lazy: dict[type, frozenset[str]] = {}
        for cls, name in lazy:
            if getattr(cls, "__getattr__", None) is not lazy_field:
                raise TypeError(f"{cls.__name__}: lazy fields need __getattr__ = lazy_field")
            if hasattr(cls, name):  # a default is a class attribute: __getattr__ never runs
                raise TypeError(f"{cls.__name__}.{name} has a default: it cannot be lazy")
            self.lazy[cls] = self.lazy.get(cls, frozenset()) | {name}
        self.order = self._dependency_order()
        self.eager = self._reachable()
        spec = [
            (c.__name__, [(n, repr(s), n in self.lazy.get(c, ())) for n, s in self.fields[c]])
            for c in self.order
        ]
        self.schema = hashlib.blake2b(repr(spec).encode(), digest_size=6).hexdigest()

    def _dependency_order(self) -> list[type]:
        """Classes with the classes their fields hold first (a table refers to earlier ones)."""
        order: list[type] = []

        def visit(cls: type, path: tuple[type, ...]) -> None:
            if cls in order:
                return
            if cls in path:
                raise TypeError(f"{cls.__name__} contains itself: no table order")
            for _, shape in self.fields[cls]:
                for dep in _needs(shape):
                    visit(dep, (*path, cls))
            order.append(cls)

        for cls in sorted(self.fields, key=lambda c: c.__name__):
            visit(cls, ())
        return order

    def _reachable(self) -> frozenset[type]:
        """The classes decoded at once: reached from the root through fields that are not lazy."""
        found = {self.root}
        stack = [self.root]
        while stack:
            cls = stack.pop()
            for name, shape in self.fields[cls]:
                if name in self.lazy.get(cls, ()):
                    continue
                for dep in _needs(shape):
                    if dep not in found:
                        found.add(dep)
                        stack.append(dep)
        return frozenset(found)

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, value: Any) -> tuple[bytes, bytes, bytes]:
        """``value`` (an instance of the root class) as the JSON read at once, the JSON read on
        first use of a lazy field, and the text blob both slice their long strings from."""
        if type(value) is not self.root:
            raise TypeError(f"expected {self.root.__name__}")
        enc = _Encoder(self)
        root = enc.row(self.root, value)
        blob = _Blob()
        eager: dict[str, Any] = {}
        later: dict[str, Any] = {}  # class -> [count, columns] (a lazy table) or {field: column}
        for cls in self.order:
            rows = enc.rows.get(cls)
            if not rows:
                continue
            lazy = self.lazy.get(cls, frozenset())
            columns: list[Any] = []
            deferred: dict[str, Any] = {}
            for i, (name, shape) in enumerate(self.fields[cls]):
                column = [r[i] for r in rows]
                if cls in self.eager and name not in lazy:
                    columns.append(column)  # read at once: never from the blob
                elif cls in self.eager:
                    deferred[name] = blob.column(shape, column)
                    columns.append(None)
                else:
                    columns.append(blob.column(shape, column))
            if cls in self.eager:
                eager[cls.__name__] = [len(rows), columns]
                if deferred:
                    later[cls.__name__] = deferred
            else:
                later[cls.__name__] = [len(rows), columns]
        doc = {"schema": self.schema, "tables": eager, "root": root}
        return _dumps(doc), _dumps(later), blob.data()

    # -- decoding ---------------------------------------------------------------------------
    def decode(
        self,
        data: bytes,
        rest: Callable[[], tuple[bytes, bytes]],
        release: Callable[[], None] | None = None,
    ) -> Any:
        """The value ``encode`` was given, its lazy fields left to decode on first use from
        what ``rest()`` returns then (the second document and the blob); ``release`` is called
        when no decoded value needs ``rest`` any more. Raises (KeyError, TypeError,
        ValueError...) on a document this codec did not write; the caller treats any of them as
        no cache."""
        doc = json.loads(data)
        if doc["schema"] != self.schema:
            raise ValueError("written for other classes")
        tables: dict[type, list[Any]] = {cls: [] for cls in self.order}  # a table may be empty
        pending = _Pending(self, tables, rest)
        if release is not None:
            weakref.finalize(pending, release)
        stored = doc["tables"]
        if not set(stored) <= set(self.classes):
            raise ValueError("a table of a class that is not cached")  # built: never
        for cls in self.order:
            entry = stored.get(cls.__name__)
            if entry is None:
                continue
            if cls not in self.eager:
                raise ValueError(f"{cls.__name__} is stored in the wrong part")
            count, columns = entry
            lazy = self.lazy.get(cls, frozenset())
            tables[cls] = _rows(cls, self._columns(cls, count, columns, tables, b"", lazy))
            if lazy:
                for index, obj in enumerate(tables[cls]):
                    obj.__dict__["_lazy"] = (pending, index)
        return tables[self.root][doc["root"]]

    def _columns(
        self,
        cls: type,
        count: int,
        columns: list[Any],
        tables: dict[type, list[Any]],
        blob: bytes,
        leave: frozenset[str] = frozenset(),
    ) -> dict[str, list[Any]]:
        if len(columns) != len(self.fields[cls]):
            raise ValueError(f"{cls.__name__}: wrong number of fields")
        out = {}
        for (name, shape), column in zip(self.fields[cls], columns):
            if name in leave:
                continue
            values = self._column(shape, tables, blob)(column)
            if len(values) != count:
                raise ValueError(f"{cls.__name__}: columns of different lengths")
            out[name] = values
        return out

    def _column(
        self, shape: Shape, tables: dict[type, list[Any]], blob: bytes
    ) -> Callable[[Any], list[Any]]:
        """A converter of a whole column (one pass, no call per value where avoidable)."""
        kind = shape[0]
        if _plain(shape):
            return lambda column: _texts(blob, column) if type(column) is dict else column
        if kind == "cls":
            return lambda column: list(map(tables[shape[1]].__getitem__, column))
        if kind == "tuple" and shape[1] == ("p",):
            return lambda column: list(map(tuple, column))
        if kind == "tuple" and shape[1][0] == "cls":
            cls = shape[1][1]
            return lambda column: [tuple(map(tables[cls].__getitem__, v)) for v in column]
        one = self._value(shape, tables)
        return lambda column: list(map(one, column))

    def _value(self, shape: Shape, tables: dict[type, list[Any]]) -> Decoder:
        """A converter of one value of ``shape``."""
        kind = shape[0]
        if _plain(shape):
            return lambda v: v
        if kind == "any":
            return _untag
        if kind == "err":
            return _error
        if kind == "cls":
            cls = shape[1]
            return lambda v: tables[cls][v]
        if kind == "opt":
            inner = self._value(shape[1], tables)
            return lambda v: None if v is None else inner(v)
        if kind == "tuple":
            if shape[1] == ("p",):
                return tuple
            inner = self._value(shape[1], tables)
            return lambda v: tuple(map(inner, v))
        if kind == "fixed":
            parts = [self._value(s, tables) for s in shape[1]]
            if all(_plain(s) for s in shape[1]):
                return tuple
            return lambda v: tuple(f(x) for f, x in zip(parts, v, strict=True))
        inner = self._value(shape[1], tables)  # "dict"
        return lambda v: {k: inner(x) for k, x in v.items()}


def lazy_field(obj: Any, name: str) -> Any:
    """``__getattr__`` of a class with fields a cache load decodes on first use: the field's
    value, from then on a plain attribute. Any other missing name is an AttributeError."""
    entry = obj.__dict__.get("_lazy")
    if entry is None or name not in entry[0].codec.lazy.get(type(obj), ()):
        raise AttributeError(f"{type(obj).__name__!r} object has no attribute {name!r}")
    pending, index = entry
    value = pending.value(type(obj), name, index)
    obj.__dict__[name] = value
    return value


def with_fields(obj: Any, **changes: Any) -> Any:
    """A copy of a decoded frozen value with ``changes``, its lazy fields still lazy (unlike
    ``dataclasses.replace``, which would decode them)."""
    copy = object.__new__(type(obj))
    copy.__dict__.update(obj.__dict__)
    copy.__dict__.update(changes)
    return copy


class _Pending:
    """What a decoded value's lazy fields come from; decoded once, on first use, by one thread."""

    def __init__(
        self, codec: Codec, tables: dict[type, list[Any]], rest: Callable[[], tuple[bytes, bytes]]
    ) -> None:
        self.codec = codec
        self.tables = tables  # the eager tables: lazy tables and fields refer to their rows
        self.rest: Callable[[], tuple[bytes, bytes]] | None = rest
        self.fields: dict[type, dict[str, list[Any]]] | None = None
        self.lock = threading.Lock()

    def value(self, cls: type, name: str, index: int) -> Any:
        fields = self.fields
        if fields is None:
            with self.lock:
                if self.fields is None:
                    self.fields = self._decode()
                fields = self.fields
        return fields[cls][name][index]

    def _decode(self) -> dict[type, dict[str, list[Any]]]:
        codec, tables = self.codec, self.tables
        assert self.rest is not None
        later, blob = self.rest()
        stored = json.loads(later)
        if not set(stored) <= set(codec.classes):
            raise ValueError("a table of a class that is not cached")
        for cls in codec.order:  # tables reached only through lazy fields
            entry = stored.get(cls.__name__)
            if entry is not None and cls not in codec.eager:
                count, columns = entry
                tables[cls] = _rows(cls, codec._columns(cls, count, columns, tables, blob))
        fields: dict[type, dict[str, list[Any]]] = {}
        for cls, names in codec.lazy.items():
            deferred = stored.get(cls.__name__) if cls in codec.eager else None
            if not isinstance(deferred, dict):
                continue
            count = len(tables[cls])
            shapes = dict(codec.fields[cls])
            fields[cls] = {}
            for name in names:
                values = codec._column(shapes[name], tables, blob)(deferred[name])
                if len(values) != count:
                    raise ValueError(f"{cls.__name__}.{name}: wrong length")
                fields[cls][name] = values
        self.rest = None
        return fields


def _rows(cls: type, columns: dict[str, list[Any]]) -> list[Any]:
    """Instances of ``cls`` from its decoded columns, built without ``__init__`` (a frozen
    dataclass sets each field through ``object.__setattr__``: twice the time)."""
    new = object.__new__
    names = list(columns)
    out = []
    for values in zip(*columns.values()):
        obj: Any = new(cls)
        obj.__dict__.update(zip(names, values))
        out.append(obj)
    return out


def _needs(shape: Shape) -> Iterable[type]:
    """The registered classes a value of ``shape`` holds rows of."""
    if shape[0] == "cls":
        yield shape[1]
    elif shape[0] in ("opt", "tuple", "dict"):
        yield from _needs(shape[1])
    elif shape[0] == "fixed":
        for s in shape[1]:
            yield from _needs(s)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


class _Blob:
    """Long text columns, kept out of the JSON: one UTF-8 string, each column a byte range."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def column(self, shape: Shape, column: list[Any]) -> Any:
        if shape != ("p",) or not all(type(v) is str for v in column):
            return column
        lengths = [len(v) for v in column]
        if sum(lengths) < TEXT_COLUMN_CHARS or sum(lengths) < 64 * len(column):
            return column
        data = "".join(column).encode("utf-8", "surrogatepass")
        self.parts.append(data)
        start, self.size = self.size, self.size + len(data)
        return {"b": [start, self.size], "n": lengths}

    def data(self) -> bytes:
        return b"".join(self.parts)


def _texts(blob: bytes, column: dict[str, Any]) -> list[str]:
    start, end = column["b"]
    text = blob[start:end].decode("utf-8", "surrogatepass")
    out = []
    position = 0
    for n in column["n"]:
        out.append(text[position : position + n])
        position += n
    if position != len(text):
        raise ValueError("text column of the wrong length")
    return out


class _Encoder:
    """Rows of every value reached from the root. Each field's shape is turned once into a
    function (``_encoder``), so a value is encoded without looking its shape up again."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.rows: dict[type, list[list[Any]]] = {}
        self.seen: dict[type, dict[str, int]] = {}  # shared classes: encoded row -> index
        self.by_id: dict[int, int] = {}  # the same object again (values are kept alive)
        self.plans = {
            cls: [(name, self._encoder(shape)) for name, shape in fields]
            for cls, fields in codec.fields.items()
        }

    def row(self, cls: type, obj: Any) -> int:
        index = self.by_id.get(id(obj))
        if index is not None:
            return index
        if type(obj) is not cls:
            raise TypeError(f"expected {cls.__name__}, got {type(obj).__name__}")
        row = [encode(getattr(obj, name)) for name, encode in self.plans[cls]]
        rows = self.rows.setdefault(cls, [])
        if cls in self.codec.shared:
            key = repr(row)  # JSON values only: equal text, equal rows
            seen = self.seen.setdefault(cls, {})
            index = seen.get(key)
            if index is None:
                index = seen[key] = len(rows)
                rows.append(row)
        else:
            index = len(rows)
            rows.append(row)
        self.by_id[id(obj)] = index
        return index

    def _encoder(self, shape: Shape) -> Callable[[Any], Any]:
        kind = shape[0]
        if kind == "p":
            return _plain_value
        if kind == "skip":
            return lambda v: None
        if kind == "any":
            return _tag
        if kind == "err":
            return _error_value
        if kind == "cls":
            cls, row = shape[1], self.row
            return lambda v: row(cls, v)
        inner: Any = None if kind == "fixed" else self._encoder(shape[1])
        if kind == "opt":
            return lambda v: None if v is None else inner(v)
        if kind == "tuple":
            if inner is _plain_value:
                return _plain_tuple

            def each(v: Any) -> Any:
                if type(v) is not tuple:
                    raise TypeError(f"expected a tuple, got {type(v).__name__}")
                return [inner(x) for x in v]

            return each
        if kind == "fixed":
            parts = [self._encoder(s) for s in shape[1]]

            def fixed(v: Any) -> Any:
                if type(v) is not tuple or len(v) != len(parts):
                    raise TypeError("expected a tuple of fixed length")
                return [encode(x) for encode, x in zip(parts, v)]

            return fixed

        def mapping(v: Any) -> Any:  # "dict"
            if not isinstance(v, dict) or not all(type(k) is str for k in v):
                raise TypeError("expected a dict with string keys")
            return {k: inner(x) for k, x in v.items()}

        return mapping


_PLAIN_TYPES = frozenset(_PLAIN)


def _plain_value(v: Any) -> Any:
    if type(v) in _PLAIN_TYPES:
        return v
    if isinstance(v, (str, int, float)):  # a subclass (an IntEnum): its plain value
        return _tag(v)
    raise TypeError(f"cannot cache a {type(v).__name__} here")


def _plain_tuple(v: Any) -> Any:
    if type(v) is not tuple:
        raise TypeError(f"expected a tuple, got {type(v).__name__}")
    if all(type(x) in _PLAIN_TYPES for x in v):
        return list(v)
    return [_plain_value(x) for x in v]


def _error_value(v: Any) -> Any:
    if not isinstance(v, CadenceError) or type(v) is not CadenceError:
        raise TypeError("only plain CadenceError warnings are cached")
    return [v.message, v.file, v.line, v.column, v.hint, v.severity]


def _tag(v: Any) -> Any:
    """A value of a field typed ``Any`` (YAML and config() values) as JSON."""
    if v is None or type(v) in (str, int, float, bool):
        return v
    if isinstance(v, str):
        return str(v)
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, tuple):
        return {"(": [_tag(x) for x in v]}
    if isinstance(v, list):
        return [_tag(x) for x in v]
    if isinstance(v, dict):
        if all(type(k) is str for k in v) and not (len(v) == 1 and next(iter(v)) in _TAGS):
            return {k: _tag(x) for k, x in v.items()}
        return {"{": [[_tag(k), _tag(x)] for k, x in v.items()]}
    if isinstance(v, (set, frozenset)):
        return {"s": [_tag(x) for x in v]}
    raise TypeError(f"cannot cache a {type(v).__name__}")


def _untag(v: Any) -> Any:
    if type(v) is list:
        return [_untag(x) for x in v]
    if type(v) is dict:
        if len(v) == 1:
            ((key, inner),) = v.items()
            if key == "(":
                return tuple(_untag(x) for x in inner)
            if key == "s":
                return frozenset(_untag(x) for x in inner)
            if key == "{":
                return {_hashable(_untag(k)): _untag(x) for k, x in inner}
        return {k: _untag(x) for k, x in v.items()}
    return v


def _hashable(key: Any) -> Any:
    return tuple(key) if type(key) is list else key


def _error(v: list[Any]) -> CadenceError:
    message, file, line, column, hint, severity = v
    return CadenceError(message, file=file, line=line, column=column, hint=hint, severity=severity)
