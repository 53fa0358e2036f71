"""Federation over real nodes: missing cities are reported, never silently left out; the gateway
gives the same answers over gRPC; bad questions get the right status."""

from __future__ import annotations

import logging
import time
from concurrent import futures

import grpc
import pytest
from cityfed.v1 import federation_pb2, federation_pb2_grpc, node_pb2_grpc, query_pb2

from federation.coordination.coordinator import CityStatus
from federation.errors import IncompleteAnswer, InvalidArgument, InvalidQuery
from federation.query.sql import parse_query
from federation.query.values import from_value
from federation.services.gateway import start_gateway
from federation.serving.grpc_errors import error_reason
from federation.trust.identity import channel_options
from tests.regionkit import (
    AUDITOR,
    OUTSIDER,
    PURPOSE,
    _credentials,
    assert_same_rows,
    oracle_over,
    reflected_file,
    reflected_services,
    secure_channel,
    start_region,
)

SQL = "SELECT mode, count(*), sum(fare), avg(fare) FROM transit_trips GROUP BY mode"


class SlowNode(node_pb2_grpc.NodeServiceServicer):
    """A real gRPC server for a city that takes too long to answer."""

    def Aggregate(self, request, context):
        time.sleep(3)
        context.abort(grpc.StatusCode.INTERNAL, "answered too late")


@pytest.fixture
def small_region(tmp_path):
    """Three real nodes, and Baoding in the manifest served by a slow real server with
    Baoding's own certificate."""
    running = start_region(tmp_path, ("beijing", "tianjin", "langfang"), rows=500, seed=3,
                           extra_cities=("baoding",))
    member = running.trusted.directory.member("baoding")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    node_pb2_grpc.add_NodeServiceServicer_to_server(SlowNode(), server)
    server.add_secure_port(running.trusted.endpoint("baoding"), grpc.ssl_server_credentials(
        [((member / "tls.key").read_bytes(), (member / "tls.pem").read_bytes())]))
    server.start()
    yield running
    server.stop(grace=None)
    running.stop()


FAST = ("beijing", "tianjin", "langfang")


def test_a_city_that_is_down_is_reported_unreachable_and_the_rest_still_answer(small_region):
    small_region.nodes["langfang"].stop(grace=None)
    small_region.stopped.add("langfang")
    answer = small_region.ask(SQL, cities=FAST)
    status = {o.city: o.status for o in answer.outcomes}
    assert status == {"beijing": CityStatus.ANSWERED, "tianjin": CityStatus.ANSWERED,
                      "langfang": CityStatus.UNREACHABLE}
    assert not answer.complete
    survivors = oracle_over(small_region.central, ("beijing", "tianjin"), SQL)
    assert_same_rows(answer.table.rows, survivors, ordered=False)


def test_require_all_turns_a_missing_city_into_a_failure(small_region):
    small_region.stop_node("tianjin")
    with pytest.raises(IncompleteAnswer, match="tianjin unreachable"):
        small_region.ask(SQL, require_all=True, cities=FAST)


def test_a_slow_city_times_out_and_the_answer_still_comes_within_the_deadline(small_region):
    started = time.perf_counter()
    answer = small_region.ask(SQL, timeout=0.5)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.5
    slow = next(o for o in answer.outcomes if o.city == "baoding")
    assert slow.status is CityStatus.TIMED_OUT and slow.code == "DEADLINE_EXCEEDED"
    assert_same_rows(answer.table.rows, small_region.central.execute(SQL).fetchall(),
                     ordered=False)


def test_asking_only_some_cities(region):
    answer = region.ask("SELECT count(*) FROM population", cities=("tianjin",))
    assert [o.city for o in answer.outcomes] == ["tianjin"]
    assert answer.table.rows == [(3_000,)]


def test_an_unknown_city_is_an_invalid_argument(region):
    with pytest.raises(InvalidArgument, match="unknown city 'atlantis'"):
        region.ask(SQL, cities=("atlantis",))


def test_a_plan_every_city_refuses_is_an_invalid_query_not_an_empty_answer(region):
    with pytest.raises(InvalidQuery, match="refused the plan"):
        region.ask("SELECT sum(station) FROM transit_trips")


def start_auditor_gateway(region):
    manifest, identity = _credentials(region.directory, AUDITOR)
    return start_gateway(manifest, identity, "127.0.0.1:0")


@pytest.fixture(scope="module")
def gateway(region):
    running = start_auditor_gateway(region)
    with secure_channel(region, f"127.0.0.1:{running.port}", AUDITOR) as channel:
        yield federation_pb2_grpc.FederationServiceStub(channel)
    running.stop(grace=None)


def rows_of(response) -> list[tuple]:
    return [tuple(from_value(v) for v in row.values) for row in response.rows]


def test_the_gateway_answers_sql_like_the_coordinator(region, gateway):
    response = gateway.FederatedAggregate(
        federation_pb2.FederatedAggregateRequest(sql=SQL, purpose=PURPOSE))
    assert response.complete
    assert list(response.column_names) == ["mode", "count(*)", "sum(fare)", "avg(fare)"]
    assert [o.status for o in response.outcomes] == [federation_pb2.CITY_STATUS_ANSWERED] * 3
    assert_same_rows(rows_of(response), region.central.execute(SQL).fetchall(), ordered=False)


def test_the_gateway_answers_a_structured_query(region, gateway):
    query = parse_query(SQL)
    response = gateway.FederatedAggregate(
        federation_pb2.FederatedAggregateRequest(query=query, purpose=PURPOSE))
    assert_same_rows(rows_of(response), region.central.execute(SQL).fetchall(), ordered=False)


@pytest.mark.parametrize(("request_", "code", "reason"), [
    (federation_pb2.FederatedAggregateRequest(sql="SELECT * FROM population", purpose=PURPOSE),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_QUERY"),
    (federation_pb2.FederatedAggregateRequest(purpose=PURPOSE),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (federation_pb2.FederatedAggregateRequest(sql=SQL),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (federation_pb2.FederatedAggregateRequest(sql=SQL, purpose="curiosity"),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (federation_pb2.FederatedAggregateRequest(sql=SQL, cities=["atlantis"], purpose=PURPOSE),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (federation_pb2.FederatedAggregateRequest(
        query=query_pb2.FederatedQuery(plan=query_pb2.AggregatePlan(dataset="population")),
        purpose=PURPOSE),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_QUERY"),
    (federation_pb2.FederatedAggregateRequest(sql="SELECT count(*) FROM population -- " +
                                              "x" * 70_000, purpose=PURPOSE),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_LARGE"),
])
def test_the_gateway_refuses_bad_questions_with_the_right_status(gateway, request_, code, reason):
    with pytest.raises(grpc.RpcError) as refused:
        gateway.FederatedAggregate(request_)
    assert refused.value.code() == code
    assert error_reason(refused.value) == reason


def test_the_gateway_serves_reflection_v1(region):
    running = start_auditor_gateway(region)
    try:
        with secure_channel(region, f"127.0.0.1:{running.port}", AUDITOR) as channel:
            assert {"cityfed.v1.FederationService", "grpc.reflection.v1.ServerReflection"} <= \
                reflected_services(channel)
            described = reflected_file(channel, "cityfed.v1.FederationService")
            assert described.name == "cityfed/v1/federation.proto"
    finally:
        running.stop(grace=None)


def test_the_gateway_refuses_an_oversized_message_with_a_reason_and_logs_it(region, caplog):
    running = start_auditor_gateway(region)
    manifest, identity = _credentials(region.directory, AUDITOR)
    options = [(name, value) for name, value in channel_options(AUDITOR, manifest.region)
               if name != "grpc.max_send_message_length"]  # our own client sends at most 1 MiB
    channel = grpc.secure_channel(f"127.0.0.1:{running.port}", identity.channel_credentials(),
                                  options=[*options, ("grpc.max_send_message_length", 8 << 20)])
    try:
        with caplog.at_level(logging.INFO), pytest.raises(grpc.RpcError) as refused:
            federation_pb2_grpc.FederationServiceStub(channel).FederatedAggregate(
                federation_pb2.FederatedAggregateRequest(sql="x" * 2_000_000))
    finally:
        channel.close()
        running.stop(grace=None)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(refused.value) == "TOO_LARGE"
    assert "accepts at most 1048576" in refused.value.details()
    assert "FederatedAggregate refused: TOO_LARGE" in caplog.text


def test_the_gateway_serves_only_the_members_it_is_told_to(region):
    running = start_auditor_gateway(region)
    try:
        with secure_channel(region, f"127.0.0.1:{running.port}", AUDITOR,
                            as_member=OUTSIDER) as channel:
            stub = federation_pb2_grpc.FederationServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.FederatedAggregate(
                    federation_pb2.FederatedAggregateRequest(sql=SQL, purpose=PURPOSE))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(refused.value) == "CALLER_NOT_SERVED"
        assert "does not serve outsider" in refused.value.details()
    finally:
        running.stop(grace=None)


def test_the_gateway_reports_an_incomplete_answer_as_failed_precondition(small_region):
    running = start_auditor_gateway(small_region)
    try:
        with secure_channel(small_region, f"127.0.0.1:{running.port}", AUDITOR) as channel:
            stub = federation_pb2_grpc.FederationServiceStub(channel)
            request = federation_pb2.FederatedAggregateRequest(sql=SQL, city_timeout_ms=300,
                                                               purpose=PURPOSE)
            partial = stub.FederatedAggregate(request)
            assert not partial.complete
            assert federation_pb2.CITY_STATUS_TIMED_OUT in [o.status for o in partial.outcomes]
            request.require_all = True
            with pytest.raises(grpc.RpcError) as refused:
                stub.FederatedAggregate(request)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "baoding timed out" in refused.value.details()
    finally:
        running.stop(grace=None)
