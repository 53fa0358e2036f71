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

from benchlib.queries import PURPOSE, Query, same_rows
from benchlib.stats import Samples, ratio, timed
from federation.coordinator import Coordinator


class Runner(Protocol):
    def run(self, sql: str) -> list[tuple]: ...


class Federation:
    """The federated path: one SQL text through the coordinator to the chosen cities' nodes."""

    def __init__(self, coordinator: Coordinator, cities: tuple[str, ...]) -> None:
        self.coordinator = coordinator
        self.cities = cities
        self.withheld = 0  # groups the cities withheld (fewer than k people) in the last answer

    def run(self, sql: str) -> list[tuple]:
        answer = self.coordinator.ask_sql(sql, purpose=PURPOSE, cities=self.cities,
                                          require_all=True)
        self.withheld = sum(getattr(o, "suppressed_groups", 0) for o in answer.outcomes)
        return answer.table.rows


class Central:
    """The same rows in one DuckDB file, opened read-only by the bench process with as many
    threads as the nodes it stands for have together."""

    def __init__(self, path: Path, threads: int, memory_limit: str) -> None:
        self.threads = threads
        self.connection = duckdb.connect(str(path), read_only=True,
                                         config={"threads": threads, "memory_limit": memory_limit})

    def run(self, sql: str) -> list[tuple]:
        return self.connection.execute(sql).fetchall()

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Central:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Comparison:
    """One question at one scale, federated and central, measured alternately."""

    query: str
    cities: int
    rows_per_city: int
    federated: Samples = field(default_factory=Samples)
    central: Samples = field(default_factory=Samples)
    results_match: bool = False
    withheld_groups: int = 0  # groups the cities withheld under k, which central still shows

    @property
    def ratio(self) -> float:
        return ratio(self.federated.p50, self.central.p50)

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "cities": self.cities, "rows_per_city": self.rows_per_city,
                "ratio_p50": round(self.ratio, 4), "results_match": self.results_match,
                "withheld_groups": self.withheld_groups,
                "federated": self.federated.summary(), "central": self.central.summary()}


def compare(federated: Federation, central: Runner, queries: Sequence[Query], *, cities: int,
            rows_per_city: int, rounds: int, warmup: int) -> list[Comparison]:
    """Run every query federated and central, alternating (and swapping which goes first every
    round) so that noise on the shared machine falls on both alike."""
    results = {q.name: Comparison(q.name, cities, rows_per_city) for q in queries}
    for query in queries:
        for _ in range(max(1, warmup)):
            got, want = federated.run(query.sql), central.run(query.sql)
        results[query.name].results_match = same_rows(got, want)
        results[query.name].withheld_groups = federated.withheld
    for round_number in range(rounds):
        for query in queries:
            sides = [(federated, results[query.name].federated),
                     (central, results[query.name].central)]
            for runner, samples in sides[::1 if round_number % 2 == 0 else -1]:
                samples.add(timed(runner.run, query.sql)[1])
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
