"""The signed member manifest: the region's members, where they listen, their signing keys and
TLS certificates, and the purposes a question may be asked for.

The file is UTF-8 JSON:

    {"manifest": {"format": "cityfed.manifest.v1", "region": ..., "version": ..., ...},
     "signature": {"alg": "EdDSA", "kid": <the root key's id>, "value": <base64url, no padding>}}

The signature is Ed25519, by the region's root key, over the canonical bytes of the "manifest"
object:

    json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

That is: object keys sorted by code point, no whitespace, every character other than `"`, `\\`
and U+0000..U+001F written as itself in UTF-8, those escaped as `\\"`, `\\\\`, `\\b`, `\\f`, `\\n`,
`\\r`, `\\t` or `\\u00xx` (lowercase hex). A manifest holds only strings, integers below 2**53,
null, arrays and objects with ASCII keys; for such values this is exactly RFC 8785 (JCS), so
other languages can use a JCS library. A verifier parses the file, refuses an object with a
duplicated key (parsers disagree on which copy wins), and checks the signature over the
re-serialised object, never over the file's own bytes, so indentation in the file is free.

Times are UTC, whole seconds, written "2026-11-26T10:00:00Z". A key is valid from its
not_before (inclusive) until its not_after (exclusive); a null not_after means no end yet.
A key id is `federation.trust.keys.key_id` of its public key, and the manifest refuses any other.

A key is retired, never removed: a newer manifest lists every key the held one lists for each
member it keeps, with the same not_before and an end no earlier than the key's old end or the
newer manifest's issued_at, whichever comes first. So whatever a key signed before it was
retired (audit checkpoints, receipts) still verifies against every later manifest.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from federation.errors import CityfedError, ConfigError
from federation.trust.canonical import canonical_json, strict_loads
from federation.trust.keys import (
    SECRET_MODE,
    b64url_decode,
    b64url_encode,
    key_id,
    public_key_from_text,
    public_key_to_text,
    write_file_atomically,
)
from federation.trust.members import Member, Region
from federation.trust.pki import NAME

log = logging.getLogger(__name__)

FORMAT = "cityfed.manifest.v1"
ALGORITHM = "EdDSA"
ROLES = ("city", "authority")
# How far in the future a manifest's issued_at may be, for clocks that disagree a little.
CLOCK_SKEW = timedelta(minutes=5)
MAX_VERSION = 2**53 - 1
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_ENDPOINT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")


class ManifestRejected(CityfedError):
    """A manifest this node must not use. `why` is one stable word from REASONS."""

    status = grpc.StatusCode.FAILED_PRECONDITION
    reason = "MANIFEST_REJECTED"
    REASONS = frozenset({"unsigned", "bad_signature", "wrong_algorithm", "expired",
                         "not_yet_valid", "rollback", "wrong_region", "key_removed",
                         "malformed"})

    def __init__(self, why: str, detail: str) -> None:
        if why not in self.REASONS:
            raise ValueError(f"unknown manifest rejection {why!r}")
        super().__init__(f"manifest rejected ({why}): {detail}")
        self.why = why
        self.detail = detail


@dataclass(frozen=True)
class MemberKey:
    kid: str
    public_key: Ed25519PublicKey
    not_before: datetime
    not_after: datetime | None

    def valid_at(self, at: datetime) -> bool:
        return self.not_before <= at and (self.not_after is None or at < self.not_after)


@dataclass(frozen=True)
class ManifestMember:
    id: str
    name: str
    role: str
    endpoint: str  # "" for an authority that serves nothing
    tls_fingerprint: str
    keys: tuple[MemberKey, ...]
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Purpose:
    id: str
    description: str


@dataclass(frozen=True)
class Manifest:
    region: str
    version: int
    issued_at: datetime
    expires_at: datetime
    purposes: tuple[Purpose, ...]
    members: tuple[ManifestMember, ...]

    def member(self, member_id: str) -> ManifestMember | None:
        return next((m for m in self.members if m.id == member_id), None)

    def member_by_fingerprint(self, fingerprint: str) -> ManifestMember | None:
        wanted = fingerprint.lower()
        return next((m for m in self.members if m.tls_fingerprint == wanted), None)

    def signing_key(self, kid: str, at: datetime) -> tuple[ManifestMember, MemberKey] | None:
        """The member owning key `kid` and the key, if the key is valid at `at`."""
        for member in self.members:
            for key in member.keys:
                if key.kid == kid and key.valid_at(at):
                    return member, key
        return None

    def purpose(self, purpose_id: str) -> Purpose | None:
        return next((p for p in self.purposes if p.id == purpose_id), None)

    @property
    def cities(self) -> tuple[ManifestMember, ...]:
        return tuple(m for m in self.members if m.role == "city")

    @property
    def authorities(self) -> tuple[ManifestMember, ...]:
        return tuple(m for m in self.members if m.role == "authority")

    def to_region(self) -> Region:
        return Region(name=self.region, members=tuple(
            Member(id=m.id, endpoint=m.endpoint, name=m.name, role=m.role) for m in self.cities))


def format_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("manifest times must be timezone-aware")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


# JSON in, dataclasses out ---------------------------------------------------------------------

def _malformed(detail: str) -> ManifestRejected:
    return ManifestRejected("malformed", detail)


def _fields(value: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _malformed(f"{where} must be an object")
    missing = [k for k in keys if k not in value]
    if missing:
        raise _malformed(f"{where} lacks the field {missing[0]!r}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise _malformed(f"{where} has the unknown field {unknown[0]!r}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _malformed(f"{where} must be a list")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise _malformed(f"{where} must be a non-empty string of printable characters")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise _malformed(f"{where} must be lowercase letters, digits and hyphens, "
                         f"not {str(value)[:64]!r}")
    return value


def _time(value: Any, where: str) -> datetime:
    try:
        if not isinstance(value, str) or not _TIME.fullmatch(value):
            raise ValueError
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise _malformed(f"{where} must be a UTC time like 2026-11-26T10:00:00Z") from None


def _endpoint(value: Any, role: str, where: str) -> str:
    if value == "" and role == "authority":
        return value
    match = _ENDPOINT.fullmatch(value) if isinstance(value, str) else None
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        raise _malformed(f"{where} must be HOST:PORT" + (" or empty" if role != "city" else ""))
    return value


def _unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise _malformed(f"duplicate {what} {value!r}")
        seen.add(value)


def _key_from_json(value: Any, where: str) -> MemberKey:
    entry = _fields(value, ("kid", "public_key", "not_before", "not_after"), where)
    try:
        public_key = public_key_from_text(entry["public_key"])
    except (ValueError, AttributeError):
        raise _malformed(f"{where}.public_key must be base64url of 32 bytes") from None
    if entry["kid"] != key_id(public_key):
        raise _malformed(f"{where}.kid is not the key id of its public key")
    not_before = _time(entry["not_before"], f"{where}.not_before")
    not_after = None
    if entry["not_after"] is not None:
        not_after = _time(entry["not_after"], f"{where}.not_after")
        if not_after <= not_before:
            raise _malformed(f"{where}: not_after must be later than not_before")
    return MemberKey(entry["kid"], public_key, not_before, not_after)


def _member_from_json(value: Any, where: str) -> ManifestMember:
    entry = _fields(value, ("id", "name", "role", "endpoint", "groups", "tls_fingerprint",
                            "keys"), where)
    member_id = _name(entry["id"], f"{where}.id")
    where = f"member {member_id!r}"
    if entry["role"] not in ROLES:
        raise _malformed(f"{where}: role must be one of {', '.join(ROLES)}")
    fingerprint = entry["tls_fingerprint"]
    if not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint):
        raise _malformed(f"{where}: tls_fingerprint must be 64 lowercase hex digits")
    groups = [_name(g, f"{where}: a group") for g in _list(entry["groups"], f"{where}.groups")]
    _unique(groups, f"group in {where}:")
    keys = [_key_from_json(k, f"{where}.keys[{i}]")
            for i, k in enumerate(_list(entry["keys"], f"{where}.keys"))]
    if not keys:
        raise _malformed(f"{where} has no signing key")
    return ManifestMember(
        id=member_id, name=_text(entry["name"], f"{where}.name"), role=entry["role"],
        endpoint=_endpoint(entry["endpoint"], entry["role"], f"{where}.endpoint"),
        tls_fingerprint=fingerprint, keys=tuple(keys), groups=tuple(groups))


def manifest_from_json(obj: Any) -> Manifest:
    """The "manifest" object of a manifest file, checked strictly. Raises ManifestRejected
    ("malformed") naming the first problem."""
    body = _fields(obj, ("format", "region", "version", "issued_at", "expires_at", "purposes",
                         "members"), "the manifest")
    if body["format"] != FORMAT:
        raise _malformed(f"the format is {str(body['format'])[:64]!r}, not {FORMAT!r}")
    version = body["version"]
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise _malformed(f"the version must be an integer from 1 to {MAX_VERSION}")
    issued_at = _time(body["issued_at"], "issued_at")
    expires_at = _time(body["expires_at"], "expires_at")
    if expires_at <= issued_at:
        raise _malformed("expires_at must be later than issued_at")
    purposes = []
    for index, value in enumerate(_list(body["purposes"], "purposes")):
        entry = _fields(value, ("id", "description"), f"purposes[{index}]")
        purposes.append(Purpose(_name(entry["id"], f"purposes[{index}].id"),
                                _text(entry["description"], f"purposes[{index}].description")))
    members = [_member_from_json(value, f"members[{index}]")
               for index, value in enumerate(_list(body["members"], "members"))]
    if not members:
        raise _malformed("the manifest lists no members")
    _unique([p.id for p in purposes], "purpose id")
    _unique([m.id for m in members], "member id")
    _unique([m.tls_fingerprint for m in members], "tls_fingerprint")
    _unique([k.kid for m in members for k in m.keys], "key id")
    return Manifest(region=_name(body["region"], "region"), version=version,
                    issued_at=issued_at, expires_at=expires_at, purposes=tuple(purposes),
                    members=tuple(members))


def manifest_to_json(manifest: Manifest) -> dict[str, Any]:
    """The "manifest" object of the file. Times are written in whole seconds."""
    return {
        "format": FORMAT,
        "region": manifest.region,
        "version": manifest.version,
        "issued_at": format_time(manifest.issued_at),
        "expires_at": format_time(manifest.expires_at),
        "purposes": [{"id": p.id, "description": p.description} for p in manifest.purposes],
        "members": [
            {"id": m.id, "name": m.name, "role": m.role, "endpoint": m.endpoint,
             "groups": list(m.groups), "tls_fingerprint": m.tls_fingerprint,
             "keys": [{"kid": k.kid, "public_key": public_key_to_text(k.public_key),
                       "not_before": format_time(k.not_before),
                       "not_after": None if k.not_after is None else format_time(k.not_after)}
                      for k in m.keys]}
            for m in manifest.members
        ],
    }


# Signing and verifying ------------------------------------------------------------------------

def sign_manifest(manifest: Manifest, root_key: Ed25519PrivateKey) -> bytes:
    """The manifest file's content."""
    body = manifest_to_json(manifest)
    manifest_from_json(body)  # never sign what a verifier would refuse
    signature = {"alg": ALGORITHM, "kid": key_id(root_key.public_key()),
                 "value": b64url_encode(root_key.sign(canonical_json(body)))}
    document = {"manifest": body, "signature": signature}
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def parse_json(data: bytes) -> Any:
    """UTF-8 JSON, refusing duplicated object keys and NaN or Infinity."""
    try:
        return strict_loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise _malformed(f"not UTF-8 JSON ({str(error)[:80]})") from None


def _signed_body(data: bytes, root_public_key: Ed25519PublicKey) -> Any:
    """The "manifest" object of a file whose signature verifies with the root key."""
    document = parse_json(data)
    if not isinstance(document, dict):
        raise _malformed("the file must hold a JSON object")
    if not document.get("signature"):
        raise ManifestRejected("unsigned", "the file has no signature")
    document = _fields(document, ("manifest", "signature"), "the file")
    signature = _fields(document["signature"], ("alg", "kid", "value"), "the signature")
    if signature["alg"] != ALGORITHM:
        raise ManifestRejected("wrong_algorithm", f"the signature's alg must be {ALGORITHM}, "
                                                  f"not {str(signature['alg'])[:32]!r}")
    if not signature["value"]:
        raise ManifestRejected("unsigned", "the signature is empty")
    root_kid = key_id(root_public_key)
    if signature["kid"] != root_kid:
        raise ManifestRejected("bad_signature", f"signed by key {str(signature['kid'])[:64]!r}, "
                                                f"not by the region's root key {root_kid!r}")
    if not isinstance(document["manifest"], dict):
        raise _malformed("the manifest must be an object")
    try:
        signed = canonical_json(document["manifest"])
        root_public_key.verify(b64url_decode(signature["value"]), signed)
    except UnicodeEncodeError:
        raise _malformed("the manifest holds a string that is not valid Unicode") from None
    except (ValueError, InvalidSignature):
        raise ManifestRejected("bad_signature", "the signature does not verify with the "
                                                "region's root key") from None
    return document["manifest"]


def _check_against_held(manifest: Manifest, held: Manifest) -> None:
    if manifest.region != held.region:
        raise ManifestRejected("wrong_region", f"the manifest is for region {manifest.region!r}, "
                                               f"this node belongs to {held.region!r}")
    if manifest.version < held.version:
        raise ManifestRejected("rollback", f"version {manifest.version} is older than the held "
                                           f"version {held.version}")
    if manifest.version == held.version and manifest_to_json(manifest) != manifest_to_json(held):
        raise ManifestRejected("rollback", f"version {manifest.version} differs from the held "
                                           "manifest of the same version")
    _check_keys_kept(manifest, held)


def _check_keys_kept(manifest: Manifest, held: Manifest) -> None:
    """Refuse a manifest that drops, or ends earlier than it may, a key the held one lists for a
    member both list (see the module docstring)."""
    for before in held.members:
        after = manifest.member(before.id)
        if after is None:
            continue  # a member that leaves the region takes its keys with it
        listed = {key.kid: key for key in after.keys}
        for key in before.keys:
            where = f"member {before.id!r}: key {key.kid}"
            kept = listed.get(key.kid)
            if kept is None:
                raise ManifestRejected("key_removed", f"{where} of the held manifest is missing; "
                                       "retire a key by setting its not_after, never remove it: "
                                       "what it signed must still verify")
            if kept.not_before != key.not_before:
                raise ManifestRejected("key_removed", f"{where}: not_before changed from "
                                       f"{format_time(key.not_before)}")
            earliest = manifest.issued_at if key.not_after is None else min(
                key.not_after, manifest.issued_at)
            if kept.not_after is not None and kept.not_after < earliest:
                raise ManifestRejected("key_removed", f"{where}: not_after "
                                       f"{format_time(kept.not_after)} is before "
                                       f"{format_time(earliest)}; a key may be retired from the "
                                       "manifest's issued_at on, never back-dated")


def _check_time(manifest: Manifest, now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if now > manifest.expires_at:
        raise ManifestRejected("expired", f"the manifest expired at "
                                          f"{format_time(manifest.expires_at)}")
    if manifest.issued_at > now + CLOCK_SKEW:
        raise ManifestRejected("not_yet_valid", f"the manifest is issued at "
                                                f"{format_time(manifest.issued_at)}, "
                                                "in the future")


def verify_manifest(data: bytes, root_public_key: Ed25519PublicKey, *, now: datetime,
                    held: Manifest | None = None) -> Manifest:
    """The manifest in `data`, if it is signed by the root key, well formed, valid at `now` and
    not older than `held`, the one this node already holds. Raises ManifestRejected."""
    manifest = manifest_from_json(_signed_body(data, root_public_key))
    if held is not None:
        _check_against_held(manifest, held)
    _check_time(manifest, now)
    return manifest


def verify_held_manifest(data: bytes, root_public_key: Ed25519PublicKey) -> Manifest:
    """A manifest this node accepted before: the signature and form are checked, its times
    are not (see ManifestStore)."""
    return manifest_from_json(_signed_body(data, root_public_key))


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the manifest: {error.strerror}") from None


def _naming(path: Path, error: ManifestRejected) -> ManifestRejected:
    return ManifestRejected(error.why, f"{path}: {error.detail}")


def load_manifest(path: Path, root_public_key: Ed25519PublicKey, now: datetime | None = None,
                  held: Manifest | None = None) -> Manifest:
    try:
        return verify_manifest(_read(path), root_public_key, now=now or datetime.now(UTC),
                               held=held)
    except ManifestRejected as error:
        raise _naming(path, error) from None


class ManifestStore:
    """The last manifest a node accepted, kept as `<state_dir>/manifest.json`.

    The held copy is the floor for the rollback check, so it is loaded even after it has
    expired (its signature and form are still checked): were an expired copy dropped, a node
    restarted after its manifest lapsed would accept any older manifest someone kept. An expired
    copy is never used to serve: `current` refuses it until a newer manifest is accepted.
    """

    FILE_NAME = "manifest.json"

    def __init__(self, state_dir: Path, root_public_key: Ed25519PublicKey) -> None:
        self.path = Path(state_dir) / self.FILE_NAME
        self._root = root_public_key
        self._lock = threading.Lock()
        self._held: Manifest | None = None
        if self.path.exists():
            try:
                self._held = verify_held_manifest(_read(self.path), root_public_key)
            except ManifestRejected as error:
                raise _naming(self.path, error) from None

    @property
    def held(self) -> Manifest | None:
        return self._held

    def current(self, now: datetime | None = None) -> Manifest:
        """The held manifest, if it is valid now."""
        held = self._held
        if held is None:
            raise ConfigError(f"{self.path}: no manifest has been accepted yet")
        _check_time(held, now or datetime.now(UTC))
        return held

    def accept(self, source: Path | bytes, now: datetime | None = None,
               check: Callable[[Manifest], None] | None = None) -> Manifest:
        """Verify a new manifest against the held one and keep it as the held copy. `check`, the
        holder's own conditions (a node: that it lists this city as it is configured), may
        raise to refuse it before it is kept."""
        data = source if isinstance(source, bytes) else _read(source)
        with self._lock:
            try:
                manifest = verify_manifest(data, self._root, now=now or datetime.now(UTC),
                                           held=self._held)
            except ManifestRejected as error:
                if isinstance(source, bytes):
                    raise
                raise _naming(source, error) from None
            if check is not None:
                check(manifest)
            if self._held is not None and manifest.version == self._held.version:
                return self._held  # the same manifest again (verify_manifest checked it is)
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_file_atomically(self.path, data, SECRET_MODE)  # a node's state, its user's alone
            self._held = manifest
        return manifest


class ManifestWatcher:
    """Offers a manifest file to `reload` once at start (it may have changed while its holder
    was starting), then whenever the file changes (its modification time, size or inode: a copy
    moved into place counts), looking every `interval` seconds (0: never by itself), and
    whenever `check_now` is called (SIGHUP, say). `reload` reads the file itself, logs what it
    took and raises what it refuses (logged here, and the watch goes on)."""

    def __init__(self, path: Path, reload: Callable[[], object], *, interval: float = 1.0,
                 name: str = "manifest-watch") -> None:
        if interval < 0:
            raise ValueError("the interval must be 0 or more")
        self.path = Path(path)
        self._reload = reload
        self._interval = interval
        self._seen: tuple[int, int, int, int] | None = None
        self._wake = threading.Event()
        self._forced = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def start(self) -> ManifestWatcher:
        self._thread.start()
        return self

    def check_now(self) -> None:
        """Offer the file again at once, changed or not. Safe in a signal handler."""
        self._forced = True
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _signature(self) -> tuple[int, int, int, int] | None:
        try:
            found = self.path.stat()
        except OSError:
            return None  # being replaced, or gone: wait for the next one
        return found.st_mtime_ns, found.st_size, found.st_ino, found.st_dev

    def _run(self) -> None:
        while not self._stopped:
            forced, self._forced = self._forced, False
            signature = self._signature()
            if signature is not None and (signature != self._seen or forced):
                self._seen = signature
                try:
                    self._reload()
                except CityfedError as refusal:
                    log.warning("%s: not taken, the held manifest stays in force: %s",
                                self.path, refusal)
                except Exception:
                    log.exception("%s: reloading the manifest failed", self.path)
            self._wake.wait(self._interval or None)
            self._wake.clear()
