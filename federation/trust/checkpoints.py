"""Signed audit checkpoints (docs/audit.md): a city's Merkle root over the first records of its
log, signed with its key from the manifest, and the checks anyone holding the manifest can make
of them: the signature, and that a later checkpoint's log extends an earlier one's (RFC 9162).

A node writes them (node/audit.py); an authority, a regulator or the console checks them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from federation.trust import merkle
from federation.trust.canonical import canonical_json
from federation.trust.keys import b64url_decode, key_id
from federation.trust.manifest import Manifest

CHECKPOINT_FIELDS = ("log", "size", "root", "time", "last_leaf", "kid", "signature")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def format_time(seconds: float) -> str:
    """Seconds since the epoch as ISO 8601 UTC with milliseconds: 2026-11-26T10:00:00.123Z."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; a time without a zone is UTC. Raises ValueError."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class Checkpoint:
    log: str
    size: int
    root: str
    time: str
    last_leaf: str | None
    kid: str
    signature: str

    def signed_body(self) -> dict[str, Any]:
        return {"log": self.log, "size": self.size, "root": self.root, "time": self.time,
                "last_leaf": self.last_leaf}

    def signed_bytes(self) -> bytes:
        return canonical_json(self.signed_body())

    def to_json(self) -> dict[str, Any]:
        return {**self.signed_body(), "kid": self.kid, "signature": self.signature}

    @property
    def moment(self) -> datetime:
        return parse_time(self.time)

    @classmethod
    def from_json(cls, obj: Any) -> Checkpoint:
        """Checked strictly; raises ValueError naming the first problem."""
        if isinstance(obj, Checkpoint):
            return obj
        if not isinstance(obj, dict):
            raise ValueError("a checkpoint is a JSON object")
        missing = [name for name in CHECKPOINT_FIELDS if name not in obj]
        if missing:
            raise ValueError(f"the checkpoint lacks {missing[0]!r}")
        unknown = sorted(set(obj) - set(CHECKPOINT_FIELDS))
        if unknown:
            raise ValueError(f"the checkpoint has the unknown field {unknown[0][:40]!r}")
        size = obj["size"]
        if type(size) is not int or size < 0:
            raise ValueError("the checkpoint's size must be a non-negative integer")
        if not isinstance(obj["root"], str) or not _HEX64.fullmatch(obj["root"]):
            raise ValueError("the checkpoint's root must be 64 lowercase hex digits")
        if not isinstance(obj["time"], str) or not _TIME.fullmatch(obj["time"]):
            raise ValueError("the checkpoint's time must look like 2026-11-26T10:00:00.123Z")
        try:
            parse_time(obj["time"])
        except ValueError:
            raise ValueError("the checkpoint's time is not a valid time") from None
        last = obj["last_leaf"]
        if size == 0 and last is not None:
            raise ValueError("an empty checkpoint has no last leaf")
        if size > 0 and (not isinstance(last, str) or not _HEX64.fullmatch(last)):
            raise ValueError("the checkpoint's last_leaf must be 64 lowercase hex digits")
        for name in ("log", "kid", "signature"):
            if not isinstance(obj[name], str) or not obj[name]:
                raise ValueError(f"the checkpoint's {name} must be a non-empty string")
        return cls(**{name: obj[name] for name in CHECKPOINT_FIELDS})


KeyLookup = Callable[[str], Ed25519PublicKey | None]
# A lookup by key id, or a verified manifest: then the key must be listed for the member the
# checkpoint's "log" names and be valid at the checkpoint's time.
PublicKeys = KeyLookup | Manifest


def key_lookup(*keys: Ed25519PublicKey) -> KeyLookup:
    """A lookup that knows exactly these keys, by their key ids."""
    known = {key_id(key): key for key in keys}
    return known.get


def _checkpoint_key(checkpoint: Checkpoint, public_keys: PublicKeys) -> Ed25519PublicKey | None:
    if isinstance(public_keys, Manifest):
        found = public_keys.signing_key(checkpoint.kid, checkpoint.moment)
        if found is None or found[0].id != checkpoint.log:
            return None
        return found[1].public_key
    return public_keys(checkpoint.kid)


def _signature_problem(checkpoint: Checkpoint, public_keys: PublicKeys) -> str | None:
    key = _checkpoint_key(checkpoint, public_keys)
    if key is None:
        listed = "the manifest lists for" if isinstance(public_keys, Manifest) else "known for"
        return (f"is signed by key {checkpoint.kid[:64]!r}, which is not a key {listed} "
                f"{checkpoint.log[:64]!r} at {checkpoint.time}")
    try:
        key.verify(b64url_decode(checkpoint.signature), checkpoint.signed_bytes())
    except (ValueError, InvalidSignature):
        return f"has a signature that does not verify with key {checkpoint.kid[:64]!r}"
    return None


def verify_checkpoint(checkpoint: dict | Checkpoint, public_keys: PublicKeys) -> bool:
    """Is this a well-formed checkpoint signed by a key of the log's city?"""
    try:
        parsed = Checkpoint.from_json(checkpoint)
    except ValueError:
        return False
    return _signature_problem(parsed, public_keys) is None


def check_consistency_between(old: dict | Checkpoint, new: dict | Checkpoint,
                              proof_hex: Sequence[str], public_keys: PublicKeys) -> str | None:
    """None when the newer checkpoint's log extends the older one's (both signed by the city,
    the proof an RFC 9162 consistency proof between them); else what is wrong."""
    checked = []
    for name, value in (("old", old), ("new", new)):
        try:
            checkpoint = Checkpoint.from_json(value)
        except ValueError as error:
            return f"the {name} checkpoint is malformed: {error}"
        problem = _signature_problem(checkpoint, public_keys)
        if problem:
            return f"the {name} checkpoint {problem}"
        checked.append(checkpoint)
    first, second = checked
    if first.log != second.log:
        return f"the checkpoints are of different logs ({first.log!r}, {second.log!r})"
    if first.size > second.size:
        return f"the old checkpoint is larger ({first.size}) than the new one ({second.size})"
    if first.time > second.time:
        return f"the old checkpoint ({first.time}) is later than the new one ({second.time})"
    try:
        proof = [bytes.fromhex(p) for p in proof_hex]
    except (TypeError, ValueError):
        return "the proof must be a list of hex hashes"
    if not merkle.verify_consistency(first.size, second.size, bytes.fromhex(first.root),
                                     bytes.fromhex(second.root), proof):
        return (f"the proof does not show that the log of size {second.size} extends the "
                f"log of size {first.size}")
    return None


def verify_consistency_between(old: dict | Checkpoint, new: dict | Checkpoint,
                               proof_hex: Sequence[str], public_keys: PublicKeys) -> bool:
    return check_consistency_between(old, new, proof_hex, public_keys) is None


def verify_record_inclusion(line: bytes, index: int, checkpoint: dict | Checkpoint,
                            proof_hex: Sequence[str], public_keys: PublicKeys) -> bool:
    """Is `line` (a record's exact bytes, without the newline) record `index` of the log a
    signed checkpoint covers?"""
    try:
        parsed = Checkpoint.from_json(checkpoint)
        proof = [bytes.fromhex(p) for p in proof_hex]
    except (TypeError, ValueError):
        return False
    if _signature_problem(parsed, public_keys) is not None:
        return False
    return merkle.verify_inclusion(merkle.leaf_hash(line), index, parsed.size, proof,
                                   bytes.fromhex(parsed.root))
