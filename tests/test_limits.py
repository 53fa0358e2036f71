"""What a node takes on at once, one test per rule: an oversized or unparsable request, a node
over its concurrency limit and a caller over its own share are refused with RESOURCE_EXHAUSTED
(or INVALID_ARGUMENT) and a reason, each refusal is an audit record naming the caller, and
while one member holds its share the others are still answered.

Slow queries are made deterministic: the store's next queries wait on an event the test sets."""

from __future__ import annotations

import contextlib
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from cityfed.v1 import node_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from federation.query.plan import (
    MAX_AGGREGATES,
    MAX_EXPRESSION_DEPTH,
    MAX_EXPRESSION_NODES,
    MAX_GROUP_KEYS,
    MAX_PLAN_BYTES,
)
from federation.query.sql import MAX_SQL_CHARS, parse_query
from federation.services.gateway import MAX_REQUEST_BYTES as GATEWAY_MAX_REQUEST_BYTES
from federation.serving.grpc_errors import error_reason
from federation.serving.limits import grpc_receive_limit
from node.audit import read_records
from node.config import NodeConfig
from tests import regionkit
from tests.regionkit import AUDITOR, OUTSIDER

CITY = "tianjin"
PLAN = parse_query("SELECT sex, count(*) FROM population GROUP BY sex").plan.SerializeToString()
MAX_REQUEST_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    running = regionkit.start_region(
        tmp_path_factory.mktemp("limits"), (CITY,), rows=200, seed=8,
        policy_text=regionkit.open_policy(AUDITOR) + regionkit.open_policy(OUTSIDER),
        max_workers=4, max_concurrent_rpcs=2, max_concurrent_per_caller=1,
        max_request_bytes=MAX_REQUEST_BYTES)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def records(city) -> list[dict]:
    return list(read_records(city.nodes[CITY].config.state_path / "audit"))


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as failure:
        call()
    return failure.value


@contextlib.contextmanager
def held_queries(city, pool, *members: str):
    """Each member starts one query that stays inside the store (holding its call's place)
    until the block ends; yields once every one of them is in the store."""
    store = city.nodes[CITY].store
    real, release = store.aggregate, threading.Event()
    waiting, lock, entered = [len(members)], threading.Lock(), threading.Semaphore(0)

    def held(*args, **kwargs):
        with lock:
            hold, waiting[0] = waiting[0] > 0, waiting[0] - 1
        if hold:
            entered.release()
            release.wait(10)
        return real(*args, **kwargs)

    store.aggregate = held
    calls = [pool.submit(regionkit.aggregate, city, CITY, PLAN, as_member=member, timeout=10)
             for member in members]
    try:
        for _ in members:
            assert entered.acquire(timeout=5), "a held query never reached the store"
        yield
    finally:
        release.set()
        del store.aggregate
        for call in calls:
            assert call.result(timeout=10).groups  # held, then answered in full


def test_an_oversized_request_is_refused_with_a_reason_and_recorded(city):
    error = refused(lambda: regionkit.aggregate(city, CITY, b"x" * (MAX_REQUEST_BYTES + 1)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(error) == "TOO_LARGE" and str(MAX_REQUEST_BYTES) in error.details()
    last = records(city)[-1]
    assert (last["caller"], last["decision"], last["status"], last["method"]) == (
        AUDITOR, "refused", "RESOURCE_EXHAUSTED", "/cityfed.v1.NodeService/Aggregate")
    assert last["reason"].startswith("TOO_LARGE")


def test_a_request_over_grpcs_outer_bound_is_refused_by_grpc_unrecorded(city):
    """The documented bound: beyond it gRPC refuses before the node sees the call."""
    before = len(records(city))
    outer = grpc_receive_limit(MAX_REQUEST_BYTES)
    error = refused(lambda: regionkit.aggregate(city, CITY, b"x" * (outer + 1)))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and error_reason(error) == ""
    assert len(records(city)) == before


def test_a_request_that_does_not_parse_is_refused_and_recorded(city):
    channel = regionkit.secure_channel(city, city.trusted.endpoint(CITY), CITY)
    raw = channel.unary_unary("/cityfed.v1.NodeService/GetNodeInfo")
    error = refused(lambda: raw(b"\xff\xff\xff", timeout=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    last = records(city)[-1]
    assert (last["caller"], last["decision"], last["reason"]) == (
        AUDITOR, "refused", "INVALID_ARGUMENT")


def test_a_caller_over_its_share_is_refused_and_recorded_while_another_member_is_answered(
        city, pool):
    with held_queries(city, pool, AUDITOR):
        error = refused(lambda: regionkit.aggregate(city, CITY, PLAN, timeout=5))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(error) == "TOO_MANY_CALLS"
        refusal = records(city)[-1]
        # The other member is served at once, its query run in full, while the first waits.
        answer = regionkit.aggregate(city, CITY, PLAN, as_member=OUTSIDER, timeout=5)
        assert answer.groups
    assert (refusal["caller"], refusal["decision"], refusal["status"]) == (
        AUDITOR, "refused", "RESOURCE_EXHAUSTED")
    assert refusal["reason"].startswith("TOO_MANY_CALLS")
    assert refusal["peer_fingerprint"]


def test_a_stream_over_the_callers_share_is_refused_and_recorded(city, pool):
    health = health_pb2_grpc.HealthStub(
        regionkit.secure_channel(city, city.trusted.endpoint(CITY), CITY))
    with held_queries(city, pool, AUDITOR):
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=5)
        error = refused(lambda: next(watch))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(error) == "TOO_MANY_CALLS"
    refusal = next(r for r in reversed(records(city))
                   if r["method"] == "/grpc.health.v1.Health/Watch")
    assert (refusal["caller"], refusal["decision"]) == (AUDITOR, "refused")


def test_a_node_over_its_concurrency_limit_refuses_and_records(city, pool):
    with held_queries(city, pool, AUDITOR, OUTSIDER):
        stub = regionkit.node_stub(city, CITY, as_member=CITY)
        error = refused(lambda: stub.GetNodeInfo(node_pb2.GetNodeInfoRequest(), timeout=5))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(error) == "OVERLOADED"
        refusal = records(city)[-1]
    assert (refusal["caller"], refusal["decision"]) == (CITY, "refused")
    assert refusal["reason"].startswith("OVERLOADED")
    # Every place is given back once the calls end.
    assert stub.GetNodeInfo(node_pb2.GetNodeInfoRequest(), timeout=5).city == CITY


ROOT = Path(__file__).resolve().parent.parent


def test_every_limit_is_documented_in_the_protos_and_the_readme():
    protos = {name: (ROOT / f"proto/cityfed/v1/{name}.proto").read_text()
              for name in ("federation", "query", "node")}
    readme = (ROOT / "README.md").read_text()
    where = {
        MAX_SQL_CHARS: ("federation",),
        MAX_EXPRESSION_NODES: ("federation", "query"),
        MAX_PLAN_BYTES: ("federation", "query"),
        MAX_EXPRESSION_DEPTH: ("query",),
        MAX_GROUP_KEYS: ("query",),
        MAX_AGGREGATES: ("query",),
        GATEWAY_MAX_REQUEST_BYTES: ("federation",),
        NodeConfig.max_result_groups: ("node",),
    }
    for limit, files in where.items():
        assert f"{limit:,}" in readme, limit
        for name in files:
            assert f"{limit:,}" in protos[name], (limit, name)
    assert NodeConfig.max_request_bytes == GATEWAY_MAX_REQUEST_BYTES  # "1 MiB" in both


def test_every_error_reason_is_listed_in_docs_errors():
    listed = (ROOT / "docs/errors.md").read_text().split("# Every reason", 1)[1]
    reasons = {match for folder in ("federation", "node")
               for path in (ROOT / folder).rglob("*.py")
               for match in re.findall(r'^\s+reason = "([A-Z_]+)"$', path.read_text(), re.M)}
    assert len(reasons) > 20
    assert not {reason for reason in reasons if f"`{reason}`" not in listed}
