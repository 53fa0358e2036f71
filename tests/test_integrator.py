"""An integrator in another language: a Node.js client with stubs generated from our protos gets
the same answer, and the same status codes, as a Python client."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
from cityfed.v1 import federation_pb2, federation_pb2_grpc

from cli.main import main
from federation.query.sql import parse_query
from federation.services.gateway import start_gateway
from tests.regionkit import AUDITOR, OUTSIDER, PURPOSE, _credentials, secure_channel

CLIENT = Path(__file__).resolve().parent.parent / "clients/node/federated-query.mjs"
SQL = ("SELECT mode, count(*) AS n, sum(fare) AS total, avg(fare) AS mean, min(tapped_at) AS first"
       " FROM transit_trips GROUP BY mode ORDER BY mode")

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="no Node.js on this machine")


@pytest.fixture(scope="module", autouse=True)
def client_installed():
    assert (CLIENT.parent / "node_modules/@grpc/grpc-js").exists(), \
        "the Node.js client's packages are missing: run make setup"


@pytest.fixture(scope="module")
def gateway_address(region):
    manifest, identity = _credentials(region.directory, AUDITOR)
    running = start_gateway(manifest, identity, "127.0.0.1:0")
    yield f"127.0.0.1:{running.port}"
    running.stop(grace=None)


def ask_from_node(region, address: str, sql: str, as_member: str = AUDITOR,
                  purpose: str = PURPOSE) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["node", str(CLIENT), "--region", str(region.directory), "--as", as_member,
         "--gateway-member", AUDITOR, address, purpose, sql],
        capture_output=True, text=True, timeout=60)


def same_cell(from_node: dict, from_python) -> bool:
    kind = from_python.WhichOneof("kind")
    if kind is None:
        return from_node == {"null": True}
    (node_kind, node_value), = from_node.items()
    python_value = getattr(from_python, kind)
    if kind == "double_value":
        return node_kind == kind and math.isclose(node_value, python_value, rel_tol=1e-15)
    return node_kind == kind and str(node_value) == str(python_value)


def test_a_node_js_client_gets_the_same_answer_as_python(region, gateway_address):
    completed = ask_from_node(region, gateway_address, SQL)
    assert completed.returncode == 0, completed.stderr
    from_node = json.loads(completed.stdout)
    with secure_channel(region, gateway_address, AUDITOR) as channel:
        from_python = federation_pb2_grpc.FederationServiceStub(channel).FederatedAggregate(
            federation_pb2.FederatedAggregateRequest(sql=SQL, purpose=PURPOSE))
    assert from_node["columns"] == list(from_python.column_names)
    assert from_node["complete"] is True
    assert [c["status"] for c in from_node["cities"]] == ["CITY_STATUS_ANSWERED"] * 3
    assert len(from_node["rows"]) == len(from_python.rows) == 3
    for node_row, python_row in zip(from_node["rows"], from_python.rows, strict=True):
        assert all(same_cell(n, p) for n, p in zip(node_row, python_row.values, strict=True))


def test_a_node_js_client_sees_the_documented_status_codes(region, gateway_address):
    completed = ask_from_node(region, gateway_address, "SELECT name FROM population")
    assert completed.returncode == 1
    error = json.loads(completed.stderr)
    assert error["code"] == "INVALID_ARGUMENT" and "GROUP BY" in error["details"]
    completed = ask_from_node(region, gateway_address, SQL, as_member=OUTSIDER)
    assert json.loads(completed.stderr)["code"] == "PERMISSION_DENIED"


VERIFIER = CLIENT.parent / "verify-receipts.mjs"


def test_a_node_js_client_verifies_every_citys_receipt_through_the_gateway(region,
                                                                          gateway_address):
    """clients/node/receipts.mjs is written from docs/audit.md alone: Ed25519 through Node's
    crypto over the documented signed bytes, the hashes over the plan and partial bytes the
    gateway returns, the key from the documented manifest file."""
    completed = subprocess.run(
        ["node", str(VERIFIER), "--region", str(region.directory), "--as", AUDITOR,
         "--gateway-member", AUDITOR, gateway_address, PURPOSE, SQL],
        capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(completed.stdout)
    assert report["plan_sha256"] == hashlib.sha256(
        parse_query(SQL).plan.SerializeToString()).hexdigest()
    assert [c["city"] for c in report["cities"]] == ["beijing", "tianjin", "langfang"]
    for city in report["cities"]:
        assert city["verified"] is True and isinstance(city["audit_index"], int), city


def test_the_node_js_verifier_refuses_a_response_the_receipt_does_not_cover(region, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert main(["query", SQL, "--region", str(region.directory), "--as", AUDITOR,
                 "--purpose", PURPOSE, "--json"], out=out, err=err) == 0, err.getvalue()
    saved = json.loads(out.getvalue())

    def verify(answer: dict) -> subprocess.CompletedProcess:
        path = tmp_path / "answer.json"
        path.write_text(json.dumps(answer))
        return subprocess.run(["node", str(VERIFIER), "--region", str(region.directory),
                               "--saved", str(path)], capture_output=True, text=True, timeout=60)

    assert verify(saved).returncode == 0
    tianjin = next(c for c in saved["cities"] if c["city"] == "tianjin")
    tianjin["response"] = base64.b64encode(base64.b64decode(tianjin["response"]) + b"\0").decode()
    completed = verify(saved)
    assert completed.returncode == 3
    results = {c["city"]: c for c in json.loads(completed.stdout)["cities"]}
    assert results["tianjin"] == {"city": "tianjin", "status": "answered", "verified": False,
                                  "error": "the receipt is for another response"}
    assert results["beijing"]["verified"] is True
    tianjin["receipt"]["audit_index"] += 1
    assert "signature does not verify" in verify(saved).stdout
