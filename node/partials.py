"""Turn the rows of a compiled plan's query into `PartialGroup` messages."""

from __future__ import annotations

from cityfed.v1 import query_pb2

from federation.values import to_value
from node.compile import CompiledPlan


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
