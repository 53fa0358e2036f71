"""DuckDB's run-time errors, turned into fixed messages that can carry no value.

DuckDB's text for an error raised while a query runs quotes the operands it failed on:
"Overflow in multiplication of INT32 (2147483647 * 2)!", "Could not convert string 'X' to
INT32", "Division by zero in expression (1 // 0)". Those operands are residents' values. So
that text never leaves this module: `runtime_failure` reads it only to choose among fixed
messages, which name what failed and the clauses that hold that operation, and a server logs
the error's class name alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from federation.errors import InvalidQuery

PREFIX = "the query failed at run time: "
GENERIC = "the query failed at run time"

# (DuckDB error class, words its message starts with) → (what failed, the compiled SQL text
# of the operator that can fail that way, to find the clauses holding it).
_OVERFLOWS = (
    ("Overflow in multiplication of DECIMAL", "decimal overflow in a multiplication", " * "),
    ("Overflow in multiplication", "integer overflow in a multiplication", " * "),
    ("Overflow in addition of DECIMAL", "decimal overflow in an addition", " + "),
    ("Overflow in addition", "integer overflow in an addition", " + "),
    ("Overflow in subtraction of DECIMAL", "decimal overflow in a subtraction", " - "),
    ("Overflow in subtraction", "integer overflow in a subtraction", " - "),
    ("Overflow in negation", "overflow in a negation", "(-"),
    ("Overflow in HUGEINT addition", "overflow in a sum", "sum("),
)


def describe(error: duckdb.Error) -> tuple[str, str | None]:
    """What failed, as a fixed phrase, and the SQL operator text that can fail that way (None
    when it cannot be told)."""
    text = str(error)
    first_line = text.split("\n", 1)[0]
    message = first_line.split(": ", 1)[-1]  # without DuckDB's "Out of Range Error: " prefix
    if isinstance(error, duckdb.OutOfRangeException):
        for starts, phrase, operator in _OVERFLOWS:
            if message.startswith(starts):
                return phrase, operator
        lowered = message.lower()
        if "date" in lowered or "timestamp" in lowered or "interval" in lowered:
            return "a date or timestamp went out of range", None
        return "a value went out of range", None
    if isinstance(error, duckdb.InvalidInputException) and message.startswith("Division by zero"):
        integer_division, modulo = " // " in message, " % " in message
        if integer_division and not modulo:
            return "division by zero in an integer division (//)", " // "
        if modulo and not integer_division:
            return "division by zero in a modulo (%)", " % "
        return "division by zero in an integer division (//) or a modulo (%)", None
    if isinstance(error, duckdb.ConversionException):
        lowered = message.lower()
        if "timestamp range" in lowered or "microseconds" in lowered:
            return "a date or timestamp went out of range", None
        return "a value could not be converted to the type an operation needs", None
    if isinstance(error, duckdb.BinderException | duckdb.ParserException):
        return "DuckDB could not bind the query's types", None
    return "", None


def runtime_failure(error: duckdb.Error,
                    clauses: Sequence[tuple[str, str]] = ()) -> InvalidQuery:
    """The caller's error for a DuckDB error raised while running a query. `clauses` are
    (name, compiled SQL) pairs, e.g. ("WHERE", "(x * ?) > ?"); the message names those that
    hold the failing operator, when the error tells which operator failed."""
    phrase, operator = describe(error)
    if not phrase:
        return InvalidQuery(GENERIC)
    where = ""
    if operator is not None:
        holding = [name for name, sql in clauses if operator in sql]
        if holding:
            where = " in " + " or ".join(holding)
    return InvalidQuery(PREFIX + phrase + where)
