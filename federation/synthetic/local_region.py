"""A whole region on this machine: its trust material, generated data, policies and node
configs in one folder, and its nodes as child processes on loopback.

Used by `cityfed region generate`, the demo, the tests and the benchmarks. Nodes run as real
separate processes (`python -m cli node serve`), exactly as a city would run them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from federation.trust.identity import RegionDirectory
from federation.trust.keys import read_private_key
from federation.trust.manifest import manifest_from_json, sign_manifest
from federation.trust.private_files import open_private_log, private_folder

_LISTENING = re.compile(r"^(\w+) listening on (\S+)$")


@dataclass(frozen=True)
class TrustedRegion:
    """A region's trust material on disk, with the loopback endpoint of each city."""

    directory: RegionDirectory
    endpoints: dict[str, str]

    def endpoint(self, city: str) -> str:
        return self.endpoints[city]


def free_loopback_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now (the kernel picks them; they are released at once)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for each in sockets:
            each.bind(("127.0.0.1", 0))
        return [each.getsockname()[1] for each in sockets]
    finally:
        for each in sockets:
            each.close()


def set_endpoints(directory: RegionDirectory, endpoints: dict[str, str]) -> None:
    """Point members at new endpoints and sign the manifest again with the region's root key.
    Only for a region no node has started with yet: the version stays the same."""
    signed = json.loads(directory.manifest.read_bytes())
    manifest = manifest_from_json(signed["manifest"])
    members = tuple(dataclasses.replace(m, endpoint=endpoints.get(m.id, m.endpoint))
                    for m in manifest.members)
    root_key = read_private_key(directory.path / "root" / "root.key")
    directory.manifest.write_bytes(
        sign_manifest(dataclasses.replace(manifest, members=members), root_key))


def init_trusted_region(directory: Path, *, region: str, cities: tuple[str, ...],
                        authorities: tuple[str, ...]) -> TrustedRegion:
    """`cityfed region init` for a region on loopback, each city on a free port."""
    from federation.synthetic.divisions import CITIES, member
    from federation.trust.region_init import init_region

    def name(member_id: str) -> str:
        return member(member_id).name if member_id in CITIES else member_id

    init_region(directory, region=region, cities=[(c, name(c)) for c in cities],
                authorities=[(a, a) for a in authorities], force=True)
    endpoints = {c: f"127.0.0.1:{port}"
                 for c, port in zip(cities, free_loopback_ports(len(cities)), strict=True)}
    trusted = TrustedRegion(RegionDirectory(directory), endpoints)
    set_endpoints(trusted.directory, endpoints)
    return trusted


REGION = "jing-jin-ji"
AUTHORITY = "jjj-health"  # the demo's regional authority: a health and statistics commission

# A realistic policy each demo city applies to everyone: the regional authority may ask
# differentially private statistics of population, marriages and medical visits; neighbouring
# cities of transit trips by hour and district; nobody outside the city ever sees a name or an
# identity number. Each caller may spend ε 10 per purpose and day, ε 1 per question.
DEMO_POLICY = """\
[privacy]
epsilon_per_question = 1.0
delta_per_question = 1e-9
epsilon_per_period = 10.0
delta_per_period = 1e-6
period = "day"

[privacy.transit_trips]
max_rows_per_person = 20

[[rules]]
dataset = "population"
columns = ["sex", "birth_date", "district_code", "hukou_city", "registered_on", "deceased_on"]
callers = ["group:authorities"]
purposes = ["population-statistics"]
level = "aggregate"
note = "Regional statistics on residents, never names or IDs"

[[rules]]
dataset = "marriages"
columns = ["registered_on", "dissolved_on", "registering_city"]
callers = ["group:authorities"]
purposes = ["population-statistics"]
level = "aggregate"
note = "Regional statistics on marriages, never registration numbers or IDs"

[[rules]]
dataset = "medical_visits"
columns = ["card_city", "visited_on", "hospital_id", "department", "icd10", "total_cost",
           "insurance_paid"]
callers = ["group:authorities"]
purposes = ["medical-settlement-statistics"]
level = "aggregate"
note = "Cross-city medical settlement: private statistics for the health commission"

[[rules]]
dataset = "transit_trips"
columns = ["tapped_at", "mode", "line", "district_code", "fare", "card_city"]
callers = ["role:city", "group:authorities"]
purposes = ["transit-planning"]
level = "aggregate"
note = "One transport card for the region: trips by hour and district"

[[rules]]
dataset = "social_insurance"
columns = ["scheme", "status", "enrolled_on", "monthly_amount"]
callers = ["group:authorities"]
purposes = ["population-statistics"]
level = "aggregate"
note = "Enrolment statistics"
"""


# The fraud checks (docs/linkage.md) each demo city adds to DEMO_POLICY: member cities and the
# authorities may use the checks' key and condition columns as linkage keys only (`match`, so
# their counts come noised and both sets padded), and the city itself may learn which of its own
# records match (`row` on its own registries, for reveal-to-owner).
LINKAGE_POLICY = """
[[rules]]
dataset = "population"
columns = ["person_id", "deceased_on"]
callers = ["role:city", "group:authorities"]
purposes = ["pension-fraud-check"]
level = "match"
note = "Deaths, as a linkage key only: pensions still paid for the deceased"

[[rules]]
dataset = "social_insurance"
columns = ["person_id", "scheme", "status"]
callers = ["role:city", "group:authorities"]
purposes = ["pension-fraud-check", "medical-insurance-check"]
level = "match"
note = "Active pensions and medical insurance, as a linkage key only"

[[rules]]
dataset = "marriages"
columns = ["spouse1_id", "spouse2_id", "dissolved_on"]
callers = ["role:city", "group:authorities"]
purposes = ["marriage-registry-check"]
level = "match"
note = "Marriages in force, as a linkage key only: bigamy across cities"

[[rules]]
dataset = "social_insurance"
columns = ["*"]
callers = ["{city}"]
purposes = ["pension-fraud-check", "medical-insurance-check"]
level = "row"
note = "The city's own enrolments, to itself: which of its records a check matched"

[[rules]]
dataset = "marriages"
columns = ["*"]
callers = ["{city}"]
purposes = ["marriage-registry-check"]
level = "row"
note = "The city's own marriage register, to itself"
"""


def demo_policy(city: str) -> str:
    """The demo policy of one city: DEMO_POLICY and the fraud checks' rules."""
    return DEMO_POLICY + LINKAGE_POLICY.replace("{city}", city)


def node_config_toml(directory: RegionDirectory, city: str, display_name: str,
                     listen: str, threads: int = 2, memory_limit: str = "2GB") -> str:
    member = directory.member(city).relative_to(directory.path)
    return f"""[node]
city = "{city}"
display_name = "{display_name}"
database = "{city}.duckdb"
listen = "{listen}"
threads = {threads}
memory_limit = "{memory_limit}"
manifest = "manifest.json"
root_public_key = "root/root.pub"
tls_certificate = "{member}/tls.pem"
tls_private_key = "{member}/tls.key"
tls_ca = "root/ca.pem"
signing_key = "{member}/signing.key"
policy = "{city}.policy.toml"
"""


def write_region(directory: Path, *, scale=None, seed: int = 7,
                 cities: tuple[str, ...] | None = None,
                 authorities: tuple[str, ...] = (AUTHORITY,),
                 policy: str | None = None) -> TrustedRegion:
    """A whole region in one folder: trust material and signed manifest, every city's
    generated store, its policy and its node config. The folder, the keys, the stores and the
    ground truth are readable by this user only."""
    from federation.synthetic import CITIES, RegionScale, generate_region
    from federation.synthetic.divisions import member

    cities = cities or CITIES
    private_folder(directory)
    for city in cities:  # a new region: what nodes held of a region replaced here is void
        shutil.rmtree(directory / f"{city}.state", ignore_errors=True)
    trusted = init_trusted_region(directory, region=REGION, cities=cities,
                                  authorities=authorities)
    generate_region(directory, scale or RegionScale(), seed=seed, cities=cities)
    for city in cities:
        (directory / f"{city}.policy.toml").write_text(
            demo_policy(city) if policy is None else policy)
        (directory / f"{city}.toml").write_text(node_config_toml(
            trusted.directory, city, member(city).name, trusted.endpoint(city)))
    return trusted


# A Spark inside the node's process, on two cores: how a city's node is tried out on Spark
# (a real city's node reaches its cluster over Spark Connect instead, README).
SPARK_MASTER = "local[2]"


def spark_missing() -> str | None:
    """Why a local Spark cannot run on this machine (Spark 4 needs Java 17 or later, and the
    `spark` extra), or None when it can."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (make setup-spark, or pip install 'cityfed[spark]')"
    java = (Path(os.environ["JAVA_HOME"]) / "bin" / "java" if os.environ.get("JAVA_HOME")
            else shutil.which("java"))
    if java is None or not Path(java).exists():
        return "no Java on this machine (Spark 4 needs Java 17: apt-get install " \
               "openjdk-17-jre-headless)"
    shown = subprocess.run([str(java), "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)', shown)
    if not found or int(found.group(1)) < 17:
        return f"Java {found.group(1) if found else '?'} is too old: Spark 4 needs Java 17"
    return None


def export_parquet(database: Path, folder: Path, rows_per_file: int = 1_000_000) -> dict[str, str]:
    """Each standard dataset of a city's DuckDB file written as Parquet under
    `folder/<dataset>/`, in files of about `rows_per_file` rows, the way a city's data
    platform holds its tables (only the dataset's own columns); returns each dataset's
    location, a glob, for a node's `spark_datasets`."""
    import duckdb

    from federation.query.datasets import DATASETS

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    group = min(rows_per_file, 122_880)  # DuckDB's default row group size, at most
    connection = duckdb.connect(str(database), read_only=True)
    connection.execute("SET enable_progress_bar = false")
    locations = {}
    try:
        held = {name for (name,) in connection.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}
        for name, dataset in DATASETS.items():
            if name not in held:
                continue
            columns = ", ".join(f'"{c}"' for c in dataset.column_names)
            connection.execute(
                f"COPY (SELECT {columns} FROM \"{name}\") TO '{folder / name}' (FORMAT parquet, "
                f"ROW_GROUP_SIZE {group}, ROW_GROUPS_PER_FILE {-(-rows_per_file // group)})")
            locations[name] = str(folder.resolve() / name / "*.parquet")
    finally:
        connection.close()
    return locations


def serve_from_spark(directory: Path, city: str, *, master: str = SPARK_MASTER,
                     rows_per_file: int = 1_000_000) -> dict[str, str]:
    """Make a city of a local region one served by Spark: its generated datasets written as
    Parquet beside the region (`<city>.parquet/`), its node config set to `store = "spark"` on a
    local Spark reading them. Returns the datasets' locations."""
    config = directory / f"{city}.toml"
    locations = export_parquet(directory / f"{city}.duckdb", directory / f"{city}.parquet",
                               rows_per_file)
    config.write_text(spark_node_config(config.read_text(), master, locations))
    return locations


def spark_node_config(text: str, master: str, locations: dict[str, str]) -> str:
    """A node config (as `node_config_toml` writes it) changed to read `locations` through a
    Spark at `master`."""
    text = re.sub(r"^(store|spark_master|spark_remote)\s*=.*\n", "", text, flags=re.MULTILINE)
    text = text.split("\n[node.spark_datasets]\n")[0].rstrip("\n") + "\n"
    text = text.replace("[node]\n", f'[node]\nstore = "spark"\nspark_master = "{master}"\n', 1)
    return text + "\n[node.spark_datasets]\n" + "".join(
        f"{name} = {json.dumps(location)}\n" for name, location in locations.items())


def store_of(directory: Path, city: str) -> str:
    """Which store a city's node config chooses, as an operator would say it: "duckdb" or
    "spark (local[2])" / "spark (sc://…)"."""
    import tomllib

    node = tomllib.loads((directory / f"{city}.toml").read_text()).get("node", {})
    if node.get("store", "duckdb") != "spark":
        return "duckdb"
    return f"spark ({node.get('spark_remote') or node.get('spark_master')})"


@dataclass
class LocalRegion:
    """Node processes running for the cities of a region folder."""

    directory: RegionDirectory
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)

    def stop(self, timeout: float = 10.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def kill(self, city: str) -> None:
        """Stop one city at once, as a crash would."""
        process = self.processes.pop(city)
        process.kill()
        process.wait()

    def __enter__(self) -> LocalRegion:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def spawn_node_process(config: Path) -> subprocess.Popen:
    """Start `cityfed node serve` for a config, logging to <config>.log beside it;
    `node_address` waits until it listens."""
    with open_private_log(config.with_suffix(".log")) as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "-v", "node", "serve", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=log, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def node_address(process: subprocess.Popen, config: Path) -> str:
    """The address a started node prints once it listens."""
    for line in process.stdout:
        match = _LISTENING.match(line.strip())
        if match:
            return match.group(2)
    process.kill()
    process.wait()
    log = config.with_suffix(".log").read_text()
    raise RuntimeError(f"node for {config} did not start: {log.strip()[-2000:]}")


def start_local_region(directory: Path, cities: tuple[str, ...]) -> LocalRegion:
    """Start a node process for each city, from the <city>.toml configs in the region folder
    (all at once: they start in parallel), and wait until every one listens."""
    running = LocalRegion(RegionDirectory(directory))
    try:
        for city in cities:
            running.processes[city] = spawn_node_process(directory / f"{city}.toml")
        for city in cities:
            running.addresses[city] = node_address(running.processes[city],
                                                   directory / f"{city}.toml")
    except BaseException:
        running.stop()
        raise
    return running
