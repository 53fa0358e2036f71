"""Prometheus metrics at a node and a gateway, read over HTTP as Prometheus would: calls by
method, caller and status, latency, the privacy budget left, the audit log's size and the age of
its last checkpoint, rows loaded; off unless a listen address is set, and nothing personal in
them."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from cityfed.v1 import admin_pb2, admin_pb2_grpc, federation_pb2, federation_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from federation.query.sql import parse_query
from federation.services.gateway import start_gateway
from federation.serving.metrics import parse_listen
from node.config import NodeConfig
from tests import regionkit
from tests.regionkit import AUDITOR, OUTSIDER, PURPOSE

CITY = "tianjin"
AGGREGATE = "/cityfed.v1.NodeService/Aggregate"
PRIVATE_SQL = "SELECT sex, count(*) FROM population WHERE name = 'Zhang San' OR sex = 'F' " \
              "GROUP BY sex"


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample, by name and sorted labels."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}, text


@pytest.fixture
def city(tmp_path):
    running = regionkit.start_region(tmp_path, (CITY,), rows=200, seed=3,
                                     policy_text=regionkit.open_policy(level="aggregate"),
                                     metrics_listen="127.0.0.1:0")
    yield running
    running.stop()


def test_a_node_counts_calls_budget_audit_and_loads_on_a_loopback_port(city, tmp_path):
    node = city.nodes[CITY]
    assert node.metrics.host == "127.0.0.1" and node.metrics.port > 0
    assert NodeConfig.__dataclass_fields__["metrics_listen"].default == ""  # off by default

    answer = city.ask(PRIVATE_SQL)
    assert answer.outcomes[0].status.value == "answered"
    with pytest.raises(grpc.RpcError):
        regionkit.aggregate(city, CITY, parse_query(PRIVATE_SQL).plan.SerializeToString(),
                            as_member=OUTSIDER)
    rows = tmp_path / "enrolments.csv"
    rows.write_text("person_id,scheme,status,enrolled_on,monthly_amount,last_paid_on\n" + "".join(
        f"11010119900101{i:04d},pension,active,2010-05-01,4321.50,2026-10-01\n"
        for i in range(25)))
    with grpc.insecure_channel(f"unix:{node.config.admin_socket_path}") as channel:
        admin_pb2_grpc.AdminServiceStub(channel).Ingest(admin_pb2.IngestRequest(
            dataset="social_insurance", path=str(rows), mode=admin_pb2.INGEST_MODE_APPEND))
    node.audit.checkpoint()

    samples, text = scrape(node.metrics.url)

    def value(name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))))

    assert value("cityfed_requests_total", method=AGGREGATE, caller=AUDITOR, status="OK") == 1
    assert value("cityfed_requests_total", method=AGGREGATE, caller=OUTSIDER,
                 status="PERMISSION_DENIED") == 1
    assert value("cityfed_requests_total", method="/cityfed.v1.AdminService/Ingest", caller="",
                 status="OK") == 1
    assert value("cityfed_request_duration_seconds_count", method=AGGREGATE) == 2
    assert value("cityfed_ingest_rows_loaded_total", dataset="social_insurance") == 25
    # The demo policy's defaults: ε 10 a day, 1 a question.
    assert value("cityfed_privacy_budget_epsilon_remaining", caller=AUDITOR,
                 purpose=PURPOSE) == pytest.approx(9.0)
    assert value("cityfed_privacy_budget_delta_remaining", caller=AUDITOR,
                 purpose=PURPOSE) == pytest.approx(1e-6 - 1e-9)
    assert value("cityfed_audit_records") == node.audit.size >= 3
    assert value("cityfed_audit_last_checkpoint_size") == node.audit.size
    assert 0 <= value("cityfed_audit_last_checkpoint_age_seconds") < 60
    assert value("cityfed_audit_log_bytes") > 0
    # Member ids, method and dataset names, a registered purpose: nothing a caller wrote.
    assert "Zhang" not in text and "enrolments" not in text


def test_a_gateway_counts_the_calls_it_answers(city):
    manifest, identity = city.trusted.directory.open_as(AUDITOR)
    assert start_gateway.__kwdefaults__["metrics_listen"] == ""
    gateway = start_gateway(manifest, identity, "127.0.0.1:0", metrics_listen="127.0.0.1:0")
    try:
        with regionkit.secure_channel(city, f"127.0.0.1:{gateway.port}", AUDITOR) as channel:
            stub = federation_pb2_grpc.FederationServiceStub(channel)
            stub.FederatedAggregate(federation_pb2.FederatedAggregateRequest(
                sql="SELECT count(*) FROM population", purpose=PURPOSE))
            with pytest.raises(grpc.RpcError):
                stub.FederatedAggregate(federation_pb2.FederatedAggregateRequest(
                    sql="SELECT nonsense", purpose=PURPOSE))
        samples, _ = scrape(gateway.metrics.url)
    finally:
        gateway.stop(grace=None)
    method = "/cityfed.v1.FederationService/FederatedAggregate"
    assert samples[("cityfed_requests_total", (("caller", AUDITOR), ("method", method),
                                               ("status", "OK")))] == 1
    assert samples[("cityfed_requests_total", (("caller", AUDITOR), ("method", method),
                                               ("status", "INVALID_ARGUMENT")))] == 1
    assert samples[("cityfed_request_duration_seconds_count", (("method", method),))] == 2


@pytest.mark.parametrize("listen", ["127.0.0.1", "localhost:http", "127.0.0.1:70000", ":"])
def test_a_bad_metrics_address_is_refused(listen):
    from federation.errors import ConfigError

    with pytest.raises(ConfigError, match="metrics_listen must be HOST:PORT"):
        parse_listen(listen)


def test_metrics_can_be_turned_off_and_served_on_ipv6_loopback():
    assert parse_listen("[::1]:9464") == ("::1", 9464)
    from federation.serving.metrics import ServerMetrics, serve_metrics

    assert serve_metrics(ServerMetrics().registry, "") is None
