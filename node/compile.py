"""Compile a checked `AggregatePlan` into one parameterised DuckDB query: exact partial
aggregates, or the bounded statistics a private answer is noised from."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from cityfed.v1 import linkage_pb2, query_pb2

from federation.errors import InvalidQuery
from federation.linkage.plan import check_side
from federation.query.compile import (
    DUCKDB,
    Dialect,
    SqlFragment,
    compile_expression,
    expression_nodes,
)
from federation.query.datasets import PERSON_ROW_RANK, Dataset
from federation.query.plan import check_typed_plan
from federation.query.typecheck import (
    DATE,
    NULL,
    TIMESTAMP,
    SqlType,
    expression_type,
    parse_type,
)
from node.policy import DatasetPrivacy

A = query_pb2.AggregateFunction

# The partial columns each aggregate needs, in the order the query returns them.
PARTS: dict[int, tuple[str, ...]] = {
    A.AGGREGATE_FUNCTION_COUNT_STAR: ("count",),
    A.AGGREGATE_FUNCTION_COUNT: ("count",),
    A.AGGREGATE_FUNCTION_SUM: ("count", "sum"),
    A.AGGREGATE_FUNCTION_AVG: ("count", "sum"),
    A.AGGREGATE_FUNCTION_MIN: ("count", "min"),
    A.AGGREGATE_FUNCTION_MAX: ("count", "max"),
}


def _temporal_columns(types: list[SqlType | None]) -> tuple[tuple[int, str], ...]:
    return tuple((i, t.name) for i, t in enumerate(types) if t in (DATE, TIMESTAMP))


def _numbered_sql(sql: str, width: int, temporal: tuple[tuple[int, str], ...],
                  dialect: Dialect) -> str:
    """`sql`, with its DATE and TIMESTAMP columns given as numbers (see `as_number`)."""
    if not temporal:
        return sql
    kinds = dict(temporal)
    names = [f"c{i}" for i in range(width)]
    outer = [dialect.as_number(kinds[i], name) if i in kinds else name
             for i, name in enumerate(names)]
    return f"SELECT {', '.join(outer)} FROM ({sql}) AS partials({', '.join(names)})"


@dataclass(frozen=True)
class CompiledPlan:
    dataset: Dataset
    sql: str
    params: list
    key_count: int
    parts: tuple[tuple[str, ...], ...]  # per aggregate, the partial columns it returns
    # The result columns that are DATEs or TIMESTAMPs: (position, type name). `runnable_sql`
    # returns them as numbers, which `federation.query.values.decode_temporal` turns back.
    temporal: tuple[tuple[int, str], ...] = ()
    # The result columns DuckDB gives as integers that the dialect's engine gives as DECIMALs
    # (a sum of integers, beyond 64 bits in DuckDB): the store turns them back into ints.
    integral: tuple[int, ...] = ()
    dialect: Dialect = field(default=DUCKDB, compare=False)

    @property
    def runnable_sql(self) -> str:
        width = self.key_count + sum(len(p) for p in self.parts)
        return _numbered_sql(self.sql, width, self.temporal, self.dialect)


def compile_plan(plan: query_pb2.AggregatePlan, dialect: Dialect = DUCKDB) -> CompiledPlan:
    """Compile a plan for an exact answer: partial aggregates over every row."""
    dataset, types = check_typed_plan(plan)
    dialect = dialect.for_dataset(dataset)
    column_types: list[SqlType | None] = list(types.keys)
    column = _column_resolver(dataset, dialect)
    select: list[SqlFragment] = [compile_expression(key, column, dialect=dialect)
                                 for key in plan.group_by]
    parts, integral = [], []
    for aggregate in plan.aggregates:
        needed = PARTS[aggregate.function]
        parts.append(needed)
        column_types += [types.aggregates[len(parts) - 1] if part in ("min", "max") else None
                         for part in needed]
        if aggregate.function == A.AGGREGATE_FUNCTION_COUNT_STAR:
            select.append(SqlFragment("count(*)"))
            continue
        argument = compile_expression(aggregate.argument, column, dialect=dialect)
        for part in needed:
            text = f"{part}({argument.text})"
            if part == "sum" and dialect.decimal_integer_sums:
                found = expression_type(aggregate.argument, dataset)
                if found == NULL or found.is_integer:
                    text = dialect.integer_sum(argument.text)
                    integral.append(len(select))
            select.append(SqlFragment(text, list(argument.params)))
    where = (compile_expression(plan.filter, column, dialect=dialect)
             if plan.HasField("filter") else None)
    sql, params = _select(dataset, plan, select, [where] if where else [], dialect)
    return CompiledPlan(dataset, sql, params, len(plan.group_by), tuple(parts),
                        _temporal_columns(column_types), tuple(integral), dialect)


# What a private answer releases per aggregate, beside every group's row count (which is also
# count(*) and decides which groups are released).
PRIVATE_PARTS: dict[int, tuple[str, ...]] = {
    A.AGGREGATE_FUNCTION_COUNT_STAR: (),
    A.AGGREGATE_FUNCTION_COUNT: ("count",),
    A.AGGREGATE_FUNCTION_SUM: ("sum",),
    A.AGGREGATE_FUNCTION_AVG: ("count", "sum"),
}


@dataclass(frozen=True)
class ClampedSum:
    lower: Decimal
    upper: Decimal
    digits: int  # decimal places kept: the sum is an integer number of 10^-digits units

    @property
    def largest_magnitude_units(self) -> int:
        return int(max(abs(self.lower), abs(self.upper)).scaleb(self.digits))


@dataclass(frozen=True)
class PrivatePlan:
    """A plan compiled for a differentially private answer. The query returns, per group: the
    keys, the bounded row count, then each aggregate's PRIVATE_PARTS columns."""

    dataset: Dataset
    sql: str
    params: list
    key_count: int
    parts: tuple[tuple[str, ...], ...]  # per aggregate, its PRIVATE_PARTS
    sums: tuple[ClampedSum | None, ...]  # per aggregate, how its sum was clamped
    max_rows_per_person: int
    temporal: tuple[tuple[int, str], ...] = ()  # as in CompiledPlan (group keys only)
    dialect: Dialect = field(default=DUCKDB, compare=False)

    @property
    def runnable_sql(self) -> str:
        width = self.key_count + 1 + sum(len(p) for p in self.parts)
        return _numbered_sql(self.sql, width, self.temporal, self.dialect)


def compile_private_plan(plan: query_pb2.AggregatePlan, privacy: DatasetPrivacy,
                         dialect: Dialect = DUCKDB) -> PrivatePlan:
    """Compile a plan for a private answer: only each person's first `max_rows_per_person`
    rows (in the random order drawn at load time) are read; every sum or average argument is
    clamped to the declared bounds of the numeric columns it uses; every function that can
    fail at run time gives NULL instead, so no question fails because of one person's row."""
    dataset, types = check_typed_plan(plan)
    dialect = dialect.for_dataset(dataset)
    column = _column_resolver(dataset, dialect)
    select = [compile_expression(key, column, total=True, dialect=dialect)
              for key in plan.group_by]
    select.append(SqlFragment("count(*)"))
    parts, sums = [], []
    for number, aggregate in enumerate(plan.aggregates, start=1):
        function = aggregate.function
        if function not in PRIVATE_PARTS:
            name = A.Name(function).removeprefix("AGGREGATE_FUNCTION_").lower()
            raise InvalidQuery(
                f"aggregate {number}: {name}() is refused in a private answer: it would release "
                "one person's exact value; ask for counts, sums or averages, or for row access")
        parts.append(PRIVATE_PARTS[function])
        clamp = None
        if function != A.AGGREGATE_FUNCTION_COUNT_STAR:
            argument = compile_expression(aggregate.argument, column, total=True,
                                          dialect=dialect)
            if "count" in PRIVATE_PARTS[function]:
                select.append(SqlFragment(f"count({argument.text})", list(argument.params)))
            if "sum" in PRIVATE_PARTS[function]:
                clamp = _clamp_for(aggregate.argument, dataset, privacy, number)
                # Clamped in the argument's own type (DuckDB widens the bounds to it: a DECIMAL
                # stays exact and fast, a DOUBLE stays a DOUBLE), then summed as DECIMAL.
                bound = f"CAST(? AS DECIMAL(18, {clamp.digits}))"
                select.append(SqlFragment(
                    f"sum(CAST(least(greatest({argument.text}, {bound}), {bound}) "
                    f"AS DECIMAL(18, {clamp.digits})))",
                    [*argument.params, clamp.lower, clamp.upper]))
        sums.append(clamp)
    conditions = [SqlFragment(f"{dialect.quote(PERSON_ROW_RANK)} <= ?",
                              [privacy.max_rows_per_person])]
    if plan.HasField("filter"):
        conditions.append(compile_expression(plan.filter, column, total=True, dialect=dialect))
    sql, params = _select(dataset, plan, select, conditions, dialect, ranked=True)
    return PrivatePlan(dataset, sql, params, len(plan.group_by), tuple(parts), tuple(sums),
                       privacy.max_rows_per_person, _temporal_columns(list(types.keys)),
                       dialect)


def _clamp_for(argument: query_pb2.Expression, dataset: Dataset, privacy: DatasetPrivacy,
               number: int) -> ClampedSum:
    """The hull of the bounds of the bounded columns an argument uses."""
    used = {node.column for node in expression_nodes(argument)
            if node.WhichOneof("kind") == "column"}
    bounds = [privacy.bounds[c] for c in sorted(used) if c in privacy.bounds]
    if not bounds:
        bounded = ", ".join(privacy.bounds) or "none in this dataset"
        raise InvalidQuery(
            f"aggregate {number}: a private sum or avg needs a numeric column with declared "
            f"bounds (in {dataset.name}: {bounded}); its value is clamped to them")
    lower = min(b[0] for b in bounds)
    upper = max(b[1] for b in bounds)
    digits = max(max(-b[0].as_tuple().exponent, -b[1].as_tuple().exponent, 0) for b in bounds)
    for name in used:
        digits = max(digits, parse_type(dataset.column(name).type).scale)
    return ClampedSum(lower, upper, min(digits, 6))


@dataclass(frozen=True)
class CompiledKeys:
    """The distinct non-null values of a linkage side's key columns, over its filtered rows."""

    sql: str
    params: list


def compile_linkage_keys(side: linkage_pb2.LinkageSide,
                         dialect: Dialect = DUCKDB) -> CompiledKeys:
    """A filter that cannot be evaluated for a row (an overflow, a bad cast) leaves the row out:
    a linkage never fails on one row's value, so no error can tell what a row holds."""
    dataset = check_side(side, "this city's side")
    dialect = dialect.for_dataset(dataset)
    column = _column_resolver(dataset, dialect)
    where = (compile_expression(side.filter, column, total=True, dialect=dialect)
             if side.HasField("filter") else None)
    selects, params = [], []
    for name in side.key_columns:
        select = (f"SELECT {dialect.quote(name)} AS k FROM "
                  f"{dialect.table(dataset.name, ranked=False)}")
        if where is not None:
            select += f" WHERE ({where.text})"
            params += where.params
        selects.append(select)
    sql = f"SELECT DISTINCT k FROM ({' UNION ALL '.join(selects)}) WHERE k IS NOT NULL"
    return CompiledKeys(sql, params)


def _column_resolver(dataset: Dataset, dialect: Dialect):
    def column(expression: query_pb2.Expression) -> str:
        if expression.WhichOneof("kind") != "column" or dataset.column(expression.column) is None:
            raise InvalidQuery("a node plan may refer only to columns of its dataset")
        return dialect.quote(dataset.column(expression.column).name)

    return column


def _select(dataset: Dataset, plan: query_pb2.AggregatePlan, select: list[SqlFragment],
            conditions: list[SqlFragment], dialect: Dialect,
            ranked: bool = False) -> tuple[str, list]:
    sql = "SELECT " + ", ".join(f.text for f in select)
    params = [p for f in select for p in f.params]
    sql += f" FROM {dialect.table(dataset.name, ranked=ranked)}"
    if conditions:
        sql += " WHERE " + " AND ".join(f"({c.text})" for c in conditions)
        params += [p for c in conditions for p in c.params]
    if plan.group_by:
        sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(plan.group_by)))
    return sql, params
