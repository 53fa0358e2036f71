"""The CPU a small federated question cannot do without, beside the CPU it used.

Each city's call needs at least: one gRPC call over mutual TLS (client and server, measured on
a bare server by `benchlib.tls`), the DuckDB run of the city's part (from the node breakdown;
for a private answer the bounded plan's run, the budget charge and the noise),
and the four Ed25519 operations the trust design asks for (the coordinator signs the request
token and verifies the receipt, the node verifies the token and signs the receipt; timed here,
bare). Each is timed in a tight loop, with its code and data hot in the caches; inside a node
that serves between other processes on the same cores it costs more (in one experiment,
switching off the DuckDB run, the token check or the audit record inside a running node saved 2
to 3 times their in-loop cost). So the difference between the measured CPU and the floor is
cityfed's own work (the guard, the policy, the plan, the audit record, the merge, the hand-offs
between threads) plus that cold-cache premium: an upper bound on what cityfed's own code costs.
On a machine where the nodes and the coordinator share the cores, no question can finish faster
than its floor divided by the cores, and no more questions a second can finish than the cores
divided by it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchlib.breakdown import BUDGET, NOISE, Breakdown
from benchlib.security import SecurityCosts

SIGNED_BYTES = 300  # about a request token's signing input, or a receipt's


@dataclass
class CpuFloor:
    cities: int
    cores: int
    per_city: dict[str, float] = field(default_factory=dict)  # ms of CPU per city call
    measured_ms: float = 0.0  # CPU per question: coordinator process + all nodes

    @property
    def floor_ms(self) -> float:
        return self.cities * sum(self.per_city.values())

    @property
    def own_ms(self) -> float:
        """cityfed's own share: what the question used beyond the floor."""
        return self.measured_ms - self.floor_ms

    @property
    def fastest_ms(self) -> float:
        """The least time a question can take here, its floor spread over every core."""
        return self.floor_ms / self.cores

    @property
    def most_per_second(self) -> float:
        return self.cores * 1000 / self.floor_ms if self.floor_ms else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {"cities": self.cities, "cores": self.cores,
                "per_city_ms": {k: round(v, 4) for k, v in self.per_city.items()},
                "floor_ms": round(self.floor_ms, 4), "measured_ms": round(self.measured_ms, 4),
                "own_ms": round(self.own_ms, 4), "fastest_ms": round(self.fastest_ms, 4),
                "most_per_second": round(self.most_per_second, 1)}


def cpu_floor(breakdown: Breakdown, security: SecurityCosts, *, cores: int,
              runs: int = 300) -> CpuFloor:
    sign_ms, verify_ms = _ed25519_ms(runs)
    duckdb = breakdown.duckdb_ms
    floor = CpuFloor(breakdown.cities, cores, measured_ms=breakdown.client_cpu_ms
                     + breakdown.node_cpu_ms)
    floor.per_city = {
        "gRPC call over mutual TLS, client + server (bare server)": security.tls.tls_cpu_ms,
        "DuckDB: the city's part of the question": duckdb,
        "Ed25519: sign the token, verify it, sign the receipt, verify it": 2 * (sign_ms
                                                                                + verify_ms),
    }
    if breakdown.private:  # a private answer cannot leave without its charge and its noise
        floor.per_city[f"privacy: {BUDGET}"] = breakdown.node[BUDGET].p50
        floor.per_city[f"privacy: {NOISE}"] = breakdown.node[NOISE].p50
    return floor


def _ed25519_ms(runs: int) -> tuple[float, float]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    message = bytes(SIGNED_BYTES)
    signature = key.sign(message)
    sign, verify = [], []
    for _ in range(runs):
        started = time.perf_counter()
        key.sign(message)
        sign.append(time.perf_counter() - started)
        started = time.perf_counter()
        public.verify(signature, message)
        verify.append(time.perf_counter() - started)
    return sorted(sign)[runs // 2] * 1000, sorted(verify)[runs // 2] * 1000
