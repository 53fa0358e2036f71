"""Benchmark data on disk: a generated region per scale, cached under the work root.

A scale's directory is a region folder as `federation.synthetic.local_region.write_region` makes
it (trust material and signed manifest, per city a store, the demo policy and a node config),
holding the five synthetic member cities (`federation.synthetic`) and up to three extra cities
whose stores are byte copies of member cities (the generator knows only five). Every city file
is opened once as a node opens it (`node.stores.duckdb`), which gives each row its hidden
per-person rank for private answers. Beside them: "central" DuckDB files holding the union of
the first n cities' transit_trips (with the cities' ranks, so that the bounded exact answer a
private one is noised from can be computed centrally), and snapshot copies of the city files
that the bench process opens read-only while the nodes hold the originals. Before each start the
node configs get the benchmark's thread and memory settings and fresh loopback ports, and the
nodes' state (held manifest, seen tokens, privacy budgets) is forgotten.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from federation.query.datasets import DATASETS, PERSON_ROW_RANK, TRANSIT_TRIPS, create_table_sql
from federation.synthetic.local_region import (
    AUTHORITY,
    DEMO_POLICY,
    REGION,
    free_loopback_ports,
    init_trusted_region,
    node_config_toml,
    set_endpoints,
)
from federation.trust.identity import RegionDirectory

# id, display name, member city whose store it copies.
EXTRA_CITIES = (("tangshan", "唐山", "beijing"), ("cangzhou", "沧州", "tianjin"),
                ("chengde", "承德", "shijiazhuang"))
READY = "ready.json"


@dataclass(frozen=True)
class DataSpec:
    rows_per_city: int
    cities: int
    seed: int = 7
    people_per_city: int = 20_000
    visits_per_city: int = 1_000

    @property
    def key(self) -> str:
        """Short on purpose: each node's admin Unix socket lives in this directory, and a
        socket path may not exceed 107 characters."""
        return (f"{self.rows_per_city}x{self.cities}-p{self.people_per_city}"
                f"-v{self.visits_per_city}-s{self.seed}")


@dataclass(frozen=True)
class NodeSettings:
    threads: int = 1
    memory_limit: str = "2GB"


@dataclass
class Workdir:
    spec: DataSpec
    directory: Path
    city_ids: tuple[str, ...]
    generate_seconds: float = 0.0
    reused: bool = False
    names: dict[str, str] = field(default_factory=dict)  # display names

    def cities(self, n: int) -> tuple[str, ...]:
        if n > len(self.city_ids):
            raise ValueError(f"{self.directory} holds {len(self.city_ids)} cities, not {n}")
        return self.city_ids[:n]

    def central_path(self, n: int) -> Path:
        return self.directory / f"central-{n}.duckdb"

    def snapshot_path(self, city: str) -> Path:
        return self.directory / "snapshots" / f"{city}.duckdb"

    def database_path(self, city: str) -> Path:
        return self.directory / f"{city}.duckdb"

    @property
    def region(self) -> RegionDirectory:
        return RegionDirectory(self.directory)


def prepare(spec: DataSpec, root: Path, nodes: NodeSettings, central_sizes: tuple[int, ...],
            snapshots: int, log=print) -> Workdir:
    """The directory for `spec`, generated unless a complete one is already there; then node
    configs, central unions and snapshots, each built only if missing."""
    directory = root / spec.key
    reused = _complete(directory)
    started = time.perf_counter()
    if not reused:
        log(f"generating {spec.cities} cities × {spec.rows_per_city:,} trips in {directory}")
        _generate(spec, directory)
    ready = json.loads((directory / READY).read_text())
    workdir = Workdir(spec, directory, tuple(ready["city_ids"]), reused=reused,
                      names=ready["names"])
    _write_node_configs(workdir, nodes)
    for city in workdir.city_ids:
        _rank(workdir, city, log)
    for n in central_sizes:
        _build_central(workdir, n, log)
    for city in workdir.cities(snapshots):
        _snapshot(workdir, city)
    workdir.generate_seconds = time.perf_counter() - started
    return workdir


def _generate(spec: DataSpec, directory: Path) -> None:
    """`write_region`, for up to eight cities: the three beyond the generator's five are
    members of the manifest like any other, with stores copied from member cities."""
    from federation.synthetic import CITIES, RegionScale, generate_region
    from federation.synthetic.divisions import member

    if directory.exists():
        shutil.rmtree(directory)
    members = CITIES[:min(spec.cities, len(CITIES))]
    extras = EXTRA_CITIES[:max(0, spec.cities - len(members))]
    names = {**{c: member(c).name for c in members}, **{c: name for c, name, _ in extras}}
    init_trusted_region(directory, region=REGION, cities=tuple(names), authorities=(AUTHORITY,))
    scale = RegionScale(people_per_city=spec.people_per_city, trips_per_city=spec.rows_per_city,
                        visits_per_city=spec.visits_per_city)
    generate_region(directory, scale, seed=spec.seed, cities=members)
    for city, _, source in extras:
        shutil.copyfile(directory / f"{source}.duckdb", directory / f"{city}.duckdb")
    for city in names:
        (directory / f"{city}.policy.toml").write_text(DEMO_POLICY)
    (directory / READY).write_text(json.dumps(
        {**asdict(spec), "city_ids": list(names), "names": names}, ensure_ascii=False) + "\n")


def _complete(directory: Path) -> bool:
    """A finished data set of this layout (an older cache without trust material is not)."""
    try:
        ready = json.loads((directory / READY).read_text())
    except (OSError, ValueError):
        return False
    return "names" in ready and (directory / "manifest.json").exists()


def fresh_endpoints(workdir: Workdir) -> None:
    """Give every city a port free right now, in the signed manifest and in its node config,
    and forget what earlier runs left in the nodes' state (the manifest they held, the request
    tokens they saw): a cached region is started many times, ports free when it was made may
    not be free any more, and a node refuses a manifest of the same version that differs."""
    ports = free_loopback_ports(len(workdir.city_ids))
    endpoints = {c: f"127.0.0.1:{p}" for c, p in zip(workdir.city_ids, ports, strict=True)}
    set_endpoints(workdir.region, endpoints)
    for city, endpoint in endpoints.items():
        path = workdir.directory / f"{city}.toml"
        path.write_text(_set_key(path.read_text(), "listen", f'"{endpoint}"'))
        shutil.rmtree(workdir.database_path(city).with_suffix(".state"), ignore_errors=True)


def _write_node_configs(workdir: Workdir, nodes: NodeSettings) -> None:
    """Each node's config as this version of `node_config_toml` writes it (a cached data set
    may be older than the code), with the benchmark's threads and memory limit; the listen
    address is set by `fresh_endpoints` before each start."""
    for city in workdir.city_ids:
        (workdir.directory / f"{city}.toml").write_text(node_config_toml(
            workdir.region, city, workdir.names[city], "127.0.0.1:0", threads=nodes.threads,
            memory_limit=nodes.memory_limit))


def _set_key(text: str, key: str, value: str) -> str:
    """Replace `key = …` in the [node] table of a node config, or add it after the header."""
    line = f"{key} = {value}"
    pattern = re.compile(rf"^{key}\s*=.*$", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(line, text, count=1)
    return text.replace("[node]\n", f"[node]\n{line}\n", 1)


def _has_rank(database: Path) -> bool:
    connection = duckdb.connect(str(database), read_only=True)
    try:
        return bool(connection.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'transit_trips' "
            "AND column_name = ?", [PERSON_ROW_RANK]).fetchone()[0])
    finally:
        connection.close()


RANKED = "ranked.json"


def ranking_signature() -> str:
    """What decides a stored rank: the node's ranking code and each dataset's privacy unit. A
    cached file ranked under another signature is ranked again (a node never re-ranks rows
    that have a rank)."""
    from node import ingest

    parts = [inspect.getsource(function) for name, function in sorted(vars(ingest).items())
             if "rank" in name and inspect.isfunction(function)]
    parts += [f"{d.name}: {getattr(d, 'unit_name', d.entity)}" for d in DATASETS.values()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _rank(workdir: Workdir, city: str, log) -> None:
    """Open a city's file as its node would at its first start, which ranks each person's rows
    (an older cache has no ranks, or ranks made by other ranking code: those are dropped
    first); a node started on it later finds nothing left to do. The central unions, snapshots
    and rank-ordered copies made before are stale then, and go."""
    database = workdir.database_path(city)
    marker = workdir.directory / RANKED
    signature = ranking_signature()
    try:
        ranked = json.loads(marker.read_text())
    except (OSError, ValueError):
        ranked = {}
    if _has_rank(database) and ranked.get(city) == signature:
        return
    from node.stores.duckdb import DuckDBStore

    log(f"ranking {city}'s rows per person, as a node does at its first start")
    connection = duckdb.connect(str(database))
    try:
        for dataset in DATASETS:
            connection.execute(f'ALTER TABLE IF EXISTS "{dataset}" '
                               f'DROP COLUMN IF EXISTS "{PERSON_ROW_RANK}"')
        connection.execute("CHECKPOINT")
    finally:
        connection.close()
    DuckDBStore(database, threads=2).close()
    snapshot = workdir.snapshot_path(city)
    for stale in [*workdir.directory.glob("central-*.duckdb"), snapshot,
                  snapshot.with_name(f"{city}.by-rank.duckdb")]:
        stale.unlink(missing_ok=True)
    marker.write_text(json.dumps({**ranked, city: signature}, indent=1) + "\n")


_COLUMNS = ", ".join(f'"{c}"' for c in (*TRANSIT_TRIPS.column_names, PERSON_ROW_RANK))


def _build_central(workdir: Workdir, n: int, log) -> None:
    """One DuckDB file with the union of the first n cities' transit_trips (the only dataset the
    benchmark reads), with each row's rank in its city. Must run while no node holds the city
    files."""
    path = workdir.central_path(n)
    if path.exists() and _has_rank(path):
        return
    log(f"building {path.name}: union of {n} cities' transit_trips")
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    connection = duckdb.connect(str(partial))
    try:
        connection.execute(create_table_sql(TRANSIT_TRIPS))
        connection.execute(f'ALTER TABLE transit_trips ADD COLUMN "{PERSON_ROW_RANK}" INTEGER')
        for city in workdir.cities(n):
            connection.execute(f"ATTACH '{workdir.database_path(city)}' AS src (READ_ONLY)")
            connection.execute(f"INSERT INTO transit_trips ({_COLUMNS}) "
                               f"SELECT {_COLUMNS} FROM src.transit_trips")
            connection.execute("DETACH src")
        connection.execute("CHECKPOINT")
    finally:
        connection.close()
    path.unlink(missing_ok=True)
    partial.rename(path)


def _snapshot(workdir: Workdir, city: str) -> None:
    path = workdir.snapshot_path(city)
    if path.exists() and _has_rank(path):
        return
    path.parent.mkdir(exist_ok=True)
    partial = path.with_suffix(".partial")
    shutil.copyfile(workdir.database_path(city), partial)
    partial.rename(path)


def row_count(database: Path) -> int:
    connection = duckdb.connect(str(database), read_only=True)
    try:
        return connection.execute("SELECT count(*) FROM transit_trips").fetchone()[0]
    finally:
        connection.close()


# The demo policy grants transit_trips to the authority at the `aggregate` level, so every answer
# is differentially private. This one grants every column at row level (a question that names no
# column, count(*), is answered exactly only then): exact answers over every row, which must
# equal central's. "no-k" is its name from before the k threshold was replaced.
EXACT_POLICY = f"""\
[[rules]]
dataset = "transit_trips"
columns = [{", ".join(f'"{c}"' for c in TRANSIT_TRIPS.column_names)}]
callers = ["group:authorities"]
purposes = ["transit-planning"]
level = "row"
note = "benchmark only: exact answers, to tell the cost of privacy apart"
"""

# What the bench's "demo" policy changes in the deployed one: only the budget per period. The
# bench asks thousands of questions as one caller for one purpose on one day, so it may spend
# ε 10^9 a day, and δ 10^-3 (the most any policy may set: a thousand questions with a GROUP BY
# at δ 10^-6 each); ε and δ per question, rows per person and bounds stay as deployed.
BENCH_BUDGET = {"epsilon_per_period": "1e9", "delta_per_period": "1e-3"}


def _bench_demo_policy() -> str:
    text = DEMO_POLICY
    for key, value in BENCH_BUDGET.items():
        text, found = re.subn(rf"^{key}\s*=.*$", f"{key} = {value}", text, count=1,
                              flags=re.MULTILINE)
        if not found:
            raise RuntimeError(f"DEMO_POLICY sets no {key}: the bench policy needs updating")
    return text


BENCH_DEMO_POLICY = _bench_demo_policy()
POLICIES = {"demo": BENCH_DEMO_POLICY, "exact": EXACT_POLICY, "no-k": EXACT_POLICY}
PRIVATE_POLICIES = frozenset({"demo"})  # those under which the bench's answers are noisy


def write_policy(workdir: Workdir, policy: str) -> Path:
    """Every city applies `policy`; returns one city's policy file."""
    for city in workdir.city_ids:
        (workdir.directory / f"{city}.policy.toml").write_text(POLICIES[policy])
    return workdir.directory / f"{workdir.city_ids[0]}.policy.toml"


def refill_budgets(workdir: Workdir) -> None:
    """Empty every node's privacy-budget ledger, as the start of a new period would: between
    the bench's series of questions, so that each series starts with the full budget per
    period. The nodes keep running; SQLite lets this process write beside them."""
    for city in workdir.city_ids:
        path = workdir.database_path(city).with_suffix(".state") / "budget.sqlite"
        if not path.exists():
            continue
        connection = sqlite3.connect(str(path), timeout=30)
        try:
            with connection:
                connection.execute("DELETE FROM spent")
        except sqlite3.OperationalError:  # no table yet: nothing was charged
            pass
        finally:
            connection.close()
