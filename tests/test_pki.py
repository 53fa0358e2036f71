"""Keys and certificates: key files, the region's CA, member certificates, and real mutual TLS."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import stat
from concurrent import futures
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from federation.errors import ConfigError
from federation.trust import keys
from federation.trust.keys import (
    generate_signing_key,
    key_id,
    private_key_pem,
    public_key_from_text,
    public_key_to_text,
    read_private_key,
    write_private_key,
)
from federation.trust.manifest import load_manifest
from federation.trust.pki import (
    certificate_fingerprint,
    certificate_pem,
    create_ca,
    issue_member_certificate,
    member_dns_name,
    read_certificate,
    read_tls_key,
    write_tls_key,
    x5t_s256,
)
from federation.trust.region_init import init_region

REGION = "jjj"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def ca():
    return create_ca(REGION)


@pytest.fixture(scope="module")
def tianjin(ca):
    return issue_member_certificate(*ca, "tianjin", REGION, ["127.0.0.1", "localhost"])


# Signing keys and key files -------------------------------------------------------------------

def test_a_key_id_is_26_base32_characters_derived_from_the_public_key_alone():
    key = generate_signing_key()
    kid = key_id(key.public_key())
    raw = key.public_key().public_bytes_raw()
    expected = base64.b32encode(hashlib.sha256(raw).digest()[:16]).decode().rstrip("=").lower()
    assert kid == expected and len(kid) == 26
    assert key_id(public_key_from_text(public_key_to_text(key.public_key()))) == kid


def test_a_public_key_as_text_is_base64url_of_32_raw_bytes_and_nothing_else():
    public = generate_signing_key().public_key()
    text = public_key_to_text(public)
    assert len(text) == 43 and "=" not in text
    assert public_key_from_text(text) == public
    for bad in (text + "=", text[:-1], text.replace(text[0], "+"), base64.b64encode(b"x" * 31)
                .decode()):
        with pytest.raises(ValueError):
            public_key_from_text(bad)


def test_a_private_key_file_is_0600_from_its_first_byte_and_reads_back(tmp_path, monkeypatch):
    seen_modes = []
    replace = os.replace

    def spying_replace(source, target):
        seen_modes.append(mode(source))
        replace(source, target)

    monkeypatch.setattr(keys.os, "replace", spying_replace)
    previous = os.umask(0)  # even with a permissive umask
    try:
        key = generate_signing_key()
        write_private_key(tmp_path / "signing.key", key)
    finally:
        os.umask(previous)
    assert seen_modes == [0o600]
    assert mode(tmp_path / "signing.key") == 0o600
    assert read_private_key(tmp_path / "signing.key").public_key() == key.public_key()
    assert (tmp_path / "signing.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert [p.name for p in tmp_path.iterdir()] == ["signing.key"]


def test_reading_a_key_of_another_type_names_the_file(tmp_path):
    path = tmp_path / "tls.key"
    write_tls_key(path, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigError, match=r"tls\.key: expected an Ed25519 private key"):
        read_private_key(path)
    (tmp_path / "junk.key").write_text("not a key")
    with pytest.raises(ConfigError, match=r"junk\.key: not a PEM private key"):
        read_private_key(tmp_path / "junk.key")
    with pytest.raises(ConfigError, match=r"missing\.key: cannot read"):
        read_private_key(tmp_path / "missing.key")
    write_private_key(tmp_path / "ed.key", generate_signing_key())
    with pytest.raises(ConfigError, match=r"ed\.key: expected an ECDSA P-256 private key"):
        read_tls_key(tmp_path / "ed.key")


# The CA and member certificates ---------------------------------------------------------------

def test_the_ca_is_a_self_signed_p256_ca_that_can_only_sign_end_entities(ca):
    key, cert = ca
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "jjj cityfed CA"
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    assert isinstance(key.curve, ec.SECP256R1)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=3650)


def test_a_member_certificate_names_the_member_and_serves_both_ends_of_mutual_tls(ca, tianjin):
    ca_cert = ca[1]
    key, cert = tianjin
    cert.verify_directly_issued_by(ca_cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "tianjin"
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["tianjin.jjj.cityfed", "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == ["cityfed://jjj/tianjin"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical and key_usage.value.digital_signature
    assert not key_usage.value.key_cert_sign
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    authority = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert authority.key_identifier == ca_ski.digest
    assert isinstance(key.curve, ec.SECP256R1)
    now = datetime.now(UTC)
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    other = issue_member_certificate(*ca, "tianjin", REGION, ["127.0.0.1"])[1]
    assert cert.serial_number != other.serial_number and cert.serial_number > 2**64


def test_a_member_id_must_be_a_dns_label(ca):
    assert member_dns_name("jjj-health", REGION) == "jjj-health.jjj.cityfed"
    for bad in ("Tianjin", "tian jin", "xi_an", "-x", ""):
        with pytest.raises(ConfigError, match="member id"):
            issue_member_certificate(*ca, bad, REGION, [])


def test_a_ca_key_that_does_not_match_the_ca_certificate_is_refused(ca):
    other_key, _ = create_ca(REGION)
    with pytest.raises(ConfigError, match="CA key does not belong"):
        issue_member_certificate(other_key, ca[1], "tianjin", REGION, [])


def test_fingerprint_and_x5t_agree_for_pem_der_and_certificate_objects(tianjin):
    cert = tianjin[1]
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = certificate_pem(cert)
    expected = hashlib.sha256(der).hexdigest()
    assert {certificate_fingerprint(c) for c in (cert, der, pem, pem.decode())} == {expected}
    thumbprints = {x5t_s256(c) for c in (cert, der, pem, pem.decode())}
    assert thumbprints == {base64.urlsafe_b64encode(bytes.fromhex(expected)).decode().rstrip("=")}


# Mutual TLS over real gRPC --------------------------------------------------------------------

_WHOAMI = "/cityfed.test.Whoami/Get"


def _whoami(request: bytes, context: grpc.ServicerContext) -> bytes:
    auth = context.auth_context()
    assert auth["transport_security_type"] == [b"ssl"]
    return auth["x509_pem_cert"][0]


@pytest.fixture(scope="module")
def region_files(tmp_path_factory):
    return init_region(tmp_path_factory.mktemp("region"), region=REGION,
                       cities=[("tianjin", "天津")], authorities=[("jjj-health", "jjj-health")])


@pytest.fixture(scope="module")
def tls_server(region_files):
    """tianjin's node on 127.0.0.1, port 0: health and a method that echoes the peer's cert."""
    files = region_files.member("tianjin")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "cityfed.test.Whoami", {"Get": grpc.unary_unary_rpc_method_handler(_whoami)})])
    credentials = grpc.ssl_server_credentials(
        [(files.tls_key.read_bytes(), files.tls_certificate.read_bytes())],
        root_certificates=region_files.ca_certificate.read_bytes(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def _channel(address: str, ca_pem: bytes, key_pem: bytes | None, cert_pem: bytes | None,
             server_name: str = member_dns_name("tianjin", REGION)) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(ca_pem, key_pem, cert_pem)
    return grpc.secure_channel(address, credentials,
                               options=[("grpc.ssl_target_name_override", server_name)])


def test_members_talk_over_mutual_tls_and_the_server_sees_the_callers_manifest_identity(
        region_files, tls_server):
    files = region_files.member("jjj-health")
    with _channel(tls_server, region_files.ca_certificate.read_bytes(),
                  files.tls_key.read_bytes(), files.tls_certificate.read_bytes()) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                           timeout=5)
        peer_pem = channel.unary_unary(_WHOAMI)(b"", timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    root = keys.read_public_key(region_files.root_public_key)
    manifest = load_manifest(region_files.manifest, root)
    caller = manifest.member_by_fingerprint(certificate_fingerprint(peer_pem))
    assert caller is not None and caller.id == "jjj-health"
    assert certificate_fingerprint(peer_pem) == certificate_fingerprint(
        read_certificate(files.tls_certificate))


def _refused(channel: grpc.Channel) -> grpc.RpcError:
    with channel, pytest.raises(grpc.RpcError) as refused:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return refused.value


def test_a_client_certificate_from_a_foreign_ca_is_refused(region_files, tls_server):
    foreign_ca = create_ca("elsewhere")
    key, cert = issue_member_certificate(*foreign_ca, "jjj-health", REGION, ["127.0.0.1"])
    error = _refused(_channel(tls_server, region_files.ca_certificate.read_bytes(),
                              private_key_pem(key), certificate_pem(cert)))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_without_a_certificate_is_refused(region_files, tls_server):
    error = _refused(_channel(tls_server, region_files.ca_certificate.read_bytes(), None, None))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_refuses_a_server_whose_certificate_names_another_member(
        region_files, tls_server):
    files = region_files.member("jjj-health")
    error = _refused(_channel(tls_server, region_files.ca_certificate.read_bytes(),
                              files.tls_key.read_bytes(), files.tls_certificate.read_bytes(),
                              server_name=member_dns_name("beijing", REGION)))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
