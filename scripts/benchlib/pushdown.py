"""The naive alternative to pushdown: pull the raw rows to the coordinator and aggregate there.

Nodes have no raw-row RPC (rows never leave home, by design), so the naive path is measured in
this process: each city's snapshot is opened read-only and the columns the question needs are
fetched to Arrow ("fetch"); the Arrow tables are written to IPC bytes and read back, which is
the least a transfer would cost without the network ("transfer"); the concatenation is then
aggregated by the same SQL in an in-memory DuckDB ("aggregate").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from benchlib.measure import Federation
from benchlib.queries import NoisyError, Query, needed_columns, same_rows
from benchlib.stats import Samples, ratio, timed
from federation.query.compile import quote_identifier


@dataclass
class NaiveComparison:
    query: str
    cities: int
    rows_per_city: int
    columns: list[str]
    federated: Samples = field(default_factory=Samples)
    naive: Samples = field(default_factory=Samples)
    fetch: Samples = field(default_factory=Samples)
    transfer: Samples = field(default_factory=Samples)
    aggregate: Samples = field(default_factory=Samples)
    raw_bytes: int = 0
    answer_bytes: int = 0
    results_match: bool = False
    error: NoisyError | None = None  # a private federated answer against the naive exact one

    @property
    def gain(self) -> float:
        return ratio(self.naive.p50, self.federated.p50)

    @property
    def private(self) -> bool:
        return self.error is not None

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "cities": self.cities, "rows_per_city": self.rows_per_city,
                "columns": self.columns, "pushdown_gain_p50": round(self.gain, 3),
                "raw_bytes": self.raw_bytes, "answer_bytes": self.answer_bytes,
                "private": self.private, "results_match": self.results_match,
                "error_vs_naive": self.error.summary() if self.error else None,
                **{name: getattr(self, name).summary()
                   for name in ("federated", "naive", "fetch", "transfer", "aggregate")}}


class NaiveCoordinator:
    """Reads cities' files directly: what a federation without pushdown would have to do."""

    def __init__(self, snapshots: list[Path], *, city_threads: int, threads: int,
                 memory_limit: str) -> None:
        self.cities = [duckdb.connect(str(p), read_only=True, config={"threads": city_threads})
                       for p in snapshots]
        self.local = duckdb.connect(":memory:", config={"threads": threads,
                                                        "memory_limit": memory_limit})

    def close(self) -> None:
        for connection in [*self.cities, self.local]:
            connection.close()

    def __enter__(self) -> NaiveCoordinator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run_stages(self, sql: str, columns: list[str]) -> tuple[list[tuple], tuple, int]:
        """The answer, the (fetch, transfer, aggregate) milliseconds and the bytes moved."""
        select = (f"SELECT {', '.join(quote_identifier(c) for c in columns)} "
                  "FROM transit_trips")
        tables, fetch_ms = timed(lambda: [c.sql(select).to_arrow_table() for c in self.cities])
        (received, size), transfer_ms = timed(lambda: _through_ipc(tables))
        rows, aggregate_ms = timed(self._aggregate, sql, received)
        return rows, (fetch_ms, transfer_ms, aggregate_ms), size

    def _aggregate(self, sql: str, tables: list[pa.Table]) -> list[tuple]:
        self.local.register("transit_trips", pa.concat_tables(tables))
        try:
            return self.local.execute(sql).fetchall()
        finally:
            self.local.unregister("transit_trips")


def _through_ipc(tables: list[pa.Table]) -> tuple[list[pa.Table], int]:
    received, size = [], 0
    for table in tables:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        buffer = sink.getvalue()
        size += buffer.size
        received.append(pa.ipc.open_stream(buffer).read_all())
    return received, size


def compare_naive(federated: Federation, naive: NaiveCoordinator, query: Query, *, cities: int,
                  rows_per_city: int, rounds: int, answer_bytes: int,
                  private: bool = False) -> NaiveComparison:
    """Federated and naive, alternating, after one warm-up run of each. A private federated
    answer is noisy: its error against the naive (exact) answer is recorded instead."""
    columns = needed_columns(query.sql)
    result = NaiveComparison(query.name, cities, rows_per_city, columns,
                             answer_bytes=answer_bytes)
    got = federated.run(query.sql)
    want, _, result.raw_bytes = naive.run_stages(query.sql, columns)
    if private:
        result.error = NoisyError()
        result.error.add(got, [], want, query.keys)  # its ± covers noise, not bounding
    else:
        result.results_match = same_rows(got, want)
    for round_number in range(rounds):
        steps = [lambda: result.federated.add(timed(federated.run, query.sql)[1]),
                 lambda: _record_naive(naive, query.sql, columns, result)]
        for step in steps[::1 if round_number % 2 == 0 else -1]:
            step()
    return result


def _record_naive(naive: NaiveCoordinator, sql: str, columns: list[str],
                  result: NaiveComparison) -> None:
    _, stages, _ = naive.run_stages(sql, columns)
    for samples, ms in zip((result.fetch, result.transfer, result.aggregate), stages, strict=True):
        samples.add(ms)
    result.naive.add(sum(stages))
