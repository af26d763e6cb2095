"""dbt's cross-database macros, as dbt-duckdb renders them: the ``dbt`` namespace's built-ins.

Input: the macro's arguments (SQL expressions as text, as dbt passes them) -> output: the SQL
text dbt-duckdb's adapter gives for them (its ``duckdb__`` version where it has one, dbt's
``default__`` one otherwise), written here in Python so rendering them costs no Jinja. A
project (or package) that defines ``duckdb__<name>``/``default__<name>`` overrides one through
``adapter.dispatch``, which ``context`` resolves before falling back to these. Macros that
read the warehouse (``get_intervals_between``, hence ``date_spine``) ask ``query``; at load
time (dbt's parse) they answer as dbt's do when ``execute`` is false.
tests/test_dbt_crossdb.py compares each one with the SQL dbt 1.11 compiled for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

TYPE_LABELS = {"STRING": "TEXT"}  # dbt's Column.translate_type; other names pass through

Query = Callable[[str], list[tuple[Any, ...]]]


def translate_type(dtype: str) -> str:
    return TYPE_LABELS.get(str(dtype).upper(), str(dtype))


def numeric_type(dtype: str, precision: Any, scale: Any) -> str:
    if precision is None or scale is None:
        return str(dtype)
    return f"{dtype}({precision},{scale})"


def string_type(size: int) -> str:
    return f"character varying({size})"


def any_value(expression: Any) -> str:
    return f"arbitrary({expression})"


def array_append(array: Any, new_element: Any) -> str:
    return f"array_append({array}, {new_element})"


def array_concat(array_1: Any, array_2: Any) -> str:
    return f"array_cat({array_1}, {array_2})"


def array_construct(inputs: Any = (), data_type: Any = "integer") -> str:
    items = list(inputs or [])
    if items:
        return "array[ " + " , ".join(str(i) for i in items) + " ]"
    return f"array[]::{data_type}[]"


def bool_or(expression: Any) -> str:
    return f"bool_or({expression})"


def cast(field: Any, type: Any) -> str:  # noqa: A002 - dbt's argument name
    return f"cast({field} as {type})"


def cast_bool_to_text(field: Any) -> str:
    return f"cast({field} as {translate_type('string')})"


def concat(fields: Any) -> str:
    return " || ".join(str(f) for f in fields)


def current_timestamp() -> str:
    return "now()"


def current_timestamp_backcompat() -> str:
    return "current_timestamp::timestamp"


def current_timestamp_in_utc_backcompat() -> str:
    return "current_timestamp::timestamp"


def date(year: Any, month: Any, day: Any) -> str:
    return f"make_date({year}, {month}, {day})"


def date_trunc(datepart: Any, date: Any) -> str:
    return f"date_trunc('{datepart}', {date})"


def dateadd(datepart: Any, interval: Any, from_date_or_timestamp: Any) -> str:
    unit = str(datepart).lower()
    if unit == "quarter":
        return f"({from_date_or_timestamp} + (cast({interval} as bigint) * 3) * interval 1 month)"
    if unit == "week":
        return f"({from_date_or_timestamp} + (cast({interval} as bigint) * 7) * interval 1 day)"
    return f"({from_date_or_timestamp} + cast({interval} as bigint) * interval 1 {unit})"


def datediff(first_date: Any, second_date: Any, datepart: Any) -> str:
    if datepart == "week":
        days = datediff(first_date, second_date, "day")
        return (
            f"({days} // 7 + case\n"
            f"    when date_part('dow', ({first_date})::timestamp) <= "
            f"date_part('dow', ({second_date})::timestamp) then\n"
            f"        case when {first_date} <= {second_date} then 0 else -1 end\n"
            f"    else\n"
            f"        case when {first_date} <= {second_date} then 1 else 0 end\n"
            "end)"
        )
    return f"(date_diff('{datepart}', {first_date}::timestamp, {second_date}::timestamp ))"


def equals(expr1: Any, expr2: Any) -> str:
    return f"({expr1} = {expr2})"


def escape_single_quotes(expression: Any) -> str:
    return str(expression).replace("'", "''")


def except_() -> str:
    return "except"


def intersect() -> str:
    return "intersect"


def generate_series(upper_bound: Any) -> str:
    return (
        f"select\n    generate_series as generated_number\nfrom generate_series(1, {upper_bound})"
    )


def get_powers_of_two(upper_bound: Any) -> int:
    from cadence.errors import CadenceError

    if upper_bound <= 0:
        raise CadenceError("upper bound must be positive", hint="raised by dbt.get_powers_of_two")
    for i in range(1, 100):
        if upper_bound <= 2**i:
            return i
    return 99


def hash(field: Any) -> str:  # noqa: A001 - dbt's name
    return f"md5(cast({field} as {translate_type('string')}))"


def last_day(date: Any, datepart: Any) -> str:
    if datepart == "quarter":
        inner = dateadd("month", "3", date_trunc(datepart, date))
        return f"cast(\n{dateadd('day', '-1', inner)}\nas date)"
    return default_last_day(date, datepart)


def default_last_day(date: Any, datepart: Any) -> str:
    inner = dateadd(datepart, "1", date_trunc(datepart, date))
    return f"cast(\n{dateadd('day', '-1', inner)}\nas date)"


def length(expression: Any) -> str:
    return f"length(\n    {expression}\n)"


def listagg(
    measure: Any, delimiter_text: Any = "','", order_by_clause: Any = None, limit_num: Any = None
) -> str:
    order = f" {order_by_clause}" if order_by_clause else ""
    if limit_num:
        return (
            f"list_aggr(\n    (array_agg(\n        {measure}{order}\n    ))[1:{limit_num}],\n"
            f"    'string_agg',\n    {delimiter_text}\n)"
        )
    return f"string_agg(\n    {measure},\n    {delimiter_text}{order}\n)"


def position(substring_text: Any, string_text: Any) -> str:
    return f"position(\n    {substring_text} in {string_text}\n)"


def replace(field: Any, old_chars: Any, new_chars: Any) -> str:
    return f"replace(\n    {field},\n    {old_chars},\n    {new_chars}\n)"


def right(string_text: Any, length_expression: Any) -> str:
    return f"right(\n    {string_text},\n    {length_expression}\n)"


def safe_cast(field: Any, type: Any) -> str:  # noqa: A002 - dbt's argument name
    return f"cast({field} as {type})"  # dbt-duckdb: a plain cast (fails at query time)


def split_part(string_text: Any, delimiter_text: Any, part_number: Any) -> str:
    return f"string_split({string_text}, {delimiter_text})[ {part_number} ]"


def string_literal(value: Any) -> str:
    return f"'{value}'"


def type_string() -> str:
    return translate_type("string")


def type_timestamp() -> str:
    return translate_type("timestamp")


def type_float() -> str:
    return translate_type("float")


def type_numeric() -> str:
    return numeric_type("numeric", 28, 6)


def type_bigint() -> str:
    return translate_type("bigint")


def type_int() -> str:
    return translate_type("integer")


def type_boolean() -> str:
    return translate_type("boolean")


def get_intervals_between(
    start_date: Any, end_date: Any, datepart: Any, query: Query | None = None
) -> Any:
    """How many ``datepart`` lie between two dates: asks the warehouse, as dbt's macro does
    (1 when it cannot, as dbt's parse gets)."""
    if query is None:
        return 1
    rows = query(f"select {datediff(start_date, end_date, datepart)}")
    return rows[0][0] if rows and rows[0] else 1


def date_spine(datepart: Any, start_date: Any, end_date: Any, query: Query | None = None) -> str:
    n = get_intervals_between(start_date, end_date, datepart, query)
    step = dateadd(datepart, "row_number() over (order by 1) - 1", start_date)
    return (
        f"with rawdata as (\n{generate_series(n)}\n),\n"
        f"all_periods as (\n    select (\n        {step}\n    ) as date_{datepart}\n"
        "    from rawdata\n),\n"
        f"filtered as (\n    select *\n    from all_periods\n    where date_{datepart} <= "
        f"{end_date}\n)\nselect * from filtered"
    )


def default_date(year: int, month: int, day: int) -> str:
    """dbt's ``default__date`` (a project calling it by that name)."""
    return f"to_date('{dt.date(year, month, day).strftime('%Y-%m-%d')}', 'YYYY-MM-DD')"


# name in the ``dbt`` namespace -> its DuckDB rendering
BUILTINS: dict[str, Callable[..., Any]] = {
    "any_value": any_value,
    "array_append": array_append,
    "array_concat": array_concat,
    "array_construct": array_construct,
    "bool_or": bool_or,
    "cast": cast,
    "cast_bool_to_text": cast_bool_to_text,
    "concat": concat,
    "current_timestamp": current_timestamp,
    "current_timestamp_backcompat": current_timestamp_backcompat,
    "current_timestamp_in_utc_backcompat": current_timestamp_in_utc_backcompat,
    "date": date,
    "date_trunc": date_trunc,
    "dateadd": dateadd,
    "datediff": datediff,
    "default_last_day": default_last_day,
    "equals": equals,
    "escape_single_quotes": escape_single_quotes,
    "except": except_,
    "intersect": intersect,
    "generate_series": generate_series,
    "get_powers_of_two": get_powers_of_two,
    "hash": hash,
    "last_day": last_day,
    "length": length,
    "listagg": listagg,
    "position": position,
    "replace": replace,
    "right": right,
    "safe_cast": safe_cast,
    "split_part": split_part,
    "string_literal": string_literal,
    "type_string": type_string,
    "type_timestamp": type_timestamp,
    "type_float": type_float,
    "type_numeric": type_numeric,
    "type_bigint": type_bigint,
    "type_int": type_int,
    "type_boolean": type_boolean,
}
QUERYING = {"get_intervals_between": get_intervals_between, "date_spine": date_spine}
