"""A member's own credentials, as the coordinator and the gateway use them to ask cities."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from federation.errors import ConfigError
from federation.trust.keys import key_id, public_key_from_text, read_private_key
from federation.trust.manifest import Manifest, load_manifest
from federation.trust.pki import member_dns_name, x5t_s256


@dataclass(frozen=True)
class Identity:
    member_id: str
    kid: str
    signing_key: Ed25519PrivateKey
    tls_private_key_pem: bytes
    tls_certificate_pem: bytes
    ca_certificate_pem: bytes
    certificate_x5t: str

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_certificate_pem,
            private_key=self.tls_private_key_pem,
            certificate_chain=self.tls_certificate_pem,
        )


# How a channel to a member comes back (gRPC core's connection backoff, doc/connection-backoff.md
# in grpc/grpc): after a failed attempt it waits 200 ms, then 1.6 times longer each time but
# never more than a second, so a city that listens again is reached within about a second
# (gRPC's default grows to two minutes). One attempt (TCP and TLS) may take 3 s: longer than a
# handshake needs, short enough that an attempt lost to a host that was down is not waited on
# for gRPC's default of 20 s. A host name is looked up again at most once a second (default 30
# s), for a member that moved. Keepalive pings every 15 s, also between calls, close a
# connection whose peer vanished without a word (a host that lost power) within 20 s, rather
# than at the next call's deadline; SERVER_KEEPALIVE_OPTIONS lets cityfed's servers take them.
RECONNECT_OPTIONS: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.min_reconnect_backoff_ms", 3000),  # gRPC core: the shortest time one attempt gets
    ("grpc.dns_min_time_between_resolutions_ms", 1000),
    ("grpc.keepalive_time_ms", 15_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
# On every cityfed server: accept the pings above (by default a server takes one ping without
# data every 5 minutes, and closes a connection that pings more often with "too_many_pings").
SERVER_KEEPALIVE_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


def channel_options(member_id: str, region: str) -> list[tuple[str, object]]:
    """Verify the server as the named member: its certificate must carry the member's name;
    reconnect and keep alive as RECONNECT_OPTIONS says."""
    return [("grpc.ssl_target_name_override", member_dns_name(member_id, region)),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 1024 * 1024),
            *RECONNECT_OPTIONS]


def load_identity(member_dir: Path, ca_certificate: Path, manifest: Manifest) -> Identity:
    """Read a member's keys from its folder (signing.key, tls.key, tls.pem) and check that the
    manifest lists them as that member's."""
    member_id = member_dir.name
    signing_key = read_private_key(member_dir / "signing.key")
    try:
        check_listed(manifest, member_id, key_id(signing_key.public_key()))
    except ConfigError as error:
        raise ConfigError(f"{member_dir}: {error}") from None
    try:
        tls_key = (member_dir / "tls.key").read_bytes()
        tls_certificate = (member_dir / "tls.pem").read_bytes()
        ca = ca_certificate.read_bytes()
    except OSError as error:
        raise ConfigError(f"{member_dir}: cannot read TLS files: {error}") from None
    return Identity(member_id, key_id(signing_key.public_key()), signing_key, tls_key,
                    tls_certificate, ca, x5t_s256(tls_certificate))


def check_listed(manifest: Manifest, member_id: str, kid: str) -> None:
    """The manifest lists the member with this signing key."""
    member = manifest.member(member_id)
    if member is None:
        raise ConfigError(f"{member_id!r} is not a member in the manifest")
    if kid not in {k.kid for k in member.keys}:
        raise ConfigError(f"signing key {kid} is not listed for {member_id} in the manifest")


@dataclass(frozen=True)
class RegionDirectory:
    """The folder `cityfed region init` writes: manifest.json, root/ (root.pub, ca.pem) and
    members/<id>/ (signing.key, tls.key, tls.pem)."""

    path: Path

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    @property
    def root_public_key(self) -> Path:
        return self.path / "root" / "root.pub"

    @property
    def ca_certificate(self) -> Path:
        return self.path / "root" / "ca.pem"

    def member(self, member_id: str) -> Path:
        return self.path / "members" / member_id

    def root_key(self) -> Ed25519PublicKey:
        try:
            return public_key_from_text(self.root_public_key.read_text().strip())
        except OSError as error:
            raise ConfigError(f"{self.root_public_key}: cannot read: {error.strerror}") from None

    def open_as(self, member_id: str) -> tuple[Manifest, Identity]:
        """The region's manifest, verified against its pinned root key, and a member's
        credentials."""
        manifest = load_manifest(self.manifest, self.root_key())
        return manifest, load_identity(self.member(member_id), self.ca_certificate, manifest)
