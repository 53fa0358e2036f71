"""`scripts/bench.py --store spark`: one city's rows answered by a node on Spark (a local Spark
in the node's process, 2 cores) beside the same rows answered by a node on DuckDB (2 threads),
the same questions through the same coordinator, tokens, policy and audit, alternating.

The region has two members: beijing, served from its DuckDB file, and tangshan, whose node
reads beijing's rows written as Parquet (as a city's data platform holds them) through Spark.
The bench's data sets at the same size are reused when cached (`bench-results/tmp/`); otherwise
beijing is generated alone. Besides the questions, the fixed cost of a Spark job is measured
three ways: a question that matches no row (its latency over DuckDB's), Spark's own trivial
jobs in this process (no node, no gRPC), and the first question after a node starts.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib.measure import Federation
from benchlib.queries import BY_HOUR, COMPARED, GLOBAL_PRIVATE, SMALL, TINY, Query, same_rows
from benchlib.stats import Samples, ratio, timed
from benchlib.workdir import BENCH_DEMO_POLICY, EXACT_POLICY
from federation.coordination.coordinator import Coordinator
from federation.synthetic.local_region import (
    AUTHORITY,
    REGION,
    SPARK_MASTER,
    export_parquet,
    free_loopback_ports,
    init_trusted_region,
    node_config_toml,
    set_endpoints,
    spark_node_config,
    start_local_region,
)
from federation.trust.identity import RegionDirectory

DUCKDB_CITY, SPARK_CITY = "beijing", "tangshan"  # tangshan's node reads beijing's rows
STORES = {DUCKDB_CITY: "duckdb", SPARK_CITY: "spark"}
NODE_THREADS = 2  # DuckDB's threads: the cores local[2] gives Spark
# A question no row matches: what a question costs on each store when there is nothing to add.
EMPTY = Query("empty", "SELECT count(*) AS trips FROM transit_trips WHERE fare < 0")
QUESTIONS = (*COMPARED, SMALL, TINY, EMPTY)
# Under the deployed policy (min and max are refused in a private answer).
PRIVATE_QUESTIONS = (BY_HOUR, GLOBAL_PRIVATE)
READY = "ready.json"


@dataclass(frozen=True)
class SparkBenchConfig:
    mode: str
    sizes: tuple[int, ...]  # transit_trips rows of the city
    rounds: tuple[tuple[int, int], ...]  # (up to rows, alternating rounds)
    warmup: int
    people_per_city: int
    bare_runs: int  # Spark's own trivial jobs, in this process

    def rounds_for(self, rows: int) -> int:
        return next(r for limit, r in self.rounds if rows <= limit)


SPARK_FULL = SparkBenchConfig("spark", (1_000_000, 10_000_000),
                              ((1_000_000, 20), (10**12, 10)), warmup=3,
                              people_per_city=20_000, bare_runs=20)
SPARK_QUICK = SparkBenchConfig("spark-quick", (20_000,), ((10**12, 2),), warmup=1,
                               people_per_city=2_000, bare_runs=2)


@dataclass
class StoreRun:
    """One question on one store at one size."""

    question: str
    store: str
    rows: int
    samples: Samples = field(default_factory=Samples)

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question, "store": self.store, "rows": self.rows,
                **self.samples.summary()}


@dataclass
class SparkResults:
    mode: str
    machine: dict[str, Any]
    settings: dict[str, Any]
    note: str = ""
    data: list[dict] = field(default_factory=list)
    runs: list[StoreRun] = field(default_factory=list)
    matches: list[dict] = field(default_factory=list)  # per size and question
    private_groups: list[dict] = field(default_factory=list)  # groups each store released
    starts: list[dict] = field(default_factory=list)  # node start and first question
    bare: list[dict] = field(default_factory=list)  # Spark's trivial jobs, in process
    seconds: float = 0.0

    def run(self, question: str, store: str, rows: int) -> StoreRun:
        for found in self.runs:
            if (found.question, found.store, found.rows) == (question, store, rows):
                return found
        found = StoreRun(question, store, rows)
        self.runs.append(found)
        return found

    def p50(self, question: str, store: str, rows: int) -> float:
        return self.run(question, store, rows).samples.p50

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "machine": self.machine, "settings": self.settings,
                "note": self.note, "seconds": round(self.seconds, 1), "data": self.data,
                "starts": self.starts, "bare_spark": self.bare, "matches": self.matches,
                "private_groups": self.private_groups,
                "runs": [r.to_json() for r in self.runs]}


def prepare_spark_region(rows: int, work: Path, people: int, log=print) -> Path:
    """The two-member region at `rows`, made once and cached beside the bench's data sets."""
    directory = work / f"spark-{rows}-p{people}"
    if (directory / READY).exists():
        return directory
    started = time.perf_counter()
    if directory.exists():
        shutil.rmtree(directory)
    init_trusted_region(directory, region=REGION, cities=(DUCKDB_CITY, SPARK_CITY),
                        authorities=(AUTHORITY,))
    cached = sorted(work.glob(f"{rows}x*-p{people}-v1000-s7/{DUCKDB_CITY}.duckdb"))
    if cached:
        log(f"copying {cached[0]} (the bench's cached data at {rows:,} rows)")
        shutil.copyfile(cached[0], directory / f"{DUCKDB_CITY}.duckdb")
    else:
        from federation.synthetic import RegionScale, generate_region

        log(f"generating {DUCKDB_CITY} alone at {rows:,} trips")
        generate_region(directory, RegionScale(people_per_city=people, trips_per_city=rows,
                                               visits_per_city=1000),
                        seed=7, cities=(DUCKDB_CITY,))
    log(f"writing {DUCKDB_CITY}'s datasets as Parquet for {SPARK_CITY}'s Spark")
    locations = export_parquet(directory / f"{DUCKDB_CITY}.duckdb",
                               directory / f"{SPARK_CITY}.parquet")
    region = RegionDirectory(directory)
    for city in (DUCKDB_CITY, SPARK_CITY):
        (directory / f"{city}.policy.toml").write_text(EXACT_POLICY)
        text = node_config_toml(region, city, city, "127.0.0.1:0", threads=NODE_THREADS)
        if city == SPARK_CITY:
            text = spark_node_config(text, SPARK_MASTER, locations)
        (directory / f"{city}.toml").write_text(text)
    (directory / READY).write_text(json.dumps(
        {"rows": rows, "people": people, "source": str(cached[0]) if cached else "generated",
         "seconds": round(time.perf_counter() - started, 1)}) + "\n")
    return directory


def fresh_endpoints(directory: Path) -> None:
    """Ports free now, in the signed manifest and the configs; the nodes' state forgotten."""
    cities = (DUCKDB_CITY, SPARK_CITY)
    endpoints = {c: f"127.0.0.1:{p}"
                 for c, p in zip(cities, free_loopback_ports(len(cities)), strict=True)}
    set_endpoints(RegionDirectory(directory), endpoints)
    for city, endpoint in endpoints.items():
        config = directory / f"{city}.toml"
        lines = [f'listen = "{endpoint}"' if line.startswith("listen =") else line
                 for line in config.read_text().splitlines()]
        config.write_text("\n".join(lines) + "\n")
        shutil.rmtree(directory / f"{city}.state", ignore_errors=True)


def run_spark_bench(config: SparkBenchConfig, work: Path, machine: dict[str, Any], *,
                    note: str = "", log=print) -> SparkResults:
    results = SparkResults(config.mode, machine, settings={
        "sizes": list(config.sizes), "warmup": config.warmup,
        "rounds": ", ".join(f"≤{limit:,} rows: {r}" for limit, r in config.rounds),
        "spark_master": SPARK_MASTER, "duckdb_threads": NODE_THREADS,
        "questions": {q.name: q.sql for q in QUESTIONS}, "policy": "exact (row grant)",
        "private_questions": {private_name(q): q.sql for q in PRIVATE_QUESTIONS},
        "private_policy": BENCH_DEMO_POLICY},
        note=note)
    results.machine["started"] = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    for rows in config.sizes:
        made = time.perf_counter()
        directory = prepare_spark_region(rows, work, config.people_per_city, log)
        results.data.append({"rows": rows, "directory": directory.name,
                             "seconds": round(time.perf_counter() - made, 1),
                             "source": json.loads((directory / READY).read_text())["source"]})
        measure_size(config, directory, rows, results, log)
        results.bare.append(bare_spark(directory, rows, config.bare_runs, log))
    results.seconds = time.perf_counter() - started
    results.machine["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return results


def write_policies(directory: Path, text: str) -> None:
    for city in STORES:
        (directory / f"{city}.policy.toml").write_text(text)


def measure_size(config: SparkBenchConfig, directory: Path, rows: int, results: SparkResults,
                 log) -> None:
    write_policies(directory, EXACT_POLICY)
    fresh_endpoints(directory)
    manifest, identity = RegionDirectory(directory).open_as(AUTHORITY)
    with ExitStack() as stack:
        coordinator = stack.enter_context(Coordinator(manifest, identity, city_timeout=600))
        federations = {}
        for city in (DUCKDB_CITY, SPARK_CITY):  # one at a time: each start timed alone
            began = time.perf_counter()
            stack.enter_context(start_local_region(directory, (city,)))
            listening = (time.perf_counter() - began) * 1000
            federations[city] = Federation(coordinator, (city,))
            _, first = timed(federations[city].run, TINY.sql)
            _, second = timed(federations[city].run, TINY.sql)
            results.starts.append({"rows": rows, "store": STORES[city],
                                   "start_ms": round(listening, 1),
                                   "first_question_ms": round(first, 1),
                                   "second_question_ms": round(second, 1)})
            log(f"{STORES[city]:6} node listening after {listening:,.0f} ms; first question "
                f"{first:,.0f} ms, second {second:,.1f} ms")
        for query in QUESTIONS:
            for _ in range(config.warmup):
                answers = {city: f.run(query.sql) for city, f in federations.items()}
            same = same_rows(answers[SPARK_CITY], answers[DUCKDB_CITY])
            results.matches.append({"rows": rows, "question": query.name, "equal": same,
                                    "groups": len(answers[DUCKDB_CITY])})
            if not same:
                log(f"[red]{query.name}: Spark's answer differs from DuckDB's[/red]")
        rounds = config.rounds_for(rows)
        log(f"{rows:,} rows: {len(QUESTIONS)} questions × {rounds} rounds, alternating")
        for number in range(rounds):
            for query in QUESTIONS:
                order = (DUCKDB_CITY, SPARK_CITY)[::1 if number % 2 == 0 else -1]
                for city in order:
                    _, ms = timed(federations[city].run, query.sql)
                    results.run(query.name, STORES[city], rows).samples.add(ms)
        for query in QUESTIONS:
            duck = results.p50(query.name, "duckdb", rows)
            spark = results.p50(query.name, "spark", rows)
            log(f"  {query.name:9} duckdb p50 {duck:9.1f} ms, spark p50 {spark:9.1f} ms, "
                f"{ratio(spark, duck):6.1f}×")
    measure_private(config, directory, rows, results, log)


def measure_private(config: SparkBenchConfig, directory: Path, rows: int,
                    results: SparkResults, log) -> None:
    """The deployed policy's private answers (each person's rows bounded, values clamped, noise
    added), nodes restarted with it: noisy, so only their released groups are compared."""
    write_policies(directory, BENCH_DEMO_POLICY)
    fresh_endpoints(directory)  # and a fresh privacy budget
    manifest, identity = RegionDirectory(directory).open_as(AUTHORITY)
    try:
        with (Coordinator(manifest, identity, city_timeout=600) as coordinator,
              start_local_region(directory, tuple(STORES))):
            federations = {city: Federation(coordinator, (city,)) for city in STORES}
            for query in PRIVATE_QUESTIONS:
                for _ in range(config.warmup):
                    keys = {city: sorted(str(row[:query.keys]) for row in f.run(query.sql))
                            for city, f in federations.items()}
                results.private_groups.append({
                    "rows": rows, "question": private_name(query),
                    "same_groups": keys[SPARK_CITY] == keys[DUCKDB_CITY],
                    "groups": {STORES[c]: len(k) for c, k in keys.items()}})
            rounds = max(2, config.rounds_for(rows) // 2)
            log(f"{rows:,} rows, private answers: {len(PRIVATE_QUESTIONS)} questions × "
                f"{rounds} rounds, alternating")
            for number in range(rounds):
                for query in PRIVATE_QUESTIONS:
                    for city in tuple(STORES)[::1 if number % 2 == 0 else -1]:
                        _, ms = timed(federations[city].run, query.sql)
                        results.run(private_name(query), STORES[city], rows).samples.add(ms)
            for query in PRIVATE_QUESTIONS:
                duck = results.p50(private_name(query), "duckdb", rows)
                spark = results.p50(private_name(query), "spark", rows)
                log(f"  {private_name(query):20} duckdb p50 {duck:9.1f} ms, spark p50 "
                    f"{spark:9.1f} ms, {ratio(spark, duck):6.1f}×")
    finally:
        write_policies(directory, EXACT_POLICY)


def private_name(query: Query) -> str:
    return f"{query.name} (private)"


def bare_spark(directory: Path, rows: int, runs: int, log) -> dict[str, Any]:
    """Spark's own cost in this process, no node: a query the driver answers alone, the least
    job (one task per core), and the questions' shapes on the same Parquet files."""
    from pyspark.sql import SparkSession

    began = time.perf_counter()
    spark = (SparkSession.builder.master(SPARK_MASTER).appName("cityfed-bench-bare")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", "2")
             .getOrCreate())
    session_ms = (time.perf_counter() - began) * 1000
    try:
        spark.sparkContext.setLogLevel("ERROR")
        trips = str(directory / f"{SPARK_CITY}.parquet" / "transit_trips" / "*.parquet")
        spark.read.parquet(trips).createOrReplaceTempView("transit_trips")
        steps = {
            "driver only (SELECT 1)": lambda: spark.sql("SELECT 1").collect(),
            "least job (range(2).count())": lambda: spark.range(0, 2, 1, 2).count(),
            "count(*) of transit_trips": lambda: spark.sql(
                "SELECT count(*) FROM transit_trips").collect(),
            "empty (fare < 0)": lambda: spark.sql(
                "SELECT count(*) FROM transit_trips WHERE fare < 0").collect(),
            "by_hour's shape": lambda: spark.sql(
                "SELECT hour(tapped_at) AS h, count(*), sum(fare), avg(fare) FROM transit_trips "
                "GROUP BY h").collect(),
        }
        found: dict[str, Any] = {"rows": rows, "session_start_ms": round(session_ms, 1)}
        for name, step in steps.items():
            for _ in range(min(3, runs)):  # warm-up
                step()
            samples = Samples()
            tracker = spark.sparkContext.statusTracker()
            before = len(tracker.getJobIdsForGroup(None))
            for _ in range(runs):
                samples.add(timed(step)[1])
            jobs = (len(tracker.getJobIdsForGroup(None)) - before) / runs
            found[name] = {**samples.summary(), "jobs_per_run": round(jobs, 2)}
            log(f"bare Spark, {name}: p50 {samples.p50:.1f} ms, {jobs:.1f} jobs a run")
        return found
    finally:
        spark.stop()
