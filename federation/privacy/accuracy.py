"""How far each column of a merged private answer may be from the exact value, as far as noise
goes: per row, a half-width that holds with at least 95% probability (federation.privacy.noise)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from cityfed.v1 import node_pb2, query_pb2

from federation.privacy.noise import CONFIDENCE, half_width, noise_stddev
from federation.query.compile import expression_nodes
from federation.query.finish import Table
from federation.query.merge import MergedGroups

A = query_pb2.AggregateFunction
_COUNTS = (A.AGGREGATE_FUNCTION_COUNT_STAR, A.AGGREGATE_FUNCTION_COUNT)


@dataclass(frozen=True)
class ColumnAccuracy:
    noisy: bool = False
    noise_stddev: float = 0.0
    half_widths: list[float] = field(default_factory=list)  # one per row; empty: not computed


def column_accuracy(query: query_pb2.FederatedQuery, merged: MergedGroups, table: Table,
                    reports: Sequence[node_pb2.PrivacyReport | None]) -> list[ColumnAccuracy]:
    """One entry per output column. `reports[i]` is the privacy report of the i-th answer given
    to the merge (None for an exact answer)."""
    if not any(reports):
        return [ColumnAccuracy() for _ in query.columns]
    functions = [a.function for a in query.plan.aggregates]
    accuracy = []
    for column in query.columns:
        expression = column.expression
        kind = expression.WhichOneof("kind")
        if kind == "aggregate":
            accuracy.append(_of_aggregate(expression.aggregate, functions[expression.aggregate],
                                          merged, table, reports))
        elif kind == "group_key" or not any(
                node.WhichOneof("kind") == "aggregate" for node in expression_nodes(expression)):
            accuracy.append(ColumnAccuracy())
        else:
            accuracy.append(ColumnAccuracy(noisy=True))
    return accuracy


def _scales(reports, sources: tuple[int, ...], index: int, part: str) -> list[float]:
    found = []
    for source in sources:
        report = reports[source]
        if report is not None and index < len(report.aggregates):
            found.append(getattr(report.aggregates[index], part))
    return found


def _of_aggregate(index: int, function: int, merged: MergedGroups, table: Table,
                  reports) -> ColumnAccuracy:
    if function not in (*_COUNTS, A.AGGREGATE_FUNCTION_SUM, A.AGGREGATE_FUNCTION_AVG):
        return ColumnAccuracy()  # min and max are never private
    part = "sum_scale" if function == A.AGGREGATE_FUNCTION_SUM else "count_scale"
    widths, stddevs = [], []
    for group in table.groups:
        sources = merged.sources[group]
        if function == A.AGGREGATE_FUNCTION_AVG:
            count, total = merged.counts_and_sums[group][index]
            widths.append(_average_half_width(
                count, total, _scales(reports, sources, index, "count_scale"),
                _scales(reports, sources, index, "sum_scale")))
            continue
        scales = _scales(reports, sources, index, part)
        widths.append(half_width(scales))
        stddevs.append(noise_stddev(scales))
    return ColumnAccuracy(noisy=True, noise_stddev=max(stddevs, default=0.0),
                          half_widths=widths)


def _average_half_width(count: int, total, count_scales, sum_scales) -> float:
    """Both the noisy sum and the noisy count within their own (1 - α/2) bounds: the average
    lies between the extreme ratios of those intervals."""
    if total is None or count <= 0:
        return math.inf
    confidence = 1 - (1 - CONFIDENCE) / 2
    c, s = half_width(count_scales, confidence), half_width(sum_scales, confidence)
    if count - c <= 0:
        return math.inf
    total = float(total) if isinstance(total, Decimal | int) else total
    average = total / count
    corners = [(total + ds) / (count + dc) for ds in (-s, s) for dc in (-c, c)]
    return max(abs(x - average) for x in corners)

