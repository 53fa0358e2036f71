"""Conversion between Python values (as DuckDB returns them) and `cityfed.v1.Value`, and the
order DuckDB gives them.

Two of DuckDB's meanings need care in Python. NaN is one value, greater than every number
(`nan_last`, `duckdb_less`), where Python's NaN equals nothing and compares false. And DuckDB
holds dates and timestamps far beyond Python's years 1 to 9999 (and ±infinity): those come
back as `FarDate` and `FarTimestamp`, which order with `datetime.date` and `datetime.datetime`
and print as DuckDB prints them.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal

from cityfed.v1 import query_pb2

from federation.errors import InvalidQuery

EPOCH_DATE = dt.date(1970, 1, 1)
EPOCH_TIMESTAMP = dt.datetime(1970, 1, 1)
_INT64 = range(-(2**63), 2**63)
_MICROSECOND = dt.timedelta(microseconds=1)

# Every NaN decodes to this one object. A dict compares keys by identity before equality, so
# NaN group keys from different cities fall into one group, as they do in DuckDB.
NAN = math.nan

# DuckDB's ±infinity: the largest and smallest stored day and microsecond numbers.
_DATE_INFINITY = 2**31 - 1
_TIMESTAMP_INFINITY = 2**63 - 1
_DAYS_IN_400_YEARS = 146_097
_MICROSECONDS_A_DAY = 86_400_000_000


def _duckdb_date_text(days: int) -> str:
    """A day number written as DuckDB writes a DATE: 'yyyy-mm-dd', more digits past 9999,
    and ' (BC)' before year 1 (the year before 1 is 1 BC)."""
    cycles, rest = divmod(days, _DAYS_IN_400_YEARS)  # the calendar repeats every 400 years
    date = EPOCH_DATE + dt.timedelta(days=rest)
    year = date.year + 400 * cycles
    text = f"{year if year > 0 else 1 - year:04d}-{date.month:02d}-{date.day:02d}"
    return text if year > 0 else text + " (BC)"


@dataclass(frozen=True)
class _Ordered:
    """Orders by `number` among its own kind and with the matching `datetime` values."""

    number: int

    def _other(self, other: object) -> int | None:
        raise NotImplementedError

    def __lt__(self, other: object) -> bool:
        number = self._other(other)
        return NotImplemented if number is None else self.number < number

    def __le__(self, other: object) -> bool:
        number = self._other(other)
        return NotImplemented if number is None else self.number <= number

    def __gt__(self, other: object) -> bool:
        number = self._other(other)
        return NotImplemented if number is None else self.number > number

    def __ge__(self, other: object) -> bool:
        number = self._other(other)
        return NotImplemented if number is None else self.number >= number


@dataclass(frozen=True, eq=True, order=False)
class FarDate(_Ordered):
    """A DATE that `datetime.date` cannot hold: `number` days since 1970-01-01."""

    def _other(self, other: object) -> int | None:
        if isinstance(other, FarDate):
            return other.number
        if isinstance(other, dt.date) and not isinstance(other, dt.datetime):
            return (other - EPOCH_DATE).days
        return None

    def __str__(self) -> str:
        if abs(self.number) == _DATE_INFINITY:
            return "infinity" if self.number > 0 else "-infinity"
        return _duckdb_date_text(self.number)


@dataclass(frozen=True, eq=True, order=False)
class FarTimestamp(_Ordered):
    """A TIMESTAMP that `datetime.datetime` cannot hold: `number` µs since 1970-01-01."""

    def _other(self, other: object) -> int | None:
        if isinstance(other, FarTimestamp):
            return other.number
        if isinstance(other, dt.datetime):
            return (other - EPOCH_TIMESTAMP) // _MICROSECOND
        return None

    def __str__(self) -> str:
        if abs(self.number) == _TIMESTAMP_INFINITY:
            return "infinity" if self.number > 0 else "-infinity"
        days, micros = divmod(self.number, _MICROSECONDS_A_DAY)
        date = _duckdb_date_text(days)
        seconds, fraction = divmod(micros, 1_000_000)
        time = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if fraction:
            time += f".{fraction:06d}".rstrip("0")
        return f"{date} {time}"


PyValue = (None | bool | int | float | Decimal | str | dt.date | dt.datetime | FarDate
           | FarTimestamp)


def date_from_days(days: int) -> dt.date | FarDate:
    try:
        return EPOCH_DATE + dt.timedelta(days=days)
    except OverflowError:
        return FarDate(days)


def timestamp_from_micros(micros: int) -> dt.datetime | FarTimestamp:
    try:
        return EPOCH_TIMESTAMP + dt.timedelta(microseconds=micros)
    except OverflowError:
        return FarTimestamp(micros)


def decode_temporal(rows: list[tuple],
                    temporal: tuple[tuple[int, str], ...]) -> list[tuple]:
    """Rows whose DATE and TIMESTAMP columns (position, type name) came as day and microsecond
    numbers since 1970-01-01, with those turned into date and timestamp values."""
    if not temporal:
        return rows
    decoders = [(i, date_from_days if kind == "DATE" else timestamp_from_micros)
                for i, kind in temporal]
    decoded = []
    for row in rows:
        row = list(row)
        for i, decode in decoders:
            if row[i] is not None:
                row[i] = decode(row[i])
        decoded.append(tuple(row))
    return decoded


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
    elif isinstance(python_value, FarDate):
        value.date_value = python_value.number
    elif isinstance(python_value, FarTimestamp):
        value.timestamp_value = python_value.number
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
        return date_from_days(value.date_value)
    if kind == "timestamp_value":
        return timestamp_from_micros(value.timestamp_value)
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
    if isinstance(a, FarDate | FarTimestamp) or isinstance(b, FarDate | FarTimestamp):
        return str(a) == str(b)  # DuckDB's Python client gives these as its text
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
