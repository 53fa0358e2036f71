"""The private path's own floor: what a private answer costs each city, step by step, and the
least time the cities' work can take together on this machine.

Each city's steps are run in this process on a snapshot copy of its file, one city at a time (so
no CPU contention), with the nodes' thread count, as `NodeServicer.Aggregate` runs them for a
private answer: compile the bounded plan, charge the budget (a SQLite transaction), run the
bounded plan in DuckDB (only each person's first max_rows_per_person rows, sums clamped), noise
the partials and release the groups with OpenDP, serialize. The exact plan over every row is run
beside it for comparison. The cities' nodes share this machine's cores, so their work together
cannot finish before the sum of their CPU over the cores, nor before the slowest city alone:
that is the private path's floor here, before any coordinator, gRPC or TLS cost.

Then, city by city, what the bounded query could cost with two changes the node does not make
today (`LayoutTrial`): the rows stored in order of their per-person rank, and the clamp of a
sum's argument computed in DECIMAL instead of through DOUBLE; `layout_floors` gives the floor
each variant would put under the region's answer, as above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from benchlib.breakdown import (
    BOUNDED,
    EXACT_REFERENCE,
    PRIVATE_STEPS,
    Breakdown,
    node_breakdown,
)
from benchlib.queries import Query
from benchlib.stats import Samples, timed
from federation.query.datasets import PERSON_ROW_RANK
from federation.query.sql import parse_query
from node.compile import compile_plan, compile_private_plan
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


# --- what the bounded query could cost: each city's file, two changes tried in process --------

LAYOUTS = ("as stored: rows in load order (the node's file)",
           "rows stored in rank order (a copy)",
           "rank order + clamp computed in DECIMAL (the node's SQL rewritten)")
_DOUBLE_CLAMP = re.compile(r"CAST\(least\(greatest\(CAST\((.+?) AS DOUBLE\), \?\), \?\) "
                           r"AS DECIMAL\(18, (\d+)\)\)")


@dataclass
class LayoutTrial:
    """The bounded plan's DuckDB run on a city's file, as stored and with two changes: the
    table ordered by the per-person rank (rows a private answer reads then form a prefix, which
    DuckDB's zone maps skip to), and the clamp of a sum's argument done in DECIMAL rather than
    through DOUBLE. The exact plan is run on both files too."""

    city: str
    rows_per_city: int
    bounded: dict[str, dict[str, Samples]] = field(default_factory=dict)  # query -> layout
    exact: dict[str, dict[str, Samples]] = field(default_factory=dict)  # query -> file
    same_answer: dict[str, bool] = field(default_factory=dict)  # every variant, the same rows

    def to_json(self) -> dict[str, Any]:
        return {"city": self.city, "rows_per_city": self.rows_per_city,
                "same_answer": self.same_answer,
                "bounded": {q: {k: v.summary() for k, v in by.items()}
                            for q, by in self.bounded.items()},
                "exact": {q: {k: v.summary() for k, v in by.items()}
                          for q, by in self.exact.items()}}


def rank_ordered_copy(snapshot: Path) -> Path:
    """A copy of a city's transit_trips with its rows in order of `_person_row_rank` (cached)."""
    path = snapshot.with_name(f"{snapshot.stem}.by-rank.duckdb")
    if path.exists():
        return path
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    connection = duckdb.connect(str(partial))
    try:
        connection.execute("SET enable_progress_bar = false")
        connection.execute(f"ATTACH '{snapshot}' AS source (READ_ONLY)")
        connection.execute(f'CREATE TABLE transit_trips AS SELECT * FROM source.transit_trips '
                           f'ORDER BY "{PERSON_ROW_RANK}"')
        connection.execute("DETACH source")
        connection.execute("CHECKPOINT")
    finally:
        connection.close()
    partial.rename(path)
    return path


def layout_trial(snapshot: Path, queries: tuple[Query, ...], privacy: PrivacySettings, *,
                 rows_per_city: int, threads: int, runs: int) -> LayoutTrial:
    ordered = rank_ordered_copy(snapshot)
    result = LayoutTrial(snapshot.stem, rows_per_city)
    files = {LAYOUTS[0]: snapshot, LAYOUTS[1]: ordered, LAYOUTS[2]: ordered}
    connections = {path: duckdb.connect(str(path), read_only=True, config={"threads": threads})
                   for path in {snapshot, ordered}}
    try:
        for query in queries:
            plan = parse_query(query.sql).plan
            private = compile_private_plan(plan, privacy.of(plan.dataset))
            exact = compile_plan(plan)
            decimal_sql, rewritten = _DOUBLE_CLAMP.subn(
                r"least(greatest(CAST(\1 AS DECIMAL(18, \2)), CAST(? AS DECIMAL(18, \2))), "
                r"CAST(? AS DECIMAL(18, \2)))", private.sql)
            variants = {LAYOUTS[0]: private.sql, LAYOUTS[1]: private.sql}
            if rewritten:
                variants[LAYOUTS[2]] = decimal_sql
            result.bounded[query.name] = {name: Samples() for name in variants}
            result.exact[query.name] = {"as stored": Samples(), "rank order": Samples()}
            answers = {name: sorted(map(repr, connections[files[name]].execute(
                sql, private.params).fetchall())) for name, sql in variants.items()}  # warm-up
            result.same_answer[query.name] = all(a == answers[LAYOUTS[0]]
                                                 for a in answers.values())
            for index in range(runs + 1):  # the first run of each warms up
                for name, sql in variants.items():
                    ms = _timed_run(connections[files[name]], sql, private.params)
                    if index:
                        result.bounded[query.name][name].add(ms)
                for name, path in (("as stored", snapshot), ("rank order", ordered)):
                    ms = _timed_run(connections[path], exact.sql, exact.params)
                    if index:
                        result.exact[query.name][name].add(ms)
    finally:
        for connection in connections.values():
            connection.close()
    return result


def _timed_run(connection, sql: str, params: list) -> float:
    return timed(lambda: connection.execute(sql, params).fetchall())[1]


def layout_floors(trials: list[LayoutTrial], cores: int) -> dict[str, dict[str, float]]:
    """Per query and variant (each bounded layout, and the exact plan as stored): the least
    time all cities' DuckDB runs take together on these cores, max(slowest, sum / cores)."""
    floors: dict[str, dict[str, float]] = {}
    for query in trials[0].bounded if trials else ():
        runs = {name: [t.bounded[query][name].p50 for t in trials if name in t.bounded[query]]
                for name in LAYOUTS}
        runs["exact plan, as stored"] = [t.exact[query]["as stored"].p50 for t in trials]
        floors[query] = {name: max(max(ms), sum(ms) / cores)
                         for name, ms in runs.items() if len(ms) == len(trials)}
    return floors
