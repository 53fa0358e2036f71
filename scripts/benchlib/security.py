"""What the trust layer and the audit log cost one question: the security target's figures.

Coordinator side, on the real path (from the breakdown's timers): minting one request token
per city and verifying each city's signed receipt. Node side, per request, run in this process
with the functions the node's guard and observer call: verifying the token (Ed25519 JWT),
remembering its id against replay (a SQLite commit), the policy decision, counting people per
group for the k threshold (the DuckDB run with the count against the run without it), writing
the audit record (as configured by default: no fsync per record) and signing the receipt.
Mutual TLS, which a node cannot switch off, is measured beside the nodes: a bare gRPC server
answering over plaintext and over mutual TLS, alternately (`benchlib.tls`).
"""

from __future__ import annotations

import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cityfed.v1 import node_pb2, query_pb2

from benchlib.breakdown import BUDGET, NOISE, Breakdown
from benchlib.queries import PURPOSE, SMALL
from benchlib.stats import Samples, timed
from benchlib.tls import TlsCost, measure_tls
from federation.coordination.coordinator import AGGREGATE_METHOD
from federation.query.sql import parse_query
from federation.synthetic.local_region import AUTHORITY
from federation.trust.identity import Identity, RegionDirectory
from federation.trust.manifest import Manifest
from federation.trust.receipts import sign_receipt
from federation.trust.tokens import mint_token, verify_token
from node.audit import AuditLog
from node.auditing import AuditRecorder
from node.policy import Caller, decide, load_policy
from node.replay import ReplayCache

COORDINATOR_STEPS = ("mint_token", "verify_receipt")


@dataclass
class SecurityCosts:
    cities: int
    coordinator: dict[str, Samples] = field(default_factory=dict)  # per question
    node: dict[str, Samples] = field(default_factory=dict)  # per request at one node
    notes: dict[str, str] = field(default_factory=dict)

    parallel: list[str] = field(default_factory=list)  # coordinator steps run a city each
    tls: TlsCost | None = None  # per call to a city

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
    def tls_wall_ms(self) -> float:
        return max(0.0, self.tls.wall_ms) if self.tls else 0.0

    @property
    def critical_path_ms(self) -> float:
        """Added to a question's latency when every city has a core of its own."""
        return self.coordinator_ms + self.node_ms + self.tls_wall_ms

    @property
    def cpu_ms(self) -> float:
        """CPU added to a question, all processes together."""
        tls_cpu = max(0.0, self.tls.cpu_ms) if self.tls else 0.0
        return self.coordinator_cpu_ms + self.cities * (self.node_ms + tls_cpu)

    def to_json(self) -> dict[str, Any]:
        return {"cities": self.cities,
                "coordinator_per_question": {k: v.summary() for k, v in self.coordinator.items()},
                "node_per_request": {k: v.summary() for k, v in self.node.items()},
                "coordinator_parallel_steps": self.parallel,
                "tls_per_call": self.tls.to_json() if self.tls else None,
                "critical_path_ms": round(self.critical_path_ms, 4),
                "cpu_ms": round(self.cpu_ms, 4), "notes": self.notes}


def security_costs(breakdown: Breakdown, region: RegionDirectory, city: str, policy_path: Path,
                   *, runs: int) -> SecurityCosts:
    manifest, identity = region.open_as(AUTHORITY)
    _, city_identity = region.open_as(city)
    result = SecurityCosts(breakdown.cities)
    result.coordinator = {name: breakdown.coordinator[name] for name in COORDINATOR_STEPS
                          if name in breakdown.coordinator}
    result.parallel = [name for name in result.coordinator if name in breakdown.parallel_stages]
    plan = parse_query(SMALL.sql).plan
    plan_bytes = plan.SerializeToString()
    result.node["token verification"] = _verify_tokens(manifest, identity, city, plan_bytes, runs)
    result.node["replay cache (SQLite commit)"] = _remember_tokens(runs)
    result.node["policy decision"] = _decide(manifest, identity, policy_path, plan, runs)
    if breakdown.private:
        result.node[f"privacy: {BUDGET}"] = breakdown.node[BUDGET]
        result.node[f"privacy: {NOISE}"] = breakdown.node[NOISE]
        result.node["privacy: bounded DuckDB run over the exact one (0 when it saves)"] = \
            Samples([max(0.0, breakdown.bounding_ms)])
    else:
        result.notes["privacy: budget, noise, bounding"] = ("not applied: the policy grants "
                                                            "rows, answers are exact")
    result.node["audit record (build + append, no fsync)"] = _audit(city_identity, plan_bytes,
                                                                     runs)
    result.node["receipt (sign + encode)"] = _receipts(city_identity, plan_bytes, runs)
    result.tls = measure_tls(identity, city, manifest.region, region.member(city),
                             region.ca_certificate, calls=max(200, runs * 10))
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


def _audit(city: Identity, plan_bytes: bytes, runs: int) -> Samples:
    """What AuditRecorder.finish does for a granted Aggregate, before the receipt: the record
    built from the call's facts and appended to a real log."""
    response_bytes = _small_response(city.member_id)
    facts = {"caller": AUTHORITY, "peer_fingerprint": "0" * 64, "purpose": PURPOSE,
             "jti": secrets.token_urlsafe(16), "plan_bytes": plan_bytes, "groups_returned": 4,
             "epsilon": 1.0, "delta": 1e-6}
    samples = Samples()
    with tempfile.TemporaryDirectory(prefix="cityfed-bench-audit-") as directory:
        log = AuditLog(Path(directory) / "audit", city=city.member_id,
                       signing_key=city.signing_key, kid=city.kid)
        recorder = AuditRecorder(log, city=city.member_id, signing_key=city.signing_key,
                                 kid=city.kid)
        try:
            for _ in range(runs):
                started = time.perf_counter()
                log.append(recorder._record(AGGREGATE_METHOD, None, facts, started, plan_bytes,
                                            response_bytes))
                samples.add((time.perf_counter() - started) * 1000)
        finally:
            log.close()
    return samples


def _receipts(city: Identity, plan_bytes: bytes, runs: int) -> Samples:
    response_bytes = _small_response(city.member_id)
    samples = Samples()
    for index in range(runs):
        samples.add(timed(lambda index=index: sign_receipt(
            key=city.signing_key, kid=city.kid, city=city.member_id,
            jti=secrets.token_urlsafe(16), plan_bytes=plan_bytes,
            response_bytes=response_bytes, audit_index=index).to_json())[1])
    return samples


def _small_response(city: str) -> bytes:
    """The shape of the small question's answer: a group per mode, with count(*), count(fare)
    and sum(fare)."""
    return node_pb2.AggregateResponse(city=city, groups=[
        query_pb2.PartialGroup(keys=[query_pb2.Value(string_value=mode)], aggregates=[
            query_pb2.PartialAggregate(count=25_000), query_pb2.PartialAggregate(count=25_000),
            query_pb2.PartialAggregate(count=25_000, sum=query_pb2.Value(
                decimal_value="112345.50"))])
        for mode in ("bus", "metro", "ferry", "rail")]).SerializeToString()
