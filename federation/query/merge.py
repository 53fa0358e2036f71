"""Merge the cities' partial aggregates exactly, then finish the answer.

Counts and sums add, minima and maxima compare, an average is divided only once every city's
sum and count are in. Decimals stay `Decimal` and integers stay `int`, so a federated sum equals
DuckDB's sum over the union of the cities' rows to the last digit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cityfed.v1 import query_pb2

from federation.query.values import PyValue, duckdb_less, from_value

A = query_pb2.AggregateFunction


@dataclass(frozen=True)
class MergedGroups:
    """Every group over all answering cities: its key values and its final aggregate values."""

    keys: list[tuple[PyValue, ...]]
    aggregates: list[list[PyValue]]
    # Per group, the positions (in `answers`) of the answers that held it.
    sources: list[tuple[int, ...]]
    # Per group and aggregate, the merged count and sum (accuracy needs them for averages).
    counts_and_sums: list[list[tuple[int, PyValue]]]


def merge_partials(
    plan: query_pb2.AggregatePlan, answers: Iterable[Sequence[query_pb2.PartialGroup]]
) -> MergedGroups:
    functions = [a.function for a in plan.aggregates]
    states: dict[tuple, list[list]] = {}
    sources: dict[tuple, list[int]] = {}
    for position, groups in enumerate(answers):
        for group in groups:
            key = tuple(from_value(v) for v in group.keys)
            state = states.get(key)
            if state is None:
                state = states[key] = [[0, None, None, None] for _ in functions]
                sources[key] = []
            sources[key].append(position)
            for accumulator, partial in zip(state, group.aggregates, strict=True):
                _accumulate(accumulator, partial)
    keys = list(states)
    return MergedGroups(
        keys=keys,
        aggregates=[[_final(f, acc) for f, acc in zip(functions, states[k], strict=True)]
                    for k in keys],
        sources=[tuple(sources[k]) for k in keys],
        counts_and_sums=[[(acc[0], acc[1]) for acc in states[k]] for k in keys],
    )


def _accumulate(accumulator: list, partial: query_pb2.PartialAggregate) -> None:
    accumulator[0] += partial.count
    if partial.HasField("sum"):
        value = from_value(partial.sum)
        if value is not None:
            accumulator[1] = value if accumulator[1] is None else accumulator[1] + value
    if partial.HasField("min"):
        value = from_value(partial.min)
        if value is not None and (accumulator[2] is None or duckdb_less(value, accumulator[2])):
            accumulator[2] = value
    if partial.HasField("max"):
        value = from_value(partial.max)
        if value is not None and (accumulator[3] is None or duckdb_less(accumulator[3], value)):
            accumulator[3] = value


def _final(function: int, accumulator: list) -> PyValue:
    count, total, smallest, largest = accumulator
    if function in (A.AGGREGATE_FUNCTION_COUNT_STAR, A.AGGREGATE_FUNCTION_COUNT):
        return count
    if function == A.AGGREGATE_FUNCTION_SUM:
        return total
    if function == A.AGGREGATE_FUNCTION_AVG:
        if total is None or count <= 0:  # a private (noisy) count can be 0 or below
            return None
        return total / count if isinstance(total, int | float) else float(total) / count
    if function == A.AGGREGATE_FUNCTION_MIN:
        return smallest
    return largest
