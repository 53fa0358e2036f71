"""What the trust layer costs one question: the security target's figures.

Coordinator side, on the real path (from the breakdown's timers): minting one request token
per city and, where the coordinator verifies receipts, verifying them. Node side, per request,
run in this process with the functions the node's guard and servicer call: verifying the
token (Ed25519 JWT), remembering its id against replay (a SQLite commit), the policy decision,
and counting people per group for the k threshold (the DuckDB run with the count against the
run without it). Mutual TLS cannot be switched off, so its cost is inside every federated
figure and not separated here.
"""

from __future__ import annotations

import importlib.util
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib.breakdown import Breakdown
from benchlib.queries import PURPOSE, SMALL
from benchlib.stats import Samples, timed
from federation.identity import Identity
from federation.manifest import Manifest
from federation.sql import parse_query
from federation.tokens import mint_token, verify_token
from node.policy import Caller, decide, load_policy
from node.replay import ReplayCache

COORDINATOR_STEPS = ("mint_token", "verify_receipt")
# Parts of the target that this bench cannot time, and why.
UNMEASURED = {
    "mutual TLS": "cannot be switched off: inside every federated figure, not separated",
}
# Node-side parts this bench does not time: name → the module that holds them once built.
PLANNED = {"node: audit log write": "node.audit",
           "node: signing the receipt": "federation.receipts"}


@dataclass
class SecurityCosts:
    cities: int
    coordinator: dict[str, Samples] = field(default_factory=dict)  # per question
    node: dict[str, Samples] = field(default_factory=dict)  # per request at one node
    notes: dict[str, str] = field(default_factory=dict)

    parallel: list[str] = field(default_factory=list)  # coordinator steps run a city each

    @property
    def coordinator_ms(self) -> float:
        """On the critical path: a step run for every city in parallel counts one city's share
        (all cities' sum / cities), one run in turn on the asking thread counts in full."""
        return sum(s.p50 / (self.cities if name in self.parallel else 1)
                   for name, s in self.coordinator.items())

    @property
    def coordinator_cpu_ms(self) -> float:
        return sum(s.p50 for s in self.coordinator.values())

    @property
    def node_ms(self) -> float:
        return sum(s.p50 for s in self.node.values())

    @property
    def critical_path_ms(self) -> float:
        """Added to a question's latency when every city has a core of its own."""
        return self.coordinator_ms + self.node_ms

    @property
    def cpu_ms(self) -> float:
        """CPU added to a question, all processes together."""
        return self.coordinator_cpu_ms + self.cities * self.node_ms

    def to_json(self) -> dict[str, Any]:
        return {"cities": self.cities,
                "coordinator_per_question": {k: v.summary() for k, v in self.coordinator.items()},
                "node_per_request": {k: v.summary() for k, v in self.node.items()},
                "coordinator_parallel_steps": self.parallel,
                "critical_path_ms": round(self.critical_path_ms, 4),
                "cpu_ms": round(self.cpu_ms, 4), "notes": self.notes}


def security_costs(breakdown: Breakdown, manifest: Manifest, identity: Identity, city: str,
                   policy_path: Path, *, runs: int, counts_people: bool) -> SecurityCosts:
    result = SecurityCosts(breakdown.cities)
    result.coordinator = {name: breakdown.coordinator[name] for name in COORDINATOR_STEPS
                          if name in breakdown.coordinator}
    result.parallel = [name for name in result.coordinator if name in breakdown.parallel_stages]
    plan = parse_query(SMALL.sql).plan
    plan_bytes = plan.SerializeToString()
    result.node["token verification"] = _verify_tokens(manifest, identity, city, plan_bytes, runs)
    result.node["replay cache (SQLite commit)"] = _remember_tokens(runs)
    result.node["policy decision"] = _decide(manifest, identity, policy_path, plan, runs)
    if counts_people:
        result.node["k: counting people per group"] = Samples(
            [max(0.0, breakdown.people_count_ms)])
    else:
        result.notes["k: counting people per group"] = "not applied: the policy sets no k"
    result.notes.update(UNMEASURED)
    for part, module in PLANNED.items():
        result.notes[part] = ("built, not timed by this bench yet" if _exists(module)
                              else "not built yet")
    return result


def _verify_tokens(manifest: Manifest, identity: Identity, city: str, plan_bytes: bytes,
                   runs: int) -> Samples:
    def lookup(kid, at):
        found = manifest.signing_key(kid, at)
        return None if found is None else (found[0].id, found[1].public_key)

    samples = Samples()
    for _ in range(runs):
        token = mint_token(key=identity.signing_key, kid=identity.kid, caller=identity.member_id,
                           audience=city, purpose=PURPOSE, plan_bytes=plan_bytes,
                           certificate_x5t=identity.certificate_x5t)
        samples.add(timed(verify_token, token, audience=city, plan_bytes=plan_bytes,
                          peer_member=identity.member_id, peer_x5t=identity.certificate_x5t,
                          lookup_key=lookup,
                          purpose_registered=lambda p: manifest.purpose(p) is not None,
                          remember_jti=lambda jti, until: True)[1])
    return samples


def _remember_tokens(runs: int) -> Samples:
    samples = Samples()
    with tempfile.TemporaryDirectory(prefix="cityfed-bench-replay-") as directory:
        cache = ReplayCache(Path(directory) / "seen_tokens.sqlite")
        try:
            until = int(time.time()) + 600
            for _ in range(runs):
                samples.add(timed(cache.remember, secrets.token_urlsafe(16), until)[1])
        finally:
            cache.close()
    return samples


def _decide(manifest: Manifest, identity: Identity, policy_path: Path, plan, runs: int) -> Samples:
    member = manifest.member(identity.member_id)
    caller = Caller(member.id, member.role, tuple(member.groups))
    policy = load_policy(policy_path)
    samples = Samples()
    for _ in range(runs):
        samples.add(timed(decide, policy, caller, PURPOSE, plan)[1])
    return samples


def _exists(module: str) -> bool:
    """Whether a module file is in the package this process imported (not elsewhere on the
    path)."""
    package, _, name = module.rpartition(".")
    return (Path(importlib.import_module(package).__file__).parent / f"{name}.py").exists()
