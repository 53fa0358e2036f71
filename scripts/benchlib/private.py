"""The private path's own floor: what a private answer costs each city, step by step, and the
least time the cities' work can take together on this machine.

Each city's steps are run in this process on a snapshot copy of its file, one city at a time (so
no CPU contention), with the nodes' thread count, as `NodeServicer.Aggregate` runs them for a
private answer: compile the bounded plan, charge the budget (a SQLite transaction), run the
bounded plan in DuckDB (only each card's first max_rows_per_person rows, sums clamped), noise
the partials and release the groups with OpenDP, serialize. The exact plan over every row is run
beside it for comparison. The cities' nodes share this machine's cores, so their work together
cannot finish before the sum of their CPU over the cores, nor before the slowest city alone:
that is the private path's floor here, before any coordinator, gRPC or TLS cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib.breakdown import (
    BOUNDED,
    EXACT_REFERENCE,
    PRIVATE_STEPS,
    Breakdown,
    node_breakdown,
)
from benchlib.queries import Query
from benchlib.stats import Samples
from node.policy import PrivacySettings


@dataclass
class PrivateFloor:
    query: str
    rows_per_city: int
    cores: int
    cities: dict[str, dict[str, Samples]] = field(default_factory=dict)  # city -> step -> ms

    def _sum(self, step: str) -> float:
        return sum(steps[step].p50 for steps in self.cities.values())

    @property
    def steps_sum_ms(self) -> dict[str, float]:
        """Each step's p50, summed over the cities."""
        names = [*PRIVATE_STEPS, EXACT_REFERENCE]
        return {name: self._sum(name) for name in names}

    @property
    def private_sum_ms(self) -> float:
        """All cities' private steps together: the CPU a question needs at the nodes."""
        return sum(self._sum(name) for name in PRIVATE_STEPS)

    @property
    def slowest_city_ms(self) -> float:
        return max(sum(steps[name].p50 for name in PRIVATE_STEPS)
                   for steps in self.cities.values())

    @property
    def floor_ms(self) -> float:
        """The least time all cities' private steps can take on these cores."""
        return max(self.slowest_city_ms, self.private_sum_ms / self.cores)

    @property
    def bounded_floor_ms(self) -> float:
        """The same for the bounded DuckDB runs alone."""
        return max(max(s[BOUNDED].p50 for s in self.cities.values()),
                   self._sum(BOUNDED) / self.cores)

    @property
    def exact_floor_ms(self) -> float:
        """The same for the exact plans' DuckDB runs, over every row (a row grant's work)."""
        return max(max(s[EXACT_REFERENCE].p50 for s in self.cities.values()),
                   self._sum(EXACT_REFERENCE) / self.cores)

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "rows_per_city": self.rows_per_city, "cores": self.cores,
                "floor_ms": round(self.floor_ms, 4),
                "bounded_duckdb_floor_ms": round(self.bounded_floor_ms, 4),
                "exact_duckdb_floor_ms": round(self.exact_floor_ms, 4),
                "slowest_city_ms": round(self.slowest_city_ms, 4),
                "private_steps_sum_ms": round(self.private_sum_ms, 4),
                "steps_sum_over_cities_ms": {k: round(v, 4)
                                             for k, v in self.steps_sum_ms.items()},
                "per_city": {city: {k: v.summary() for k, v in steps.items()}
                             for city, steps in self.cities.items()}}


def private_floor(snapshots: list[Path], query: Query, privacy: PrivacySettings, *,
                  rows_per_city: int, threads: int, memory_limit: str, runs: int, warmup: int,
                  cores: int) -> PrivateFloor:
    result = PrivateFloor(query.name, rows_per_city, cores)
    for snapshot in snapshots:
        city = Breakdown(1, rows_per_city)
        node_breakdown([snapshot], query.sql, threads=threads, memory_limit=memory_limit,
                       runs=runs, warmup=warmup, result=city, privacy=privacy)
        result.cities[snapshot.stem] = city.node
    return result
