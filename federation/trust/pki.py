"""The region's TLS certificate authority and its members' certificates.

TLS keys are ECDSA P-256 with SHA-256 signatures, which every TLS stack a member might use
(Java, Go, Node, OpenSSL, BoringSSL in gRPC) accepts; Ed25519 stays for tokens and the manifest.
A member certificate names its member three ways: CN=<member id>, the DNS name
`<member id>.<region>.cityfed` (what a client checks the server against), and the URI
`cityfed://<region>/<member id>`. Nodes still identify a peer by the SHA-256 fingerprint of its
certificate as the signed manifest lists it, never by a name alone.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation.errors import ConfigError
from federation.trust.keys import (
    PUBLIC_MODE,
    b64url_encode,
    load_private_key_file,
    write_file_atomically,
    write_private_key,
)

# A member id or region name is one DNS label, so that it can be part of a DNS name.
NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Certificates start this much before they are issued, so that a peer whose clock is a little
# behind does not reject a fresh certificate as not yet valid.
BACKDATE = timedelta(minutes=5)
CertificateInput = x509.Certificate | bytes | str


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise ConfigError(f"{what} {value!r} must be lowercase letters, digits and hyphens "
                          "(a DNS label, like 'tianjin' or 'jjj-health')")
    return value


def member_dns_name(member_id: str, region: str) -> str:
    return f"{check_name(member_id, 'member id')}.{check_name(region, 'region')}.cityfed"


def member_uri(member_id: str, region: str) -> str:
    return f"cityfed://{check_name(region, 'region')}/{check_name(member_id, 'member id')}"


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _validity(builder: x509.CertificateBuilder, now: datetime | None,
              valid_days: int) -> x509.CertificateBuilder:
    start = (now or datetime.now(UTC)) - BACKDATE
    return builder.not_valid_before(start).not_valid_after(start + timedelta(days=valid_days))


def create_ca(region: str, valid_days: int = 3650, *, now: datetime | None = None,
              ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    check_name(region, "region")
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{region} cityfed CA")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
    )
    return key, _validity(builder, now, valid_days).sign(key, hashes.SHA256())


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host.lower())


def issue_member_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, member_id: str, region: str,
    hosts: list[str] | tuple[str, ...], valid_days: int = 825, *, now: datetime | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A TLS certificate for both sides of mutual TLS (serverAuth and clientAuth)."""
    if ca_cert.public_key() != ca_key.public_key():
        raise ConfigError("the CA key does not belong to the CA certificate")
    key = _new_key()
    names = [x509.DNSName(member_dns_name(member_id, region))]
    for host in hosts:
        if _host_name(host) not in names:
            names.append(_host_name(host))
    names.append(x509.UniformResourceIdentifier(member_uri(member_id, region)))
    ca_key_id = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member_id)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id),
                       critical=False)
    )
    return key, _validity(builder, now, valid_days).sign(ca_key, hashes.SHA256())


def certificate_der(cert: CertificateInput) -> bytes:
    """The DER bytes of a certificate given as an object, PEM (str or bytes) or DER bytes."""
    if isinstance(cert, x509.Certificate):
        return cert.public_bytes(serialization.Encoding.DER)
    if isinstance(cert, str):
        cert = cert.encode("ascii")
    if cert.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)
    return x509.load_der_x509_certificate(cert).public_bytes(serialization.Encoding.DER)


def certificate_fingerprint(cert: CertificateInput) -> str:
    """SHA-256 of the DER encoding, lowercase hex (64 characters)."""
    return hashlib.sha256(certificate_der(cert)).hexdigest()


def x5t_s256(cert: CertificateInput) -> str:
    """RFC 8705 `x5t#S256`: SHA-256 of the DER encoding, base64url without padding."""
    return b64url_encode(hashlib.sha256(certificate_der(cert)).digest())


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_certificate(path: Path, cert: x509.Certificate) -> None:
    write_file_atomically(path, certificate_pem(cert), PUBLIC_MODE)


def read_certificate(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the certificate: {error.strerror}") from None
    except ValueError:
        raise ConfigError(f"{path}: not a PEM certificate") from None


def write_tls_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_private_key(path, key)


def read_tls_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = load_private_key_file(path)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve,
                                                                         ec.SECP256R1):
        raise ConfigError(f"{path}: expected an ECDSA P-256 private key, found "
                          f"{type(key).__name__}")
    return key
