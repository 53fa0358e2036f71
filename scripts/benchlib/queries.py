"""The benchmark's questions, the columns each needs, and a tolerant result comparison."""

from __future__ import annotations

from dataclasses import dataclass

from cityfed.v1 import query_pb2

from federation.sql import parse_query
from federation.values import comparison_key, same_value

# Who asks and why: the region's authority, for a purpose the demo policy grants on
# transit_trips (aggregates only, groups of at least k people).
PURPOSE = "transit-planning"


@dataclass(frozen=True)
class Query:
    name: str
    sql: str


# Representative questions over transit_trips: a 24-group aggregate over every row, a filtered
# group-by and a global (no GROUP BY) aggregate.
BY_HOUR = Query("by_hour", "SELECT hour(tapped_at) AS h, count(*) AS trips, sum(fare) AS fare, "
                           "avg(fare) AS avg_fare FROM transit_trips GROUP BY h ORDER BY h")
FILTERED = Query("filtered", "SELECT district_code, count(*) AS trips, avg(fare) AS avg_fare "
                             "FROM transit_trips WHERE mode = 'metro' AND fare >= 4 "
                             "GROUP BY district_code ORDER BY trips DESC")
GLOBAL = Query("global", "SELECT count(*) AS trips, sum(fare) AS fare, min(tapped_at) AS first, "
                         "max(tapped_at) AS last FROM transit_trips")
COMPARED = (BY_HOUR, FILTERED, GLOBAL)

# The small question of the latency targets, the throughput and the breakdown.
SMALL = Query("small", "SELECT mode, count(*) AS trips, sum(fare) AS fare FROM transit_trips "
                       "GROUP BY mode ORDER BY mode")
# The least a question can ask: shows the fixed cost of a federated question.
TINY = Query("tiny", "SELECT count(*) AS trips FROM transit_trips")
LATENCY_QUERIES = (SMALL, TINY)


def needed_columns(sql: str) -> list[str]:
    """The dataset columns a question reads: what a naive coordinator would have to pull."""
    plan = parse_query(sql).plan
    expressions = [*plan.group_by, *(a.argument for a in plan.aggregates if a.HasField("argument"))]
    if plan.HasField("filter"):
        expressions.append(plan.filter)
    found: list[str] = []
    for expression in expressions:
        _collect_columns(expression, found)
    return found


def _collect_columns(expression: query_pb2.Expression, found: list[str]) -> None:
    kind = expression.WhichOneof("kind")
    if kind == "column" and expression.column not in found:
        found.append(expression.column)
    elif kind == "call":
        for argument in expression.call.arguments:
            _collect_columns(argument, found)


def same_rows(got: list[tuple], want: list[tuple]) -> bool:
    """Equal as multisets of rows, floats compared with a relative tolerance."""
    if len(got) != len(want):
        return False
    pairs = zip(sorted(got, key=comparison_key), sorted(want, key=comparison_key), strict=True)
    return all(_same_row(g, w) for g, w in pairs)


def _same_row(got: tuple, want: tuple) -> bool:
    return len(got) == len(want) and all(
        same_value(g, w, same_type=False) for g, w in zip(got, want, strict=True))
