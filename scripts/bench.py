"""cityfed benchmark: federated against central, sweeps, small-query latency, throughput, a time
breakdown and the naive pull-the-rows alternative; writes REPORT.md, results.json and charts.

    .venv/bin/python scripts/bench.py              # full run (make bench), exact answers
    .venv/bin/python scripts/bench.py --quick      # tiny sizes, under two minutes
    .venv/bin/python scripts/bench.py --policy demo   # the deployed policy: private answers
    .venv/bin/python scripts/bench.py --only private-10m   # issue 9's figures only, into
                                                   # bench-results/private/ (~2 minutes cached)
    .venv/bin/python scripts/bench.py --only psi   # private set intersection: the real
                                                   # protocol at 1e5, 1e6 and 1e7 identifiers a
                                                   # side beside openmined-psi, into
                                                   # bench-results/psi/ (~40 minutes; --quick:
                                                   # 1e4 only, seconds)
    .venv/bin/python scripts/bench.py --store spark   # one city on Spark (local[2]) beside
                                                   # one on DuckDB, at 1M and 10M rows, into
                                                   # bench-results/spark/ (--quick: 20,000)
    .venv/bin/python scripts/bench.py --out DIR    # write somewhere other than bench-results/

The machine is shared and noisy, so every figure that is compared is measured alternately with
its baseline in the same run and reported as a ratio of medians.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from benchlib.breakdown import Breakdown, answer_bytes, coordinator_breakdown, node_breakdown
from benchlib.floor import cpu_floor
from benchlib.measure import (
    Central,
    Federation,
    Latency,
    Runner,
    compare,
    latency,
    throughput,
)
from benchlib.noise import measure_noise
from benchlib.private import layout_trial, private_floor
from benchlib.psi import PSI_FULL, PSI_QUICK, run_psi
from benchlib.psi_report import write_psi_outputs
from benchlib.pushdown import NaiveCoordinator, compare_naive
from benchlib.queries import BY_HOUR, LATENCY_QUERIES, SMALL, compared
from benchlib.report import write_outputs
from benchlib.results import BenchResults, machine_info
from benchlib.rpc import NodeClients
from benchlib.security import security_costs
from benchlib.workdir import (
    POLICIES,
    PRIVATE_POLICIES,
    DataSpec,
    NodeSettings,
    Workdir,
    fresh_endpoints,
    prepare,
    refill_budgets,
    write_policy,
)
from rich.console import Console
from rich.table import Table as RichTable

from federation.coordination.coordinator import Coordinator
from federation.synthetic.local_region import AUTHORITY, LocalRegion, start_local_region
from federation.trust.identity import Identity
from federation.trust.manifest import Manifest
from node.policy import DatasetPrivacy, PrivacySettings, load_policy

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
console = Console(highlight=False)


@dataclass(frozen=True)
class BenchConfig:
    mode: str
    row_sweep: tuple[int, ...]  # rows per city, at 5 cities
    city_sweep: tuple[int, ...]  # numbers of cities, at city_sweep_rows rows each
    city_sweep_rows: int
    latency_rows: int  # small-query latency, throughput and breakdown
    rounds: tuple[tuple[int, int], ...]  # (up to rows per city, alternating rounds)
    warmup: int
    latency_runs: int
    latency_warmup: int
    clients: int
    throughput_queries: int
    throughput_repeats: int
    breakdown_runs: int
    people_per_city: int
    private_floor_runs: int = 10  # per city and question, under a private policy
    # Under a private policy, also run the row sweep's questions with the row grant (exact
    # answers) after the private ones, nodes restarted: the federation without privacy.
    exact_context: bool = False

    def rounds_for(self, rows: int) -> int:
        return next(r for limit, r in self.rounds if rows <= limit)


FULL = BenchConfig(
    mode="full", row_sweep=(100_000, 1_000_000, 10_000_000), city_sweep=(2, 3, 5, 8),
    city_sweep_rows=1_000_000, latency_rows=100_000,
    rounds=((100_000, 40), (1_000_000, 20), (10**12, 10)), warmup=2,
    latency_runs=1000, latency_warmup=100, clients=16, throughput_queries=2000,
    throughput_repeats=2, breakdown_runs=300, people_per_city=20_000)
QUICK = BenchConfig(
    mode="quick", row_sweep=(5_000, 20_000), city_sweep=(2, 3, 5, 8), city_sweep_rows=5_000,
    latency_rows=5_000, rounds=((10**12, 4),), warmup=1, latency_runs=100, latency_warmup=10,
    clients=16, throughput_queries=200, throughput_repeats=1, breakdown_runs=30,
    people_per_city=2_000, private_floor_runs=3)
# Issue 9's figures alone: the deployed (private) policy at 5 cities × 10M rows against central
# and against pulling the raw rows, the private path's floor, and the same questions exact.
PRIVATE_10M = BenchConfig(
    mode="private-10m", row_sweep=(10_000_000,), city_sweep=(), city_sweep_rows=0,
    latency_rows=0, rounds=((10**12, 10),), warmup=2, latency_runs=0, latency_warmup=0,
    clients=0, throughput_queries=0, throughput_repeats=0, breakdown_runs=0,
    people_per_city=20_000, private_floor_runs=10, exact_context=True)
# The same at tiny size (with --quick): the smoke test of the private path.
PRIVATE_QUICK = replace(PRIVATE_10M, mode="private-quick", row_sweep=(20_000,),
                        rounds=((10**12, 3),), warmup=1, people_per_city=2_000,
                        private_floor_runs=2)
# --only NAME: (config, config with --quick, policy, output folder under bench-results/)
ONLY = {"private-10m": (PRIVATE_10M, PRIVATE_QUICK, "demo", "private")}
# --only psi: the private set intersection between two nodes (benchlib.psi), its own section.
PSI = "psi"


@dataclass(frozen=True)
class ScaleTasks:
    """What to measure on one data set."""

    spec: DataSpec
    sweep_rows: bool
    sweep_cities: bool
    small_query: bool
    central_sizes: tuple[int, ...]


def plan_scales(config: BenchConfig) -> list[ScaleTasks]:
    city_rows = config.city_sweep_rows if config.city_sweep else None
    latency_rows = config.latency_rows or None
    scales = sorted({*config.row_sweep, *(r for r in (city_rows, latency_rows) if r)})
    tasks = []
    for rows in scales:
        sweep_cities, small = rows == city_rows, rows == latency_rows
        centrals = {5, *(config.city_sweep if sweep_cities else ()), *((8,) if small else ())}
        spec = DataSpec(rows, max(centrals), people_per_city=config.people_per_city)
        tasks.append(ScaleTasks(spec, rows in config.row_sweep, sweep_cities, small,
                                tuple(sorted(centrals))))
    return tasks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only == PSI:
        return run_psi_section(args)
    if args.store == "spark":
        return run_spark_section(args)
    config, policy = QUICK if args.quick else FULL, args.policy
    out = args.out or RESULTS
    work = args.work or out / "tmp"
    if args.only:
        config, quick, policy, folder = ONLY[args.only]
        config = quick if args.quick else config
        out = args.out or RESULTS / folder
        work = args.work or out.parent / "tmp"  # beside it: the full run's data cache
    nodes = NodeSettings(threads=args.node_threads, memory_limit=args.node_memory)
    out = out.resolve()
    bench = Bench(config, nodes, work.resolve(), policy)
    bench.results.note = args.note
    results = bench.run()
    checked = write_outputs(results, out)
    print_verdicts(checked, out)
    return 0


def run_psi_section(args: argparse.Namespace) -> int:
    out = (args.out or RESULTS / PSI).resolve()
    work = (args.work or out.parent / "tmp").resolve()  # beside it, as for private-10m
    config = PSI_QUICK if args.quick else PSI_FULL
    if args.psi_sizes:
        config = config.with_sizes(tuple(args.psi_sizes))
    results = run_psi(config, work, machine_info(ROOT), note=args.note, log=console.log)
    checked = write_psi_outputs(results, out)
    print_verdicts(checked, out)
    return 0


def run_spark_section(args: argparse.Namespace) -> int:
    from benchlib.spark import SPARK_FULL, SPARK_QUICK, run_spark_bench
    from benchlib.spark_report import write_spark_outputs

    from federation.synthetic.local_region import spark_missing

    missing = spark_missing()
    if missing:
        console.print(f"[red]--store spark: {missing}[/red]")
        return 2
    out = (args.out or RESULTS / "spark").resolve()
    work = (args.work or out.parent / "tmp").resolve()  # beside it: the full run's data cache
    config = SPARK_QUICK if args.quick else SPARK_FULL
    results = run_spark_bench(config, work, machine_info(ROOT), note=args.note, log=console.log)
    write_spark_outputs(results, out)
    console.print(f"wrote {out / 'REPORT.md'} and results.json")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, under two minutes")
    parser.add_argument("--out", type=Path,
                        help="where REPORT.md, results.json and the charts go (default: "
                             "bench-results/, with --only bench-results/<its folder>/)")
    parser.add_argument("--work", type=Path,
                        help="where generated data is cached (default: OUT/tmp, with --only "
                             "the tmp folder beside OUT, which the full run shares)")
    parser.add_argument("--node-threads", type=int, default=1,
                        help="DuckDB threads per node (default 1: up to 8 nodes share the cores)")
    parser.add_argument("--node-memory", default="2GB", help="DuckDB memory_limit per node")
    parser.add_argument("--policy", choices=sorted(POLICIES), default="exact",
                        help="the cities' policy: exact (the default: the grant at row level, "
                             "so answers are exact and must equal central's; no-k is an old "
                             "name for it) or demo (the deployed policy: the aggregate level, "
                             "differentially private answers, with a budget per period large "
                             "enough for the bench)")
    parser.add_argument("--only", choices=sorted([*ONLY, PSI]),
                        help="private-10m: only issue 9's figures (the demo policy at 5 cities "
                             "× 10M rows against central and against pulling the raw rows, the "
                             "private path's floor, the same questions exact), written to "
                             "bench-results/private/ unless --out says otherwise; with --quick "
                             "the same at 5 × 20,000 rows. psi: private set intersection "
                             "between two nodes at 1e5, 1e6 and 1e7 identifiers a side, its "
                             "floor and openmined-psi at 1e5 and 1e6, written to "
                             "bench-results/psi/ (--node-threads, --node-memory and --policy "
                             "do not apply); with --quick at 1e4 only")
    parser.add_argument("--store", choices=("duckdb", "spark"), default="duckdb",
                        help="spark: one city's node on Spark (a local Spark, 2 cores) beside "
                             "one on DuckDB (2 threads), the same questions alternating at 1M "
                             "and 10M rows, with the fixed cost of a Spark job, written to "
                             "bench-results/spark/ unless --out says otherwise; with --quick at "
                             "20,000 rows (needs Java 17 and make setup-spark)")
    parser.add_argument("--psi-sizes", type=lambda text: int(float(text)), nargs="+",
                        metavar="N", help="with --only psi: measure only these numbers of "
                                          "identifiers per side (1e6 or 1000000); with --quick "
                                          "the private linkage, the arithmetic alone and "
                                          "openmined-psi at each too")
    parser.add_argument("--note", default="", help="a line about this run for the report")
    return parser.parse_args(argv)


class Bench:
    """One run: prepares each data set, starts its nodes, measures, collects results."""

    def __init__(self, config: BenchConfig, nodes: NodeSettings, work: Path,
                 policy: str) -> None:
        self.config = config
        self.nodes = nodes
        self.work = work
        self.policy = policy
        self.private = policy in PRIVATE_POLICIES
        self.privacy: PrivacySettings | None = None  # the policy's, once written
        self.results = BenchResults(config.mode, self._settings(), machine_info(ROOT))

    @property
    def trips_privacy(self) -> DatasetPrivacy | None:
        """How private answers bound each person's contribution to transit_trips."""
        return self.privacy.of("transit_trips") if self.private and self.privacy else None

    def _settings(self) -> dict:
        return {**asdict(self.config), "node_threads": self.nodes.threads,
                "node_memory": self.nodes.memory_limit, "policy": self.policy,
                "private": self.private, "policy_text": POLICIES[self.policy],
                "node_threads_reason": f"up to 8 nodes share {os.cpu_count()} cores; more "
                                       "threads per node would only oversubscribe them",
                "rounds": ", ".join(f"≤{limit:,} rows: {r}" for limit, r in self.config.rounds)}

    def run(self) -> BenchResults:
        started = time.perf_counter()
        for tasks in plan_scales(self.config):
            workdir = prepare(tasks.spec, self.work, self.nodes, tasks.central_sizes,
                              snapshots=5, log=console.log)
            self.results.data.append({
                "key": tasks.spec.key, "cities": tasks.spec.cities,
                "rows_per_city": tasks.spec.rows_per_city,
                "seconds": round(workdir.generate_seconds, 1), "reused": workdir.reused})
            self.run_scale(workdir, tasks)
        self.results.seconds = time.perf_counter() - started
        self.results.machine["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        return self.results

    def run_scale(self, workdir: Workdir, tasks: ScaleTasks) -> None:
        rows = tasks.spec.rows_per_city
        console.rule(f"{tasks.spec.cities} cities × {rows:,} rows per city, policy "
                     f"{self.policy}")
        fresh_endpoints(workdir)
        policy_file = write_policy(workdir, self.policy)
        if self.private:
            self.privacy = load_policy(policy_file).privacy
        manifest, identity = workdir.region.open_as(AUTHORITY)
        with (start_local_region(workdir.directory, workdir.city_ids) as local,
              Coordinator(manifest, identity) as coordinator):
            region = Running(workdir, local, manifest, identity, coordinator, self.private)

            def section(name: str):
                return measure_noise(f"{name}, {rows:,} rows per city", region.pids(),
                                     self.results.noise.append)

            if tasks.sweep_rows:
                with section("federated vs central, 5 cities"):
                    self.results.rows_sweep += self.compare_cities(region, 5)
            if tasks.sweep_cities:
                with section("federated vs central by cities"):
                    for n in self.config.city_sweep:
                        done = [c for c in self.results.rows_sweep
                                if c.cities == n and c.rows_per_city == rows]
                        self.results.city_sweep += done or self.compare_cities(region, n)
            if tasks.small_query:
                with section("small-query latency"):
                    self.measure_latency(region)
                with section("throughput"):
                    self.measure_throughput(region)
                with section("time breakdown"):
                    self.measure_breakdown(region)
            if tasks.sweep_rows:
                with section("naive pull-the-rows"):
                    self.results.naive.append(self.measure_naive(region))
            if tasks.sweep_rows and self.private:
                with section("private path's floor, in process"):
                    self.measure_private_floor(workdir)
        if tasks.sweep_rows and self.private and self.config.exact_context:
            self.run_exact_context(workdir)

    def run_exact_context(self, workdir: Workdir) -> None:
        """The same questions with the row grant (exact answers), nodes restarted: what the
        federation costs without privacy, in the same run."""
        rows = workdir.spec.rows_per_city
        console.rule(f"the same questions exact (row grant), {rows:,} rows per city")
        fresh_endpoints(workdir)
        write_policy(workdir, "exact")
        manifest, identity = workdir.region.open_as(AUTHORITY)
        private, self.private = self.private, False
        try:
            with (start_local_region(workdir.directory, workdir.city_ids) as local,
                  Coordinator(manifest, identity) as coordinator):
                region = Running(workdir, local, manifest, identity, coordinator, False)
                with measure_noise(f"exact (row grant) vs central, {rows:,} rows per city",
                                   region.pids(), self.results.noise.append):
                    self.results.exact_rows_sweep += self.compare_cities(
                        region, 5, queries=compared(private=True))
                with measure_noise(f"exact (row grant) vs pulling the rows, {rows:,} rows "
                                   "per city", region.pids(), self.results.noise.append):
                    self.results.exact_naive.append(self.measure_naive(region))
        finally:
            self.private = private
            write_policy(workdir, self.policy)

    def measure_private_floor(self, workdir: Workdir) -> None:
        cities = workdir.cities(5)
        rows = workdir.spec.rows_per_city
        runs = self.config.private_floor_runs
        for query in compared(private=True):
            console.log(f"private path's floor: {query.name}, {runs} runs per city, in process")
            found = private_floor([workdir.snapshot_path(c) for c in cities], query,
                                  self.privacy, rows_per_city=rows, threads=self.nodes.threads,
                                  memory_limit=self.nodes.memory_limit, runs=runs,
                                  warmup=1, cores=os.cpu_count() or 1)
            console.log(f"  bounded DuckDB floor {found.bounded_floor_ms:.1f} ms (exact plan "
                        f"{found.exact_floor_ms:.1f} ms), all private steps "
                        f"{found.floor_ms:.1f} ms")
            self.results.private_floor.append(found)
        for city in cities:
            console.log(f"the bounded query on {city}, stored in rank order and with a DECIMAL "
                        f"clamp, {runs} runs")
            trial = layout_trial(workdir.snapshot_path(city), compared(private=True),
                                 self.privacy, rows_per_city=rows, threads=self.nodes.threads,
                                 runs=runs)
            for query, by_layout in trial.bounded.items():
                console.log(f"  {query:10} "
                            + ", ".join(f"{s.p50:.1f}" for s in by_layout.values()) + " ms")
            self.results.layout_trials.append(trial)

    def central(self, workdir: Workdir, n: int) -> Central:
        """The central union of n cities, with the threads and memory of n nodes together."""
        return Central(workdir.central_path(n), n * self.nodes.threads,
                       _times(self.nodes.memory_limit, n))

    def compare_cities(self, region: Running, n: int, queries=None):
        rows = region.workdir.spec.rows_per_city
        rounds = self.config.rounds_for(rows)
        console.log(f"federated vs central: {n} cities × {rows:,} rows, {rounds} rounds"
                    + (", private answers" if self.private else ""))
        region.refill_budgets()
        with self.central(region.workdir, n) as central:
            found = compare(region.federation(n), central, queries or compared(self.private),
                            cities=n, rows_per_city=rows, rounds=rounds,
                            warmup=self.config.warmup, privacy=self.trips_privacy)
        for c in found:
            if c.accuracy is not None:
                error = c.accuracy.vs_central.summary()
                noise = c.accuracy.vs_bounded.summary()
                verdict = (f"  relative error median {error['median_relative_error']:.3%} "
                           f"(noise alone {noise['median_relative_error']:.3%})")
            else:
                verdict = "" if c.results_match else "  [red]ANSWERS DIFFER[/red]"
            console.log(f"  {c.query:10} federated p50 {c.federated.p50:9.2f} ms, central p50 "
                        f"{c.central.p50:9.2f} ms, ratio {c.ratio:.2f}×" + verdict)
        return found

    def measure_latency(self, region: Running) -> None:
        rows = self.results.latency_rows = region.workdir.spec.rows_per_city
        for n in (1, 5, 8):  # 1 city: the node has a core to itself, as on its own machine
            with ExitStack() as stack:
                runners: dict[str, Runner] = {"federated": region.federation(n)}
                if n > 1:
                    runners["central"] = stack.enter_context(self.central(region.workdir, n))
                for query in LATENCY_QUERIES:
                    for path, runner in runners.items():
                        region.refill_budgets()
                        samples = latency(runner, query.sql, runs=self.config.latency_runs,
                                          warmup=self.config.latency_warmup)
                        self.results.latency.append(Latency(query.name, path, n, rows, samples))
                        console.log(f"latency {query.name:5} {path:9} {n} cities: p50 "
                                    f"{samples.p50:.2f} ms, p99 {samples.p99:.2f} ms")

    def measure_throughput(self, region: Running) -> None:
        cities = region.workdir.cities(5)
        for _ in range(self.config.throughput_repeats):
            for query in LATENCY_QUERIES:
                for shared in (True, False):
                    region.refill_budgets()
                    found = throughput(region.new_coordinator, cities, query,
                                       clients=self.config.clients,
                                       queries=self.config.throughput_queries, shared=shared,
                                       node_pids=region.pids(cities))
                    console.log(f"throughput {query.name:5} {found.mode}: {found.qps:.0f} q/s "
                                f"({len(found.errors)} errors)")
                    self.results.throughput.append(found)

    def measure_breakdown(self, region: Running) -> None:
        runs, warmup = self.config.breakdown_runs, self.config.latency_warmup
        console.log(f"time breakdown of the small query, {runs} runs")
        workdir, cities = region.workdir, region.workdir.cities(5)
        result = Breakdown(len(cities), workdir.spec.rows_per_city)
        region.refill_budgets()
        coordinator_breakdown(region.federation(5), SMALL.sql, runs=runs, warmup=warmup,
                              node_pids=region.pids(cities), result=result)
        with NodeClients(region.manifest, region.identity, cities) as clients:
            result.transport_floor = clients.transport_floor(runs)
            result.transport_floor_pooled = clients.transport_floor(runs, pooled=True)
        node_breakdown([workdir.snapshot_path(c) for c in cities], SMALL.sql,
                       threads=self.nodes.threads, memory_limit=self.nodes.memory_limit,
                       runs=runs, warmup=warmup // 5 + 1, result=result,
                       privacy=self.privacy if self.private else None)
        self.results.breakdown = result
        self.results.security = security_costs(
            result, workdir.region, cities[0], workdir.directory / f"{cities[0]}.policy.toml",
            runs=runs)
        self.results.floor = cpu_floor(result, self.results.security, cores=os.cpu_count() or 1)

    def measure_naive(self, region: Running):
        workdir, cities = region.workdir, region.workdir.cities(5)
        rows = workdir.spec.rows_per_city
        rounds = max(3, self.config.rounds_for(rows) // 2)
        console.log(f"naive pull-the-rows vs federated: {BY_HOUR.name}, {rounds} rounds")
        snapshots = [workdir.snapshot_path(c) for c in cities]
        privacy = self.privacy if self.private else None
        partials = answer_bytes(snapshots, BY_HOUR.sql, threads=self.nodes.threads,
                                memory_limit=self.nodes.memory_limit, privacy=privacy)
        region.refill_budgets()
        with NaiveCoordinator(snapshots, city_threads=self.nodes.threads,
                              threads=len(cities) * self.nodes.threads,
                              memory_limit=_times(self.nodes.memory_limit, len(cities))) as naive:
            found = compare_naive(region.federation(5), naive, BY_HOUR, cities=len(cities),
                                  rows_per_city=rows, rounds=rounds, answer_bytes=partials,
                                  private=self.private)
        console.log(f"  naive p50 {found.naive.p50:.1f} ms vs federated "
                    f"{found.federated.p50:.1f} ms: pushdown gain {found.gain:.1f}×")
        return found


@dataclass
class Running:
    """A data set's nodes while they run, and the authority's coordinator asking them."""

    workdir: Workdir
    local: LocalRegion
    manifest: Manifest
    identity: Identity
    coordinator: Coordinator
    private: bool = False

    def refill_budgets(self) -> None:
        """Under a private policy, every series of questions starts with the full budget."""
        if self.private:
            refill_budgets(self.workdir)

    def federation(self, n: int) -> Federation:
        return Federation(self.coordinator, self.workdir.cities(n))

    def new_coordinator(self) -> Coordinator:
        return Coordinator(self.manifest, self.identity)

    def pids(self, cities: tuple[str, ...] | None = None) -> list[int]:
        return [self.local.processes[c].pid for c in cities or self.local.processes]


def _times(memory_limit: str, n: int) -> str:
    """A DuckDB memory size times n: '2GB' × 5 → '10GB'."""
    amount = memory_limit.strip().upper().removesuffix("B").removesuffix("I")
    unit = amount[-1] if amount[-1] in "KMGT" else ""
    return f"{float(amount.removesuffix(unit)) * n:g}{unit}B"


def print_verdicts(checked, out: Path) -> None:
    table = RichTable(title="cityfed benchmark targets")
    for column in ("target", "goal", "measured", "verdict", "at"):
        table.add_column(column, overflow="fold")
    for v in checked:
        colour = {"PASS": "green", "MISS": "red"}.get(v.status, "yellow")
        table.add_row(v.target, v.goal, v.measured, f"[{colour}]{v.status}[/{colour}]", v.scale)
    console.print(table)
    console.print(f"wrote {out / 'REPORT.md'} and results.json, and charts where a sweep has "
                  "several points")


if __name__ == "__main__":
    sys.exit(main())
