"""The federation gateway: `FederationService` over gRPC, on the same coordinator as the CLI."""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass

import grpc
from cityfed.v1 import federation_pb2, federation_pb2_grpc, query_pb2

from federation.coordinator import CityStatus, Coordinator, FederatedAnswer
from federation.errors import DeadlineExceeded, InvalidArgument
from federation.grpc_errors import ErrorTranslator
from federation.health import add_health_and_reflection
from federation.members import Region
from federation.values import to_value

log = logging.getLogger(__name__)

FEDERATION_SERVICE = federation_pb2.DESCRIPTOR.services_by_name["FederationService"].full_name
_CITY_STATUS = {s: federation_pb2.CityStatus.Value(f"CITY_STATUS_{s.name}") for s in CityStatus}


def answer_to_proto(answer: FederatedAnswer) -> federation_pb2.FederatedAggregateResponse:
    return federation_pb2.FederatedAggregateResponse(
        column_names=answer.table.column_names,
        rows=[query_pb2.Row(values=[to_value(v) for v in row]) for row in answer.table.rows],
        outcomes=[
            federation_pb2.CityOutcome(city=o.city, status=_CITY_STATUS[o.status], code=o.code,
                                       detail=o.detail, groups=o.groups, elapsed_ms=o.elapsed_ms)
            for o in answer.outcomes
        ],
        complete=answer.complete,
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
        options = {"cities": tuple(request.cities), "require_all": request.require_all,
                   "timeout": timeout}
        question = request.WhichOneof("question")
        if question == "sql":
            answer = self.coordinator.ask_sql(request.sql, **options)
        elif question == "query":
            answer = self.coordinator.ask(request.query, **options)
        else:
            raise InvalidArgument("set either sql or query")
        return answer_to_proto(answer)


@dataclass
class RunningGateway:
    server: grpc.Server
    coordinator: Coordinator
    port: int

    def stop(self, grace: float | None = 2.0) -> None:
        self.server.stop(grace).wait()
        self.coordinator.close()


def start_gateway(region: Region, listen: str = "127.0.0.1:7400", *,
                  city_timeout: float = 10.0, max_workers: int = 16) -> RunningGateway:
    coordinator = Coordinator(region, city_timeout=city_timeout)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="gateway"),
        interceptors=[ErrorTranslator()],
        options=[("grpc.max_receive_message_length", 1024 * 1024),
                 ("grpc.max_send_message_length", 64 * 1024 * 1024),
                 ("grpc.so_reuseport", 0)],
        maximum_concurrent_rpcs=4 * max_workers,
    )
    federation_pb2_grpc.add_FederationServiceServicer_to_server(
        FederationServicer(coordinator), server)
    add_health_and_reflection(server, [FEDERATION_SERVICE])
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    server.start()
    log.info("gateway for region %s serving on port %d", region.name, port)
    return RunningGateway(server, coordinator, port)
