"""The federation gateway: `FederationService` over gRPC, on the same coordinator as the CLI.

A gateway belongs to one member (usually an authority) and asks the cities under that member's
identity, so it serves only the members it is told to serve (by default: its own), over mutual
TLS: serving any member would lend its own access to callers the cities never granted it.

Its health follows its cities (federation.health.CityHealth).
"""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass

import grpc
from cityfed.v1 import federation_pb2, federation_pb2_grpc, linkage_pb2, query_pb2

from federation.coordinator import CityOutcome, CityStatus, Coordinator, FederatedAnswer
from federation.errors import DeadlineExceeded, InvalidArgument, PolicyDenied
from federation.grpc_errors import ErrorTranslator
from federation.guard import HEALTH_AND_REFLECTION, Guard, PeerIdentifier, Requirement, TrustState
from federation.health import CityHealth, add_health_and_reflection
from federation.identity import SERVER_KEEPALIVE_OPTIONS, Identity
from federation.linkage.asker import DEFAULT_LINKAGE_TIMEOUT, run_linkage
from federation.linkage.checks import CHECKS, build_plan
from federation.linkage.plan import mode_name, new_linkage_id
from federation.manifest import Manifest
from federation.metrics import MetricsEndpoint, ServerMetrics, serve_metrics
from federation.values import to_value

log = logging.getLogger(__name__)

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
        epsilon_remaining=o.epsilon_remaining)


def answer_to_proto(answer: FederatedAnswer) -> federation_pb2.FederatedAggregateResponse:
    return federation_pb2.FederatedAggregateResponse(
        column_names=answer.table.column_names,
        rows=[query_pb2.Row(values=[to_value(v) for v in row]) for row in answer.table.rows],
        outcomes=[outcome_to_proto(o) for o in answer.outcomes],
        complete=answer.complete,
        accuracy=[federation_pb2.ColumnAccuracy(noisy=a.noisy, noise_stddev=a.noise_stddev,
                                                half_widths_95=a.half_widths)
                  for a in answer.accuracy],
    )


class FederationServicer(federation_pb2_grpc.FederationServiceServicer):
    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator

    def FederatedAggregate(self, request, context):
        timeout = self.coordinator.city_timeout
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
            answer = self.coordinator.ask_sql(request.sql, **options)
        elif question == "query":
            answer = self.coordinator.ask(request.query, **options)
        else:
            raise InvalidArgument("set either sql or query")
        return answer_to_proto(answer)

    def FederatedMatch(self, request, context):
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
        outcome = run_linkage(self.coordinator, plan, purpose=purpose, timeout=timeout)
        response = federation_pb2.FederatedMatchResponse(
            outcomes=[outcome_to_proto(o) for o in outcome.outcomes], plan=plan)
        if outcome.result is not None:
            response.result.CopyFrom(outcome.result)
        return response


@dataclass
class RunningGateway:
    server: grpc.Server
    coordinator: Coordinator
    port: int
    metrics: MetricsEndpoint | None = None
    health: CityHealth | None = None

    def stop(self, grace: float | None = 2.0) -> None:
        if self.metrics is not None:
            self.metrics.stop()
        if self.health is not None:
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
            raise PolicyDenied(f"this gateway does not serve {peer.member.id}")
        return peer

    return Guard(METHOD_POLICY, authenticate)


def start_gateway(manifest: Manifest, identity: Identity, listen: str = "127.0.0.1:7400", *,
                  serves: frozenset[str] | None = None, city_timeout: float = 10.0,
                  max_workers: int = 16,
                  metrics_listen: str = "") -> RunningGateway:
    """Serve FederationService as `identity`'s member, to the members in `serves` (default:
    that member only)."""
    coordinator = Coordinator(manifest, identity, city_timeout=city_timeout)
    serves = serves or frozenset({identity.member_id})
    metrics = ServerMetrics()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="gateway"),
        interceptors=[ErrorTranslator(meter=metrics),
                      gateway_guard(TrustState(manifest), serves)],
        options=[("grpc.max_receive_message_length", 1024 * 1024),
                 ("grpc.max_send_message_length", 64 * 1024 * 1024),
                 ("grpc.so_reuseport", 0),
                 *SERVER_KEEPALIVE_OPTIONS],
        maximum_concurrent_rpcs=4 * max_workers,
    )
    federation_pb2_grpc.add_FederationServiceServicer_to_server(
        FederationServicer(coordinator), server)
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
    log.info("gateway of %s for region %s serving on port %d", identity.member_id,
             manifest.region, port)
    return RunningGateway(server, coordinator, port,
                          serve_metrics(metrics.registry, metrics_listen), health)
