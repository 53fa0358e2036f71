"""Compile plan expressions to parameterised SQL: DuckDB's, or another engine's through a
`Dialect` (a node on Spark, node.stores.spark) that must give the values DuckDB gives.

The only text that reaches SQL is produced here: operator spellings from a fixed table,
identifiers the caller of `compile_expression` resolves from code (a dataset's schema, or the
coordinator's own column names), and `?` placeholders. Every literal is bound as a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar

from cityfed.v1 import query_pb2

from federation.errors import InvalidQuery
from federation.query.datasets import Dataset
from federation.query.values import FarDate, FarTimestamp, PyValue, from_value

F = query_pb2.Function

BINARY_OPERATORS = {
    F.FUNCTION_ADD: "+",
    F.FUNCTION_SUBTRACT: "-",
    F.FUNCTION_MULTIPLY: "*",
    F.FUNCTION_DIVIDE: "/",
    F.FUNCTION_INTEGER_DIVIDE: "//",
    F.FUNCTION_MODULO: "%",
    F.FUNCTION_EQUAL: "=",
    F.FUNCTION_NOT_EQUAL: "<>",
    F.FUNCTION_LESS: "<",
    F.FUNCTION_LESS_OR_EQUAL: "<=",
    F.FUNCTION_GREATER: ">",
    F.FUNCTION_GREATER_OR_EQUAL: ">=",
}
CONJUNCTIONS = {F.FUNCTION_AND: "AND", F.FUNCTION_OR: "OR"}
DATE_PARTS_OF = {F.FUNCTION_YEAR: "year", F.FUNCTION_MONTH: "month", F.FUNCTION_DAY: "day",
                 F.FUNCTION_HOUR: "hour"}
DATE_PART_NAMES = frozenset({"year", "quarter", "month", "week", "day", "hour"})

# How many arguments each function takes: (at least, at most); None means no upper bound.
ARITY: dict[int, tuple[int, int | None]] = {
    **{f: (2, 2) for f in BINARY_OPERATORS},
    **{f: (2, None) for f in CONJUNCTIONS},
    **{f: (1, 1) for f in DATE_PARTS_OF},
    F.FUNCTION_NEGATE: (1, 1),
    F.FUNCTION_NOT: (1, 1),
    F.FUNCTION_IS_NULL: (1, 1),
    F.FUNCTION_IS_NOT_NULL: (1, 1),
    F.FUNCTION_IN: (2, None),
    F.FUNCTION_NOT_IN: (2, None),
    F.FUNCTION_BETWEEN: (3, 3),
    F.FUNCTION_NOT_BETWEEN: (3, 3),
    F.FUNCTION_DATE_TRUNC: (2, 2),
    F.FUNCTION_DATE_DIFF: (3, 3),
}

MAX_DECIMAL_WIDTH = 38


@dataclass
class SqlFragment:
    """SQL text with `?` placeholders and the values to bind to them, in order."""

    text: str
    params: list[PyValue] = field(default_factory=list)


LeafResolver = Callable[[query_pb2.Expression], str]

# Functions that can fail at run time on some values (overflow, division by zero, a date out
# of range). In a private answer each is compiled as TRY(...): NULL instead of an error, so
# whether a question fails can never depend on one person's row.
MAY_FAIL = frozenset({F.FUNCTION_ADD, F.FUNCTION_SUBTRACT, F.FUNCTION_MULTIPLY,
                      F.FUNCTION_DIVIDE, F.FUNCTION_INTEGER_DIVIDE, F.FUNCTION_MODULO,
                      F.FUNCTION_NEGATE, F.FUNCTION_DATE_TRUNC, F.FUNCTION_DATE_DIFF})


def decimal_type(text: str) -> str:
    """The DuckDB type DuckDB gives a decimal literal written as `text`, e.g. 0.5 → DECIMAL(2,1)."""
    digits = text.lstrip("+-")
    integer_part, _, fraction = digits.partition(".")
    scale = len(fraction)
    width = max(len(integer_part), 1) + scale
    if width > MAX_DECIMAL_WIDTH:
        return "DOUBLE"
    return f"DECIMAL({width},{scale})"


def date_part_name(expression: query_pb2.Expression) -> str:
    """The part named by the first argument of date_trunc or date_diff; it must be a literal."""
    part = expression.literal.string_value.lower() if expression.HasField("literal") else ""
    if part not in DATE_PART_NAMES:
        allowed = ", ".join(sorted(DATE_PART_NAMES))
        raise InvalidQuery(f"date part must be a string literal, one of: {allowed}")
    return part


class Dialect:
    """How an engine spells what DuckDB's SQL says differently. This base class is DuckDB:
    an engine's subclass overrides what its SQL spells otherwise, so that the same plan gives
    the same values."""

    name = "duckdb"
    # The engine's names for DuckDB's types, where they differ.
    type_names: ClassVar[dict[str, str]] = {}

    def type_name(self, duckdb_type: str) -> str:
        return self.type_names.get(duckdb_type, duckdb_type)

    # Whether a sum of integers is taken as a DECIMAL(38,0) (`integer_sum`), where DuckDB
    # gives a 128-bit integer.
    decimal_integer_sums = False

    def quote(self, name: str) -> str:
        return quote_identifier(name)

    def for_dataset(self, dataset: Dataset) -> Dialect:
        """The dialect for expressions over `dataset`'s columns."""
        return self

    def table(self, name: str, *, ranked: bool) -> str:
        """The table holding a dataset; `ranked`: with the hidden per-person row rank."""
        return quote_identifier(name)

    def integer_sum(self, argument: str) -> str:
        return f"sum({argument})"

    def total(self, compiled: SqlFragment) -> SqlFragment:
        """`compiled`, giving NULL instead of failing at run time (see MAY_FAIL)."""
        return SqlFragment(f"TRY({compiled.text})", compiled.params)

    def call(self, call: query_pb2.Call, args: list[SqlFragment]) -> SqlFragment | None:
        """The engine's own SQL for a call, or None to compile it as DuckDB spells it."""
        return None

    def as_number(self, type_name: str, column: str) -> str:
        return as_number(type_name, column)

    def far_literal(self, value: FarDate | FarTimestamp) -> SqlFragment:
        """A DATE or TIMESTAMP literal outside Python's years 1 to 9999 (or ±infinity)."""
        type_name = "DATE" if isinstance(value, FarDate) else "TIMESTAMP"
        return SqlFragment(f"CAST(? AS {type_name})", [str(value)])  # DuckDB's own text


DUCKDB = Dialect()


def compile_literal(value: query_pb2.Value, dialect: Dialect = DUCKDB) -> SqlFragment:
    kind = value.WhichOneof("kind")
    if kind is None:
        return SqlFragment("NULL")
    python_value = from_value(value)
    if kind == "decimal_value":
        assert isinstance(python_value, Decimal)
        return SqlFragment(f"CAST(? AS {dialect.type_name(decimal_type(value.decimal_value))})",
                           [python_value])
    if isinstance(python_value, FarDate | FarTimestamp):
        return dialect.far_literal(python_value)
    if kind == "date_value":
        return SqlFragment(f"CAST(? AS {dialect.type_name('DATE')})", [python_value])
    if kind == "timestamp_value":
        return SqlFragment(f"CAST(? AS {dialect.type_name('TIMESTAMP')})", [python_value])
    if kind in ("big_int_value", "double_value"):
        sql_type = dialect.type_name("HUGEINT" if kind == "big_int_value" else "DOUBLE")
        if kind == "big_int_value" and dialect is not DUCKDB:
            python_value = str(python_value)  # beyond 64 bits: the engine reads the digits
        return SqlFragment(f"CAST(? AS {sql_type})", [python_value])
    return SqlFragment("?", [python_value])


def expression_nodes(expression: query_pb2.Expression) -> Iterator[query_pb2.Expression]:
    """Every node of an expression tree, the root first."""
    stack = [expression]
    while stack:
        node = stack.pop()
        yield node
        if node.WhichOneof("kind") == "call":
            stack.extend(reversed(node.call.arguments))


def compile_expression(expression: query_pb2.Expression, leaf: LeafResolver, *,
                       total: bool = False, dialect: Dialect = DUCKDB) -> SqlFragment:
    """Compile an expression that `federation.query.plan` has checked (arity, date parts, depth);
    `leaf` turns column and group/aggregate references into SQL. With `total`, every function
    that can fail at run time gives NULL instead (see MAY_FAIL)."""
    kind = expression.WhichOneof("kind")
    if kind == "literal":
        return compile_literal(expression.literal, dialect)
    if kind == "call":
        compiled = _compile_call(expression.call, leaf, total, dialect)
        if total and expression.call.function in MAY_FAIL:
            return dialect.total(compiled)
        return compiled
    if kind is None:
        raise InvalidQuery("an expression is empty")
    return SqlFragment(leaf(expression))


def _compile_call(call: query_pb2.Call, leaf: LeafResolver, total: bool,
                  dialect: Dialect) -> SqlFragment:
    function = call.function
    if function not in ARITY:
        raise InvalidQuery(f"function {function} is not supported")
    if function in (F.FUNCTION_DATE_TRUNC, F.FUNCTION_DATE_DIFF):
        part = date_part_name(call.arguments[0])
        rest = [compile_expression(a, leaf, total=total, dialect=dialect)
                for a in call.arguments[1:]]
        own = dialect.call(call, rest)
        if own is not None:
            return own
        name = "date_trunc" if function == F.FUNCTION_DATE_TRUNC else "date_diff"
        return join(f"{name}('{part}', ", rest, ", ", ")")
    args = [compile_expression(a, leaf, total=total, dialect=dialect) for a in call.arguments]
    own = dialect.call(call, args)
    if own is not None:
        return own
    if function in BINARY_OPERATORS:
        return join("(", args, f" {BINARY_OPERATORS[function]} ", ")")
    if function in CONJUNCTIONS:
        return join("(", args, f" {CONJUNCTIONS[function]} ", ")")
    if function in DATE_PARTS_OF:
        return join(f"{DATE_PARTS_OF[function]}(", args, "", ")")
    if function == F.FUNCTION_NEGATE:
        return join("(-", args, "", ")")
    if function == F.FUNCTION_NOT:
        return join("(NOT ", args, "", ")")
    if function == F.FUNCTION_IS_NULL:
        return join("(", args, "", " IS NULL)")
    if function == F.FUNCTION_IS_NOT_NULL:
        return join("(", args, "", " IS NOT NULL)")
    if function in (F.FUNCTION_IN, F.FUNCTION_NOT_IN):
        keyword = " IN (" if function == F.FUNCTION_IN else " NOT IN ("
        listed = join("", args[1:], ", ", "")
        return join("(", [args[0], listed], keyword, "))")
    keyword = " BETWEEN " if function == F.FUNCTION_BETWEEN else " NOT BETWEEN "
    return join("(", [args[0], join("", args[1:], " AND ", "")], keyword, ")")


def join(prefix: str, parts: list[SqlFragment], separator: str, suffix: str) -> SqlFragment:
    return SqlFragment(
        prefix + separator.join(p.text for p in parts) + suffix,
        [param for p in parts for param in p.params],
    )


def as_number(type_name: str, column: str) -> str:
    """SQL giving a DATE column as its day number, a TIMESTAMP column as its microsecond number
    since 1970-01-01, ±infinity included (`federation.query.values.decode_temporal` turns them
    back).
    DuckDB's Python client gives dates outside the years 1 to 9999 as text, which would merge
    and compare as text, and ±infinity as the years 9999 and 1."""
    if type_name == "DATE":
        return f"({column} - DATE '1970-01-01')"
    return (f"CASE WHEN isinf({column}) THEN CASE WHEN {column} > TIMESTAMP '1970-01-01' "
            f"THEN 9223372036854775807 ELSE -9223372036854775807 END "
            f"ELSE epoch_us({column}) END")


def quote_identifier(name: str) -> str:
    """Quote an identifier that comes from code (a schema), never from a caller."""
    return '"' + name.replace('"', '""') + '"'
