"""Signed receipts: a node's signature over what it was asked, what it answered and where the
answer is recorded in its audit log. The caller keeps them; anyone holding the manifest can
verify one later. docs/audit.md ("Receipts") is the format, for verifiers in any language.

A receipt travels in the response's trailing metadata under RECEIPT_METADATA_KEY, as canonical
JSON: {"city", "kid", "jti", "plan_sha256", "request_sha256", "response_sha256", "audit_index",
"time", "signature"}. plan_sha256 is the SHA-256 of the exact plan bytes (the request token
binds the same hash); request_sha256 is the same hash under its old, misleading name, still
written so that verifiers reading only it go on working (deprecated); response_sha256 is the
SHA-256 of the exact response bytes on the wire. The signature is Ed25519, by the city's
manifest key `kid`, over the canonical JSON of every other member of the object, whatever they
are: a receipt from a node before plan_sha256 verifies, and so will one with members added
later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.errors import CityfedError
from federation.trust.canonical import canonical_json, strict_loads
from federation.trust.keys import b64url_decode, b64url_encode
from federation.trust.manifest import Manifest

RECEIPT_METADATA_KEY = "cityfed-receipt"


class ReceiptInvalid(CityfedError):
    """A receipt that is missing, malformed, or does not prove what it claims."""

    status = grpc.StatusCode.DATA_LOSS
    reason = "RECEIPT_INVALID"


@dataclass(frozen=True)
class Receipt:
    city: str
    kid: str
    jti: str
    # The plan's hash. None only in a receipt from a node before this member existed.
    plan_sha256: str | None
    response_sha256: str
    audit_index: int
    time: str
    signature: str = ""
    # Deprecated: the plan's hash again, under the name receipts had first.
    request_sha256: str | None = None
    # Members this version does not know, as (name, value): signed, so kept as they came.
    others: tuple[tuple[str, Any], ...] = ()

    @property
    def plan_hash(self) -> str:
        return self.plan_sha256 if self.plan_sha256 is not None else self.request_sha256 or ""

    def _members(self) -> dict:
        # asdict would deep-copy each (flat, immutable) field: a third of signing a receipt.
        members = {name: getattr(self, name) for name in _KNOWN}
        members = {name: value for name, value in members.items() if value is not None}
        members.update(self.others)
        return members

    def signed_bytes(self) -> bytes:
        members = self._members()
        del members["signature"]
        return canonical_json(members)

    def to_json(self) -> str:
        return canonical_json(self._members()).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> Receipt:
        try:
            members = strict_loads(text.encode() if isinstance(text, str) else text)
        except (ValueError, RecursionError):
            raise ReceiptInvalid("the receipt is not a cityfed receipt") from None
        if not isinstance(members, dict) or not members.keys() >= _REQUIRED or not (
                "plan_sha256" in members or "request_sha256" in members):
            raise ReceiptInvalid("the receipt is not a cityfed receipt")
        audit_index = members["audit_index"]
        if (not isinstance(audit_index, int) or isinstance(audit_index, bool)
                or not all(isinstance(members.get(name, ""), str) for name in _TEXT)):
            raise ReceiptInvalid("the receipt has fields of the wrong type")
        plan, request = members.get("plan_sha256"), members.get("request_sha256")
        if plan is not None and request is not None and plan != request:
            raise ReceiptInvalid("the receipt's plan_sha256 and request_sha256 differ")
        return cls(**{name: members.get(name) for name in _KNOWN},
                   others=tuple((name, value) for name, value in members.items()
                                if name not in _KNOWN))


_KNOWN = tuple(f.name for f in fields(Receipt) if f.name != "others")
_REQUIRED = frozenset({"city", "kid", "jti", "response_sha256", "audit_index", "time",
                       "signature"})
_TEXT = ("city", "kid", "jti", "plan_sha256", "request_sha256", "response_sha256", "time",
         "signature")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign_receipt(*, key: Ed25519PrivateKey, kid: str, city: str, jti: str, plan_bytes: bytes,
                 response_bytes: bytes, audit_index: int, now: datetime | None = None) -> Receipt:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    plan_sha256 = sha256_hex(plan_bytes)
    unsigned = Receipt(city, kid, jti, plan_sha256, sha256_hex(response_bytes), audit_index,
                       moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                       request_sha256=plan_sha256)
    return replace(unsigned, signature=b64url_encode(key.sign(unsigned.signed_bytes())))


def verify_receipt(receipt: Receipt, *, manifest: Manifest, city: str, plan_bytes: bytes,
                   response_bytes: bytes) -> None:
    """Check that `city` signed this receipt for exactly these plan and response bytes."""
    if receipt.city != city:
        raise ReceiptInvalid(f"the receipt is from {receipt.city[:64]!r}, not {city}")
    if receipt.plan_hash != sha256_hex(plan_bytes):
        raise ReceiptInvalid("the receipt is for another request")
    if receipt.response_sha256 != sha256_hex(response_bytes):
        raise ReceiptInvalid("the receipt is for another response")
    verify_receipt_signature(receipt, manifest)


def verify_receipt_signature(receipt: Receipt, manifest: Manifest) -> None:
    """Check that the receipt's city signed it with a key the manifest listed at its time."""
    city = receipt.city
    try:
        moment = datetime.fromisoformat(receipt.time.replace("Z", "+00:00"))
    except ValueError:
        raise ReceiptInvalid("the receipt's time is not ISO 8601") from None
    found = manifest.signing_key(receipt.kid, moment)
    if found is None or found[0].id != city:
        raise ReceiptInvalid(f"{receipt.kid[:40]!r} was not a key of {city} at {receipt.time}")
    try:
        found[1].public_key.verify(b64url_decode(receipt.signature), receipt.signed_bytes())
    except (InvalidSignature, ValueError):
        raise ReceiptInvalid("the receipt's signature does not verify") from None
