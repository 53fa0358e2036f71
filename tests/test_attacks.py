"""The attack suite: one test per trust rule, each asserting the exact status a node returns.

A real node over mutual TLS with real keys and certificates; tokens are forged by hand where
the attack needs something the honest minting code would never produce."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import grpc
import pytest
from cityfed.v1 import node_pb2, node_pb2_grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.errors import InvalidQuery
from federation.query.datasets import DATASETS
from federation.query.plan import plan_hash
from federation.query.sql import parse_query
from federation.services.gateway import METHOD_POLICY as GATEWAY_METHOD_POLICY
from federation.trust.identity import channel_options
from federation.trust.keys import public_key_to_text
from federation.trust.pki import (
    certificate_pem,
    create_ca,
    issue_member_certificate,
    read_certificate,
    read_tls_key,
    write_tls_key,
)
from node.guard import METHOD_POLICY
from tests import regionkit, sparkkit
from tests.regionkit import AUDITOR, OUTSIDER, PURPOSE, _credentials

CITY = "tianjin"
PLAN = parse_query("SELECT sex, count(*) FROM population GROUP BY sex").plan.SerializeToString()
OTHER_PLAN = parse_query("SELECT count(*) FROM population").plan.SerializeToString()


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    running = regionkit.start_region(tmp_path_factory.mktemp("attacks"), (CITY,), rows=300,
                                     extra_cities=("beijing",))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def auditor(city):
    return _credentials(city.directory, AUDITOR)[1]


@pytest.fixture(scope="module")
def outsider(city):
    return _credentials(city.directory, OUTSIDER)[1]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(identity, plan: bytes = PLAN, **changes) -> dict:
    now = int(time.time())
    claims = {"iss": identity.member_id, "sub": identity.member_id, "aud": CITY, "iat": now,
              "nbf": now, "exp": now + 120, "jti": b64(hashlib.sha256(str(time.time_ns())
                                                                       .encode()).digest()),
              "purpose": PURPOSE, "plan_sha256": plan_hash(plan),
              "cnf": {"x5t#S256": identity.certificate_x5t}}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def signed(claims: dict, key: Ed25519PrivateKey, kid: str, **header_changes) -> str:
    header = {"alg": "EdDSA", "typ": "JWT", "kid": kid, **header_changes}
    header = {name: value for name, value in header.items() if value is not None}
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(key.sign(head.encode()))


def hs256(claims: dict, secret: bytes, kid: str) -> str:
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()) + "." + \
        b64(json.dumps(claims).encode())
    return head + "." + b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


def send(city, token: str | None, plan: bytes = PLAN, as_member: str = AUDITOR,
         scheme: str = "Bearer"):
    stub = regionkit.node_stub(city, CITY, as_member)
    metadata = () if token is None else (("authorization", f"{scheme} {token}"),)
    return stub.Aggregate(node_pb2.AggregateRequest(plan=plan), metadata=metadata, timeout=10)


def refused(city, token, *, plan: bytes = PLAN, as_member: str = AUDITOR,
            code=grpc.StatusCode.UNAUTHENTICATED, says: str = "", scheme: str = "Bearer") -> None:
    with pytest.raises(grpc.RpcError) as failure:
        send(city, token, plan, as_member, scheme)
    assert failure.value.code() == code, failure.value.details()
    assert says in failure.value.details()


def test_an_honest_token_is_accepted(city, auditor):
    response = send(city, signed(claims_for(auditor), auditor.signing_key, auditor.kid))
    assert response.city == CITY and response.groups


def test_no_token(city):
    refused(city, None, says="authorization: Bearer")


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer "])
def test_the_bearer_scheme_is_case_insensitive(city, auditor, scheme):
    token = signed(claims_for(auditor), auditor.signing_key, auditor.kid)
    assert send(city, token, scheme=scheme).city == CITY


@pytest.mark.parametrize("scheme", ["Basic", "Bearer:", "DPoP", ""])
def test_another_authorization_scheme(city, auditor, scheme):
    token = signed(claims_for(auditor), auditor.signing_key, auditor.kid)
    refused(city, token, scheme=scheme, says="authorization: Bearer")


def test_the_token_type_is_checked(city, auditor):
    token = signed(claims_for(auditor), auditor.signing_key, auditor.kid, typ="jwt")
    assert send(city, token).city == CITY  # media types are case-insensitive (RFC 7515 4.1.9)
    for typ in ("at+jwt", None, 1):
        refused(city, signed(claims_for(auditor), auditor.signing_key, auditor.kid, typ=typ),
                says="typ 'JWT'")


def test_not_a_jwt(city):
    refused(city, "not.a.jwt", says="not a JWT")


@pytest.mark.parametrize("make_header", [
    lambda kid: b64(json.dumps(["EdDSA", kid]).encode()),  # not an object
    lambda kid: b64(json.dumps({"alg": "EdDSA", "kid": kid}).encode()) + "=",  # padded
    lambda kid: b64(f'{{"alg":"none","alg":"EdDSA","kid":"{kid}"}}'.encode()),  # alg twice
    lambda kid: b64(b"\xff\xfe"),  # not UTF-8
], ids=["array", "padded", "duplicated-alg", "not-utf8"])
def test_a_malformed_header_is_not_a_jwt(city, auditor, make_header):
    token = signed(claims_for(auditor), auditor.signing_key, auditor.kid)
    _, claims, signature = token.split(".")
    refused(city, ".".join((make_header(auditor.kid), claims, signature)), says="not a JWT")


def test_alg_none(city, auditor):
    head = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": auditor.kid}).encode())
    refused(city, head + "." + b64(json.dumps(claims_for(auditor)).encode()) + ".",
            says="EdDSA")


def _public_key_encodings(identity) -> dict[str, bytes]:
    public = identity.signing_key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "raw": raw,
        "base64url as in the manifest": public_key_to_text(public).encode(),
        "hex": raw.hex().encode(),
        "PEM": public.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo),
        "DER": public.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo),
        "OpenSSH": public.public_bytes(serialization.Encoding.OpenSSH,
                                       serialization.PublicFormat.OpenSSH),
    }


@pytest.mark.parametrize("encoding", ["raw", "base64url as in the manifest", "hex", "PEM", "DER",
                                      "OpenSSH"])
def test_hs256_keyed_with_the_public_key(city, auditor, encoding):
    secret = _public_key_encodings(auditor)[encoding]
    refused(city, hs256(claims_for(auditor), secret, auditor.kid), says="EdDSA")


def test_unknown_kid(city, auditor):
    refused(city, signed(claims_for(auditor), auditor.signing_key, "no-such-key"),
            says="not a current key")


@pytest.mark.parametrize("header", [
    {"kid": "../../root/root"},
    {"kid": "x", "jku": "https://attacker.invalid/keys"},
    {"kid": "x", "x5u": "https://attacker.invalid/cert"},
])
def test_injected_kid_or_key_location(city, auditor, header):
    refused(city, signed(claims_for(auditor), auditor.signing_key, **header),
            says="not a current key")


def test_an_embedded_key_is_ignored(city, auditor):
    attacker = Ed25519PrivateKey.generate()
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": public_key_to_text(attacker.public_key())}
    refused(city, signed(claims_for(auditor), attacker, auditor.kid, jwk=jwk),
            says="signature does not verify")
    cert = base64.b64encode(read_certificate(
        city.trusted.directory.member(AUDITOR) / "tls.pem").public_bytes(
        serialization.Encoding.DER)).decode()
    refused(city, signed(claims_for(auditor), attacker, auditor.kid, x5c=[cert]),
            says="signature does not verify")


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "purpose",
                                   "plan_sha256", "cnf"])
def test_each_required_claim_missing(city, auditor, claim):
    claims = claims_for(auditor)
    del claims[claim]
    refused(city, signed(claims, auditor.signing_key, auditor.kid),
            says=f"lacks the {claim!r} claim")


@pytest.mark.parametrize(("claims", "says"), [
    ({"purpose": ["population-statistics"]}, "purpose must be a string"),
    ({"cnf": {"x5t": "abc"}}, "cnf claim must hold the caller's certificate thumbprint"),
    ({"cnf": "abc"}, "cnf claim must hold the caller's certificate thumbprint"),
])
def test_a_malformed_claim_is_named(city, auditor, claims, says):
    refused(city, signed(claims_for(auditor, **claims), auditor.signing_key, auditor.kid),
            says=says)


def test_expired(city, auditor):
    now = int(time.time())
    claims = claims_for(auditor, iat=now - 300, nbf=now - 300, exp=now - 100)
    refused(city, signed(claims, auditor.signing_key, auditor.kid), says="expired")


def test_not_yet_valid(city, auditor):
    now = int(time.time())
    claims = claims_for(auditor, iat=now + 200, nbf=now + 200, exp=now + 300)
    refused(city, signed(claims, auditor.signing_key, auditor.kid), says="not valid yet")


def test_lifetime_too_long(city, auditor):
    now = int(time.time())
    claims = claims_for(auditor, iat=now, nbf=now, exp=now + 3600)
    refused(city, signed(claims, auditor.signing_key, auditor.kid), says="longer than 300 s")


def test_wrong_audience(city, auditor):
    refused(city, signed(claims_for(auditor, aud="beijing"), auditor.signing_key, auditor.kid),
            says="another city")


@pytest.mark.parametrize("aud", [[CITY, "beijing"], [CITY]])
def test_a_token_names_one_city(city, auditor, aud):
    refused(city, signed(claims_for(auditor, aud=aud), auditor.signing_key, auditor.kid),
            says="aud must be one city's member id")


def test_unregistered_purpose(city, auditor):
    refused(city, signed(claims_for(auditor, purpose="curiosity"), auditor.signing_key,
                         auditor.kid), says="purpose is not registered")


def test_a_key_of_another_member(city, auditor, outsider):
    # Signed with the outsider's key, claiming to be the auditor.
    refused(city, signed(claims_for(auditor), outsider.signing_key, outsider.kid),
            says="issuer does not own its key")
    # The auditor's kid, but the outsider's key.
    refused(city, signed(claims_for(auditor), outsider.signing_key, auditor.kid),
            says="signature does not verify")


def test_another_members_token_on_my_connection(city, auditor):
    refused(city, signed(claims_for(auditor), auditor.signing_key, auditor.kid),
            as_member=OUTSIDER, says="issued by another member")


def test_a_replayed_jti(city, auditor):
    token = signed(claims_for(auditor), auditor.signing_key, auditor.kid)
    send(city, token)
    refused(city, token, says="replay")


def test_a_replayed_jti_after_a_restart(tmp_path, auditor):
    running = regionkit.start_region(tmp_path, (CITY,), rows=10)
    try:
        _, identity = _credentials(running.directory, AUDITOR)
        token = signed(claims_for(identity), identity.signing_key, identity.kid)
        send(running, token)
        config = running.nodes[CITY].config
        running.stop_node(CITY)
        running.nodes[CITY] = regionkit.start_node(config)
        running.stopped.discard(CITY)
        refused(running, token, says="replay")
    finally:
        running.stop()


def test_the_plan_changed_after_signing(city, auditor):
    refused(city, signed(claims_for(auditor, plan=PLAN), auditor.signing_key, auditor.kid),
            plan=OTHER_PLAN, says="not the one the request token was signed for")


def test_a_token_bound_to_another_certificate(city, auditor, outsider):
    claims = claims_for(auditor, cnf={"x5t#S256": outsider.certificate_x5t})
    refused(city, signed(claims, auditor.signing_key, auditor.kid), says="another TLS")


def _channel(city, credentials: grpc.ChannelCredentials) -> node_pb2_grpc.NodeServiceStub:
    channel = grpc.secure_channel(city.trusted.endpoint(CITY), credentials,
                                  options=channel_options(CITY, city.manifest.region))
    return node_pb2_grpc.NodeServiceStub(channel)


def _handshake_refused(stub) -> None:
    """Mutual TLS refuses the connection before any gRPC method runs, so the client's own
    stack reports UNAVAILABLE: no status can come back over a connection never established."""
    with pytest.raises(grpc.RpcError) as failure:
        stub.GetNodeInfo(node_pb2.GetNodeInfoRequest(), timeout=5)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE


def test_no_client_certificate(city):
    ca = city.trusted.directory.ca_certificate.read_bytes()
    _handshake_refused(_channel(city, grpc.ssl_channel_credentials(root_certificates=ca)))


def test_a_certificate_from_a_foreign_ca(city, tmp_path):
    foreign_key, foreign_ca = create_ca("test")
    key, cert = issue_member_certificate(foreign_key, foreign_ca, AUDITOR, "test",
                                         ["127.0.0.1"])
    write_tls_key(tmp_path / "k.pem", key)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=city.trusted.directory.ca_certificate.read_bytes(),
        private_key=(tmp_path / "k.pem").read_bytes(), certificate_chain=certificate_pem(cert))
    _handshake_refused(_channel(city, credentials))


def test_a_region_certificate_not_in_the_manifest(city, tmp_path):
    """Signed by the region's CA, but no member of the manifest: UNAUTHENTICATED."""
    root = city.trusted.directory.path / "root"
    key, cert = issue_member_certificate(read_tls_key(root / "ca.key"),
                                         read_certificate(root / "ca.pem"), "ghost", "test",
                                         ["127.0.0.1"])
    write_tls_key(tmp_path / "ghost.pem", key)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(root / "ca.pem").read_bytes(),
        private_key=(tmp_path / "ghost.pem").read_bytes(), certificate_chain=certificate_pem(cert))
    with pytest.raises(grpc.RpcError) as failure:
        _channel(city, credentials).GetNodeInfo(node_pb2.GetNodeInfoRequest(), timeout=5)
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not a member's" in failure.value.details()


def test_every_rpc_of_every_service_is_in_a_method_table():
    from cityfed.v1 import federation_pb2
    from grpc_health.v1 import health_pb2
    from grpc_reflection.v1alpha import reflection_pb2

    def methods(descriptor, service):
        full = descriptor.services_by_name[service]
        return {f"/{full.full_name}/{m.name}" for m in full.methods}

    node_methods = (methods(node_pb2.DESCRIPTOR, "NodeService")
                    | methods(health_pb2.DESCRIPTOR, "Health")
                    | methods(reflection_pb2.DESCRIPTOR, "ServerReflection"))
    assert node_methods <= set(METHOD_POLICY)
    gateway_methods = (methods(federation_pb2.DESCRIPTOR, "FederationService")
                       | methods(health_pb2.DESCRIPTOR, "Health")
                       | methods(reflection_pb2.DESCRIPTOR, "ServerReflection"))
    assert gateway_methods <= set(GATEWAY_METHOD_POLICY)


def test_a_method_missing_from_the_table_is_refused(city, monkeypatch):
    monkeypatch.delitem(METHOD_POLICY, "/cityfed.v1.NodeService/GetNodeInfo")
    with pytest.raises(grpc.RpcError) as failure:
        regionkit.node_stub(city, CITY).GetNodeInfo(node_pb2.GetNodeInfoRequest(), timeout=5)
    assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not open to callers" in failure.value.details()


def test_datasets_are_catalogued_for_every_column(city):
    catalog = regionkit.node_stub(city, CITY).ListDatasets(node_pb2.ListDatasetsRequest())
    assert {d.name for d in catalog.datasets} == set(DATASETS)


# The manifest: a node refuses to start with one it must not trust.

def _restart_with_manifest(city, tmp_path, manifest_bytes: bytes):
    config = city.nodes[CITY].config
    path = tmp_path / "manifest.json"
    path.write_bytes(manifest_bytes)
    import dataclasses

    return regionkit.start_node(dataclasses.replace(
        config, manifest=path, state_dir=tmp_path / "state",
        listen="127.0.0.1:0", admin_socket=tmp_path / "admin.sock", database=tmp_path / "db"))


def _signed_manifest(city, **changes) -> bytes:
    import dataclasses

    from federation.trust.keys import read_private_key
    from federation.trust.manifest import manifest_from_json, sign_manifest

    signed_file = json.loads(city.trusted.directory.manifest.read_bytes())
    manifest = dataclasses.replace(manifest_from_json(signed_file["manifest"]), **changes)
    return sign_manifest(manifest, read_private_key(city.directory / "root" / "root.key"))


def test_a_tampered_manifest(city, tmp_path):
    from federation.trust.manifest import ManifestRejected

    signed_file = json.loads(city.trusted.directory.manifest.read_bytes())
    signed_file["manifest"]["members"][0]["endpoint"] = "203.0.113.9:443"
    with pytest.raises(ManifestRejected) as refused_manifest:
        _restart_with_manifest(city, tmp_path, json.dumps(signed_file).encode())
    assert refused_manifest.value.why == "bad_signature"


def test_an_expired_manifest(city, tmp_path):
    from datetime import UTC, datetime, timedelta

    from federation.trust.manifest import ManifestRejected

    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    with pytest.raises(ManifestRejected) as refused_manifest:
        _restart_with_manifest(city, tmp_path, _signed_manifest(
            city, issued_at=past - timedelta(days=1), expires_at=past))
    assert refused_manifest.value.why == "expired"


def test_a_rolled_back_manifest(city, tmp_path):
    from federation.trust.manifest import ManifestRejected

    newer = _signed_manifest(city, version=5)
    _restart_with_manifest(city, tmp_path, newer).stop(grace=None)
    with pytest.raises(ManifestRejected) as refused_manifest:
        _restart_with_manifest(city, tmp_path, _signed_manifest(city, version=4))
    assert refused_manifest.value.why == "rollback"


# The owner's policy, end to end.

STATISTICS_POLICY = f"""
[privacy]
epsilon_per_question = 1.0
epsilon_per_period = 1000

[[rules]]
dataset = "population"
columns = ["sex", "birth_date", "district_code", "deceased_on"]
callers = ["{AUDITOR}"]
purposes = ["{PURPOSE}"]
level = "aggregate"
"""


@pytest.fixture(scope="module", params=sparkkit.STORES)
def guarded(request, tmp_path_factory):
    """Two cities under a statistics-only policy; with "spark", CITY is served from Spark."""
    running = regionkit.start_region(tmp_path_factory.mktemp("policy"), (CITY, "beijing"),
                                     rows=2_000, seed=4, policy_text=STATISTICS_POLICY,
                                     spark_cities=sparkkit.on_spark(request.param, CITY))
    yield running
    running.stop()


def test_a_denied_column_used_only_in_where(guarded):
    sql = "SELECT sex, count(*) FROM population WHERE name = 'Zhang San' GROUP BY sex"
    with pytest.raises(grpc.RpcError) as failure:
        regionkit.aggregate(guarded, CITY, parse_query(sql).plan.SerializeToString())
    assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
    details = failure.value.details()
    assert "population.name" in details and "aggregate" in details and "deny" in details
    assert "Zhang" not in details
    answer = guarded.ask(sql)
    assert answer.table.rows == []
    assert {o.status.value for o in answer.outcomes} == {"refused"}


def test_a_denied_column_inside_an_aggregate(guarded):
    with pytest.raises(grpc.RpcError) as failure:
        regionkit.aggregate(guarded, CITY, parse_query(
            "SELECT max(registered_on) FROM population").plan.SerializeToString())
    assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "population.registered_on" in failure.value.details()


def test_a_group_of_one_person_is_never_released(guarded):
    sql = "SELECT birth_date, count(*) FROM population GROUP BY birth_date"
    answer = guarded.ask(sql)
    assert answer.complete and answer.private
    assert answer.table.rows == []  # every birth date here is one or two people


def test_a_filter_narrowed_to_one_person_returns_only_noise(guarded):
    birth_date, district, sex = guarded.central.execute(
        "SELECT birth_date, district_code, sex FROM city_tianjin.population "
        "GROUP BY ALL HAVING count(*) = 1 LIMIT 1").fetchone()
    where = (f"WHERE birth_date = DATE '{birth_date}' AND district_code = '{district}' "
             f"AND sex = '{sex}'")
    with pytest.raises(InvalidQuery, match="min\\(\\) is refused in a private answer"):
        guarded.ask(f"SELECT count(*), min(birth_date) FROM population {where}",
                    cities=(CITY,))
    answer = guarded.ask(f"SELECT count(*) FROM population {where}", cities=(CITY,))
    assert len(answer.table.rows) == 1
    assert answer.accuracy[0].noisy and answer.accuracy[0].half_widths[0] >= 3
    assert [o.epsilon_charged for o in answer.outcomes] == [1.0]


def test_sizeable_groups_answer_within_their_noise(guarded):
    sql = "SELECT sex, count(*) FROM population WHERE deceased_on IS NULL GROUP BY sex"
    answer = guarded.ask(sql)
    assert answer.complete and answer.private
    exact = dict(guarded.central.execute(sql).fetchall())
    assert {sex for sex, _ in answer.table.rows} == set(exact)
    for row, (sex, count) in enumerate(answer.table.rows):
        # 4 × the 95% half-width: a false alarm about once in a million runs.
        assert abs(count - exact[sex]) <= 4 * answer.accuracy[1].half_widths[row]


def test_default_deny_for_a_member_no_rule_names(guarded):
    for name, dataset in DATASETS.items():
        sql = f"SELECT count(*) FROM {name}"
        with pytest.raises(grpc.RpcError) as failure:
            regionkit.aggregate(guarded, CITY, parse_query(sql).plan.SerializeToString(),
                                as_member=OUTSIDER)
        assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
        catalog = regionkit.node_stub(guarded, CITY, OUTSIDER).ListDatasets(
            node_pb2.ListDatasetsRequest(purpose=PURPOSE))
        columns = next(d for d in catalog.datasets if d.name == name).columns
        assert {c.access for c in columns} == {node_pb2.ACCESS_LEVEL_DENY}
        assert len(columns) == len(dataset.columns)


def test_the_catalog_tells_the_caller_its_access(guarded):
    catalog = regionkit.node_stub(guarded, CITY).ListDatasets(
        node_pb2.ListDatasetsRequest(purpose=PURPOSE))
    population = next(d for d in catalog.datasets if d.name == "population")
    access = {c.name: c.access for c in population.columns}
    assert access["sex"] == node_pb2.ACCESS_LEVEL_AGGREGATE
    assert access["name"] == access["person_id"] == node_pb2.ACCESS_LEVEL_DENY
    assert population.min_group_size == 0 and population.max_rows_per_person == 1
