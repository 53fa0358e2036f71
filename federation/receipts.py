"""Signed receipts: a node's signature over what it was asked, what it answered and where the
answer is recorded in its audit log. The caller keeps them; anyone holding the manifest can
verify one later.

A receipt travels in the response's trailing metadata under RECEIPT_METADATA_KEY, as canonical
JSON: {"city", "kid", "jti", "request_sha256", "response_sha256", "audit_index", "time",
"signature"}. request_sha256 is the SHA-256 of the exact plan bytes (the request token binds the
same hash); response_sha256 is the SHA-256 of the exact response bytes on the wire; the
signature is Ed25519, by the city's manifest key `kid`, over the canonical JSON of every other
field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime

import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.canonical import canonical_json
from federation.errors import CityfedError
from federation.keys import b64url_decode, b64url_encode
from federation.manifest import Manifest

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
    request_sha256: str
    response_sha256: str
    audit_index: int
    time: str
    signature: str = ""

    def _fields(self) -> dict:
        # asdict would deep-copy each (flat, immutable) field: a third of signing a receipt.
        return {f.name: getattr(self, f.name) for f in _RECEIPT_FIELDS}

    def signed_bytes(self) -> bytes:
        fields = self._fields()
        del fields["signature"]
        return canonical_json(fields)

    def to_json(self) -> str:
        return canonical_json(self._fields()).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> Receipt:
        try:
            fields = json.loads(text)
            receipt = cls(**fields)
        except (ValueError, TypeError):
            raise ReceiptInvalid("the receipt is not a cityfed receipt") from None
        if not isinstance(receipt.audit_index, int) or not all(
                isinstance(getattr(receipt, name), str)
                for name in ("city", "kid", "jti", "request_sha256", "response_sha256", "time",
                             "signature")):
            raise ReceiptInvalid("the receipt has fields of the wrong type")
        return receipt


_RECEIPT_FIELDS = fields(Receipt)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign_receipt(*, key: Ed25519PrivateKey, kid: str, city: str, jti: str, plan_bytes: bytes,
                 response_bytes: bytes, audit_index: int, now: datetime | None = None) -> Receipt:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    unsigned = Receipt(city, kid, jti, sha256_hex(plan_bytes), sha256_hex(response_bytes),
                       audit_index, moment.isoformat(timespec="milliseconds").replace("+00:00",
                                                                                      "Z"))
    return replace(unsigned, signature=b64url_encode(key.sign(unsigned.signed_bytes())))


def verify_receipt(receipt: Receipt, *, manifest: Manifest, city: str, plan_bytes: bytes,
                   response_bytes: bytes) -> None:
    """Check that `city` signed this receipt for exactly these plan and response bytes."""
    if receipt.city != city:
        raise ReceiptInvalid(f"the receipt is from {receipt.city[:64]!r}, not {city}")
    if receipt.request_sha256 != sha256_hex(plan_bytes):
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
