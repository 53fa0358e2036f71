"""A caller ties every city's receipt to what that city returned and to the merged answer:
through the gateway, in `cityfed query --json`, and with `cityfed receipt verify`."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import grpc
import pytest
from cityfed.v1 import federation_pb2, federation_pb2_grpc, node_pb2, query_pb2

from cli.main import main
from federation.query.finish import finish
from federation.query.merge import merge_partials
from federation.query.sql import parse_query
from federation.query.values import from_value
from federation.services.gateway import start_gateway
from federation.trust.receipts import RECEIPT_METADATA_KEY, Receipt, sha256_hex, verify_receipt
from tests.regionkit import (
    AUDITOR,
    OUTSIDER,
    PURPOSE,
    _credentials,
    aggregate,
    secure_channel,
    start_region,
)

SQL = ("SELECT mode, count(*) AS n, sum(fare) AS total, avg(fare) AS mean FROM transit_trips "
       "GROUP BY mode HAVING count(*) > 1 ORDER BY total DESC")


@pytest.fixture(scope="module")
def gateway_address(region):
    manifest, identity = _credentials(region.directory, AUDITOR)
    running = start_gateway(manifest, identity, "127.0.0.1:0")
    yield f"127.0.0.1:{running.port}"
    running.stop(grace=None)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def verify(region_directory: Path, saved: dict, tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(saved))
    code, out, err = run("receipt", "verify", str(path), "--manifest",
                         str(region_directory / "manifest.json"), "--root-public-key",
                         str(region_directory / "root/root.pub"))
    return code, out + err


def saved_answer(region_directory: Path, *extra: str) -> dict:
    return saved_answer_of(region_directory, SQL, *extra)


def saved_answer_of(region_directory: Path, sql: str, *extra: str) -> dict:
    code, out, err = run("query", sql, "--region", str(region_directory), "--as", AUDITOR,
                         "--purpose", PURPOSE, "--json", *extra)
    assert code in (0, 3), err
    return json.loads(out)


def test_the_gateway_returns_what_each_receipt_covers_and_the_merge_redoes_the_answer(
        region, gateway_address):
    with secure_channel(region, gateway_address, AUDITOR) as channel:
        answer = federation_pb2_grpc.FederationServiceStub(channel).FederatedAggregate(
            federation_pb2.FederatedAggregateRequest(sql=SQL, purpose=PURPOSE))
    assert answer.complete and answer.plan
    assert answer.query.plan == query_pb2.AggregatePlan.FromString(answer.plan)
    assert answer.query.plan == parse_query(SQL).plan
    partials = []
    for outcome in answer.outcomes:
        receipt = Receipt.from_json(outcome.receipt)
        assert receipt.plan_sha256 == sha256_hex(answer.plan)
        assert receipt.response_sha256 == sha256_hex(outcome.response)
        verify_receipt(receipt, manifest=region.manifest, city=outcome.city,
                       plan_bytes=answer.plan, response_bytes=outcome.response)
        partials.append(node_pb2.AggregateResponse.FromString(outcome.response).groups)
    table = finish(answer.query, merge_partials(answer.query.plan, partials))
    assert table.rows == [tuple(from_value(v) for v in row.values) for row in answer.rows]


@pytest.mark.parametrize("through_gateway", [False, True])
def test_receipt_verify_accepts_a_saved_answer(region, gateway_address, tmp_path,
                                               through_gateway):
    extra = ("--gateway", gateway_address) if through_gateway else ()
    saved = saved_answer(region.directory, *extra)
    code, out = verify(region.directory, saved, tmp_path)
    assert code == 0, out
    for city in ("beijing", "tianjin", "langfang"):
        assert f"{city:<14} ok: receipt signed by key" in out
    assert "merge          ok: the partials of 3 cities merge to the saved answer" in out


def _edit_response(saved: dict, city: str) -> None:
    entry = next(c for c in saved["cities"] if c["city"] == city)
    response = node_pb2.AggregateResponse.FromString(base64.b64decode(entry["response"]))
    response.groups[0].aggregates[0].count += 1
    entry["response"] = base64.b64encode(response.SerializeToString()).decode()


def test_receipt_verify_names_an_altered_response_a_forged_row_and_a_broken_signature(
        region, tmp_path):
    saved = saved_answer(region.directory)
    altered = json.loads(json.dumps(saved))
    _edit_response(altered, "tianjin")
    code, out = verify(region.directory, altered, tmp_path)
    assert code == 1
    assert "tianjin        FAILED: the receipt is for another response" in out
    assert "beijing        ok" in out

    forged = json.loads(json.dumps(saved))
    forged["rows"][0][1] += 1
    code, out = verify(region.directory, forged, tmp_path)
    assert code == 1 and "merge          FAILED: the cities' partials do not merge" in out

    resigned = json.loads(json.dumps(saved))
    resigned["cities"][0]["receipt"]["audit_index"] += 1
    code, out = verify(region.directory, resigned, tmp_path)
    assert code == 1 and "signature does not verify" in out

    other_plan = json.loads(json.dumps(saved))
    other_plan["plan"] = base64.b64encode(parse_query(
        "SELECT mode, count(*) FROM transit_trips GROUP BY mode").plan.SerializeToString()).decode()
    code, out = verify(region.directory, other_plan, tmp_path)
    assert code == 1 and "the receipt is for another request" in out


def test_a_refusal_carries_no_receipt(region):
    plan = parse_query("SELECT mode, count(*) FROM transit_trips GROUP BY mode").plan
    with pytest.raises(grpc.RpcError) as refused:
        aggregate(region, "tianjin", plan.SerializeToString(), as_member=OUTSIDER)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert RECEIPT_METADATA_KEY not in dict(refused.value.trailing_metadata() or ())


def test_receipt_verify_reports_a_city_that_did_not_answer_without_a_receipt(tmp_path):
    running = start_region(tmp_path, ("beijing", "tianjin"), rows=100,
                           extra_cities=("baoding",))
    try:
        saved = saved_answer(running.directory)
    finally:
        running.stop()
    code, out = verify(running.directory, saved, tmp_path)
    assert code == 0, out
    assert "baoding        ok: unreachable (UNAVAILABLE): no receipt" in out
    assert "merge          ok: the partials of 2 cities merge" in out


TYPED_SQL = ("SELECT sex, count(*) AS n, min(deceased_on) AS first_death, avg(year(birth_date)) "
             "AS mean_year, sum(year(birth_date)) AS years FROM population "
             "WHERE deceased_on IS NULL GROUP BY sex ORDER BY sex")


def test_the_answer_types_every_column_as_duckdb_does_even_one_of_nulls_only(
        region, gateway_address):
    with secure_channel(region, gateway_address, AUDITOR) as channel:
        answer = federation_pb2_grpc.FederationServiceStub(channel).FederatedAggregate(
            federation_pb2.FederatedAggregateRequest(sql=TYPED_SQL, purpose=PURPOSE))
    assert all(not row.values[2].WhichOneof("kind") for row in answer.rows)  # NULLs only
    central = [str(t) for t in region.central.sql(TYPED_SQL).dtypes]
    assert list(answer.column_types) == central == [
        "VARCHAR", "BIGINT", "DATE", "DOUBLE", "HUGEINT"]
    saved = saved_answer_of(region.directory, TYPED_SQL)
    assert saved["column_types"] == central
