"""The federation gateway: `FederationService` over gRPC, on the same coordinator as the CLI.

A gateway belongs to one member (usually an authority) and asks the cities under that member's
identity, so it serves only the members it is told to serve (by default: its own), over mutual
TLS: serving any member would lend its own access to callers the cities never granted it.

It takes a newer manifest of its region folder while it runs (ManifestWatcher, SIGHUP), with the
checks it started with, and its health follows its cities (federation.serving.health.CityHealth).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
from cityfed.v1 import federation_pb2, federation_pb2_grpc, linkage_pb2, query_pb2

from federation.coordination.coordinator import (
    CityOutcome,
    CityStatus,
    Coordinator,
    FederatedAnswer,
)
from federation.errors import CallerNotServed, ConfigError, DeadlineExceeded, InvalidArgument
from federation.linkage.asker import DEFAULT_LINKAGE_TIMEOUT, run_linkage
from federation.linkage.checks import CHECKS, build_plan
from federation.linkage.plan import mode_name, new_linkage_id
from federation.query.values import to_value
from federation.serving.grpc_errors import ErrorTranslator
from federation.serving.guard import (
    HEALTH_AND_REFLECTION,
    Guard,
    PeerIdentifier,
    Requirement,
    TrustState,
)
from federation.serving.health import CityHealth, add_health_and_reflection
from federation.serving.limits import CallLimits, grpc_receive_limit, member_of
from federation.serving.metrics import MetricsEndpoint, ServerMetrics, serve_metrics
from federation.trust.identity import (
    SERVER_KEEPALIVE_OPTIONS,
    Identity,
    RegionDirectory,
    check_listed,
)
from federation.trust.manifest import Manifest, ManifestWatcher, load_manifest

log = logging.getLogger(__name__)

# The largest request a gateway reads (proto/cityfed/v1/federation.proto).
MAX_REQUEST_BYTES = 1024 * 1024
FEDERATION_SERVICE = federation_pb2.DESCRIPTOR.services_by_name["FederationService"].full_name
_CITY_STATUS = {s: federation_pb2.CityStatus.Value(f"CITY_STATUS_{s.name}") for s in CityStatus}

METHOD_POLICY: dict[str, Requirement] = {
    f"/{FEDERATION_SERVICE}/FederatedAggregate": Requirement.MEMBER,
    f"/{FEDERATION_SERVICE}/FederatedMatch": Requirement.MEMBER,
    **{method: Requirement.MEMBER for method in HEALTH_AND_REFLECTION},
}


def outcome_to_proto(o: CityOutcome) -> federation_pb2.CityOutcome:
    return federation_pb2.CityOutcome(
        city=o.city, status=_CITY_STATUS[o.status], code=o.code, detail=o.detail,
        groups=o.groups, elapsed_ms=o.elapsed_ms, receipt=o.receipt.to_json() if o.receipt else "",
        private=o.private, epsilon_charged=o.epsilon_charged,
        epsilon_remaining=o.epsilon_remaining, response=o.response)


def answer_to_proto(answer: FederatedAnswer) -> federation_pb2.FederatedAggregateResponse:
    return federation_pb2.FederatedAggregateResponse(
        column_names=answer.table.column_names,
        rows=[query_pb2.Row(values=[to_value(v) for v in row]) for row in answer.table.rows],
        outcomes=[outcome_to_proto(o) for o in answer.outcomes],
        complete=answer.complete,
        accuracy=[federation_pb2.ColumnAccuracy(noisy=a.noisy, noise_stddev=a.noise_stddev,
                                                half_widths_95=a.half_widths)
                  for a in answer.accuracy],
        plan=answer.plan, query=answer.query, column_types=answer.column_types,
    )


class FederationServicer(federation_pb2_grpc.FederationServiceServicer):
    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator
        self._lock = threading.Lock()
        self._calls: dict[int, int] = {}  # id(coordinator) -> calls asking through it

    @property
    def coordinator(self) -> Coordinator:
        return self._coordinator

    def use(self, coordinator: Coordinator) -> None:
        """Ask through `coordinator` from now on; the one it replaces is closed once the calls
        asking through it have ended."""
        with self._lock:
            previous, self._coordinator = self._coordinator, coordinator
            idle = id(previous) not in self._calls
        if idle:
            previous.close()

    @contextmanager
    def _asking(self) -> Iterator[Coordinator]:
        with self._lock:
            coordinator = self._coordinator
            self._calls[id(coordinator)] = self._calls.get(id(coordinator), 0) + 1
        try:
            yield coordinator
        finally:
            with self._lock:
                self._calls[id(coordinator)] -= 1
                done = self._calls[id(coordinator)] == 0
                if done:
                    del self._calls[id(coordinator)]
                retired = done and coordinator is not self._coordinator
            if retired:
                coordinator.close()

    def FederatedAggregate(self, request, context):
        with self._asking() as coordinator:
            return self._aggregate(coordinator, request, context)

    def FederatedMatch(self, request, context):
        with self._asking() as coordinator:
            return self._match(coordinator, request, context)

    def _aggregate(self, coordinator: Coordinator, request, context):
        timeout = coordinator.city_timeout
        if request.city_timeout_ms:
            timeout = request.city_timeout_ms / 1000
        remaining = context.time_remaining()
        if remaining is not None:
            if remaining <= 0:
                raise DeadlineExceeded("the deadline passed before the question was sent")
            timeout = min(timeout, remaining * 0.95)
        if not request.purpose:
            raise InvalidArgument("name the purpose of the question (a registered purpose)")
        options = {"cities": tuple(request.cities), "require_all": request.require_all,
                   "timeout": timeout, "purpose": request.purpose}
        question = request.WhichOneof("question")
        if question == "sql":
            answer = coordinator.ask_sql(request.sql, **options)
        elif question == "query":
            answer = coordinator.ask(request.query, **options)
        else:
            raise InvalidArgument("set either sql or query")
        return answer_to_proto(answer)

    def _match(self, coordinator: Coordinator, request, context):
        timeout = request.timeout_ms / 1000 if request.timeout_ms else DEFAULT_LINKAGE_TIMEOUT
        remaining = context.time_remaining()
        if remaining is not None:
            if remaining <= 0:
                raise DeadlineExceeded("the deadline passed before the linkage started")
            timeout = min(timeout, remaining * 0.95)
        question = request.WhichOneof("question")
        if question == "check":
            mode = mode_name(request.mode)
            if not request.owner or not request.partner:
                raise InvalidArgument("a check needs an owner city and a partner city")
            plan = build_plan(request.check, owner=request.owner, partner=request.partner,
                              mode=mode)
            purpose = request.purpose or CHECKS[request.check].purpose
        elif question == "plan":
            plan = linkage_pb2.LinkagePlan()
            plan.CopyFrom(request.plan)
            if not plan.linkage_id:
                plan.linkage_id = new_linkage_id()
            purpose = request.purpose
        else:
            raise InvalidArgument("set either check or plan")
        if not purpose:
            raise InvalidArgument("name the purpose of the linkage (a registered purpose)")
        outcome = run_linkage(coordinator, plan, purpose=purpose, timeout=timeout)
        response = federation_pb2.FederatedMatchResponse(
            outcomes=[outcome_to_proto(o) for o in outcome.outcomes], plan=plan)
        if outcome.result is not None:
            response.result.CopyFrom(outcome.result)
        return response


@dataclass
class RunningGateway:
    server: grpc.Server
    servicer: FederationServicer
    trust: TrustState
    health: CityHealth
    identity: Identity
    port: int
    city_timeout: float
    # The region folder whose manifest.json it takes when a newer one is written there.
    region: RegionDirectory | None = None
    manifest_watcher: ManifestWatcher | None = None
    metrics: MetricsEndpoint | None = None
    _reloading: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def coordinator(self) -> Coordinator:
        return self.servicer.coordinator

    def reload_manifest(self) -> Manifest:
        """Take the region folder's manifest if start-up would: signed by the pinned root, for
        this region, valid now, not older than the held one, keeping every key the held one
        lists, and listing this gateway's member with its key. Raises (ManifestRejected,
        ConfigError) otherwise: the held one stays. Returns the manifest in force."""
        if self.region is None:
            raise ConfigError("this gateway was started without its region folder")
        with self._reloading:
            held = self.trust.manifest
            manifest = load_manifest(self.region.manifest, self.region.root_key(), held=held)
            if manifest.version == held.version:
                return held
            check_listed(manifest, self.identity.member_id, self.identity.kid)
            coordinator = Coordinator(manifest, self.identity, city_timeout=self.city_timeout)
            self.health.follow(city_channels(coordinator))
            self.trust.replace(manifest)
            self.servicer.use(coordinator)
        log.info("%s: manifest version %d now in force (was %d): %d members",
                 self.region.manifest, manifest.version, held.version, len(manifest.members))
        return manifest

    def stop(self, grace: float | None = 2.0) -> None:
        if self.metrics is not None:
            self.metrics.stop()
        if self.manifest_watcher is not None:
            self.manifest_watcher.stop()
        self.health.close()
        self.server.stop(grace).wait()
        self.coordinator.close()


def city_channels(coordinator: Coordinator) -> dict[str, grpc.Channel]:
    return {member.id: coordinator.channel(member) for member in coordinator.region.cities}


def gateway_guard(trust: TrustState, serves: frozenset[str]) -> Guard:
    identify = PeerIdentifier(trust)

    def authenticate(method, requirement, request, context):
        peer = identify(context)
        if method.startswith(f"/{FEDERATION_SERVICE}/") and peer.member.id not in serves:
            raise CallerNotServed(f"this gateway does not serve {peer.member.id}")
        return peer

    return Guard(METHOD_POLICY, authenticate)


def start_gateway(manifest: Manifest, identity: Identity, listen: str = "127.0.0.1:7400", *,
                  serves: frozenset[str] | None = None, city_timeout: float = 10.0,
                  max_workers: int = 16,
                  metrics_listen: str = "", region: RegionDirectory | None = None,
                  manifest_watch_seconds: float = 1.0) -> RunningGateway:
    """Serve FederationService as `identity`'s member, to the members in `serves` (default:
    that member only). With `region`, the folder `manifest` was read from, take a newer
    manifest written there (looking every `manifest_watch_seconds`; 0: only when asked)."""
    coordinator = Coordinator(manifest, identity, city_timeout=city_timeout)
    serves = serves or frozenset({identity.member_id})
    trust = TrustState(manifest)
    metrics = ServerMetrics()
    # The limits refuse an oversized request with a reason the translator logs and counts;
    # gRPC's own bound, far above, would refuse it with neither.
    limits = CallLimits(max_request_bytes=MAX_REQUEST_BYTES, max_calls=4 * max_workers,
                        max_calls_per_caller=4 * max_workers, identify=member_of(trust),
                        server="this gateway")
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="gateway"),
        interceptors=[ErrorTranslator(meter=metrics), limits, gateway_guard(trust, serves)],
        options=[("grpc.max_receive_message_length", grpc_receive_limit(MAX_REQUEST_BYTES)),
                 ("grpc.max_send_message_length", 64 * 1024 * 1024),
                 ("grpc.so_reuseport", 0),
                 *SERVER_KEEPALIVE_OPTIONS],
        maximum_concurrent_rpcs=4 * max_workers,
    )
    servicer = FederationServicer(coordinator)
    federation_pb2_grpc.add_FederationServiceServicer_to_server(servicer, server)
    health = CityHealth(add_health_and_reflection(server, [FEDERATION_SERVICE]),
                        [FEDERATION_SERVICE])
    credentials = grpc.ssl_server_credentials(
        [(identity.tls_private_key_pem, identity.tls_certificate_pem)],
        root_certificates=identity.ca_certificate_pem, require_client_auth=True)
    port = server.add_secure_port(listen, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    server.start()
    health.follow(city_channels(coordinator))
    running = RunningGateway(server, servicer, trust, health, identity, port, city_timeout,
                             region)
    if region is not None:
        running.manifest_watcher = ManifestWatcher(
            region.manifest, running.reload_manifest, interval=manifest_watch_seconds,
            name="gateway-manifest").start()
    running.metrics = serve_metrics(metrics.registry, metrics_listen)
    log.info("gateway of %s for region %s serving on port %d", identity.member_id,
             manifest.region, port)
    return running
