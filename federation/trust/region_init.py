"""A region's keys, certificates and first signed manifest, in one command; key rotation; and
the purposes questions may be asked for.

Layout of the region folder:

    root/root.key                 the Ed25519 root key that signs the manifest (0600): keep offline
    root/root.pub                 its public key, one line of base64url: every node pins it
    root/ca.key, root/ca.pem      the TLS certificate authority (key 0600)
    members/<id>/signing.key      the member's current Ed25519 signing key (0600)
    members/<id>/tls.key, tls.pem the member's TLS key (0600) and certificate
    manifest.json                 the signed manifest

Folders holding private keys are 0700 (tightened when they exist with a looser mode).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.errors import ConfigError
from federation.trust.keys import (
    PUBLIC_MODE,
    generate_signing_key,
    key_id,
    read_private_key,
    write_file_atomically,
    write_private_key,
    write_public_key,
)
from federation.trust.manifest import (
    Manifest,
    ManifestMember,
    ManifestRejected,
    MemberKey,
    Purpose,
    sign_manifest,
    verify_held_manifest,
)
from federation.trust.pki import (
    certificate_fingerprint,
    check_name,
    create_ca,
    issue_member_certificate,
    write_certificate,
    write_tls_key,
)
from federation.trust.private_files import private_folder

DEFAULT_PURPOSES = (
    Purpose("population-statistics",
            "Residents by area, age and sex, for planning public services."),
    Purpose("transit-planning",
            "Trips across city lines, for planning transit between the cities."),
    Purpose("medical-settlement-statistics",
            "Medical spending outside the insuring city, for settling accounts between funds."),
    Purpose("pension-fraud-check",
            "Deaths registered in one city against pensions still paid in another."),
    Purpose("medical-insurance-check",
            "Medical insurance active in two cities at once."),
    Purpose("marriage-registry-check",
            "Marriages registered in two cities with neither dissolved."),
)


@dataclass(frozen=True)
class MemberFiles:
    id: str
    signing_key: Path
    tls_key: Path
    tls_certificate: Path


@dataclass(frozen=True)
class InitResult:
    directory: Path
    root_key: Path
    root_public_key: Path
    ca_key: Path
    ca_certificate: Path
    manifest: Path
    members: tuple[MemberFiles, ...]

    def member(self, member_id: str) -> MemberFiles:
        return next(m for m in self.members if m.id == member_id)


def check_purpose(purpose: Purpose) -> Purpose:
    check_name(purpose.id, "purpose")
    if not purpose.description.strip() or not purpose.description.isprintable():
        raise ConfigError(f"purpose {purpose.id!r} needs a description of what its answers are "
                          "for, on one line: cities' policies grant access by purpose")
    return purpose


def _member_files(directory: Path, member_id: str) -> MemberFiles:
    folder = directory / "members" / member_id
    return MemberFiles(member_id, folder / "signing.key", folder / "tls.key", folder / "tls.pem")


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def init_region(directory: Path, *, region: str, cities: list[tuple[str, str]],
                authorities: list[tuple[str, str]],
                hosts: tuple[str, ...] | list[str] = ("127.0.0.1", "localhost"),
                base_port: int = 7401, purposes: list[Purpose] | None = None,
                valid_days: int = 365, now: datetime | None = None,
                force: bool = False) -> InitResult:
    """Create a region's root key, CA, member keys and certificates, and manifest version 1.
    City i listens on hosts[0]:base_port+i; authorities serve nothing."""
    directory = Path(directory)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    check_name(region, "region")
    ids = [member_id for member_id, _ in (*cities, *authorities)]
    for member_id in ids:
        check_name(member_id, "member id")
    if len(set(ids)) != len(ids):
        raise ConfigError("member ids must be unique")
    purposes = [check_purpose(p) for p in (DEFAULT_PURPOSES if purposes is None else purposes)]
    if len({p.id for p in purposes}) != len(purposes):
        raise ConfigError("purpose ids must be unique")
    if not hosts:
        raise ConfigError("at least one host is needed for the TLS certificates")
    root = directory / "root"
    result = InitResult(directory, root / "root.key", root / "root.pub", root / "ca.key",
                        root / "ca.pem", directory / "manifest.json",
                        tuple(_member_files(directory, member_id) for member_id in ids))
    if result.root_key.exists() and not force:
        raise ConfigError(f"{result.root_key}: the region already has a root key; "
                          "replacing it (--force) makes every node's pinned key useless")

    private_folder(root)
    private_folder(directory / "members")
    root_key = generate_signing_key()
    write_private_key(result.root_key, root_key)
    write_public_key(result.root_public_key, root_key.public_key())
    ca_key, ca_cert = create_ca(region, now=now)
    write_tls_key(result.ca_key, ca_key)
    write_certificate(result.ca_certificate, ca_cert)

    roles = [("city", "cities")] * len(cities) + [("authority", "authorities")] * len(authorities)
    names = [name or member_id for member_id, name in (*cities, *authorities)]
    members = []
    for index, (files, (role, group), name) in enumerate(zip(result.members, roles, names,
                                                             strict=True)):
        private_folder(files.signing_key.parent)
        signing_key = generate_signing_key()
        write_private_key(files.signing_key, signing_key)
        tls_key, tls_cert = issue_member_certificate(ca_key, ca_cert, files.id, region,
                                                     list(hosts), now=now)
        write_tls_key(files.tls_key, tls_key)
        write_certificate(files.tls_certificate, tls_cert)
        members.append(ManifestMember(
            id=files.id, name=name, role=role,
            endpoint=_endpoint(hosts[0], base_port + index) if role == "city" else "",
            tls_fingerprint=certificate_fingerprint(tls_cert),
            keys=(MemberKey(key_id(signing_key.public_key()), signing_key.public_key(), now,
                            None),),
            groups=(group,)))

    manifest = Manifest(region=region, version=1, issued_at=now,
                        expires_at=now + timedelta(days=valid_days),
                        purposes=tuple(purposes),
                        members=tuple(members))
    write_file_atomically(result.manifest, sign_manifest(manifest, root_key), PUBLIC_MODE)
    return result


def rotate_member_key(directory: Path, member_id: str, now: datetime,
                      old_key_grace: timedelta) -> Path:
    """Give a member a new signing key; returns the path of its key file.

    The new key replaces `members/<id>/signing.key` (the member always signs with that file; the
    kid follows from the key) and is listed from `now`. The member's older keys stay in the
    manifest, valid until now + old_key_grace, so tokens and receipts they signed still verify
    in the meantime; their private halves are not kept. The manifest gets the next version, is
    issued at `now` with its validity period unchanged in length, and is re-signed by the root.
    """
    directory = Path(directory)
    if old_key_grace <= timedelta(0):
        raise ConfigError("the old key's grace period must be positive")
    now = now.replace(microsecond=0)
    root_key = read_private_key(directory / "root" / "root.key")
    manifest_path = directory / "manifest.json"
    manifest = _signed_manifest(manifest_path, root_key)
    member = manifest.member(member_id)
    if member is None:
        raise ConfigError(f"{manifest_path}: no member {member_id!r}")

    grace_end = now + old_key_grace
    new_key = generate_signing_key()
    old_keys = [dataclasses.replace(k, not_after=grace_end)
                if k.not_after is None or k.not_after > grace_end else k for k in member.keys]
    keys = (*old_keys, MemberKey(key_id(new_key.public_key()), new_key.public_key(), now, None))
    members = tuple(dataclasses.replace(m, keys=keys) if m.id == member_id else m
                    for m in manifest.members)
    rotated = _next_version(manifest, now, members=members)
    # The manifest first: should writing the key then fail, the old key still works.
    write_file_atomically(manifest_path, sign_manifest(rotated, root_key), PUBLIC_MODE)
    key_path = _member_files(directory, member_id).signing_key
    private_folder(key_path.parent)
    write_private_key(key_path, new_key)
    return key_path


def add_purpose(directory: Path, purpose: Purpose, now: datetime,
                root_key_path: Path | None = None) -> Manifest:
    """Register a purpose in the region's manifest: the next version, issued at `now` with its
    validity period unchanged in length, signed by the root key (`root/root.key` unless
    `root_key_path` says where the offline key is). Returns the new manifest."""
    directory = Path(directory)
    check_purpose(purpose)
    root_key = read_private_key(root_key_path or directory / "root" / "root.key")
    manifest_path = directory / "manifest.json"
    manifest = _signed_manifest(manifest_path, root_key)
    if manifest.purpose(purpose.id) is not None:
        raise ConfigError(f"{manifest_path}: purpose {purpose.id!r} is already registered")
    added = _next_version(manifest, now.replace(microsecond=0),
                          purposes=(*manifest.purposes, purpose))
    write_file_atomically(manifest_path, sign_manifest(added, root_key), PUBLIC_MODE)
    return added


def _signed_manifest(path: Path, root_key: Ed25519PrivateKey) -> Manifest:
    """The manifest at `path`, which must be signed by this root key."""
    try:
        return verify_held_manifest(path.read_bytes(), root_key.public_key())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the manifest: {error.strerror}") from None
    except ManifestRejected as error:
        raise ConfigError(f"{path}: {error}") from None


def _next_version(manifest: Manifest, now: datetime, **changes) -> Manifest:
    return dataclasses.replace(manifest, version=manifest.version + 1, issued_at=now,
                               expires_at=now + (manifest.expires_at - manifest.issued_at),
                               **changes)
