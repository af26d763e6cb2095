"""A seed's columns and their types, as dbt-duckdb gives them, read from its CSV file.

Input: a CSV file, its delimiter and the ``column_types`` a project set -> output: the header's
columns, each with the SQL type the seed's table is created with. dbt types a seed's columns from
their values (agate's type tests, in dbt's order of preference) and then lets DuckDB copy the
file into that table, so: whole numbers are INTEGER (not BIGINT), numbers with decimal places
DOUBLE, ``YYYY-MM-DD`` DATE, ``YYYY-MM-DD HH:MM:SS`` and ISO 8601 times with a ``T`` TIMESTAMP,
``true``/``false`` BOOLEAN, anything else VARCHAR; empty fields and ``null`` are left out of the
tests; a column named in ``column_types`` gets exactly that type. A row with more or fewer values
than the header is an error naming the file, its line and the row (dbt stops there too). Used by
``seeds`` for every seed (the row check) and, in a dbt project, for its types.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal, InvalidOperation

from cadence.errors import CadenceError

NULLS = ("", "null")
CURRENCY = "؋$ƒ៛¥₡₱£€¢﷼₪₩₭₮₦฿₤₫"
# agate's tests, in dbt's order of preference, and the SQL type each gives
ORDER = ("number", "date", "datetime", "isodatetime", "boolean", "text")
SQL = {
    "date": "date",
    "datetime": "timestamp",
    "isodatetime": "timestamp",
    "boolean": "boolean",
    "text": "varchar",
}


def _number(text: str) -> Decimal | None:
    """agate's Number: signs, %, currency symbols and thousands separators allowed."""
    d = text.strip("%")
    sign = 1
    if d[:1] == "-":
        d, sign = d[1:], -1
    d = d.strip(CURRENCY).replace(",", "")
    try:
        return Decimal(d) * sign
    except (InvalidOperation, ValueError):
        return None


def _date(text: str) -> bool:
    try:
        dt.datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


def _datetime(text: str) -> bool:
    try:
        dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return False
    return True


def _isodatetime(text: str) -> bool:
    if "T" not in text:
        return False
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _boolean(text: str) -> bool:
    return text.replace(",", "").strip().lower() in ("true", "false")


TESTS = {"date": _date, "datetime": _datetime, "isodatetime": _isodatetime, "boolean": _boolean}


class _Column:
    """The type hypotheses still open for one column, and the decimal places seen."""

    def __init__(self) -> None:
        self.open = set(ORDER)
        self.decimals = 0

    def see(self, raw: str) -> None:
        value = raw.strip()
        if value.lower() in NULLS:
            return
        if "number" in self.open:
            number = _number(value)
            if number is None:
                self.open.discard("number")
            elif number.is_finite():
                exponent = number.normalize().as_tuple().exponent
                if isinstance(exponent, int) and exponent < 0:
                    self.decimals = max(self.decimals, -exponent)
        for kind, test in TESTS.items():
            if kind in self.open and not test(value):
                self.open.discard(kind)

    def sql_type(self) -> str:
        for kind in ORDER:
            if kind in self.open:
                if kind == "number":
                    return "double" if self.decimals else "integer"
                return SQL[kind]
        return "varchar"

    def settled(self) -> bool:
        return self.open == {"text"}


def read_columns(
    data: bytes,
    file: str,
    delimiter: str | None = None,
    column_types: dict[str, str] | None = None,
    *,
    infer: bool = True,
) -> list[tuple[str, str]]:
    """(column, SQL type) for each header column; raises ``CadenceError`` at the first row whose
    width differs from the header's. Without ``infer`` only the widths are checked (types
    "")."""
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or ",")
    try:
        header = next(reader)
    except StopIteration:
        raise CadenceError(
            "the seed is empty: it needs a header row", file=file, line=1, hint="add a header"
        ) from None
    except csv.Error as exc:
        raise CadenceError(f"cannot read the CSV header: {exc}", file=file, line=1) from None
    forced = dict(column_types or {})
    columns = [_Column() for _ in header]
    width = len(header)
    row = 0
    try:
        for values in reader:
            if not values:
                continue  # a blank line: no row (DuckDB skips it too)
            row += 1
            if len(values) != width:
                raise CadenceError(
                    f"row {row} has {len(values)} values, but the header has {width} columns",
                    file=file,
                    line=reader.line_num,
                    hint="every row needs one value per header column (quote values that "
                    f"hold the delimiter {delimiter or ','!r})",
                )
            if infer:
                for column, value in zip(columns, values, strict=True):
                    if not column.settled():
                        column.see(value)
    except csv.Error as exc:
        raise CadenceError(
            f"cannot read row {row + 1}: {exc}", file=file, line=reader.line_num
        ) from None
    if not infer:
        return [(name, "") for name in header]
    return [
        (name, forced.get(name) or column.sql_type())
        for name, column in zip(header, columns, strict=True)
    ]
