"""Private set intersection, the real protocol: two city nodes, each a `cityfed node serve`
process with its blinding workers, over mutual TLS with request tokens, policy, audit and
receipts, their points relayed by `federation.linkage.asker.run_linkage` in the bench process.

Data: two cities whose `population` tables hold n distinct resident IDs each, the last
`overlap` of the owner's being the first of the partner's; every column filled with valid
values by DuckDB over range(), ranked once as a node ranks a file another tool wrote, and
cached under the work directory. The bench member is granted `row` on the key, so the count is
exact and checked against the overlap; a second member granted only `match` runs the private
variant (both sets padded, the count noised).

Around each size's runs, in the same run: the protocol's CPU floor (`psi_baseline.floor_seconds`,
before and after), our arithmetic alone in one process, and OpenMined's PSI library.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb

from benchlib.noise import measure_noise
from benchlib.proctree import Party, PartyUse, Watch
from benchlib.psi_baseline import cityfed_psi, floor_seconds, openmined_psi
from federation.coordination.coordinator import Coordinator
from federation.linkage.asker import run_linkage
from federation.linkage.checks import SideSpec, plan_for, side
from federation.query.datasets import POPULATION, create_table_sql
from federation.synthetic.local_region import (
    AUTHORITY,
    REGION,
    free_loopback_ports,
    init_trusted_region,
    node_config_toml,
    set_endpoints,
    start_local_region,
)
from federation.trust.identity import RegionDirectory
from federation.trust.private_files import private_folder

OWNER, PARTNER = "beijing", "tianjin"
CITIES = (OWNER, PARTNER)
ASKER = AUTHORITY  # granted `row` on the key: exact counts
PRIVATE_ASKER = "jjj-statistics"  # granted `match` only: padded sets, a noised count
PURPOSE = "pension-fraud-check"
KEY = SideSpec("population", ("person_id",), "")
BIRTH_DAYS = 30_000  # birth dates spread over this many days from BIRTH_START
BIRTH_START = "1930-01-01"
WARM_UP_POINTS = 2_000  # per side, in the linkage that starts the blinding workers
SESSION_SECONDS = 4 * 3600  # a node's linkage session: a 1e7 linkage takes over ten minutes
READY = "ready.json"

POLICY = f"""\
# The PSI benchmark's policy, each city the same: the bench member may link on population's
# person_id (and filter on birth_date, for the warm-up) at row level, a second member at match
# level; a budget per period large enough for every run.
[privacy]
epsilon_per_question = 1.0
delta_per_question = 1e-9
epsilon_per_period = 1e9
delta_per_period = 1e-3
period = "day"

[[rules]]
dataset = "population"
columns = ["person_id", "birth_date"]
callers = ["{ASKER}"]
purposes = ["{PURPOSE}"]
level = "row"
note = "benchmark only: the exact count, checked against the planted overlap"

[[rules]]
dataset = "population"
columns = ["person_id", "birth_date"]
callers = ["{PRIVATE_ASKER}"]
purposes = ["{PURPOSE}"]
level = "match"
note = "benchmark only: the private linkage, padded and noised"
"""


@dataclass(frozen=True)
class PsiConfig:
    mode: str
    sizes: tuple[int, ...]  # identifiers per side
    runs: tuple[tuple[int, int], ...]  # (up to this size, timed runs)
    private_at: tuple[int, ...]  # sizes at which the private (`match`) linkage runs once too
    library_sizes: tuple[int, ...]  # sizes at which OpenMined's PSI runs
    arithmetic_sizes: tuple[int, ...]  # sizes at which our arithmetic runs in one process
    overlap: float = 0.10
    floor_samples: int = 20_000  # X25519 products timed for each floor measurement

    def runs_for(self, n: int) -> int:
        return next(r for limit, r in self.runs if n <= limit)

    @property
    def quick(self) -> bool:
        return self.mode != "psi"

    def with_sizes(self, sizes: tuple[int, ...]) -> PsiConfig:
        """Only these sizes; a quick run measures everything at each."""
        if self.quick:
            return replace(self, sizes=sizes, private_at=sizes, library_sizes=sizes,
                           arithmetic_sizes=sizes)
        return replace(self, sizes=sizes)


PSI_FULL = PsiConfig(
    mode="psi", sizes=(100_000, 1_000_000, 10_000_000),
    runs=((100_000, 5), (1_000_000, 2), (10**12, 1)), private_at=(1_000_000,),
    library_sizes=(100_000, 1_000_000), arithmetic_sizes=(100_000, 1_000_000))
PSI_QUICK = PsiConfig(
    mode="psi-quick", sizes=(10_000,), runs=((10**12, 3),), private_at=(10_000,),
    library_sizes=(10_000,), arithmetic_sizes=(10_000,), floor_samples=4_000)


# --- data ------------------------------------------------------------------------------------

def person_id_sql(i: str) -> str:
    """An 18-character resident ID (RESIDENT_ID) unique to the integer `i`."""
    return (f"'110101' || lpad(CAST({i} AS VARCHAR), 11, '0') || "
            f"(CASE WHEN {i} % 11 = 10 THEN 'X' ELSE CAST({i} % 11 AS VARCHAR) END)")


def population_sql(city: str, start: int, stop: int) -> str:
    """The INSERT filling a city's population with one row for each i in [start, stop)."""
    from federation.synthetic.divisions import member

    found = member(city)
    districts = "[" + ", ".join(f"'{d.code}'" for d in found.districts) + "]"
    return f"""
        INSERT INTO population
        SELECT {person_id_sql('i')},
               'resident ' || i,
               CASE WHEN i % 2 = 0 THEN 'F' ELSE 'M' END,
               birth,
               {districts}[1 + i % {len(found.districts)}],
               '{found.code[:4]}00',
               birth + CAST(i % 3650 AS INTEGER),
               CASE WHEN i % 50 = 0 THEN DATE '2023-01-01' + CAST(i % 700 AS INTEGER) END
        FROM (SELECT i, DATE '{BIRTH_START}' + CAST((i * 7919) % {BIRTH_DAYS} AS INTEGER) AS birth
              FROM range({start}, {stop}) AS t(i))"""


@dataclass
class PsiData:
    n: int  # identifiers per side
    overlap: int
    directory: Path
    prepare_seconds: float = 0.0
    reused: bool = False

    @property
    def region(self) -> RegionDirectory:
        return RegionDirectory(self.directory)

    def ranges(self) -> dict[str, tuple[int, int]]:
        """Each city's identifiers: the owner's last `overlap` are the partner's first."""
        return {OWNER: (0, self.n), PARTNER: (self.n - self.overlap, 2 * self.n - self.overlap)}


def data_key(n: int, overlap: int) -> str:
    return f"psi-{n}x2-o{overlap}"


def prepare_psi(n: int, overlap: int, root: Path, log: Callable[[str], None] = print) -> PsiData:
    """The region for n identifiers per side, generated unless a complete one is cached; then
    its policies and node configs as this code writes them."""
    data = PsiData(n, overlap, root / data_key(n, overlap))
    started = time.perf_counter()
    try:
        data.reused = json.loads((data.directory / READY).read_text()) == _ready(data)
    except (OSError, ValueError):
        data.reused = False
    if not data.reused:
        log(f"generating two cities × {n:,} resident IDs ({overlap:,} shared) in "
            f"{data.directory}")
        _generate(data, log)
    for city in CITIES:
        (data.directory / f"{city}.policy.toml").write_text(POLICY)
    data.prepare_seconds = time.perf_counter() - started
    return data


def _ready(data: PsiData) -> dict[str, Any]:
    return {"n": data.n, "overlap": data.overlap, "cities": list(CITIES),
            "members": [ASKER, PRIVATE_ASKER], "population_sql": population_sql(OWNER, 0, 1)}


def _generate(data: PsiData, log: Callable[[str], None]) -> None:
    from node.stores.duckdb import DuckDBStore

    if data.directory.exists():
        shutil.rmtree(data.directory)
    private_folder(data.directory)
    init_trusted_region(data.directory, region=REGION, cities=CITIES,
                        authorities=(ASKER, PRIVATE_ASKER))
    for city, (start, stop) in data.ranges().items():
        path = data.directory / f"{city}.duckdb"
        connection = duckdb.connect(str(path))
        try:
            connection.execute("SET enable_progress_bar = false")
            connection.execute(create_table_sql(POPULATION))
            connection.execute(population_sql(city, start, stop))
            connection.execute("CHECKPOINT")
        finally:
            connection.close()
        # A node ranks the rows of a file another tool wrote when it first opens it (about
        # 2.6 s a million rows): done here, once, so that no start of a node does it again.
        log(f"ranking {city}'s rows, as a node does at its first start")
        DuckDBStore(path, threads=2).close()
    (data.directory / READY).write_text(json.dumps(_ready(data)) + "\n")


def fresh_start(data: PsiData, cities: tuple[str, ...] = CITIES) -> None:
    """Free loopback ports in the signed manifest and the node configs, and no state left from
    an earlier start (the held manifest, seen tokens and linkage ids, budgets)."""
    ports = free_loopback_ports(len(cities))
    endpoints = {c: f"127.0.0.1:{p}" for c, p in zip(cities, ports, strict=True)}
    set_endpoints(data.region, endpoints)
    for city, endpoint in endpoints.items():
        config = node_config_toml(data.region, city, city, endpoint, threads=2,
                                  memory_limit="2GB")
        config += f"linkage_workers = 0\nlinkage_session_seconds = {SESSION_SECONDS}\n"
        (data.directory / f"{city}.toml").write_text(config)
        shutil.rmtree(data.directory / f"{city}.state", ignore_errors=True)


# --- one linkage, measured -------------------------------------------------------------------

@dataclass
class PsiRun:
    """One `run_linkage`, end to end as the asker sees it, with each party's memory and CPU."""

    n: int
    mode: str  # "count, exact (row grant)" or "count, private (match grant)"
    seconds: float
    count: int
    exact: bool
    correct: bool
    owner_points: int
    partner_points: int
    traffic: dict[str, int]
    parties: dict[str, PartyUse]
    asker_rss_before_mb: float
    timeline: list[dict[str, Any]] = field(default_factory=list)
    count_half_width_95: float = 0.0
    watch_cpu_seconds: float = 0.0  # the sampling's own, in the bench process

    @property
    def bytes_moved(self) -> int:
        return sum(self.traffic.values())

    def peak_mb(self, party: str) -> float:
        return self.parties[party].peak_hwm_sum_mb

    def cpu(self, party: str) -> float:
        return sum(self.parties[party].cpu_seconds.values())

    def phases(self) -> dict[str, float]:
        """From the timeline: until both nodes' workers first blind, while any does, and after
        the last one stops (the owner's comparison and the answer)."""
        busy = [p["t"] for p in self.timeline
                if any(p[c][2] >= 0.25 for c in CITIES if c in p)]
        if not busy:
            return {}
        start, end = busy[0], busy[-1]
        return {"before blinding": start, "blinding": end - start,
                "after blinding": max(0.0, self.seconds - end)}

    def to_json(self, timeline: bool = False) -> dict[str, Any]:
        out = {"n": self.n, "mode": self.mode, "seconds": round(self.seconds, 3),
               "count": self.count, "exact": self.exact, "correct": self.correct,
               "owner_points": self.owner_points, "partner_points": self.partner_points,
               "traffic_bytes": self.traffic, "bytes_moved": self.bytes_moved,
               "count_half_width_95": self.count_half_width_95,
               "asker_rss_before_mb": round(self.asker_rss_before_mb, 1),
               "watch_cpu_seconds": round(self.watch_cpu_seconds, 2),
               "parties": {k: v.to_json() for k, v in self.parties.items()},
               "phases_seconds": {k: round(v, 2) for k, v in self.phases().items()}}
        if timeline:
            out["timeline"] = self.timeline
        return out


def linkage_once(coordinator: Coordinator, data: PsiData, parties: list[Party], *, mode: str,
                 timeout: float, condition: str = "", interval: float = 0.25,
                 pss_interval: float = 1.0) -> PsiRun:
    spec = SideSpec(KEY.dataset, KEY.key_columns, condition)
    plan = plan_for(owner=side(OWNER, spec), partner=side(PARTNER, spec), mode="count")
    asker_before = _rss_mb(os.getpid())
    with Watch(parties, interval=interval, pss_interval=pss_interval) as watch:
        outcome = run_linkage(coordinator, plan, purpose=PURPOSE, timeout=timeout)
    if not outcome.complete:
        raise RuntimeError(f"the linkage failed: {outcome.outcomes}")
    result = outcome.result
    return PsiRun(data.n, mode, outcome.elapsed_seconds, result.count, result.exact,
                  result.count == data.overlap, result.owner_points, result.partner_points,
                  dict(outcome.traffic), watch.use, asker_before, watch.timeline,
                  result.count_half_width_95, watch.own_cpu_seconds)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def warm_up_condition(n: int) -> str:
    """A filter keeping about WARM_UP_POINTS of n rows (birth dates are spread evenly)."""
    days = max(1, -(-BIRTH_DAYS * WARM_UP_POINTS // n))
    cutoff = dt.date.fromisoformat(BIRTH_START) + dt.timedelta(days=days)
    return f"birth_date < DATE '{cutoff.isoformat()}'"


# --- a whole size ----------------------------------------------------------------------------

@dataclass
class PsiSize:
    """Everything measured at one size: the protocol's runs, its floor before and after, our
    arithmetic in one process, OpenMined's library."""

    n: int
    overlap: int
    data: dict[str, Any]
    node_start_seconds: float = 0.0
    warm_up_seconds: float = 0.0
    runs: list[PsiRun] = field(default_factory=list)
    private_runs: list[PsiRun] = field(default_factory=list)
    floors: list[dict[str, Any]] = field(default_factory=list)  # before and after the runs
    arithmetic: dict[str, Any] | None = None
    library: dict[str, Any] | None = None

    @property
    def median_seconds(self) -> float:
        times = sorted(r.seconds for r in self.runs)
        middle = len(times) // 2
        return times[middle] if len(times) % 2 else (times[middle - 1] + times[middle]) / 2

    @property
    def floor(self) -> dict[str, Any]:
        """The lower of the floors measured before and after the runs (the less disturbed),
        at the cost of a product alone in its process."""
        return min(self.floors, key=lambda f: f["floor_seconds"])

    @property
    def floor_seconds(self) -> float:
        return self.floor["floor_seconds"]

    @property
    def floor_busy_seconds(self) -> float:
        """The same at the cost of a product with every core multiplying at once."""
        return min(f["floor_seconds_all_cores_busy"] for f in self.floors)

    @property
    def library_seconds(self) -> float | None:
        """OpenMined's fastest way: RAW (exact) or GCS (its default, a compressed filter)."""
        if not self.library:
            return None
        return min(self.library["raw"]["seconds"], self.library["gcs"]["seconds"])

    def peak_mb(self, party: str) -> float:
        return max(r.peak_mb(party) for r in self.runs + self.private_runs)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "overlap": self.overlap, "data": self.data,
                "node_start_seconds": round(self.node_start_seconds, 2),
                "warm_up_seconds": round(self.warm_up_seconds, 2),
                "median_seconds": round(self.median_seconds, 3),
                "floor_seconds": self.floor_seconds,
                "ratio_to_floor": round(self.median_seconds / self.floor_seconds, 3),
                "floor_seconds_all_cores_busy": self.floor_busy_seconds,
                "ratio_to_floor_all_cores_busy": round(
                    self.median_seconds / self.floor_busy_seconds, 3),
                "library_seconds": self.library_seconds,
                "ratio_to_library": (round(self.median_seconds / self.library_seconds, 3)
                                     if self.library_seconds else None),
                "runs": [r.to_json(timeline=i == len(self.runs) - 1)
                         for i, r in enumerate(self.runs)],
                "private_runs": [r.to_json(timeline=True) for r in self.private_runs],
                "floors": self.floors, "arithmetic": self.arithmetic, "library": self.library}


def measure_size(config: PsiConfig, n: int, root: Path, *, cores: int,
                 log: Callable[[str], None] = print, on_noise=None) -> PsiSize:
    overlap = round(n * config.overlap)
    data = prepare_psi(n, overlap, root, log)
    found = PsiSize(n, overlap, {"key": data.directory.name, "reused": data.reused,
                                 "prepare_seconds": round(data.prepare_seconds, 1)})
    timeout = max(600.0, 20 * _expected_seconds(n))
    # CPU and PSS sampling intervals: a few hundred samples a run at most.
    interval, pss_interval = ((0.25, 1.0) if n <= 200_000 else (0.5, 2.0) if n <= 2_000_000
                              else (2.0, 10.0))
    found.floors.append(_floor(n, cores, config.floor_samples, "before the runs", log))
    fresh_start(data)
    started = time.perf_counter()
    with start_local_region(data.directory, CITIES) as local:
        found.node_start_seconds = time.perf_counter() - started
        manifest, identity = data.region.open_as(ASKER)
        private_manifest, private_identity = data.region.open_as(PRIVATE_ASKER)
        with (Coordinator(manifest, identity) as coordinator,
              Coordinator(private_manifest, private_identity) as private_coordinator):
            def parties() -> list[Party]:
                return [Party(c, local.processes[c].pid) for c in CITIES] + [
                    Party("asker", os.getpid(), with_descendants=False)]

            # Start the blinding workers, the channels and the stores' caches: a small
            # linkage of the same kind, untimed.
            started = time.perf_counter()
            warm = linkage_once(coordinator, data, parties(), mode="warm-up", timeout=timeout,
                                condition=warm_up_condition(n))
            found.warm_up_seconds = time.perf_counter() - started
            log(f"warm-up: {warm.owner_points:,} × {warm.partner_points:,} points in "
                f"{warm.seconds:.2f} s")
            def watched() -> list[int]:  # a node may start a blinding worker at any time
                return [p for party in parties() for p in party.pids()]

            with _noise(on_noise, f"PSI {n:,} × {n:,}, real protocol", watched):
                for index in range(config.runs_for(n)):
                    run = linkage_once(coordinator, data, parties(),
                                       mode="count, exact (row grant)", timeout=timeout,
                                       interval=interval, pss_interval=pss_interval)
                    _log_run(log, run, index)
                    found.runs.append(run)
                    if not (run.correct and run.exact):
                        raise RuntimeError(f"the linkage counted {run.count}, not the "
                                           f"{overlap} identifiers both cities hold")
                if n in config.private_at:
                    run = linkage_once(private_coordinator, data, parties(),
                                       mode="count, private (match grant)", timeout=timeout,
                                       interval=interval, pss_interval=pss_interval)
                    _log_run(log, run, 0)
                    _check_private(run, overlap)
                    found.private_runs.append(run)
    found.floors.append(_floor(n, cores, config.floor_samples, "after the runs", log))
    if n in config.arithmetic_sizes:
        log(f"our arithmetic alone, in this process: {n:,} × {n:,}")
        found.arithmetic = cityfed_psi(n, n, overlap, workers=cores)
        log(f"  {found.arithmetic['seconds']:.2f} s, correct: {found.arithmetic['correct']}")
    if n in config.library_sizes:
        log(f"openmined-psi: {n:,} × {n:,}, one thread, in a child process")
        with _noise(on_noise, f"openmined-psi {n:,} × {n:,}", [], children=True):
            found.library = openmined_psi(n, n, overlap)
        log(f"  RAW {found.library['raw']['seconds']:.2f} s, GCS "
            f"{found.library['gcs']['seconds']:.2f} s, peak {found.library['peak_mb']:.0f} MB")
    return found


def _expected_seconds(n: int) -> float:
    return 4 * n * 40e-6 / 2


def _floor(n: int, cores: int, samples: int, when: str, log) -> dict[str, Any]:
    floor = {**floor_seconds(n, n, workers=cores, samples=samples), "when": when}
    log(f"floor {when}: {floor['x25519_us_alone']} µs a product alone, "
        f"{floor['x25519_us_all_cores_busy']} µs with every core busy: "
        f"{floor['floor_seconds']:.2f} s ({floor['floor_seconds_all_cores_busy']:.2f} s) for "
        f"{n:,} × {n:,}")
    return floor


def _noise(on_noise, section: str, pids, children: bool = False):
    if on_noise is None:
        return nullcontext()
    return measure_noise(section, pids, on_noise, children=children)


def _log_run(log, run: PsiRun, index: int) -> None:
    log(f"  {run.mode} #{index + 1}: {run.seconds:.2f} s, count {run.count:,}"
        f"{'' if run.exact else f' ± {run.count_half_width_95:.1f}'}, "
        f"{run.bytes_moved / 1e6:.1f} MB relayed, peak "
        + ", ".join(f"{c} {run.peak_mb(c):.0f} MB" for c in (*CITIES, "asker"))
        + ", CPU " + ", ".join(f"{c} {run.cpu(c):.1f} s" for c in (*CITIES, "asker")))


def _check_private(run: PsiRun, overlap: int) -> None:
    """A private count is noised (a few units here) and both sets padded by at most 2t."""
    if run.exact or abs(run.count - overlap) > 20 * max(1.0, run.count_half_width_95):
        raise RuntimeError(f"the private linkage counted {run.count}, far from {overlap}")
    if not (run.owner_points > run.n - 1 and run.partner_points > run.n - 1):
        raise RuntimeError("the private linkage's sets were not padded")


# --- the whole section -----------------------------------------------------------------------

@dataclass
class PsiResults:
    mode: str
    settings: dict[str, Any]
    machine: dict[str, Any]
    note: str = ""
    started: str = ""
    seconds: float = 0.0
    sizes: list[PsiSize] = field(default_factory=list)
    noise: list[Any] = field(default_factory=list)

    @property
    def quick(self) -> bool:
        return self.mode != PSI_FULL.mode

    def size(self, n: int) -> PsiSize | None:
        return next((s for s in self.sizes if s.n == n), None)

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "note": self.note, "started": self.started,
                "seconds": round(self.seconds, 1), "machine": self.machine,
                "settings": self.settings, "sizes": [s.to_json() for s in self.sizes],
                "noise": [n.to_json() for n in self.noise]}


def run_psi(config: PsiConfig, work: Path, machine: dict[str, Any], *, note: str = "",
            log: Callable[[str], None] = print) -> PsiResults:
    cores = len(os.sched_getaffinity(0))
    results = PsiResults(config.mode, {**asdict(config), "cores": cores,
                                       "policy_text": POLICY, "purpose": PURPOSE,
                                       "owner": OWNER, "partner": PARTNER,
                                       "session_seconds": SESSION_SECONDS,
                                       "full_sizes": list(PSI_FULL.sizes)},
                         machine, note,
                         dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    started = time.perf_counter()
    for n in config.sizes:
        log(f"PSI {n:,} × {n:,} identifiers")
        results.sizes.append(measure_size(config, n, work, cores=cores, log=log,
                                          on_noise=results.noise.append))
    results.seconds = time.perf_counter() - started
    results.machine["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return results
