"""The benchmark's questions, the columns each needs, and how an answer is compared with
central's: equal for an exact answer, within a measured error for a private (noisy) one."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
from cityfed.v1 import query_pb2

from federation.query.sql import parse_query
from federation.query.values import comparison_key, same_value

# Who asks and why: the region's authority, for the purpose the demo policy grants on
# transit_trips (at the aggregate level: differentially private answers).
PURPOSE = "transit-planning"


@dataclass(frozen=True)
class Query:
    name: str
    sql: str
    keys: int = 0  # the first `keys` output columns are the group's keys


# Representative questions over transit_trips: a 24-group aggregate over every row, a filtered
# group-by and a global (no GROUP BY) aggregate.
BY_HOUR = Query("by_hour", "SELECT hour(tapped_at) AS h, count(*) AS trips, sum(fare) AS fare, "
                           "avg(fare) AS avg_fare FROM transit_trips GROUP BY h ORDER BY h", 1)
FILTERED = Query("filtered", "SELECT district_code, count(*) AS trips, avg(fare) AS avg_fare "
                             "FROM transit_trips WHERE mode = 'metro' AND fare >= 4 "
                             "GROUP BY district_code ORDER BY trips DESC", 1)
GLOBAL = Query("global", "SELECT count(*) AS trips, sum(fare) AS fare, min(tapped_at) AS first, "
                         "max(tapped_at) AS last FROM transit_trips")
# min and max are refused in a private answer (they would release one person's exact value):
# the private runs ask the global question without them.
GLOBAL_PRIVATE = Query("global_sum", "SELECT count(*) AS trips, sum(fare) AS fare "
                                     "FROM transit_trips")
COMPARED = (BY_HOUR, FILTERED, GLOBAL)
COMPARED_PRIVATE = (BY_HOUR, FILTERED, GLOBAL_PRIVATE)

# The small question of the latency targets, the throughput and the breakdown.
SMALL = Query("small", "SELECT mode, count(*) AS trips, sum(fare) AS fare FROM transit_trips "
                       "GROUP BY mode ORDER BY mode", 1)
# The least a question can ask: shows the fixed cost of a federated question.
TINY = Query("tiny", "SELECT count(*) AS trips FROM transit_trips")
LATENCY_QUERIES = (SMALL, TINY)


def compared(private: bool) -> tuple[Query, ...]:
    return COMPARED_PRIVATE if private else COMPARED


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


@dataclass
class NoisyError:
    """How far private answers were from an exact reference, over many answers to one question:
    the relative error of every released cell (group × aggregate column), how many of the
    reference's groups were not released, and how often a cell lay within the ± half-width the
    answer stated for it."""

    cells: list[float] = field(default_factory=list)  # |noisy - exact| / |exact|
    groups_expected: int = 0  # the reference's groups, summed over the answers
    groups_missing: int = 0  # of those, the ones an answer did not release
    within: int = 0  # cells whose exact value lay within the stated ± of the noisy one
    stated: int = 0  # cells that stated a ±

    def add(self, got: list[tuple], widths: list[list[float] | None], want: list[tuple],
            keys: int) -> None:
        """One answer (its rows and, per column, the ± per row) against the reference."""
        found = {comparison_key(row[:keys]): (number, row)
                 for number, row in enumerate(got)}
        self.groups_expected += len(want)
        for exact in want:
            match = found.get(comparison_key(exact[:keys]))
            if match is None:
                self.groups_missing += 1
                continue
            number, noisy = match
            for column in range(keys, len(exact)):
                g, w = _number(noisy[column]), _number(exact[column])
                if g is None or w is None:
                    continue
                if w:
                    self.cells.append(abs(g - w) / abs(w))
                width = widths[column] if column < len(widths) else None
                if width is not None and number < len(width) and math.isfinite(width[number]):
                    self.stated += 1
                    self.within += abs(g - w) <= width[number]

    def summary(self) -> dict[str, Any]:
        cells = np.array(self.cells) if self.cells else np.array([math.nan])
        return {"cells": len(self.cells),
                "median_relative_error": round(float(np.median(cells)), 6),
                "p95_relative_error": round(float(np.percentile(cells, 95)), 6),
                "max_relative_error": round(float(np.max(cells)), 6),
                "groups_expected": self.groups_expected, "groups_missing": self.groups_missing,
                "within_stated_interval": (round(self.within / self.stated, 4)
                                           if self.stated else None)}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    return None
