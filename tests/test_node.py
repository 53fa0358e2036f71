"""One node over real gRPC and a real DuckDB file: catalog, statuses, limits, deadlines, sandbox."""

from __future__ import annotations

import logging
import threading
import time

import duckdb
import grpc
import pytest
from cityfed.v1 import node_pb2, query_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from federation.errors import Cancelled, DeadlineExceeded
from federation.query.datasets import DATASETS
from federation.query.sql import parse_query
from federation.serving.grpc_errors import error_reason
from node.compile import compile_plan
from node.stores.duckdb import DuckDBStore
from tests import regionkit
from tests.regionkit import build_city_store, start_region


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    running = start_region(tmp_path_factory.mktemp("node"), ("tianjin",), rows=2_000, seed=5,
                           max_result_groups=500, max_request_bytes=64 * 1024)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def node(city):
    return city.nodes["tianjin"]


@pytest.fixture(scope="module")
def stub(city):
    return regionkit.node_stub(city, "tianjin")


@pytest.fixture
def send(city, stub):
    """Aggregate as the auditor, with a fresh token over the exact plan bytes."""
    def call(plan_bytes: bytes, **options) -> node_pb2.AggregateResponse:
        return regionkit.aggregate(city, "tianjin", plan_bytes, stub=stub, **options)
    return call


@pytest.fixture
def aggregate(send):
    return lambda sql, **options: send(parse_query(sql).plan.SerializeToString(), **options)


def test_node_info_names_the_city(stub):
    info = stub.GetNodeInfo(node_pb2.GetNodeInfoRequest())
    assert (info.city, info.display_name) == ("tianjin", "tianjin")


def test_catalog_lists_every_standard_dataset_with_schema_and_row_count(stub):
    catalog = stub.ListDatasets(node_pb2.ListDatasetsRequest())
    assert [d.name for d in catalog.datasets] == list(DATASETS)
    for dataset in catalog.datasets:
        assert dataset.row_count == 2_000
        assert [c.name for c in dataset.columns] == list(DATASETS[dataset.name].column_names)
        assert all(c.type and c.description and c.sensitivity for c in dataset.columns)


def test_aggregate_returns_partials_never_a_pre_averaged_value(aggregate):
    response = aggregate("SELECT mode, avg(fare) FROM transit_trips GROUP BY mode")
    assert response.city == "tianjin"
    assert len(response.groups) == 3
    for group in response.groups:
        (partial,) = group.aggregates
        assert partial.count > 0 and partial.sum.WhichOneof("kind") == "decimal_value"


def test_a_global_aggregate_over_no_rows_is_one_group(aggregate):
    response = aggregate("SELECT count(*), sum(fare) FROM transit_trips WHERE fare < 0")
    assert len(response.groups) == 1
    assert response.groups[0].aggregates[0].count == 0


@pytest.mark.parametrize(("plan", "says"), [
    (b"\xff\xff not a plan", "not a serialized"),
    (query_pb2.AggregatePlan(dataset="secrets").SerializeToString(), "unknown dataset"),
    (query_pb2.AggregatePlan(  # the node checks types itself: no coordinator sent this
        dataset="population",
        aggregates=[query_pb2.Aggregate(function=query_pb2.AGGREGATE_FUNCTION_SUM,
                                        argument=query_pb2.Expression(column="name"))],
    ).SerializeToString(), "sum(VARCHAR)"),
    (query_pb2.AggregatePlan(
        dataset="population",
        aggregates=[query_pb2.Aggregate(function=query_pb2.AGGREGATE_FUNCTION_SUM)],
    ).SerializeToString(), "needs an argument"),
    (query_pb2.AggregatePlan(
        dataset="population", group_by=[query_pb2.Expression(column="salary")],
    ).SerializeToString(), "unknown column 'salary'"),
])
def test_a_bad_plan_is_invalid_argument_with_a_reason(send, plan, says):
    with pytest.raises(grpc.RpcError) as refused:
        send(plan)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in refused.value.details()
    assert error_reason(refused.value) == "INVALID_QUERY"


def test_a_data_dependent_error_is_invalid_argument(aggregate):
    with pytest.raises(grpc.RpcError) as refused:
        aggregate("SELECT sum(fare // 0) FROM transit_trips")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_an_oversized_request_is_resource_exhausted(send):
    with pytest.raises(grpc.RpcError) as refused:
        send(b"x" * 100_000)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_too_many_groups_is_resource_exhausted(aggregate):
    with pytest.raises(grpc.RpcError) as refused:
        aggregate("SELECT visit_id, count(*) FROM medical_visits GROUP BY visit_id")
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "500 groups" in refused.value.details()


def test_string_values_are_bound_as_values_not_sql(stub, aggregate):
    injected = "x''); DROP TABLE population; --"
    response = aggregate(f"SELECT count(*) FROM population WHERE name = '{injected}'")
    assert response.groups[0].aggregates[0].count == 0
    catalog = stub.ListDatasets(node_pb2.ListDatasetsRequest())
    assert catalog.datasets[0].row_count == 2_000


def test_an_unexpected_failure_is_internal_without_details(aggregate, node, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret detail /var/lib/city.duckdb")

    monkeypatch.setattr(node.store, "aggregate", explode)
    with pytest.raises(grpc.RpcError) as failed:
        aggregate("SELECT count(*) FROM population")
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in failed.value.details()


def test_an_unexpected_failure_is_logged_by_its_class_never_its_text(aggregate, node,
                                                                     monkeypatch, caplog):
    value = "-".join(("Zhang", "San"))  # a row's value, known only at run time

    def explode(*args, **kwargs):
        raise RuntimeError(f"Could not convert string {value!r} to INT32")

    monkeypatch.setattr(node.store, "aggregate", explode)
    with caplog.at_level(logging.INFO), pytest.raises(grpc.RpcError):
        aggregate("SELECT count(*) FROM population")
    assert "RuntimeError" in caplog.text and "explode" in caplog.text  # class and frames
    assert value not in caplog.text


def test_health_and_reflection_are_served(city):
    with regionkit.secure_channel(city, city.trusted.endpoint("tianjin"), "tianjin") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "cityfed.v1.NodeService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        (answer,) = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for s in answer.list_services_response.service}
        assert {"cityfed.v1.NodeService", "grpc.health.v1.Health"} <= names


def test_reflection_v1_is_served_beside_v1alpha(city):
    with regionkit.secure_channel(city, city.trusted.endpoint("tianjin"), "tianjin") as channel:
        assert {"cityfed.v1.NodeService", "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection"} <= regionkit.reflected_services(channel)
        node_file = regionkit.reflected_file(channel, "cityfed.v1.NodeService")
        assert node_file.name == "cityfed/v1/node.proto"
        assert "Aggregate" in {m.name for m in node_file.service[0].method}
        v1 = regionkit.reflected_file(channel, "grpc.reflection.v1.ServerReflection")
        assert (v1.package, v1.service[0].method[0].input_type) == (
            "grpc.reflection.v1", ".grpc.reflection.v1.ServerReflectionRequest")


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    database = tmp_path_factory.mktemp("big") / "big.duckdb"
    build_city_store(database, seed=9, rows=1_500_000)
    store = DuckDBStore(database, threads=1)
    yield store
    store.close()


SLOW = ("SELECT card_id, station, line, count(*), sum(fare), min(tapped_at) FROM transit_trips "
        "GROUP BY card_id, station, line")


def test_a_query_is_interrupted_when_its_deadline_passes(big_store):
    compiled = compile_plan(parse_query(SLOW).plan)
    started = time.perf_counter()
    big_store.aggregate(compiled, timeout=60)
    full = time.perf_counter() - started
    started = time.perf_counter()
    with pytest.raises(DeadlineExceeded):
        big_store.aggregate(compiled, timeout=full / 20)
    assert time.perf_counter() - started < full / 2
    assert big_store.aggregate(compile_plan(parse_query(
        "SELECT count(*) FROM transit_trips").plan), timeout=10)[0][0] == 1_500_000


def test_a_query_is_interrupted_when_the_caller_cancels(big_store):
    compiled = compile_plan(parse_query(SLOW).plan)
    callbacks = []
    threading.Timer(0.02, lambda: callbacks[0]()).start()
    with pytest.raises(Cancelled):
        big_store.aggregate(compiled, timeout=60, on_cancel=lambda cb: callbacks.append(cb) or True)


def test_the_store_cannot_reach_files_or_change_its_settings(big_store):
    cursor = big_store._connection.cursor()
    with pytest.raises(duckdb.PermissionException):
        cursor.execute("SELECT * FROM read_text('/etc/hostname')")
    with pytest.raises(duckdb.InvalidInputException):
        cursor.execute("SET enable_external_access = true")
    with pytest.raises(duckdb.Error):
        cursor.execute("INSTALL httpfs")
