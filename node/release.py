"""Turn a query's rows into the `PartialGroup` messages that leave the city.

Exact answers leave as they are. A private answer's rows (bounded counts and clamped sums per
group) are noised here with OpenDP's discrete Laplace, and only the groups whose noisy row
count passes the threshold are released; how many were withheld is never said.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from cityfed.v1 import node_pb2, query_pb2

from federation.privacy import noise as privacy
from federation.query.values import to_value
from node.compile import CompiledPlan, PrivatePlan


def exact_groups(rows: list[tuple], compiled: CompiledPlan) -> list[query_pb2.PartialGroup]:
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


@dataclass(frozen=True)
class PrivateRelease:
    groups: list[query_pb2.PartialGroup]
    report: node_pb2.PrivacyReport  # without the budget, which the caller of release() adds


# OpenDP noises 64-bit integers. A sum beyond them must not fail (whether a question fails would
# depend on the data): it is held at this size first, which moves it no further than the sum.
_UNITS_LIMIT = 2**62


def _saturated(units: int) -> int:
    return max(-_UNITS_LIMIT, min(_UNITS_LIMIT, units))


def charge_of(plan: PrivatePlan, epsilon: float, delta: float) -> tuple[float, float]:
    """What a private question costs: its ε, and δ only when groups are selected."""
    return epsilon, (delta if plan.key_count else 0.0)


def release(rows: list[tuple], plan: PrivatePlan, *, epsilon: float,
            delta: float) -> PrivateRelease:
    """Noise a private plan's rows under (ε, δ), split evenly over the noisy vectors released:
    the row counts (which also select the groups) and each aggregate's counts and sums."""
    keys = plan.key_count
    r = plan.max_rows_per_person
    vectors = 1 + sum(len(parts) for parts in plan.parts)
    share = epsilon / vectors
    count_scale = r / share

    counts = {index: row[keys] for index, row in enumerate(rows)}
    if keys:
        threshold = privacy.threshold_for(r, count_scale, delta)
        released = privacy.noisy_counts_released(counts, count_scale, threshold)
    else:  # one global group, which exists whatever the data: nothing to select
        threshold = 0
        released = dict(zip(counts, privacy.noisy_vector(list(counts.values()), count_scale),
                            strict=True))
    chosen = sorted(released)
    groups = [query_pb2.PartialGroup(keys=[to_value(v) for v in rows[i][:keys]]) for i in chosen]
    for group in groups:
        for _ in plan.parts:
            group.aggregates.add()

    noise = []
    position = keys + 1
    for number, (parts, clamp) in enumerate(zip(plan.parts, plan.sums, strict=True)):
        scales = node_pb2.AggregateNoise(count_scale=count_scale)
        if not parts:  # count(*): the released row count
            for group, i in zip(groups, chosen, strict=True):
                group.aggregates[number].count = released[i]
        for part in parts:
            column = [rows[i][position] for i in chosen]
            position += 1
            if part == "count":
                for group, value in zip(groups, privacy.noisy_vector(column, count_scale),
                                        strict=True):
                    group.aggregates[number].count = value
                continue
            sum_scale = clamp.largest_magnitude_units * r / share
            units = [_saturated(0 if v is None else int(Decimal(v).scaleb(clamp.digits)))
                     for v in column]
            for group, value in zip(groups, privacy.noisy_vector(units, sum_scale), strict=True):
                group.aggregates[number].sum.CopyFrom(
                    to_value(Decimal(value).scaleb(-clamp.digits)))
            scales.sum_scale = sum_scale / 10**clamp.digits
            scales.lower_bound, scales.upper_bound = str(clamp.lower), str(clamp.upper)
        noise.append(scales)
    groups.sort(key=lambda g: [k.SerializeToString() for k in g.keys])  # storage order stays home
    report = node_pb2.PrivacyReport(epsilon=epsilon, delta=delta if keys else 0.0,
                                    max_rows_per_person=r, threshold=threshold, aggregates=noise)
    return PrivateRelease(groups, report)
