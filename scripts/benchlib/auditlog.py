"""A large audit log, written fast: a node's log as it would stand after `records` requests,
with the same bytes the node would write (records chained, signed checkpoints every
`checkpoint_every` records, segments ending at checkpoints, the state at the last checkpoint),
but without going through AuditLog.append (34 µs a record; this takes about 4).

Every record is the same granted Aggregate call except for its index, token id and prev.
`cityfed audit verify` accepts the result, which is what tests check on a small one."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.trust import merkle
from federation.trust.keys import b64url_encode, key_id
from node.audit import (
    CHECKPOINT_FILE,
    DEFAULT_SEGMENT_BYTES,
    HEAD_FILE,
    ZERO_HASH,
    Checkpoint,
    LogState,
    encode,
    format_time,
    segment_name,
    write_state,
)

# A sentinel per varying field, replaced by a %-placeholder in the encoded template.
_INDEX, _JTI, _PREV = 987654321987654321, "j" * 32, "p" * 64


def _template(city: str, filler: int) -> bytes:
    record = {
        "time": "2026-11-26T10:00:00.123Z", "city": city, "caller": "jjj-health",
        "peer_fingerprint": "f" * 64, "purpose": "population-statistics",
        "method": "/cityfed.v1.NodeService/Aggregate", "plan_sha256": "a" * 64, "jti": _JTI,
        "decision": "granted", "status": "OK", "reason": "", "groups_returned": 12,
        "groups_suppressed": 0, "epsilon": 0.1, "delta": 1e-9, "duration_ms": 3.125,
        "response_sha256": "c" * 64, "dataset": "x" * filler,
        "index": _INDEX, "prev": _PREV,
    }
    if not filler:
        del record["dataset"]
    line = encode(record).replace(b"%", b"%%")
    line = line.replace(str(_INDEX).encode(), b"%d").replace(_JTI.encode(), b"%032x")
    return line.replace(_PREV.encode(), b"%s")


def write_log(directory: Path, *, key: Ed25519PrivateKey, city: str, records: int,
              checkpoint_every: int = 1000, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
              record_bytes: int | None = None) -> LogState:
    """Write a log of `records` records into the empty folder `directory`, each line about
    `record_bytes` long with its newline (about 675 when not given: a node's records are
    636 on average); return its state at the last checkpoint."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    moment = time.time()  # checkpoints must not predate the key the manifest lists
    kid = key_id(key.public_key())
    template = _template(city, 0)
    shortest = len(template % (0, 0, ZERO_HASH.encode())) + 1
    if record_bytes is not None and record_bytes > shortest:
        template = _template(city, record_bytes - shortest - len(b',"dataset":""'))
    tree = merkle.TreeBuilder()
    prev = ZERO_HASH.encode()
    line = b""
    segment, offset = 0, 0
    sha256 = hashlib.sha256
    out = (directory / segment_name(0)).open("wb", buffering=1 << 20)
    checkpoints = (directory / CHECKPOINT_FILE).open("wb")
    checkpoint = None
    try:
        for index in range(records):
            line = template % (index, index, prev)
            out.write(line + b"\n")
            offset += len(line) + 1
            prev = sha256(line).hexdigest().encode()
            tree.append(sha256(b"\x00" + line).digest())
            size = index + 1
            if size % checkpoint_every and size != records:
                continue
            unsigned = Checkpoint(city, size, tree.root().hex(),
                                  format_time(moment + size / 1e6), merkle.leaf_hash(line).hex(),
                                  kid, "")
            checkpoint = Checkpoint(**{**unsigned.to_json(), "signature": b64url_encode(
                key.sign(unsigned.signed_bytes()))})
            checkpoints.write(encode(checkpoint.to_json()) + b"\n")
            if offset >= segment_bytes and size < records:
                out.close()
                segment, offset = size, 0
                out = (directory / segment_name(segment)).open("wb", buffering=1 << 20)
    finally:
        out.close()
        checkpoints.close()
    for path in directory.iterdir():
        os.chmod(path, 0o600)
    if checkpoint is None:
        return None
    state = LogState(checkpoint, tree.frontier, line, segment, offset)
    write_state(directory / HEAD_FILE, state)
    return state
