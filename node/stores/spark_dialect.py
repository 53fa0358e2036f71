"""Spark SQL for the plans a node compiles: the same values DuckDB gives, spelled for Spark.

Identifiers are backquoted names from the dataset definitions and the node's own views; every
value is still a `?` parameter (`SparkSession.sql(text, args=[...])` binds them as typed
literals). Where Spark's SQL means something else than DuckDB's for the same spelling, this
spells DuckDB's meaning:

- `a / b` is a DOUBLE division that gives ±infinity or NaN for a zero divisor of either sign
  (Spark's raises);
- `a // b` truncates integers (Spark's `div`), and divides other numbers as DOUBLEs;
- `date ± n` fails past the last day a DATE holds (Spark's wraps around);
- `date_diff` counts the boundaries DuckDB counts (Spark's `timestampdiff` counts whole units);
- `date_trunc` of a DATE is a TIMESTAMP (without time zone, the session being UTC);
- a sum of integers is a DECIMAL(38,0), which the store turns back into an int (DuckDB's
  128-bit sum), so that it neither overflows nor loses digits.

A private plan's "give NULL rather than fail" (`TRY` in DuckDB) is the store's session without
ANSI mode, in which Spark gives NULL for a division by zero or a bad cast and wraps an integer
overflow: either way the value is then clamped to the declared bounds, so one person's row still
moves a statistic by at most the bound, and no question fails because of it.
"""

from __future__ import annotations

from typing import ClassVar

from cityfed.v1 import query_pb2

from federation.query.compile import Dialect, SqlFragment, date_part_name, join
from federation.query.datasets import DATASETS, PERSON_ROW_RANK, Dataset
from federation.query.typecheck import expression_type
from federation.query.values import FarDate, FarTimestamp

F = query_pb2.Function

RANKED_SUFFIX = "__ranked"
_MICROSECONDS = {"hour": 3_600_000_000}


def spark_quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _micros(fragment: SqlFragment) -> SqlFragment:
    return join("unix_micros(CAST(", [fragment], "", " AS TIMESTAMP))")


class SparkDialect(Dialect):
    name = "spark"
    type_names: ClassVar[dict[str, str]] = {
        "HUGEINT": "DECIMAL(38,0)", "TIMESTAMP": "TIMESTAMP_NTZ", "VARCHAR": "STRING"}
    decimal_integer_sums = True

    def __init__(self, dataset: Dataset | None = None) -> None:
        self.dataset = dataset

    def for_dataset(self, dataset: Dataset) -> SparkDialect:
        return SparkDialect(dataset)  # `//` needs its arguments' types

    def quote(self, name: str) -> str:
        return spark_quote(name)

    def table(self, name: str, *, ranked: bool) -> str:
        return spark_quote(name + RANKED_SUFFIX if ranked else name)

    def total(self, compiled: SqlFragment) -> SqlFragment:
        return compiled  # run on the session without ANSI mode (see the module's docstring)

    def integer_sum(self, argument: str) -> str:
        return f"sum(CAST({argument} AS DECIMAL(38,0)))"

    def far_literal(self, value: FarDate | FarTimestamp) -> SqlFragment:
        """From its day or microsecond number: Spark holds every DATE and TIMESTAMP DuckDB
        does, ±infinity too, but reads neither `(BC)` nor `infinity` in a literal's text."""
        if isinstance(value, FarDate):
            return SqlFragment("date_from_unix_date(CAST(? AS INT))", [value.number])
        return SqlFragment("CAST(timestamp_micros(CAST(? AS BIGINT)) AS TIMESTAMP_NTZ)",
                           [value.number])

    def as_number(self, type_name: str, column: str) -> str:
        if type_name == "DATE":
            return f"unix_date({column})"
        return f"unix_micros(CAST({column} AS TIMESTAMP))"

    def call(self, call: query_pb2.Call, args: list[SqlFragment]) -> SqlFragment | None:
        function = call.function
        if function == F.FUNCTION_DIVIDE:
            return _ieee_division(args)
        if function == F.FUNCTION_INTEGER_DIVIDE:
            assert self.dataset is not None
            left, right = (expression_type(a, self.dataset) for a in call.arguments)
            if left.is_integer and right.is_integer:
                return join("(", args, " div ", ")")
            return _ieee_division(args)
        if function in (F.FUNCTION_ADD, F.FUNCTION_SUBTRACT) and self.dataset is not None:
            types = [expression_type(a, self.dataset) for a in call.arguments]
            if any(t.name == "DATE" for t in types) and any(t.is_integer for t in types):
                return _date_shift(args, types, function == F.FUNCTION_SUBTRACT)
        if function == F.FUNCTION_DATE_TRUNC:
            part = date_part_name(call.arguments[0])
            return join(f"date_trunc('{part}', CAST(", args, "", " AS TIMESTAMP_NTZ))")
        if function == F.FUNCTION_DATE_DIFF:
            return _date_diff(date_part_name(call.arguments[0]), *args)
        return None


def _ieee_division(args: list[SqlFragment]) -> SqlFragment:
    """DuckDB's DOUBLE division: x / 0 is +∞, -∞ or NaN, where Spark's raises or gives NULL;
    the zero's sign counts (1 / -0.0 is -∞), which its text tells (Spark's functions, atan2
    too, turn -0.0 into 0.0)."""
    left, right = (join("CAST(", [a], "", " AS DOUBLE)") for a in args)
    return SqlFragment(
        f"(CASE WHEN {right.text} = 0 THEN {left.text} * CAST(IF(startswith(CAST("
        f"{right.text} AS STRING), '-'), '-Infinity', 'Infinity') AS DOUBLE) "
        f"ELSE {left.text} / {right.text} END)",
        [*right.params, *left.params, *right.params, *left.params, *right.params])


def _date_shift(args: list[SqlFragment], types: list, subtract: bool) -> SqlFragment:
    """A DATE plus or minus days. Spark's `date + n` wraps around past its last day, where
    DuckDB's fails: the day number is counted in 64 bits and cast back to a day, which fails
    (CAST_OVERFLOW, in ANSI mode) out of the range both hold."""
    date, days = (args[0], args[1]) if types[0].name == "DATE" else (args[1], args[0])
    return join("date_from_unix_date(CAST((CAST(unix_date(", [date, join(
        "CAST(", [days], "", " AS BIGINT)")], ") AS BIGINT) " + ("-" if subtract else "+") + " ",
        ") AS INT))")


def _date_diff(part: str, start: SqlFragment, end: SqlFragment) -> SqlFragment:
    """The boundaries of `part` between two DATEs or TIMESTAMPs, as DuckDB counts them."""
    if part in ("year", "quarter", "month"):
        def number(x: SqlFragment) -> SqlFragment:
            if part == "year":
                return join("year(", [x], "", ")")
            per_year = 4 if part == "quarter" else 12
            return join("(year(", [x, x], f") * {per_year} + {part}(", "))")
        return join("CAST((", [number(end), number(start)], " - ", ") AS BIGINT)")
    days = join("CAST(datediff(", [join("CAST(", [end], "", " AS DATE)"),
                                   join("CAST(", [start], "", " AS DATE)")], ", ", ") AS BIGINT)")
    if part == "day":
        return days
    if part == "week":  # DuckDB: the days between their dates, in whole weeks towards zero
        return join("(", [days], "", " div 7)")
    size = _MICROSECONDS[part]
    # hour: the hour boundaries crossed: each side's hour, its microseconds divided by an hour
    # rounding down (also before 1970, where `div` would round towards zero)
    return join("(", [_floor_div(_micros(end), size), _floor_div(_micros(start), size)],
                " - ", ")")


def _floor_div(micros: SqlFragment, size: int) -> SqlFragment:
    x = micros.text
    return SqlFragment(f"(({x} div {size}) - CASE WHEN {x} < 0 AND pmod({x}, {size}) <> 0 "
                       "THEN 1 ELSE 0 END)", micros.params * 3)


def ranked_view_sql(name: str, seed: int) -> str:
    """A dataset's rows with the hidden per-person row rank that private answers bound each
    person's rows by: row_number over each person's rows in an order keyed by the node's own
    secret seed, so that it is the same at every question and unknown to callers."""
    dataset = DATASETS[name]
    columns = ", ".join(spark_quote(c) for c in dataset.column_names)
    unit = spark_quote(dataset.entity)
    if dataset.entity_fallback:
        unit = (f"coalesce({unit}, concat('{dataset.entity_fallback}:', "
                f"{spark_quote(dataset.entity_fallback)}))")
    return (f"SELECT {columns}, CAST(row_number() OVER (PARTITION BY {unit} ORDER BY "
            f"xxhash64({columns}, {int(seed)})) AS INT) AS {spark_quote(PERSON_ROW_RANK)} "
            f"FROM {spark_quote(name)}")
