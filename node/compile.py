"""Compile a checked `AggregatePlan` into one parameterised DuckDB query of partial aggregates."""

from __future__ import annotations

from dataclasses import dataclass

from cityfed.v1 import query_pb2

from federation.compile import SqlFragment, compile_expression, quote_identifier
from federation.datasets import Dataset
from federation.errors import InvalidQuery
from federation.plan import check_plan

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


@dataclass(frozen=True)
class CompiledPlan:
    dataset: Dataset
    sql: str
    params: list
    key_count: int
    parts: tuple[tuple[str, ...], ...]  # per aggregate, the partial columns it returns
    counts_people: bool  # the last column counts distinct people per group, for suppression


def compile_plan(plan: query_pb2.AggregatePlan, people: str | None = None) -> CompiledPlan:
    """Compile a plan; with `people` (a column naming a person, e.g. person_id), the query also
    counts distinct people per group so that small groups can be suppressed."""
    dataset = check_plan(plan)

    def column(expression: query_pb2.Expression) -> str:
        if expression.WhichOneof("kind") != "column" or dataset.column(expression.column) is None:
            raise InvalidQuery("a node plan may refer only to columns of its dataset")
        return quote_identifier(dataset.column(expression.column).name)

    select: list[SqlFragment] = [compile_expression(key, column) for key in plan.group_by]
    parts = []
    for aggregate in plan.aggregates:
        needed = PARTS[aggregate.function]
        parts.append(needed)
        if aggregate.function == A.AGGREGATE_FUNCTION_COUNT_STAR:
            select.append(SqlFragment("count(*)"))
            continue
        argument = compile_expression(aggregate.argument, column)
        for part in needed:
            select.append(SqlFragment(f"{part}({argument.text})", list(argument.params)))

    if people is not None:
        # Distinct hashes, not values: ~30% cheaper, and a collision can only merge two people,
        # so the count errs low and a group of fewer than k is never released.
        select.append(SqlFragment(f"count(DISTINCT hash({quote_identifier(people)}))"))
    sql = "SELECT " + ", ".join(f.text for f in select)
    params = [p for f in select for p in f.params]
    sql += f" FROM {quote_identifier(dataset.name)}"
    if plan.HasField("filter"):
        condition = compile_expression(plan.filter, column)
        sql += f" WHERE {condition.text}"
        params += condition.params
    if plan.group_by:
        sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(plan.group_by)))
    return CompiledPlan(dataset, sql, params, len(plan.group_by), tuple(parts),
                        people is not None)
