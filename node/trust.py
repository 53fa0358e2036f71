"""What a node trusts, loaded once at start: the region's manifest (checked against the pinned
root key and the manifest it held before), its own TLS identity, the owner's policy and the
memory of token ids already used."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.errors import ConfigError
from federation.guard import TrustState
from federation.keys import key_id, public_key_from_text, read_private_key
from federation.manifest import ManifestStore
from federation.pki import certificate_fingerprint
from node.config import NodeConfig
from node.policy import Policy, empty_policy, load_policy
from node.replay import ReplayCache


@dataclass
class NodeTrust:
    state: TrustState
    policy: Policy
    replay: ReplayCache
    server_credentials: grpc.ServerCredentials
    signing_key: Ed25519PrivateKey
    kid: str

    def close(self) -> None:
        self.replay.close()


def _read(path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the {what}: {error.strerror}") from None


def load_node_trust(config: NodeConfig) -> NodeTrust:
    root_key = public_key_from_text(_read(config.root_public_key, "root public key").decode())
    manifests = ManifestStore(config.state_path, root_key)
    manifest = manifests.accept(config.manifest)
    me = manifest.member(config.city)
    if me is None or me.role != "city":
        raise ConfigError(f"{config.manifest}: {config.city!r} is not a city of the region")
    certificate = _read(config.tls_certificate, "TLS certificate")
    if certificate_fingerprint(certificate) != me.tls_fingerprint:
        raise ConfigError(f"{config.tls_certificate}: not the certificate the manifest lists "
                          f"for {config.city}")
    credentials = grpc.ssl_server_credentials(
        [(_read(config.tls_private_key, "TLS private key"), certificate)],
        root_certificates=_read(config.tls_ca, "CA certificate"),
        require_client_auth=True,
    )
    signing_key = read_private_key(config.signing_key)
    kid = key_id(signing_key.public_key())
    if kid not in {key.kid for key in me.keys}:
        raise ConfigError(f"{config.signing_key}: key {kid} is not one the manifest lists for "
                          f"{config.city}")
    policy = load_policy(config.policy) if config.policy else empty_policy()
    replay = ReplayCache(config.state_path / "seen_tokens.sqlite")
    return NodeTrust(TrustState(manifest), policy, replay, credentials, signing_key, kid)
