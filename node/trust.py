"""What a node trusts: the region's manifest (checked against the pinned root key and the
manifest it held before; a newer one is taken while the node runs), its own TLS identity, the
owner's policy and the memory of token ids already used."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.errors import ConfigError
from federation.serving.guard import TrustState
from federation.trust.keys import key_id, public_key_from_text, read_private_key
from federation.trust.manifest import Manifest, ManifestStore
from federation.trust.pki import certificate_fingerprint
from node.config import NodeConfig
from node.policy import Policy, empty_policy, load_policy
from node.replay import ReplayCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManifestReload:
    previous: Manifest
    held: Manifest


@dataclass
class NodeTrust:
    state: TrustState
    policy: Policy
    replay: ReplayCache
    server_credentials: grpc.ServerCredentials
    signing_key: Ed25519PrivateKey
    kid: str
    config: NodeConfig
    manifests: ManifestStore
    certificate_fingerprint: str
    _reloading: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def close(self) -> None:
        self.replay.close()

    def reload_manifest(self) -> ManifestReload:
        """Read the configured manifest file again and hold it if start-up would accept it:
        signed by the pinned root, for this region, valid now, not older than the held one,
        keeping every key the held one lists, and listing this city with its certificate and
        key. Raises (ManifestRejected, ConfigError) otherwise: the held one stays."""
        with self._reloading:
            manifest = self.manifests.accept(self.config.manifest, check=self._check_listed)
            previous = self.state.replace(manifest)
        if manifest.version != previous.version:
            log.info("%s: manifest version %d now in force (was %d): %d members",
                     self.config.manifest, manifest.version, previous.version,
                     len(manifest.members))
        return ManifestReload(previous, manifest)

    def _check_listed(self, manifest: Manifest) -> None:
        check_listed(manifest, self.config, self.certificate_fingerprint, self.kid)


def check_listed(manifest: Manifest, config: NodeConfig, fingerprint: str, kid: str) -> None:
    """The manifest lists this node's city with its TLS certificate and its signing key."""
    me = manifest.member(config.city)
    if me is None or me.role != "city":
        raise ConfigError(f"{config.manifest}: {config.city!r} is not a city of the region")
    if fingerprint != me.tls_fingerprint:
        raise ConfigError(f"{config.tls_certificate}: not the certificate the manifest lists "
                          f"for {config.city}")
    if kid not in {key.kid for key in me.keys}:
        raise ConfigError(f"{config.signing_key}: key {kid} is not one the manifest lists for "
                          f"{config.city}")


def _read(path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the {what}: {error.strerror}") from None


def load_node_trust(config: NodeConfig) -> NodeTrust:
    root_key = public_key_from_text(_read(config.root_public_key, "root public key").decode())
    certificate = _read(config.tls_certificate, "TLS certificate")
    fingerprint = certificate_fingerprint(certificate)
    signing_key = read_private_key(config.signing_key)
    kid = key_id(signing_key.public_key())
    manifests = ManifestStore(config.state_path, root_key)
    manifest = manifests.accept(config.manifest, check=lambda found: check_listed(
        found, config, fingerprint, kid))
    credentials = grpc.ssl_server_credentials(
        [(_read(config.tls_private_key, "TLS private key"), certificate)],
        root_certificates=_read(config.tls_ca, "CA certificate"),
        require_client_auth=True,
    )
    policy = load_policy(config.policy) if config.policy else empty_policy()
    replay = ReplayCache(config.state_path / "seen_tokens.sqlite")
    return NodeTrust(TrustState(manifest), policy, replay, credentials, signing_key, kid,
                     config, manifests, fingerprint)
