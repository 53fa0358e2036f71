"""Federated-versus-central comparisons, small-query latency and concurrent throughput."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb

from benchlib.queries import PURPOSE, NoisyError, Query, same_rows
from benchlib.stats import Samples, ratio, timed
from federation.coordination.coordinator import Coordinator, FederatedAnswer
from federation.query.datasets import PERSON_ROW_RANK, TRANSIT_TRIPS
from node.policy import DatasetPrivacy


class Runner(Protocol):
    def run(self, sql: str) -> list[tuple]: ...


class Federation:
    """The federated path: one SQL text through the coordinator to the chosen cities' nodes."""

    def __init__(self, coordinator: Coordinator, cities: tuple[str, ...]) -> None:
        self.coordinator = coordinator
        self.cities = cities
        self.last: FederatedAnswer | None = None

    def run(self, sql: str) -> list[tuple]:
        self.last = self.coordinator.ask_sql(sql, purpose=PURPOSE, cities=self.cities,
                                             require_all=True)
        return self.last.table.rows

    def last_widths(self) -> list[list[float] | None]:
        """Per column of the last answer, its ± per row (None for an exact column)."""
        if self.last is None:
            return []
        return [a.half_widths if a.noisy else None for a in self.last.accuracy]


class Central:
    """The same rows in one DuckDB file, opened read-only by the bench process with as many
    threads as the nodes it stands for have together."""

    def __init__(self, path: Path, threads: int, memory_limit: str) -> None:
        self.path = path
        self.threads = threads
        self._bounded: duckdb.DuckDBPyConnection | None = None
        self.connection = duckdb.connect(str(path), read_only=True,
                                         config={"threads": threads, "memory_limit": memory_limit})

    def run(self, sql: str) -> list[tuple]:
        return self.connection.execute(sql).fetchall()

    def run_bounded(self, sql: str, privacy: DatasetPrivacy) -> list[tuple]:
        """The exact answer over only what a private answer reads: each person's first
        `max_rows_per_person` rows in its city's rank, values clamped to the declared bounds.
        This is what the cities' noise is added to."""
        if self._bounded is None:
            self._bounded = duckdb.connect(":memory:", config={"threads": self.threads})
            self._bounded.execute(f"ATTACH '{self.path}' AS central (READ_ONLY)")
            clamped = ", ".join(
                f'least(greatest("{column}", {lower}), {upper}) AS "{column}"'
                for column, (lower, upper) in privacy.bounds.items()
                if TRANSIT_TRIPS.column(column) is not None)
            self._bounded.execute(
                "CREATE VIEW transit_trips AS SELECT * "
                + (f"REPLACE ({clamped}) " if clamped else "")
                + f'FROM central.transit_trips WHERE "{PERSON_ROW_RANK}" <= '
                f"{int(privacy.max_rows_per_person)}")
        return self._bounded.execute(sql).fetchall()

    def close(self) -> None:
        self.connection.close()
        if self._bounded is not None:
            self._bounded.close()

    def __enter__(self) -> Central:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Accuracy:
    """A private question's answers against central's: against the exact answer over every row
    (noise and contribution bounding together) and against the exact answer over the rows the
    private answer reads (the noise alone, which the stated ± intervals cover)."""

    max_rows_per_person: int
    vs_central: NoisyError = field(default_factory=NoisyError)
    vs_bounded: NoisyError = field(default_factory=NoisyError)
    exact: list[tuple] = field(default_factory=list)
    bounded: list[tuple] = field(default_factory=list)

    def add(self, rows: list[tuple], widths: list[list[float] | None], keys: int) -> None:
        self.vs_central.add(rows, widths, self.exact, keys)
        self.vs_bounded.add(rows, widths, self.bounded, keys)

    def to_json(self) -> dict[str, Any]:
        return {"max_rows_per_person": self.max_rows_per_person,
                "vs_central": self.vs_central.summary(),
                "vs_bounded_exact": self.vs_bounded.summary()}


@dataclass
class Comparison:
    """One question at one scale, federated and central, measured alternately."""

    query: str
    cities: int
    rows_per_city: int
    federated: Samples = field(default_factory=Samples)
    central: Samples = field(default_factory=Samples)
    results_match: bool = False
    accuracy: Accuracy | None = None  # private answers: noisy, so compared by their error

    @property
    def ratio(self) -> float:
        return ratio(self.federated.p50, self.central.p50)

    @property
    def private(self) -> bool:
        return self.accuracy is not None

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "cities": self.cities, "rows_per_city": self.rows_per_city,
                "ratio_p50": round(self.ratio, 4), "private": self.private,
                "results_match": self.results_match,
                "accuracy": self.accuracy.to_json() if self.accuracy else None,
                "federated": self.federated.summary(), "central": self.central.summary()}


def compare(federated: Federation, central: Central, queries: Sequence[Query], *, cities: int,
            rows_per_city: int, rounds: int, warmup: int,
            privacy: DatasetPrivacy | None = None) -> list[Comparison]:
    """Run every query federated and central, alternating (and swapping which goes first every
    round) so that noise on the shared machine falls on both alike. Exact answers must equal
    central's; private ones (`privacy`: how the dataset's contributions are bounded) are noisy,
    so every answer's error is recorded instead, after the clock stops."""
    results = {q.name: Comparison(q.name, cities, rows_per_city) for q in queries}
    for query in queries:
        result = results[query.name]
        for _ in range(max(1, warmup)):
            got, want = federated.run(query.sql), central.run(query.sql)
        if privacy is None:
            result.results_match = same_rows(got, want)
        else:
            result.accuracy = Accuracy(privacy.max_rows_per_person, exact=want,
                                       bounded=central.run_bounded(query.sql, privacy))
    for round_number in range(rounds):
        for query in queries:
            result = results[query.name]
            sides = [(federated, result.federated), (central, result.central)]
            for runner, samples in sides[::1 if round_number % 2 == 0 else -1]:
                rows, ms = timed(runner.run, query.sql)
                samples.add(ms)
                if runner is federated and result.accuracy is not None:
                    result.accuracy.add(rows, federated.last_widths(), query.keys)
    return list(results.values())


@dataclass
class Latency:
    query: str
    path: str  # federated or central
    cities: int
    rows_per_city: int
    samples: Samples

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "path": self.path, "cities": self.cities,
                "rows_per_city": self.rows_per_city, **self.samples.summary()}


def latency(runner: Runner, sql: str, *, runs: int, warmup: int) -> Samples:
    """One question asked again and again, one at a time, after `warmup` unmeasured runs."""
    for _ in range(warmup):
        runner.run(sql)
    samples = Samples()
    for _ in range(runs):
        samples.add(timed(runner.run, sql)[1])
    return samples


@dataclass
class Throughput:
    query: str
    shared_coordinator: bool
    clients: int
    cities: int
    queries: int
    seconds: float
    latency: Samples
    client_cpu_ms_per_query: float
    node_cpu_ms_per_query: float
    errors: list[str]

    @property
    def mode(self) -> str:
        return "one shared Coordinator" if self.shared_coordinator else "a Coordinator per client"

    @property
    def qps(self) -> float:
        return ratio(self.queries - len(self.errors), self.seconds)

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "mode": self.mode, "clients": self.clients,
                "cities": self.cities,
                "queries": self.queries, "seconds": round(self.seconds, 4),
                "qps": round(self.qps, 2), "errors": self.errors[:10],
                "client_cpu_ms_per_query": round(self.client_cpu_ms_per_query, 4),
                "node_cpu_ms_per_query": round(self.node_cpu_ms_per_query, 4),
                "latency": self.latency.summary()}


def throughput(new_coordinator: Callable[[], Coordinator], cities: tuple[str, ...],
               query: Query, *, clients: int, queries: int, shared: bool,
               node_pids: Sequence[int]) -> Throughput:
    """`clients` threads ask `queries` questions in all, as fast as answers come back. CPU time
    of this process (the clients) and of the node processes is charged per query."""
    coordinators = [new_coordinator() for _ in range(1 if shared else clients)]
    tickets = iter(range(queries))
    lock = threading.Lock()
    samples, errors = Samples(), []
    start = threading.Barrier(clients + 1)

    def client(coordinator: Coordinator) -> None:
        runner = Federation(coordinator, cities)
        start.wait()
        while True:
            with lock:
                ticket = next(tickets, None)
            if ticket is None:
                return
            try:
                samples.add(timed(runner.run, query.sql)[1])
            except Exception as error:  # a failed question counts against the rate
                errors.append(repr(error)[:300])

    try:
        for coordinator in coordinators:  # open every channel before the clock starts
            Federation(coordinator, cities).run(query.sql)
        threads = [threading.Thread(target=client, args=(coordinators[i % len(coordinators)],))
                   for i in range(clients)]
        for thread in threads:
            thread.start()
        client_cpu, node_cpu = time.process_time(), processes_cpu_seconds(node_pids)
        start.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        node_cpu = processes_cpu_seconds(node_pids) - node_cpu
    finally:
        for coordinator in coordinators:
            coordinator.close()
    return Throughput(query.name, shared, clients, len(cities), queries, seconds, samples,
                      client_cpu * 1000 / queries, node_cpu * 1000 / queries, errors)


def processes_cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time of processes, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total
