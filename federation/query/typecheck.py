"""Static types of plan expressions, derived and checked before anything runs.

Where the types of an operator's arguments differ, DuckDB casts one of them, row by row, and a
cast that fails at run time names the value it failed on ("Could not convert string 'Zhang San'
to INT32"): a resident's value, in an error the caller reads. So a plan is checked here, from
the dataset's schema and the kinds of its literals alone: every operator must get arguments of
the types it takes, with no cast that could fail on a row's value (a string used as a number,
a boolean or a date; a DECIMAL narrowed to fewer integer digits). What passes can still fail at
run time (an overflow, a division by zero), and those errors are turned into fixed messages
where queries run (`federation.query.runtime_errors`).

The types follow DuckDB's, as `typeof` reports them over the real schema, with one deliberate
difference: a DECIMAL product is given all the integer digits it may need (DuckDB sometimes
gives fewer and checks for overflow instead), so a later comparison is refused rather than
risk narrowing it.

A message names where the expression is (the clause, and the arguments leading to it) and the
types involved; never a literal's value, which may itself be personal data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace

from cityfed.v1 import query_pb2

from federation.errors import InvalidQuery
from federation.query.compile import DATE_PARTS_OF, decimal_type
from federation.query.datasets import Dataset

# Plain ints: the protobuf enum wrappers' attribute lookups are slow on this hot path.
F = SimpleNamespace(**dict(query_pb2.Function.items()))
A = SimpleNamespace(**dict(query_pb2.AggregateFunction.items()))

MAX_DECIMAL_WIDTH = 38


@dataclass(frozen=True)
class SqlType:
    """A DuckDB type. For integers, `width` is the digits DuckDB gives them as a DECIMAL."""

    name: str
    width: int = 0
    scale: int = 0

    def __str__(self) -> str:
        if self.name == "DECIMAL":
            return f"DECIMAL({self.width},{self.scale})"
        return self.name

    @property
    def is_integer(self) -> bool:
        return self.name in _INTEGER_RANK

    @property
    def is_exact(self) -> bool:
        """An integer or a DECIMAL: arithmetic on it is exact, and may overflow."""
        return self.is_integer or self.name == "DECIMAL"

    @property
    def is_number(self) -> bool:
        return self.is_exact or self.name == "DOUBLE"

    @property
    def is_temporal(self) -> bool:
        return self.name in ("DATE", "TIMESTAMP")

    @property
    def integer_digits(self) -> int:
        return self.width - self.scale


BOOLEAN = SqlType("BOOLEAN")
INTEGER = SqlType("INTEGER", 10)
BIGINT = SqlType("BIGINT", 19)
HUGEINT = SqlType("HUGEINT", 38)
DOUBLE = SqlType("DOUBLE")
VARCHAR = SqlType("VARCHAR")
DATE = SqlType("DATE")
TIMESTAMP = SqlType("TIMESTAMP")
NULL = SqlType("NULL")  # an untyped NULL literal: it takes the type its operator needs

_INTEGER_RANK = {"INTEGER": 0, "BIGINT": 1, "HUGEINT": 2}
_INTEGERS = (INTEGER, BIGINT, HUGEINT)
_DECIMAL_TEXT = re.compile(r"DECIMAL\((\d+),(\d+)\)")
_DECIMAL_LITERAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
_BIG_INT_LITERAL = re.compile(r"[+-]?\d+")
_HUGEINT_RANGE = range(-(2**127), 2**127)
_INT32_RANGE = range(-(2**31), 2**31)
# DuckDB's dates and timestamps, as day and microsecond numbers since 1970-01-01: from
# 5877642-06-25 (BC) to 5881580-07-10, from 290309-12-22 (BC) to 294247-01-10 04:00:54.775806,
# and ±infinity (the largest numbers but one).
_DATE_DAYS = range(-(2**31 - 1), 2**31)
_TIMESTAMP_MICROSECONDS = range(-9_223_372_022_400_000_000, 2**63)
_TIMESTAMP_INFINITIES = (-(2**63 - 1),)


def decimal(width: int, scale: int) -> SqlType:
    return SqlType("DECIMAL", width, scale)


def parse_type(text: str) -> SqlType:
    """The type of a schema column, written as in `federation.query.datasets` (and DuckDB)."""
    match = _DECIMAL_TEXT.fullmatch(text.replace(" ", ""))
    if match:
        return decimal(int(match[1]), int(match[2]))
    known = {t.name: t for t in (BOOLEAN, *_INTEGERS, DOUBLE, VARCHAR, DATE, TIMESTAMP)}
    if text not in known:
        raise ValueError(f"no static type for the column type {text}")
    return known[text]


class QueryTypeError(InvalidQuery):
    """A plan or query that is not well-typed. `node` is the expression the message is about,
    so that a caller who wrote SQL can be pointed at the place in the text."""

    def __init__(self, message: str, node: query_pb2.Expression | None = None) -> None:
        super().__init__(message)
        self.node = node


@dataclass(frozen=True)
class PlanTypes:
    """The types a plan's groups come back with: its group keys, and its aggregates' results."""

    keys: tuple[SqlType, ...]
    aggregates: tuple[SqlType, ...]


# Where an expression is: the clause, then the (function, argument number) pairs leading to it.
Path = tuple[tuple[str, int], ...]


def _ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


_NAMES = {
    F.FUNCTION_ADD: "'+'", F.FUNCTION_SUBTRACT: "'-'", F.FUNCTION_MULTIPLY: "'*'",
    F.FUNCTION_DIVIDE: "'/'", F.FUNCTION_INTEGER_DIVIDE: "'//'", F.FUNCTION_MODULO: "'%'",
    F.FUNCTION_NEGATE: "unary '-'", F.FUNCTION_EQUAL: "'='", F.FUNCTION_NOT_EQUAL: "'<>'",
    F.FUNCTION_LESS: "'<'", F.FUNCTION_LESS_OR_EQUAL: "'<='", F.FUNCTION_GREATER: "'>'",
    F.FUNCTION_GREATER_OR_EQUAL: "'>='", F.FUNCTION_AND: "AND", F.FUNCTION_OR: "OR",
    F.FUNCTION_NOT: "NOT", F.FUNCTION_IS_NULL: "IS NULL", F.FUNCTION_IS_NOT_NULL: "IS NOT NULL",
    F.FUNCTION_IN: "IN", F.FUNCTION_NOT_IN: "NOT IN", F.FUNCTION_BETWEEN: "BETWEEN",
    F.FUNCTION_NOT_BETWEEN: "NOT BETWEEN", F.FUNCTION_YEAR: "year()", F.FUNCTION_MONTH: "month()",
    F.FUNCTION_DAY: "day()", F.FUNCTION_HOUR: "hour()", F.FUNCTION_DATE_TRUNC: "date_trunc()",
    F.FUNCTION_DATE_DIFF: "date_diff()",
}
_COMPARISONS = frozenset({F.FUNCTION_EQUAL, F.FUNCTION_NOT_EQUAL, F.FUNCTION_LESS,
                          F.FUNCTION_LESS_OR_EQUAL, F.FUNCTION_GREATER,
                          F.FUNCTION_GREATER_OR_EQUAL, F.FUNCTION_IN, F.FUNCTION_NOT_IN,
                          F.FUNCTION_BETWEEN, F.FUNCTION_NOT_BETWEEN})
_LOGICAL = frozenset({F.FUNCTION_AND, F.FUNCTION_OR, F.FUNCTION_NOT})
_ARITHMETIC = frozenset({F.FUNCTION_ADD, F.FUNCTION_SUBTRACT, F.FUNCTION_MULTIPLY,
                         F.FUNCTION_DIVIDE, F.FUNCTION_INTEGER_DIVIDE, F.FUNCTION_MODULO})
_AGGREGATE_NAMES = {A.AGGREGATE_FUNCTION_COUNT: "count", A.AGGREGATE_FUNCTION_SUM: "sum",
                    A.AGGREGATE_FUNCTION_AVG: "avg", A.AGGREGATE_FUNCTION_MIN: "min",
                    A.AGGREGATE_FUNCTION_MAX: "max"}


class _Checker:
    """Types the expressions of one clause; `leaf` gives the type of a column or a reference."""

    def __init__(self, clause: str, leaf: Callable[[query_pb2.Expression], SqlType]) -> None:
        self.clause = clause
        self.leaf = leaf

    def refuse(self, path: Path, problem: str, node: query_pb2.Expression) -> QueryTypeError:
        where = self.clause + "".join(f", in the {_ordinal(number)} argument of {name}"
                                      for name, number in path)
        return QueryTypeError(f"{where}: {problem}", node)

    def type_of(self, expression: query_pb2.Expression, path: Path = ()) -> SqlType:
        kind = expression.WhichOneof("kind")
        if kind == "literal":
            return self.literal(expression, path)
        if kind == "call":
            return self.call(expression, path)
        return self.leaf(expression)

    def literal(self, expression: query_pb2.Expression, path: Path) -> SqlType:
        value = expression.literal
        kind = value.WhichOneof("kind")
        if kind is None:
            return NULL
        if kind == "bool_value":
            return BOOLEAN
        if kind == "int_value":
            # DuckDB's Python binding binds an integer parameter as INTEGER when it fits.
            return INTEGER if value.int_value in _INT32_RANGE else BIGINT
        if kind == "double_value":
            return DOUBLE
        if kind == "string_value":
            return VARCHAR
        if kind == "big_int_value":
            text = value.big_int_value
            if not _BIG_INT_LITERAL.fullmatch(text) or int(text) not in _HUGEINT_RANGE:
                raise self.refuse(path, "a big_int_value literal must be an integer that fits "
                                  "in 128 bits (HUGEINT)", expression)
            return HUGEINT
        if kind == "decimal_value":
            if not _DECIMAL_LITERAL.fullmatch(value.decimal_value):
                raise self.refuse(path, "a decimal_value literal must be digits with an "
                                  "optional sign and decimal point, such as -12.50", expression)
            written = decimal_type(value.decimal_value)
            return DOUBLE if written == "DOUBLE" else parse_type(written)
        if kind == "date_value":
            if value.date_value not in _DATE_DAYS:
                raise self.refuse(path, "a DATE literal must lie in DuckDB's range of dates",
                                  expression)
            return DATE
        if (value.timestamp_value not in _TIMESTAMP_MICROSECONDS
                and value.timestamp_value not in _TIMESTAMP_INFINITIES):
            raise self.refuse(path, "a TIMESTAMP literal must lie in DuckDB's range of "
                              "timestamps", expression)
        return TIMESTAMP

    def call(self, expression: query_pb2.Expression, path: Path) -> SqlType:
        call = expression.call
        function = call.function
        name = _NAMES[function]
        first = 1 if function in (F.FUNCTION_DATE_TRUNC, F.FUNCTION_DATE_DIFF) else 0
        types = [NULL] * first + [
            self.type_of(argument, (*path, (name, number)))
            for number, argument in enumerate(call.arguments[first:], start=first + 1)
        ]

        def refuse(problem: str) -> QueryTypeError:
            return self.refuse(path, problem, expression)

        if function in _COMPARISONS:
            _check_comparable(types, name, refuse)
            return BOOLEAN
        if function in _LOGICAL:
            for number, found in enumerate(types, start=1):
                if found not in (BOOLEAN, NULL):
                    raise refuse(f"the {_ordinal(number)} argument of {name} is {found}; AND, "
                                 "OR and NOT take conditions (BOOLEAN), such as comparisons")
            return BOOLEAN
        if function in (F.FUNCTION_IS_NULL, F.FUNCTION_IS_NOT_NULL):
            return BOOLEAN
        if function in _ARITHMETIC:
            return _arithmetic(function, name, types[0], types[1], refuse)
        if function == F.FUNCTION_NEGATE:
            (found,) = types
            if not found.is_number:
                raise refuse(f"the argument of {name} is {found}; only a number can be negated")
            return _negated(found, expression.call.arguments[0])
        return _date_function(function, name, types, refuse)


def _negated(found: SqlType, argument: query_pb2.Expression) -> SqlType:
    """DuckDB folds a negated literal and widens the type when the literal is the type's
    minimum (its negation would not fit): -(-2147483648) is a BIGINT."""
    literal = argument.literal if argument.WhichOneof("kind") == "literal" else None
    if literal is None or literal.WhichOneof("kind") != "int_value":
        return found
    if found.name == "INTEGER" and literal.int_value == -(2 ** 31):
        return BIGINT
    if found.name == "BIGINT" and literal.int_value == -(2 ** 63):
        return HUGEINT
    return found


def _category(found: SqlType) -> str:
    if found.is_number:
        return "number"
    return found.name


def _combined_width(types: Sequence[SqlType]) -> int:
    """The digits one DECIMAL must have to hold every one of these exact types."""
    return max(t.integer_digits for t in types) + max(t.scale for t in types)


def _check_comparable(types: list[SqlType], name: str,
                      refuse: Callable[[str], QueryTypeError]) -> None:
    """The arguments of a comparison, IN or BETWEEN are compared with the first one; DuckDB
    casts them all to one type, so they must be of one kind, and numbers must fit one type."""
    typed = [(number, t) for number, t in enumerate(types, start=1) if t != NULL]
    if not typed:
        return
    first_number, first = typed[0]
    for number, found in typed[1:]:
        if _category(found) != _category(first):
            hint = "compare a column with a value of its own type"
            if {found.name, first.name} == {"DATE", "TIMESTAMP"}:
                hint = "compare a DATE with a DATE and a TIMESTAMP with a TIMESTAMP"
            elif "VARCHAR" in (found.name, first.name) and (found.is_temporal
                                                             or first.is_temporal):
                hint += ": write DATE 'yyyy-mm-dd' or TIMESTAMP 'yyyy-mm-dd hh:mm:ss'"
            raise refuse(f"the {_ordinal(number)} argument of {name} is {found}, the "
                         f"{_ordinal(first_number)} is {first}; {hint}")
    exact = [t for _, t in typed if t.is_exact]
    if (len(exact) == len(typed) and any(t.name == "DECIMAL" for t in exact)
            and _combined_width(exact) > MAX_DECIMAL_WIDTH):
        described = " and ".join(str(t) for t in dict.fromkeys(exact))
        raise refuse(f"the arguments of {name} are {described}: comparing them needs a DECIMAL "
                     f"of more than {MAX_DECIMAL_WIDTH} digits; write the number with fewer "
                     "digits after the point")


def _arithmetic(function: int, name: str, left: SqlType, right: SqlType,
                refuse: Callable[[str], QueryTypeError]) -> SqlType:
    for number, found in ((1, left), (2, right)):
        if found == NULL:
            raise refuse(f"the {_ordinal(number)} argument of {name} is an untyped NULL; "
                         "arithmetic on NULL is always NULL: write NULL instead")
    if left.is_temporal or right.is_temporal:
        return _date_arithmetic(function, name, left, right, refuse)
    for number, found in ((1, left), (2, right)):
        if not found.is_number:
            raise refuse(f"the {_ordinal(number)} argument of {name} is {found}; arithmetic "
                         "takes numbers (and '+' or '-' a DATE and an INTEGER number of days)")
    if function == F.FUNCTION_DIVIDE:
        return DOUBLE
    if DOUBLE in (left, right):
        return DOUBLE
    if left.is_integer and right.is_integer:
        return max(left, right, key=lambda t: _INTEGER_RANK[t.name])
    if function == F.FUNCTION_INTEGER_DIVIDE:
        return DOUBLE  # DuckDB divides DECIMALs with // as DOUBLEs
    scale = max(left.scale, right.scale)
    if function == F.FUNCTION_MULTIPLY:
        scale = left.scale + right.scale
        if scale > MAX_DECIMAL_WIDTH:
            raise refuse(f"the arguments of {name} are {left} and {right}: their product needs "
                         f"{scale} digits after the point, more than {MAX_DECIMAL_WIDTH}")
        return decimal(min(MAX_DECIMAL_WIDTH, left.width + right.width), scale)
    width = _combined_width((left, right))
    if width > MAX_DECIMAL_WIDTH:
        raise refuse(f"the arguments of {name} are {left} and {right}: combining them needs a "
                     f"DECIMAL of more than {MAX_DECIMAL_WIDTH} digits; write the number with "
                     "fewer digits")
    if function == F.FUNCTION_MODULO:
        return decimal(width, scale)
    return decimal(min(MAX_DECIMAL_WIDTH, width + 1), scale)


def _date_arithmetic(function: int, name: str, left: SqlType, right: SqlType,
                     refuse: Callable[[str], QueryTypeError]) -> SqlType:
    """DATE ± an INTEGER number of days is a DATE, DATE - DATE a BIGINT number of days.
    Nothing else is defined on dates and timestamps here: in DuckDB a TIMESTAMP minus a
    TIMESTAMP or a DATE is an INTERVAL, which no answer carries (`Value` has no interval)."""
    if function == F.FUNCTION_ADD and DATE in (left, right) and INTEGER in (left, right):
        return DATE
    if function == F.FUNCTION_SUBTRACT and left == DATE and right in (INTEGER, DATE):
        return DATE if right == INTEGER else BIGINT
    if function == F.FUNCTION_SUBTRACT and left.is_temporal and right.is_temporal:
        raise refuse(f"{left} - {right} is an INTERVAL, and intervals are not supported: "
                     "use date_diff('day', start, end) (or 'hour', 'week', …) for the time "
                     "between them, or subtract two DATEs for a number of days")
    raise refuse(f"{name} is not defined for {left} and {right}; add or subtract an INTEGER "
                 "number of days to a DATE, subtract two DATEs, or use date_diff()")


def _date_function(function: int, name: str, types: list[SqlType],
                   refuse: Callable[[str], QueryTypeError]) -> SqlType:
    if function in DATE_PARTS_OF:
        (found,) = types
        allowed = (TIMESTAMP,) if function == F.FUNCTION_HOUR else (DATE, TIMESTAMP)
        if found not in allowed:
            wanted = " or ".join(str(t) for t in allowed)
            raise refuse(f"the argument of {name} is {found}; it takes a {wanted}")
        return BIGINT
    if function == F.FUNCTION_DATE_TRUNC:
        found = types[1]
        if not found.is_temporal:
            raise refuse(f"the 2nd argument of {name} is {found}; it takes a DATE or TIMESTAMP")
        return TIMESTAMP
    start, end = types[1], types[2]
    for number, found in ((2, start), (3, end)):
        if not found.is_temporal:
            raise refuse(f"the {_ordinal(number)} argument of {name} is {found}; it takes two "
                         "DATEs or two TIMESTAMPs")
    if start != end:
        raise refuse(f"the arguments of {name} are {start} and {end}; it takes two DATEs or two "
                     "TIMESTAMPs")
    return BIGINT


def _boolean_clause(checker: _Checker, expression: query_pb2.Expression) -> None:
    found = checker.type_of(expression)
    if found not in (BOOLEAN, NULL):
        raise checker.refuse((), f"the condition is {found}; it must be a BOOLEAN, such as a "
                                 "comparison", expression)


def aggregate_type(aggregate: query_pb2.Aggregate, argument: SqlType | None,
                   checker: _Checker) -> SqlType:
    function = aggregate.function
    if function in (A.AGGREGATE_FUNCTION_COUNT_STAR, A.AGGREGATE_FUNCTION_COUNT):
        return BIGINT
    assert argument is not None
    if function in (A.AGGREGATE_FUNCTION_MIN, A.AGGREGATE_FUNCTION_MAX):
        return argument
    if argument != NULL and not argument.is_number:
        name = _AGGREGATE_NAMES[function]
        raise checker.refuse((), f"{name}({argument}) is not defined: sum and avg take a "
                                 "number", aggregate.argument)
    if function == A.AGGREGATE_FUNCTION_AVG:
        return DOUBLE
    if argument == NULL or argument.is_integer:
        return HUGEINT
    if argument.name == "DECIMAL":
        return decimal(MAX_DECIMAL_WIDTH, argument.scale)
    return DOUBLE


_COLUMN_TYPES: dict[str, dict[str, SqlType]] = {}  # per dataset name; datasets live in code


def _column_types(dataset: Dataset) -> dict[str, SqlType]:
    types = _COLUMN_TYPES.get(dataset.name)
    if types is None:
        types = _COLUMN_TYPES[dataset.name] = {c.name: parse_type(c.type)
                                               for c in dataset.columns}
    return types


def check_plan_types(plan: query_pb2.AggregatePlan, dataset: Dataset) -> PlanTypes:
    """Type a structurally checked plan over its dataset; raises QueryTypeError."""
    columns = _column_types(dataset)

    def column(expression: query_pb2.Expression) -> SqlType:
        return columns[expression.column]

    if plan.HasField("filter"):
        _boolean_clause(_Checker("WHERE", column), plan.filter)
    keys = tuple(_Checker(f"GROUP BY key {number}", column).type_of(key)
                 for number, key in enumerate(plan.group_by, start=1))
    aggregates = []
    for number, aggregate in enumerate(plan.aggregates, start=1):
        checker = _Checker(f"aggregate {number}", column)
        argument = (checker.type_of(aggregate.argument)
                    if aggregate.HasField("argument") else None)
        aggregates.append(aggregate_type(aggregate, argument, checker))
    return PlanTypes(keys, tuple(aggregates))


def check_query_types(query: query_pb2.FederatedQuery, types: PlanTypes) -> tuple[SqlType, ...]:
    """Type what runs after the merge, over the plan's group keys and aggregate results;
    returns the types of the output columns."""

    def reference(expression: query_pb2.Expression) -> SqlType:
        if expression.WhichOneof("kind") == "group_key":
            return types.keys[expression.group_key]
        return types.aggregates[expression.aggregate]

    outputs = tuple(_Checker(f"SELECT column {number}", reference).type_of(column.expression)
                    for number, column in enumerate(query.columns, start=1))
    if query.HasField("having"):
        _boolean_clause(_Checker("HAVING", reference), query.having)
    for number, key in enumerate(query.order_by, start=1):
        _Checker(f"ORDER BY key {number}", reference).type_of(key.expression)
    return outputs


def expression_type(expression: query_pb2.Expression, dataset: Dataset) -> SqlType:
    """The DuckDB type of a checked plan's expression over `dataset`'s columns."""
    columns = _column_types(dataset)
    return _Checker("", lambda node: columns[node.column]).type_of(expression)
