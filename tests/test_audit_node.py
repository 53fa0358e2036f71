"""Audit at a running node: every request is recorded before its answer leaves, refusals too;
nothing personal is written; the log failing means no data; receipts point at their records;
a node killed under load keeps a log that verifies with every answered request in it."""

from __future__ import annotations

import json
import os
import threading
import time

import grpc
import pytest

from federation.coordination.coordinator import CityStatus, Coordinator
from federation.query.sql import parse_query
from federation.synthetic import RegionScale
from federation.synthetic.local_region import (
    AUTHORITY,
    DEMO_POLICY,
    start_local_region,
    write_region,
)
from federation.trust.keys import public_key_from_text
from federation.trust.receipts import sha256_hex
from node.audit import read_records, verify_log
from tests import regionkit
from tests.regionkit import AUDITOR, OUTSIDER

CITY = "tianjin"
SQL = "SELECT sex, count(*) FROM population GROUP BY sex"


@pytest.fixture
def city(tmp_path):
    running = regionkit.start_region(tmp_path, (CITY,), rows=200, seed=6)
    yield running
    running.stop()


def records(city) -> list[dict]:
    return list(read_records(city.nodes[CITY].config.state_path / "audit"))


def test_a_granted_request_is_recorded_and_its_receipt_points_at_the_record(city):
    answer = city.ask(SQL)
    (outcome,) = answer.outcomes
    record = records(city)[outcome.receipt.audit_index]
    assert record["decision"] == "granted" and record["status"] == "OK"
    assert (record["caller"], record["purpose"], record["method"]) == (
        AUDITOR, regionkit.PURPOSE, "/cityfed.v1.NodeService/Aggregate")
    assert record["plan_sha256"] == sha256_hex(parse_query(SQL).plan.SerializeToString())
    assert record["jti"] == outcome.receipt.jti
    assert record["response_sha256"] == outcome.receipt.response_sha256
    assert record["groups_returned"] == 2


def test_a_refused_request_is_recorded(city):
    with pytest.raises(grpc.RpcError):
        regionkit.aggregate(city, CITY, parse_query(SQL).plan.SerializeToString(),
                            as_member=OUTSIDER)
    last = records(city)[-1]
    assert (last["caller"], last["decision"], last["status"]) == (
        OUTSIDER, "refused", "PERMISSION_DENIED")
    assert last["reason"].startswith("POLICY_DENIED")


def test_a_refusal_for_a_bad_token_is_recorded(city):
    stub = regionkit.node_stub(city, CITY)
    from cityfed.v1 import node_pb2

    with pytest.raises(grpc.RpcError) as refused:
        stub.Aggregate(node_pb2.AggregateRequest(plan=b""),
                       metadata=(("authorization", "Bearer not-a-token"),))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    last = records(city)[-1]
    assert (last["caller"], last["decision"], last["status"], last["jti"]) == (
        AUDITOR, "refused", "UNAUTHENTICATED", None)


def test_no_personal_data_and_no_result_values_in_the_log(city):
    city.ask("SELECT count(*) FROM population WHERE name = 'Zhang San' OR sex = 'F'")
    city.ask("SELECT sum(fare) FROM transit_trips")
    log = (city.nodes[CITY].config.state_path / "audit" / "audit.log").read_text()
    assert "Zhang" not in log
    central_sum = str(city.central.execute("SELECT sum(fare) FROM transit_trips").fetchone()[0])
    assert central_sum not in log


def test_if_the_record_cannot_be_written_the_caller_gets_unavailable_and_no_data(city):
    """The log's disk is full: every write to /dev/full fails with ENOSPC."""
    audit = city.nodes[CITY].audit
    log_fd, audit._fd = audit._fd, os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(grpc.RpcError) as failed:
            regionkit.aggregate(city, CITY, parse_query(SQL).plan.SerializeToString())
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert failed.value.trailing_metadata() is None or not any(
            k == "cityfed-receipt" for k, _ in failed.value.trailing_metadata())
    finally:
        os.close(audit._fd)
        audit._fd = log_fd


def test_an_answer_whose_receipt_does_not_match_is_not_used(city, monkeypatch):
    """As if the response had been altered on its way: the receipt no longer covers it."""
    import federation.coordination.coordinator as coordinator_module

    real = coordinator_module.verify_receipt

    def tampered_response(receipt, *, response_bytes, **kwargs):
        real(receipt, response_bytes=response_bytes + b"\x00", **kwargs)

    monkeypatch.setattr(coordinator_module, "verify_receipt", tampered_response)
    answer = city.ask(SQL)
    (outcome,) = answer.outcomes
    assert outcome.status is CityStatus.FAILED and outcome.code == "DATA_LOSS"
    assert "another response" in outcome.detail and answer.table.rows == []


def test_a_node_killed_under_load_keeps_a_log_that_verifies_and_holds_every_answer(tmp_path):
    # A budget for hundreds of private answers: the demo policy's runs out after ten.
    policy = DEMO_POLICY.replace("epsilon_per_period = 10.0", "epsilon_per_period = 10000.0") \
        .replace("delta_per_period = 1e-6", "delta_per_period = 1e-3")
    trusted = write_region(tmp_path, scale=RegionScale(people_per_city=500, trips_per_city=2_000,
                                                       visits_per_city=500),
                           cities=("beijing", "tianjin"), policy=policy)
    answered, stop = [], threading.Event()
    with start_local_region(tmp_path, ("tianjin",)) as running:
        manifest, identity = trusted.directory.open_as(AUTHORITY)

        def ask_until_killed():
            with Coordinator(manifest, identity) as coordinator:
                while not stop.is_set():
                    answer = coordinator.ask_sql(
                        "SELECT mode, count(*) FROM transit_trips GROUP BY mode",
                        purpose="transit-planning", cities=("tianjin",), timeout=2)
                    for outcome in answer.outcomes:
                        if outcome.status is CityStatus.ANSWERED:
                            answered.append(outcome.receipt)

        askers = [threading.Thread(target=ask_until_killed) for _ in range(4)]
        for asker in askers:
            asker.start()
        deadline = time.monotonic() + 30
        while len(answered) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        running.kill("tianjin")
        stop.set()
        for asker in askers:
            asker.join()
    assert len(answered) >= 200

    audit_dir = tmp_path / "tianjin.state" / "audit"
    root = public_key_from_text((tmp_path / "root" / "root.pub").read_text().strip())
    from federation.trust.manifest import load_manifest

    manifest = load_manifest(tmp_path / "manifest.json", root)
    report = verify_log(audit_dir, manifest, city="tianjin")
    assert report.ok, report.problem
    logged = list(read_records(audit_dir))
    for receipt in answered:
        record = logged[receipt.audit_index]
        assert (record["jti"], record["response_sha256"]) == (receipt.jti,
                                                             receipt.response_sha256)
    with start_local_region(tmp_path, ("tianjin",)):
        pass  # the node reopens its log after the crash
    assert verify_log(audit_dir, manifest, city="tianjin").ok
    assert json.loads((audit_dir / "checkpoints.log").read_text().splitlines()[-1])["size"] >= \
        len(logged)


def test_every_admin_call_granted_or_refused_is_recorded_and_the_log_still_verifies(city,
                                                                                   tmp_path):
    from cityfed.v1 import admin_pb2, admin_pb2_grpc

    from cli.main import main

    csv = tmp_path / "Zhang San's pension.csv"
    csv.write_text("person_id,scheme,status,enrolled_on,monthly_amount,last_paid_on\n"
                   "110101199001010007,pension,active,2010-05-01,4321.50,2026-10-01\n")
    missing = tmp_path / "Li Si.csv"
    node = city.nodes[CITY]
    with grpc.insecure_channel(f"unix:{node.config.admin_socket_path}") as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        loaded = admin.Ingest(admin_pb2.IngestRequest(
            dataset="social_insurance", path=str(csv), mode=admin_pb2.INGEST_MODE_APPEND))
        with pytest.raises(grpc.RpcError) as refused:
            admin.Ingest(admin_pb2.IngestRequest(
                dataset="social_insurance", path=str(missing),
                mode=admin_pb2.INGEST_MODE_REPLACE))
    assert loaded.rows_loaded == 1 and refused.value.code() == grpc.StatusCode.NOT_FOUND

    granted, refusal = records(city)[-2:]
    method = "/cityfed.v1.AdminService/Ingest"
    assert {key: granted[key] for key in ("method", "decision", "dataset", "ingest_mode",
                                          "rows_loaded", "path_sha256", "caller")} == {
        "method": method, "decision": "granted", "dataset": "social_insurance",
        "ingest_mode": "append", "rows_loaded": 1,
        "path_sha256": sha256_hex(str(csv).encode()), "caller": None}
    assert (refusal["method"], refusal["decision"], refusal["status"], refusal["reason"],
            refusal["ingest_mode"], refusal["rows_loaded"]) == (
        method, "refused", "NOT_FOUND", "FILE_NOT_FOUND", "replace", 0)
    # Neither the file's name nor anything in it is in the log.
    log = (node.config.state_path / "audit" / "audit.log").read_text()
    assert not any(text in log for text in ("Zhang", "Li Si", "4321", "110101199001010007"))

    node.audit.close()  # a checkpoint over the admin records, then the verifier over all
    directory = city.trusted.directory.path
    assert main(["audit", "verify", str(node.config.state_path / "audit"),
                 "--manifest", str(directory / "manifest.json"),
                 "--root-public-key", str(directory / "root" / "root.pub")]) == 0


def test_a_refused_stream_is_recorded(city, monkeypatch):
    """Streams pass through the error translator too, which records their refusals with the
    caller the connection's certificate names."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from node.guard import METHOD_POLICY

    monkeypatch.delitem(METHOD_POLICY, "/grpc.health.v1.Health/Watch")
    health = health_pb2_grpc.HealthStub(
        regionkit.secure_channel(city, city.trusted.endpoint(CITY), CITY))
    with pytest.raises(grpc.RpcError) as refused:
        next(health.Watch(health_pb2.HealthCheckRequest(), timeout=5))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    last = records(city)[-1]
    assert (last["method"], last["caller"], last["decision"]) == (
        "/grpc.health.v1.Health/Watch", regionkit.AUDITOR, "refused")
    assert last["reason"].startswith("METHOD_NOT_ALLOWED")
