"""Turn the rows of a compiled plan's query into `PartialGroup` messages, dropping small groups."""

from __future__ import annotations

from cityfed.v1 import query_pb2

from federation.values import to_value
from node.compile import CompiledPlan


def suppress_small_groups(rows: list[tuple], compiled: CompiledPlan,
                          k: int | None) -> tuple[list[tuple], int]:
    """Drop the groups of 1 to k-1 people (an empty group names nobody and stays); strip the
    people count. Returns the rows that may leave and how many groups were dropped."""
    if not compiled.counts_people:
        return rows, 0
    kept = [row[:-1] for row in rows if k is None or row[-1] == 0 or row[-1] >= k]
    return kept, len(rows) - len(kept)


def to_partial_groups(rows: list[tuple], compiled: CompiledPlan) -> list[query_pb2.PartialGroup]:
    groups = []
    keys = compiled.key_count
    for row in rows:
        group = query_pb2.PartialGroup(keys=[to_value(v) for v in row[:keys]])
        position = keys
        for parts in compiled.parts:
            partial = group.aggregates.add(count=row[position])
            for offset, part in enumerate(parts[1:], start=1):
                value = row[position + offset]
                if value is not None:
                    getattr(partial, part).CopyFrom(to_value(value))
            position += len(parts)
        groups.append(group)
    return groups
