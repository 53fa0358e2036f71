"""The node's observer of every call: one audit record per request, granted or refused, written
before the answer leaves, and a signed receipt for every answer that carries data.

A record holds who asked, under which purpose, which plan (by hash), what was decided and how
much was returned; never personal data and never result values."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.errors import CityfedError
from federation.trust.receipts import RECEIPT_METADATA_KEY, sha256_hex, sign_receipt
from node.audit import AuditLog

# Successful calls of these services are routine and not recorded; refusals always are.
UNRECORDED_WHEN_GRANTED = ("/grpc.health.v1.", "/grpc.reflection.")
# What an AdminService load adds to its record, when the servicer established it.
INGEST_FIELDS = ("dataset", "ingest_mode", "rows_loaded", "path_sha256")
# What a linkage step adds: which linkage, this city's role, the mode, and how many blinded
# points it sent and received (padded sizes, never identifiers).
LINKAGE_FIELDS = ("linkage_id", "linkage_role", "linkage_mode", "points_sent", "points_received")


class AuditRecorder:
    def __init__(self, log: AuditLog, *, city: str, signing_key: Ed25519PrivateKey,
                 kid: str) -> None:
        self.log = log
        self.city = city
        self._key = signing_key
        self._kid = kid

    def finish(self, method: str, context: grpc.ServicerContext, response, error,
               facts: dict, started: float) -> None:
        if error is None and method.startswith(UNRECORDED_WHEN_GRANTED):
            return
        response_bytes = response.SerializeToString() if response is not None else None
        plan_bytes = facts.get("plan_bytes")
        index = self.log.append(self._record(method, error, facts, started, plan_bytes,
                                             response_bytes))
        if response_bytes is not None and plan_bytes is not None:
            receipt = sign_receipt(key=self._key, kid=self._kid, city=self.city,
                                   jti=facts.get("jti", ""), plan_bytes=plan_bytes,
                                   response_bytes=response_bytes, audit_index=index)
            context.set_trailing_metadata(((RECEIPT_METADATA_KEY, receipt.to_json()),))

    def _record(self, method: str, error: CityfedError | None, facts: dict, started: float,
                plan_bytes: bytes | None, response_bytes: bytes | None) -> dict:
        return {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "city": self.city,
            "caller": facts.get("caller"),
            "peer_fingerprint": facts.get("peer_fingerprint"),
            "purpose": facts.get("purpose"),
            "method": method,
            "plan_sha256": sha256_hex(plan_bytes) if plan_bytes is not None else None,
            "jti": facts.get("jti"),
            "decision": "refused" if error is not None else "granted",
            "status": (error.status if error is not None else grpc.StatusCode.OK).name,
            "reason": _reason(error),
            "groups_returned": facts.get("groups_returned", 0),
            "groups_suppressed": 0,
            "epsilon": facts.get("epsilon", 0.0),
            "delta": facts.get("delta", 0.0),
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "response_sha256": sha256_hex(response_bytes) if response_bytes is not None else None,
            **{name: facts[name] for name in (*INGEST_FIELDS, *LINKAGE_FIELDS) if name in facts},
        }


def _reason(error: CityfedError | None) -> str:
    """The stable reason, and the message when it is ours alone: a message about a malformed
    request can quote the caller's own literals, which may be personal data, and one about a
    file to load names the file and can quote its rows."""
    if error is None:
        return ""
    if error.status in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
        return error.reason
    return f"{error.reason}: {error}"[:300]
