"""Everything one benchmark run measured, and the machine it ran on."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib.breakdown import Breakdown
from benchlib.floor import CpuFloor
from benchlib.measure import Comparison, Latency, Throughput
from benchlib.noise import Noise
from benchlib.private import LayoutTrial, PrivateFloor
from benchlib.pushdown import NaiveComparison
from benchlib.security import SecurityCosts


@dataclass
class BenchResults:
    mode: str
    settings: dict[str, Any]
    machine: dict[str, Any]
    note: str = ""
    started: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(
        timespec="seconds"))
    seconds: float = 0.0
    data: list[dict[str, Any]] = field(default_factory=list)
    rows_sweep: list[Comparison] = field(default_factory=list)
    city_sweep: list[Comparison] = field(default_factory=list)
    latency_rows: int = 0
    latency: list[Latency] = field(default_factory=list)
    throughput: list[Throughput] = field(default_factory=list)
    breakdown: Breakdown | None = None
    naive: list[NaiveComparison] = field(default_factory=list)
    noise: list[Noise] = field(default_factory=list)
    security: SecurityCosts | None = None
    floor: CpuFloor | None = None
    private_floor: list[PrivateFloor] = field(default_factory=list)
    layout_trials: list[LayoutTrial] = field(default_factory=list)
    # Under a private policy, the same questions with the row grant, in the same run.
    exact_rows_sweep: list[Comparison] = field(default_factory=list)
    exact_naive: list[NaiveComparison] = field(default_factory=list)

    def federated_latency(self, query: str, cities: int) -> Latency | None:
        return next((lat for lat in self.latency if lat.query == query
                     and lat.path == "federated" and lat.cities == cities), None)

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    @property
    def private(self) -> bool:
        """The nodes applied a policy under which the answers are differentially private."""
        return bool(self.settings.get("private"))

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "note": self.note, "started": self.started,
            "seconds": round(self.seconds, 1),
            "machine": self.machine, "settings": self.settings, "data": self.data,
            "rows_sweep": [c.to_json() for c in self.rows_sweep],
            "city_sweep": [c.to_json() for c in self.city_sweep],
            "latency": [lat.to_json() for lat in self.latency],
            "throughput": [t.to_json() for t in self.throughput],
            "breakdown": self.breakdown.to_json() if self.breakdown else None,
            "naive": [n.to_json() for n in self.naive],
            "noise": [n.to_json() for n in self.noise],
            "security": self.security.to_json() if self.security else None,
            "cpu_floor": self.floor.to_json() if self.floor else None,
            "private_floor": [f.to_json() for f in self.private_floor],
            "layout_trials": [t.to_json() for t in self.layout_trials],
            "exact_rows_sweep": [c.to_json() for c in self.exact_rows_sweep],
            "exact_naive": [n.to_json() for n in self.exact_naive],
        }


def machine_info(root: Path) -> dict[str, Any]:
    import duckdb
    import grpc
    import pyarrow

    return {
        "code": code_version(root),
        "nproc": os.cpu_count(),
        "cpu": _first_value("/proc/cpuinfo", "model name"),
        "memory": _first_value("/proc/meminfo", "MemTotal"),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "duckdb": duckdb.__version__,
        "grpcio": grpc.__version__,
        "pyarrow": pyarrow.__version__,
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }


def code_version(root: Path) -> str:
    """The commit the measured code is at, and whether tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return f"{root} (not a git checkout)"
    return f"{commit}{' + uncommitted changes' if dirty else ''}"


def _first_value(path: str, key: str) -> str:
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
