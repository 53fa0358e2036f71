"""A generated region on this machine: its files, and its nodes as child processes on loopback.

Used by `cityfed region generate`, the demo and the benchmarks. Nodes run as real separate
processes (`python -m node node serve`), exactly as a city would run them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from federation.members import Member, Region, load_region, region_toml

REGION_FILE = "region.toml"
_LISTENING = re.compile(r"^(\w+) listening on (\S+)$")


def node_config_toml(city: str, display_name: str, database: Path, listen: str,
                     threads: int = 2, memory_limit: str = "2GB") -> str:
    return (f'[node]\ncity = "{city}"\ndisplay_name = "{display_name}"\n'
            f'database = "{database.name}"\nlisten = "{listen}"\n'
            f'threads = {threads}\nmemory_limit = "{memory_limit}"\n')


def write_region(directory: Path, *, scale=None, seed: int = 7, base_port: int = 7401,
                 cities: tuple[str, ...] | None = None, name: str = "jing-jin-ji") -> Path:
    """Generate every city's store, a node config per city and the region file; returns the
    region file's path."""
    from federation.synthetic import CITIES, RegionScale, generate_region
    from federation.synthetic.divisions import member

    cities = cities or CITIES
    directory.mkdir(parents=True, exist_ok=True)
    generate_region(directory, scale or RegionScale(), seed=seed, cities=cities)
    members = []
    for index, city in enumerate(cities):
        listen = f"127.0.0.1:{base_port + index if base_port else 0}"
        display_name = member(city).name
        (directory / f"{city}.toml").write_text(
            node_config_toml(city, display_name, directory / f"{city}.duckdb", listen))
        members.append(Member(id=city, name=display_name, endpoint=listen))
    path = directory / REGION_FILE
    path.write_text(region_toml(name, members))
    return path


@dataclass
class LocalRegion:
    """Running node processes for a region directory, and the region as they actually listen."""

    directory: Path
    region: Region
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def region_file(self) -> Path:
        return self.directory / "region.running.toml"

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


def start_node_process(config: Path, listen: str = "127.0.0.1:0",
                       timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    """Start `cityfed node serve` and wait for the address it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", "node", "node", "serve", "--config", str(config),
         "--listen", listen],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        line = process.stdout.readline()
        if not line:
            break
        match = _LISTENING.match(line.strip())
        if match:
            return process, match.group(2)
    process.kill()
    _, errors = process.communicate()
    raise RuntimeError(f"node for {config} did not start: {errors.strip()[-2000:]}")


def start_local_region(directory: Path, cities: tuple[str, ...] | None = None) -> LocalRegion:
    """Start one node process per city of the region in `directory`, each on a free port, and
    write region.running.toml with the ports they took."""
    declared = load_region(directory / REGION_FILE)
    wanted = cities or tuple(m.id for m in declared.cities)
    running = LocalRegion(directory, declared)
    members = []
    try:
        for member in declared.members:
            if member.id not in wanted:
                continue
            process, address = start_node_process(directory / f"{member.id}.toml")
            running.processes[member.id] = process
            members.append(Member(id=member.id, name=member.name, role=member.role,
                                  endpoint=address))
            wait_until_serving(address)
    except BaseException:
        running.stop()
        raise
    running.region = Region(declared.name, tuple(members))
    running.region_file.write_text(region_toml(declared.name, members))
    return running


def wait_until_serving(address: str, timeout: float = 15.0) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout, wait_for_ready=True)
