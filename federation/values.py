"""Conversion between Python values (as DuckDB returns them) and `cityfed.v1.Value`, and the
order DuckDB gives them: NaN is one value, greater than every number (`nan_last`,
`duckdb_less`), where Python's NaN equals nothing and compares false."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

from cityfed.v1 import query_pb2

from federation.errors import InvalidQuery

EPOCH_DATE = dt.date(1970, 1, 1)
EPOCH_TIMESTAMP = dt.datetime(1970, 1, 1)
_INT64 = range(-(2**63), 2**63)
_MICROSECOND = dt.timedelta(microseconds=1)

PyValue = None | bool | int | float | Decimal | str | dt.date | dt.datetime

# Every NaN decodes to this one object. A dict compares keys by identity before equality, so
# NaN group keys from different cities fall into one group, as they do in DuckDB.
NAN = math.nan


def to_value(python_value: PyValue) -> query_pb2.Value:
    value = query_pb2.Value()
    if python_value is None:
        return value
    if isinstance(python_value, bool):
        value.bool_value = python_value
    elif isinstance(python_value, int):
        if python_value in _INT64:
            value.int_value = python_value
        else:
            value.big_int_value = str(python_value)
    elif isinstance(python_value, float):
        value.double_value = python_value
    elif isinstance(python_value, Decimal):
        value.decimal_value = format(python_value, "f")
    elif isinstance(python_value, str):
        value.string_value = python_value
    elif isinstance(python_value, dt.datetime):
        value.timestamp_value = (python_value - EPOCH_TIMESTAMP) // _MICROSECOND
    elif isinstance(python_value, dt.date):
        value.date_value = (python_value - EPOCH_DATE).days
    else:
        raise TypeError(f"no cityfed.v1.Value for {type(python_value).__name__}")
    return value


def from_value(value: query_pb2.Value) -> PyValue:
    kind = value.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "big_int_value":
        return _parse(int, value.big_int_value, "big_int_value")
    if kind == "decimal_value":
        return _parse(Decimal, value.decimal_value, "decimal_value")
    if kind == "date_value":
        return EPOCH_DATE + dt.timedelta(days=value.date_value)
    if kind == "timestamp_value":
        return EPOCH_TIMESTAMP + dt.timedelta(microseconds=value.timestamp_value)
    if kind == "double_value" and math.isnan(value.double_value):
        return NAN
    return getattr(value, kind)


def _parse(kind: type, text: str, field: str) -> PyValue:
    # The messages leave the text out: it may be a caller's literal, or a value of a row.
    try:
        parsed = kind(text)
    except (ValueError, ArithmeticError):
        raise InvalidQuery(f"a {field} is not a number") from None
    if isinstance(parsed, Decimal) and not parsed.is_finite():
        raise InvalidQuery(f"a {field} is not a finite number")
    return parsed


def same_value(a: PyValue, b: PyValue, *, same_type: bool = True) -> bool:
    """Whether two answers' values agree: exactly, except that floating-point results (an
    average, a division) may differ in the last bits, as they do between two DuckDB runs."""
    if a is None or b is None:
        return a is b
    if _is_nan(a) or _is_nan(b):
        return _is_nan(a) and _is_nan(b)
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return Decimal(a) == Decimal(b)
    return a == b and (type(a) is type(b) or not same_type)


def comparison_key(row: tuple) -> tuple:
    """A sort key for rows whose order does not matter, stable under the float differences
    `same_value` allows, so that two answers can be compared row by row."""
    return tuple((0, "") if v is None else
                 (1, f"{float(v):.6g}" if isinstance(v, float | Decimal) else repr(v))
                 for v in row)


def _is_nan(value: PyValue) -> bool:
    return isinstance(value, float) and math.isnan(value)


def nan_last(value: PyValue) -> tuple:
    """A sort key for non-NULL values of one column in DuckDB's order: NaN after every number."""
    return (True, 0.0) if _is_nan(value) else (False, value)


def duckdb_less(a: PyValue, b: PyValue) -> bool:
    """a < b for two non-NULL values of one column, in DuckDB's order (NaN the greatest)."""
    if _is_nan(a) or _is_nan(b):
        return not _is_nan(a)
    return a < b
