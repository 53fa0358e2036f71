"""The node's append-only audit log: one record per request, granted or refused, hash-chained,
with signed Merkle checkpoints a regulator can check without trusting the city's administrators.

A log is a folder (docs/audit.md is the reference):

- segment files of records, one record per line, canonical JSON (keys sorted, no whitespace,
  UTF-8): `audit.log` holds the records from index 0 (all of them in logs of older versions),
  `audit.<12-digit index>.log` those from that index on. The log adds `index` (0-based
  position) and `prev` (hex SHA-256 of the previous record's line without its newline; 64 zeros
  for the first) to the node's fields. Each line is one Merkle leaf: `merkle.leaf_hash(line
  without the newline)`. A segment ends at a checkpoint once it holds `segment_bytes`.
- `checkpoints.log`: one signed checkpoint per line: `{"log", "size", "root", "time",
  "last_leaf"}` signed with the city's Ed25519 key (the manifest lists it), stored with `kid`
  and `signature` (base64url). `root` is the RFC 9162 Merkle root of the first `size` records,
  `last_leaf` the leaf hash of record `size - 1`.
- `head.json`: the log's state at the last checkpoint (LogState), so that opening reads only
  what came after it. `start.json`, once earlier segments were archived: the state where the
  records left in the folder start.

`append` returns after one `os.write` of the whole line to a file opened O_APPEND: the line is
then in the operating system's page cache and survives the node process being killed; it
survives power loss only once fsynced (`sync=True` fsyncs every record, group-committed across
threads; otherwise every checkpoint fsyncs the records it covers first). A record that cannot be
written raises AuditUnavailable and the node answers UNAVAILABLE with no data: nothing leaves
unrecorded.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.errors import (
    CityfedError,
    ConfigError,
    InvalidArgument,
    NoCheckpoint,
    RecordsArchived,
)
from federation.trust import merkle
from federation.trust.canonical import canonical_json, strict_loads
from federation.trust.checkpoints import (  # noqa: F401 (the log's API, re-exported)
    _HEX64,
    CHECKPOINT_FIELDS,
    Checkpoint,
    KeyLookup,
    PublicKeys,
    _checkpoint_key,
    _signature_problem,
    check_consistency_between,
    format_time,
    key_lookup,
    parse_time,
    verify_checkpoint,
    verify_consistency_between,
    verify_record_inclusion,
)
from federation.trust.keys import b64url_encode, key_id, write_file_atomically

log = logging.getLogger(__name__)

LOG_FILE = "audit.log"  # the first segment
_SEGMENT = re.compile(r"audit\.(\d{12})\.log")
CHECKPOINT_FILE = "checkpoints.log"
HEAD_FILE = "head.json"
START_FILE = "start.json"
FILE_MODE = 0o600
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024

# What a record may hold, filled by the node. Never personal data, never result values: only
# who asked, under which purpose, which plan (by hash), what was decided and how much left.
RECORD_FIELDS = (
    "time",               # ISO 8601 UTC with milliseconds, "2026-11-26T10:00:00.123Z"
    "city",               # this node's member id
    "caller",             # the caller's member id; null when unauthenticated
    "peer_fingerprint",   # hex SHA-256 of the caller's TLS certificate; null without one
    "purpose",            # the purpose the token states; null without a token
    "method",             # the full gRPC method name
    "plan_sha256",        # hex SHA-256 of the exact plan bytes received
    "jti",                # the request token's unique id
    "decision",           # "granted" or "refused"
    "status",             # the gRPC status code name, "OK" when granted
    "reason",             # the stable reason (POLICY_DENIED, ...) and the public message
    "groups_returned",    # result groups sent
    "groups_suppressed",  # always 0 now; older logs counted groups withheld under k
    "epsilon",            # privacy budget ε charged for a private answer (0 for exact ones)
    "delta",              # privacy budget δ charged
    "duration_ms",        # time spent on the call
    "request_sha256",     # hex SHA-256 of the request bytes
    "response_sha256",    # hex SHA-256 of the exact response bytes sent
    # AdminService loads only (node.auditing.INGEST_FIELDS):
    "dataset",            # the dataset loaded into
    "ingest_mode",        # "replace" or "append"
    "rows_loaded",        # rows the load added
    "path_sha256",        # hex SHA-256 of the file's path (UTF-8) as the operator gave it
    # Linkage steps only (node.auditing.LINKAGE_FIELDS, docs/linkage.md):
    "linkage_id",         # hex of the plan's 16-byte linkage id
    "linkage_role",       # "owner" or "partner"
    "linkage_mode",       # "count" or "reveal-to-owner"
    "points_sent",        # blinded points this step sent (padded sizes, never identifiers)
    "points_received",    # blinded points this step received
    # Written by `cityfed node restore` only (docs/operations.md), never for a request:
    "event",              # "lost": an index the node may have used before the disaster;
                          # "restored": where the restored node goes on
    "restored_from",      # the size of the backup's log (its last checkpoint)
    "lost_records",       # the indices given up as lost
)
LOG_FIELDS = ("index", "prev")  # added by the log
DECISIONS = ("granted", "refused")
EVENTS = ("lost", "restored")
# The kinds of tampering a verification names.
KINDS = ("edited", "deleted", "reordered", "truncated", "rewritten", "forged", "rolled-back")

ZERO_HASH = "0" * 64


class AuditUnavailable(CityfedError):
    """A record could not be written, so the node must not answer. The detail (the operating
    system's error) is logged here; the caller sees only the public message."""

    status = grpc.StatusCode.UNAVAILABLE
    reason = "AUDIT_UNAVAILABLE"

    def __init__(self, detail: str) -> None:
        super().__init__("the audit log is unavailable; no answer can be given")
        self.detail = detail


class AuditCorrupt(CityfedError):
    """The log on disk does not verify (or cannot be recovered): the node refuses to append."""

    status = grpc.StatusCode.DATA_LOSS
    reason = "AUDIT_CORRUPT"

    def __init__(self, message: str, report: VerifyReport | None = None) -> None:
        super().__init__(message)
        self.report = report


# Encoding ---------------------------------------------------------------------------------------

encode = canonical_json
decode = strict_loads


def line_hash(line: bytes) -> str:
    """What the next record's `prev` holds: hex SHA-256 of a line without its newline."""
    return hashlib.sha256(line).hexdigest()


def _check_value(name: str, value: Any) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float) and math.isfinite(value):
        return
    raise ValueError(f"audit field {name!r} must be a string, number, boolean or null, "
                     f"not {type(value).__name__}")


def _writable(value: Any) -> Any:
    """A string that UTF-8 can hold: a lone surrogate (JSON text can smuggle one in through a
    token claim) becomes "?" rather than making the record unwritable."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
    return value


# Checkpoints (federation/trust/checkpoints.py) are what a node signs over its log; anyone holding
# the manifest checks them.

# The files of a log folder ----------------------------------------------------------------------

def segment_name(first: int) -> str:
    """The file of the segment whose first record is `first`."""
    return LOG_FILE if first == 0 else f"audit.{first:012d}.log"


def segments(directory: Path) -> list[tuple[int, Path]]:
    """The segment files of a log folder, as (index of the first record, path), in order."""
    found = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        if entry.name == LOG_FILE:
            found.append((0, Path(entry.path)))
            continue
        match = _SEGMENT.fullmatch(entry.name)
        if match and int(match.group(1)) > 0:
            found.append((int(match.group(1)), Path(entry.path)))
    return sorted(found)


def has_log(directory: Path) -> bool:
    """Does the folder hold an audit log (a segment, or the start of one)?"""
    return bool(segments(directory)) or (Path(directory) / START_FILE).is_file()


@dataclass(frozen=True)
class LogState:
    """A log at one of its signed checkpoints: what it takes to go on from there without reading
    the records before. `head.json` holds the state at the last checkpoint, so that opening reads
    only what came after it; `start.json` the state where a folder's records start once the
    segments before were archived. Nothing in it needs trusting: the checkpoint is signed, the
    frontier must give its root and the last record its last leaf (`problem` checks them)."""

    checkpoint: Checkpoint
    frontier: tuple[bytes, ...]   # merkle.TreeBuilder.frontier after `size` records
    last_record: bytes | None     # record size - 1, its exact line without the newline
    segment: int                  # the segment the record `size` goes in ...
    offset: int                   # ... at this byte offset

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def last_hash(self) -> str:
        return line_hash(self.last_record) if self.last_record is not None else ZERO_HASH

    @property
    def last_leaf(self) -> bytes | None:
        return merkle.leaf_hash(self.last_record) if self.last_record is not None else None

    def tree(self) -> merkle.TreeBuilder:
        return merkle.TreeBuilder.from_frontier(self.size, self.frontier)

    def to_json(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint.to_json(),
                "frontier": [node.hex() for node in self.frontier],
                "last_record": (self.last_record.decode("utf-8")
                                if self.last_record is not None else None),
                "segment": self.segment, "offset": self.offset}

    @classmethod
    def from_json(cls, obj: Any) -> LogState:
        """Checked for form only; raises ValueError naming the first problem."""
        if not isinstance(obj, dict) or set(obj) != set(_STATE_FIELDS):
            raise ValueError(f"a log state is an object of {', '.join(_STATE_FIELDS)}")
        checkpoint = Checkpoint.from_json(obj["checkpoint"])
        frontier = obj["frontier"]
        if not isinstance(frontier, list) or not all(
                isinstance(node, str) and _HEX64.fullmatch(node) for node in frontier):
            raise ValueError("the frontier must be a list of 64 lowercase hex digits")
        last = obj["last_record"]
        if not (last is None or isinstance(last, str)):
            raise ValueError("last_record must be a string or null")
        for name in ("segment", "offset"):
            if type(obj[name]) is not int or obj[name] < 0:
                raise ValueError(f"{name} must be a non-negative integer")
        if obj["segment"] > checkpoint.size or (obj["segment"] == checkpoint.size
                                                and obj["offset"] != 0):
            raise ValueError("the next record cannot be in a segment that starts after it")
        return cls(checkpoint, tuple(bytes.fromhex(node) for node in frontier),
                   last.encode("utf-8") if last is not None else None, obj["segment"],
                   obj["offset"])

    def problem(self, public_keys: PublicKeys | None) -> str | None:
        """What does not hold together, if anything; the signature is checked when keys are
        given."""
        checkpoint = self.checkpoint
        if public_keys is not None:
            problem = _signature_problem(checkpoint, public_keys)
            if problem:
                return f"its checkpoint (size {checkpoint.size}) {problem}"
        try:
            tree = self.tree()
        except ValueError as error:
            return f"its frontier is not one of a tree of {checkpoint.size} records ({error})"
        if tree.root().hex() != checkpoint.root:
            return f"its frontier does not give the root its checkpoint (size {self.size}) signs"
        if self.size == 0:
            return None if self.last_record is None else "an empty log has no last record"
        if self.last_record is None or self.last_leaf.hex() != checkpoint.last_leaf:
            return f"its last record is not the record {self.size - 1} its checkpoint signs"
        if _parse_record(self.last_record) is None or \
                _parse_record(self.last_record)[0] != self.size - 1:
            return f"its last record is not a record {self.size - 1}"
        return None


_STATE_FIELDS = ("checkpoint", "frontier", "last_record", "segment", "offset")


def read_state(path: Path) -> LogState | None:
    """The log state in a file; None when there is no file. Raises ValueError when it is not a
    log state."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    try:
        return LogState.from_json(decode(data))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ValueError(f"{path}: not a log state ({str(error)[:120]})") from None


def write_state(path: Path, state: LogState) -> None:
    write_file_atomically(path, encode(state.to_json()) + b"\n", FILE_MODE)


# Reading and verifying a log folder -------------------------------------------------------------

@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    records: int                  # records that verified (all of them when ok)
    checkpoints: int              # checkpoints in the file
    first_bad_index: int | None   # the first bad record (None when ok or for a bad checkpoint)
    problem: str                  # human text; "" when ok
    kind: str | None              # one of KINDS, None when ok
    bad_checkpoint: int | None = None  # the line (0-based) of a forged or rolled-back checkpoint
    signatures_checked: bool = True
    torn_tail: bool = False       # a last line without its newline (a write cut by a crash)
    notes: tuple[str, ...] = ()
    start: int = 0                # the first record the folder holds (earlier ones archived)


def _lines(path: Path, offset: int = 0) -> Iterator[tuple[bytes, bool]]:
    """(line without its newline, whether it had one), in order, from a byte offset."""
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return
    with file:
        file.seek(offset)
        for raw in file:
            if raw.endswith(b"\n"):
                yield raw[:-1], True
            else:
                yield raw, False


def _record_lines(directory: Path, start: LogState | None
                  ) -> Iterator[tuple[int, Path, int, bytes, bool, bool]]:
    """Every record line from `start` on (from record 0 without one), across segments:
    (first index of its segment, segment path, byte offset of its end, line, whether it had a
    newline, whether its segment is the last)."""
    first_segment = start.segment if start is not None else 0
    found = [(first, path) for first, path in segments(directory) if first >= first_segment]
    for number, (first, path) in enumerate(found):
        offset = start.offset if start is not None and first == start.segment else 0
        for line, complete in _lines(path, offset):
            offset += len(line) + complete
            yield first, path, offset, line, complete, number == len(found) - 1


@dataclass
class _Scan:
    """What reading a log folder found, and the state to continue appending from."""

    report: VerifyReport
    tree: merkle.TreeBuilder = field(default_factory=merkle.TreeBuilder)
    last_hash: str = ZERO_HASH
    last_leaf: bytes | None = None
    last_line: bytes | None = None
    size: int = 0               # records from index 0 to the last good one, archived ones too
    segment: int = 0            # the last segment: appending goes on there ...
    good_bytes: int = 0         # ... after its last complete record
    torn_bytes: int = 0
    checkpoints: list[Checkpoint] = field(default_factory=list)
    checkpoint_bytes: int = 0   # bytes of checkpoints.log up to its last complete line
    checkpoint_torn: bool = False
    head: LogState | None = None  # the state at the last checkpoint
    captured: dict[int, LogState] = field(default_factory=dict)


class _Problem(Exception):
    def __init__(self, kind: str, problem: str, index: int | None = None,
                 checkpoint: int | None = None) -> None:
        super().__init__(problem)
        self.kind, self.problem, self.index, self.checkpoint = kind, problem, index, checkpoint


def _parse_record(line: bytes) -> tuple[int, str] | None:
    """(index, prev) of a record line, or None when it is not a record."""
    try:
        record = decode(line)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    index, prev = record.get("index"), record.get("prev")
    if type(index) is not int or not isinstance(prev, str) or not _HEX64.fullmatch(prev):
        return None
    return index, prev


def _check_checkpoint(checkpoint: Checkpoint, label: str, previous: Checkpoint | None,
                      logs: set[str], public_keys: PublicKeys | None, notes: list[str],
                      unknown_keys_ok: bool, number: int | None) -> None:
    logs.add(checkpoint.log)
    if len(logs) > 1:
        raise _Problem("forged", f"{label} is for log {checkpoint.log[:64]!r}, "
                                 f"not {sorted(logs - {checkpoint.log})[0]!r}",
                       checkpoint=number)
    if public_keys is not None:
        if unknown_keys_ok and _checkpoint_key(checkpoint, public_keys) is None:
            notes.append(f"{label} is signed by key {checkpoint.kid[:64]!r}, "
                         "not by this node's key: its signature was not checked")
        else:
            problem = _signature_problem(checkpoint, public_keys)
            if problem:
                raise _Problem("forged", f"{label} (size {checkpoint.size}) {problem}",
                               checkpoint=number)
    if previous is not None and checkpoint.size < previous.size:
        raise _Problem("rolled-back", f"{label} has size {checkpoint.size}, smaller than the "
                                      f"{previous.size} of the one before it: a log only grows",
                       checkpoint=number)
    if previous is not None and checkpoint.time < previous.time:
        raise _Problem("rolled-back", f"{label} is dated {checkpoint.time}, before the one "
                                      f"before it ({previous.time})", checkpoint=number)


def _read_checkpoints(directory: Path, scan: _Scan, city: str | None,
                      public_keys: PublicKeys | None, notes: list[str],
                      unknown_keys_ok: bool) -> None:
    """Parse and check every complete line of checkpoints.log; raise _Problem at the first
    forged or rolled-back one. With `unknown_keys_ok`, a checkpoint by a key the lookup does not
    know is noted instead (a node after a key rotation that was not given the manifest)."""
    previous: Checkpoint | None = None
    logs: set[str] = set() if city is None else {city}
    for number, (line, complete) in enumerate(_lines(directory / CHECKPOINT_FILE)):
        if not complete:
            scan.checkpoint_torn = True
            break
        scan.checkpoint_bytes += len(line) + 1
        try:
            checkpoint = Checkpoint.from_json(decode(line))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise _Problem("forged", f"checkpoint {number} is not a valid checkpoint "
                                     f"({str(error)[:120]})", checkpoint=number) from None
        _check_checkpoint(checkpoint, f"checkpoint {number}", previous, logs, public_keys, notes,
                          unknown_keys_ok, number)
        scan.checkpoints.append(checkpoint)
        previous = checkpoint


def _read_checkpoints_after(directory: Path, scan: _Scan, head: LogState, city: str | None,
                            public_keys: PublicKeys | None, notes: list[str],
                            unknown_keys_ok: bool) -> None:
    """Read checkpoints.log from its end back to the head's checkpoint, and check the ones
    after it as `_read_checkpoints` checks every one. Raises _Problem when the head's checkpoint
    is not there."""
    path = directory / CHECKPOINT_FILE
    try:
        file = path.open("rb")
    except FileNotFoundError:
        raise _Problem("truncated", f"{CHECKPOINT_FILE} is missing") from None
    with file:
        end = file.seek(0, os.SEEK_END)
        data, position, newer = b"", end, []
        while True:
            step = min(1 << 16, position)
            position -= step
            file.seek(position)
            data = file.read(step) + data
            parts = data.split(b"\n")
            torn = parts.pop()  # what follows the last newline
            if position > 0:
                parts = parts[1:]  # may begin mid-line
            newer, found = [], False
            for line in reversed(parts):
                try:
                    checkpoint = Checkpoint.from_json(decode(line))
                except (UnicodeDecodeError, ValueError, RecursionError):
                    raise _Problem("forged", f"{CHECKPOINT_FILE} holds a line that is not a "
                                             "checkpoint") from None
                if checkpoint == head.checkpoint:
                    found = True
                    break
                if checkpoint.size < head.size:
                    raise _Problem("truncated", f"{CHECKPOINT_FILE} does not hold the checkpoint "
                                                f"of size {head.size} in {HEAD_FILE}")
                newer.append(checkpoint)
            if found:
                break
            if position == 0:
                raise _Problem("truncated", f"{CHECKPOINT_FILE} does not hold the checkpoint of "
                                            f"size {head.size} in {HEAD_FILE}")
    scan.checkpoint_torn = bool(torn)
    scan.checkpoint_bytes = end - len(torn)
    previous = head.checkpoint
    logs: set[str] = {head.checkpoint.log} | ({city} if city else set())
    scan.checkpoints.append(head.checkpoint)
    for checkpoint in reversed(newer):
        _check_checkpoint(checkpoint, f"the checkpoint of size {checkpoint.size}", previous, logs,
                          public_keys, notes, unknown_keys_ok, None)
        scan.checkpoints.append(checkpoint)
        previous = checkpoint


def _chain_problem(lines: Callable[[], Iterator[bytes]], start: int, position: int, line: bytes,
                   parsed: tuple[int, str] | None, previous_hash: str) -> _Problem | None:
    """What is wrong at `position` when the record there does not follow the one before it,
    every earlier record having followed its predecessor; None when nothing is. `lines()` gives
    the lines from position `start` on."""
    if parsed is None:
        return _Problem("edited", f"record {position} was edited: it no longer parses as a "
                                  "record", position)
    index, prev = parsed
    if index == position and prev == previous_hash:
        return None
    if index == position == 0:
        return _Problem("edited", "record 0 was edited: its prev is not the 64 zeros the first "
                                  "record holds", 0)
    if index == position == start:
        return _Problem("edited", f"record {position} was edited: its prev is not the hash of "
                                  f"record {position - 1}, which {START_FILE} holds as signed",
                        position)
    if index == position:
        # The link from the record before is broken. When the link to the record after is
        # broken too, one edit of this record explains both; otherwise the one before changed.
        after = _line_at(lines, start, position + 1)
        following = _parse_record(after) if after is not None else None
        if following is not None and following[1] != line_hash(line):
            return _Problem("edited", f"record {position} was edited: its prev no longer "
                                      f"matches record {position - 1}, nor does its hash match "
                                      f"the prev of record {position + 1}", position)
        return _Problem("edited", f"record {position - 1} was edited: its hash no longer "
                                  f"matches the prev of record {position}", position - 1)
    if prev == previous_hash:
        place = f"right after record {position - 1}" if position else "first"
        return _Problem("edited", f"record {position} was edited: its index says {index}, but "
                                  f"the chain puts it {place}", position)
    if index > position and not _index_appears_after(lines, start, position, position):
        missing = (f"record {position} is" if index == position + 1
                   else f"records {position}..{index - 1} are")
        context = (f"record {position - 1} is followed by record {index}" if position
                   else f"the log starts at record {index}")
        return _Problem("deleted", f"{missing} missing: {context}", position)
    return _Problem("reordered", f"records are out of order: record {index} stands where "
                                 f"record {position} belongs", position)


def _line_at(lines: Callable[[], Iterator[bytes]], start: int, position: int) -> bytes | None:
    for number, line in enumerate(lines(), start=start):
        if number == position:
            return line
    return None


def _index_appears_after(lines: Callable[[], Iterator[bytes]], start: int, position: int,
                         wanted: int) -> bool:
    for number, line in enumerate(lines(), start=start):
        if number > position:
            parsed = _parse_record(line)
            if parsed is not None and parsed[0] == wanted:
                return True
    return False


def _folder_start(directory: Path, public_keys: PublicKeys | None, notes: list[str]
                  ) -> LogState | None:
    """Where the folder's records start when earlier segments were archived, checked."""
    try:
        start = read_state(directory / START_FILE)
    except ValueError as error:
        raise _Problem("forged", str(error)) from None
    if start is None:
        return None
    problem = start.problem(public_keys)
    if problem:
        raise _Problem("forged", f"{START_FILE}, where the records after the archived ones "
                                 f"start, does not verify: {problem}", start.size)
    if start.segment != start.size or start.offset != 0:
        raise _Problem("forged", f"{START_FILE} must start a segment")
    notes.append(f"records 0..{start.size - 1} are archived: this folder holds the records "
                 f"from {start.size} on, verified from the checkpoint of size {start.size}"
                 + ("" if public_keys is not None else " (its signature was not checked)"))
    for first, _ in segments(directory):
        if first < start.size:
            notes.append(f"{segment_name(first)} holds archived records; it is not read")
    return start


def _scan(directory: Path, *, city: str | None, public_keys: PublicKeys | None,
          held: Iterable[dict | Checkpoint] = (), unknown_keys_ok: bool = False,
          resume: LogState | None = None, capture: Iterable[int] = ()) -> _Scan:
    """Verify a log folder: every record and checkpoint from its start (record 0, or where
    `start.json` says), or, with `resume`, only what came after that state (the node opening its
    log). `capture` names sizes whose LogState to keep in `_Scan.captured`."""
    directory = Path(directory)
    scan = _Scan(VerifyReport(True, 0, 0, None, "", None))
    notes: list[str] = []
    records = base = 0
    start: LogState | None = resume
    try:
        if resume is not None:
            _check_resume(directory, resume, public_keys, unknown_keys_ok)
            _read_checkpoints_after(directory, scan, resume, city, public_keys, notes,
                                    unknown_keys_ok)
        else:
            start = _folder_start(directory, public_keys, notes)
            _read_checkpoints(directory, scan, city, public_keys, notes, unknown_keys_ok)
        if scan.checkpoint_torn:
            notes.append(f"the last line of {CHECKPOINT_FILE} is incomplete (a checkpoint cut "
                         "by a crash); it is ignored")
        base = start.size if start is not None else 0
        if start is not None:
            scan.tree = start.tree()
            scan.last_hash, scan.last_leaf = start.last_hash, start.last_leaf
            scan.last_line = start.last_record
            scan.segment, scan.good_bytes = start.segment, start.offset
        # Checkpoints held outside the node (exported earlier): signed, of this log.
        extra: list[tuple[str, Checkpoint]] = []
        for number, value in enumerate(held):
            label = f"held checkpoint {number}"
            try:
                checkpoint = Checkpoint.from_json(value)
            except ValueError as error:
                raise _Problem("forged", f"{label} is not a valid checkpoint ({error})") from None
            logs = {c.log for c in scan.checkpoints} | ({city} if city else set())
            if logs and checkpoint.log not in logs:
                raise _Problem("forged", f"{label} is for log {checkpoint.log[:64]!r}")
            if public_keys is not None:
                problem = _signature_problem(checkpoint, public_keys)
                if problem:
                    raise _Problem("forged", f"{label} (size {checkpoint.size}) {problem}")
            extra.append((label, checkpoint))

        by_size: dict[int, list[tuple[str, Checkpoint]]] = {}
        if resume is None:
            for number, checkpoint in enumerate(scan.checkpoints):
                by_size.setdefault(checkpoint.size, []).append((f"checkpoint {number}",
                                                                checkpoint))
        else:
            for checkpoint in scan.checkpoints[1:]:
                by_size.setdefault(checkpoint.size, []).append(
                    (f"the checkpoint of size {checkpoint.size}", checkpoint))
        for label, checkpoint in extra:
            by_size.setdefault(checkpoint.size, []).append((label, checkpoint))
        for label, checkpoint in by_size.get(0, []):
            if checkpoint.root != merkle.EMPTY_ROOT.hex():
                raise _Problem("rewritten", f"{label} (size 0) does not hold the empty root")
        archived = [size for size in by_size if 0 < size < base]
        if archived and resume is None:
            notes.append(f"{sum(len(by_size[s]) for s in archived)} checkpoints cover archived "
                         "records only: their signatures and order were checked, their roots "
                         "need the archived segments")
        if base and resume is None:
            for label, checkpoint in by_size.get(base, []):
                if (checkpoint.root, checkpoint.last_leaf) != (start.checkpoint.root,
                                                               start.checkpoint.last_leaf):
                    raise _Problem("rewritten", f"{label} (size {base}) signs another root than "
                                                f"the checkpoint in {START_FILE}: the log was "
                                                "rewritten", base - 1)
        largest = max(by_size, default=0)
        covered = base  # the largest checkpoint size whose root matched
        wanted = set(capture) | {max([base, *(c.size for c in scan.checkpoints)])}
        # size: (frontier, last record, segment, offset where the next record goes)
        captured: dict[int, tuple[tuple[bytes, ...], bytes | None, int, int]] = {}
        if start is not None:
            captured[base] = (start.frontier, start.last_record, start.segment, start.offset)

        def lines_from_start() -> Iterator[bytes]:
            for *_, line, _complete, _last in _record_lines(directory, start):
                yield line

        position = base
        segment_seen = None
        for first, path, end, line, complete, last_segment in _record_lines(directory, start):
            if not complete and last_segment:
                scan.torn_bytes = len(line)
                scan.segment, scan.good_bytes = first, end - len(line)
                break
            if not complete:
                raise _Problem("edited", f"record {position} was edited: it does not end its "
                                         f"line, and {path.name} is not the last segment",
                               position)
            if first != segment_seen:
                segment_seen = first
                if first != position and end == len(line) + 1:
                    notes.append(f"{path.name} is named for record {first} but begins with "
                                 f"record {position}")
            parsed = _parse_record(line)
            if parsed is None or parsed != (position, scan.last_hash):
                problem = _chain_problem(lines_from_start, base, position, line, parsed,
                                         scan.last_hash)
                if problem is not None:
                    raise problem
            before = scan.tree.copy() if position + 1 in by_size else None
            leaf = merkle.leaf_hash(line)
            scan.tree.append(leaf)
            scan.last_hash = line_hash(line)
            scan.last_leaf = leaf
            scan.last_line = line
            scan.segment, scan.good_bytes = first, end
            position += 1
            records = position - base
            if before is not None:
                root = scan.tree.root().hex()
                for label, checkpoint in by_size[position]:
                    if checkpoint.root == root and checkpoint.last_leaf == leaf.hex():
                        continue
                    raise _root_problem(label, checkpoint, before, leaf, covered)
                covered = position
            if position in wanted:
                # The next record goes at this offset, or at the start of the next segment.
                captured[position] = (scan.tree.frontier, line, first, end)
        scan.size = position
        last = segments(directory)[-1:]
        if last and last[0][0] == position > scan.segment and not scan.torn_bytes:
            scan.segment, scan.good_bytes = position, 0  # a segment begun, nothing in it yet
        if largest > position:
            torn = " (its last line is incomplete)" if scan.torn_bytes else ""
            raise _Problem("truncated", f"the log was truncated below the signed checkpoint of "
                                        f"size {largest}: it holds {position} records{torn}, "
                                        f"records {position}..{largest - 1} are missing",
                           position)
        if position > largest and position > base:
            notes.append(f"records {max(largest, base)}..{position - 1} are not covered by a "
                         "checkpoint yet: until one is signed, only the hash chain protects them")
        if scan.torn_bytes:
            notes.append(f"the last line of {segment_name(scan.segment)} is incomplete "
                         f"({scan.torn_bytes} bytes): a record cut by a crash before it was "
                         "answered; no checkpoint covers it")
        scan.captured = _with_checkpoints(captured, scan.checkpoints, start)
        if scan.checkpoints:
            scan.head = scan.captured.get(scan.checkpoints[-1].size)
    except _Problem as problem:
        scan.size = base + records
        scan.report = VerifyReport(
            False, records, len(scan.checkpoints), problem.index, problem.problem, problem.kind,
            bad_checkpoint=problem.checkpoint, signatures_checked=public_keys is not None,
            torn_tail=bool(scan.torn_bytes), notes=tuple(notes),
            start=start.size if start is not None else 0)
        return scan
    scan.report = VerifyReport(True, records, len(scan.checkpoints), None, "", None,
                               signatures_checked=public_keys is not None,
                               torn_tail=bool(scan.torn_bytes), notes=tuple(notes),
                               start=start.size if start is not None else 0)
    return scan


def _with_checkpoints(captured: dict[int, tuple[tuple[bytes, ...], bytes | None, int, int]],
                      checkpoints: list[Checkpoint], start: LogState | None
                      ) -> dict[int, LogState]:
    """The states captured at sizes a checkpoint signed, each with the last checkpoint of its
    size."""
    signed = {checkpoint.size: checkpoint for checkpoint in checkpoints}
    if start is not None:
        signed.setdefault(start.size, start.checkpoint)
    return {size: LogState(signed[size], *state) for size, state in captured.items()
            if size in signed}


def _check_resume(directory: Path, head: LogState, public_keys: PublicKeys | None,
                  unknown_keys_ok: bool) -> None:
    """Does the head state hold together, and does the log still hold its last record where it
    says? Raises _Problem otherwise."""
    keys = public_keys
    if keys is not None and unknown_keys_ok and _checkpoint_key(head.checkpoint, keys) is None:
        keys = None
    problem = head.problem(keys)
    if problem:
        raise _Problem("forged", f"{HEAD_FILE}: {problem}")
    if head.size == 0:
        return
    wanted = head.last_record + b"\n"
    path, end = directory / segment_name(head.segment), head.offset
    if end == 0:  # the head starts a segment: its last record ends the one before, if kept
        before = [(first, path) for first, path in segments(directory) if first < head.segment]
        if not before:
            return
        path = before[-1][1]
        end = path.stat().st_size
    try:
        with path.open("rb") as file:
            file.seek(max(0, end - len(wanted)))
            found = file.read(len(wanted))
    except FileNotFoundError:
        found = b""
    if found != wanted:
        raise _Problem("truncated", f"record {head.size - 1} is not where {HEAD_FILE} says")


def _root_problem(label: str, checkpoint: Checkpoint, before: merkle.TreeBuilder, leaf: bytes,
                  covered: int) -> _Problem:
    """A signed checkpoint whose root the records no longer give, while their chain holds.

    The checkpoint signs the leaf hash of the last record it covers: if putting that leaf back
    gives the signed root, every other record is as signed and exactly the last was edited.
    Otherwise records from the last matching checkpoint on were rewritten and re-chained, and
    which of them changed cannot be told without the originals."""
    size = checkpoint.size
    if checkpoint.last_leaf != leaf.hex():
        restored = before.copy()
        restored.append(bytes.fromhex(checkpoint.last_leaf))
        if restored.root().hex() == checkpoint.root:
            return _Problem("edited", f"record {size - 1} was edited: it no longer matches the "
                                      f"last record {label} (size {size}, {checkpoint.time}) "
                                      "signed", size - 1)
    return _Problem("rewritten", f"records {covered}..{size - 1} were rewritten: their chain "
                                 f"holds, but {label} (size {size}, {checkpoint.time}) signed "
                                 "another Merkle root for them", covered)


def verify_log(directory: Path, public_keys: PublicKeys | None, *, city: str | None = None,
               held_checkpoints: Iterable[dict | Checkpoint] = ()) -> VerifyReport:
    """Check every record and every checkpoint of a log folder; name the first bad record.

    `public_keys` resolves a checkpoint's kid to the city's public key (a manifest, or a lookup
    by kid); None skips the signature checks (the report says so). `city` is the log's member
    id, if known. `held_checkpoints` are checkpoints exported earlier and kept elsewhere: the log
    must still contain what they sign (an administrator can delete lines of checkpoints.log but
    cannot take back a checkpoint someone else holds). When earlier segments were archived, the
    records are verified from the signed state in `start.json` on."""
    return _scan(Path(directory), city=city, public_keys=public_keys,
                 held=held_checkpoints).report


def read_records(directory: Path, *, caller: str | None = None, purpose: str | None = None,
                 since: datetime | str | None = None, until: datetime | str | None = None,
                 decision: str | None = None) -> Iterator[dict]:
    """The records that match every given filter, in log order, across segments. `since` is
    inclusive, `until` exclusive; a time without a zone is UTC. Lines that are not records are
    skipped (verify the log to learn why)."""
    start = parse_time(since) if isinstance(since, str) else since
    end = parse_time(until) if isinstance(until, str) else until
    try:
        folder_start = read_state(Path(directory) / START_FILE)
    except ValueError:
        folder_start = None
    for position, (_, path, _, line, complete, _) in enumerate(
            _record_lines(Path(directory), folder_start)):
        if not complete:
            continue
        try:
            record = decode(line)
        except (UnicodeDecodeError, ValueError, RecursionError):
            log.warning("%s line %d of %s is not a record; skipped", directory, position,
                        path.name)
            continue
        if not isinstance(record, dict):
            continue
        if caller is not None and record.get("caller") != caller:
            continue
        if purpose is not None and record.get("purpose") != purpose:
            continue
        if decision is not None and record.get("decision") != decision:
            continue
        if start is not None or end is not None:
            try:
                moment = parse_time(record.get("time"))
            except (AttributeError, TypeError, ValueError):
                continue
            if (start is not None and moment < start) or (end is not None and moment >= end):
                continue
        yield record


def export_checkpoints(directory: Path) -> list[dict]:
    """Every complete checkpoint line, as stored (verify them with verify_checkpoint)."""
    exported = []
    for line, complete in _lines(Path(directory) / CHECKPOINT_FILE):
        if not complete:
            break
        try:
            exported.append(decode(line))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise AuditCorrupt(f"{directory}: {CHECKPOINT_FILE} holds a line that is not "
                               "JSON; run `cityfed audit verify`") from None
    return exported


def _leaf_hashes(directory: Path, size: int) -> list[bytes]:
    if (Path(directory) / START_FILE).exists():
        start = read_state(Path(directory) / START_FILE)
        raise InvalidArgument(f"{directory}: records 0..{start.size - 1} are archived; prove "
                              "from a folder holding every record (put the archived segments "
                              "back beside these)")
    leaves = []
    for *_, line, complete, _ in _record_lines(Path(directory), None):
        if len(leaves) == size or not complete:
            break
        leaves.append(merkle.leaf_hash(line))
    if len(leaves) < size:
        raise InvalidArgument(f"{directory}: the log holds {len(leaves)} records, not {size}")
    return leaves


def consistency_proof_between(directory: Path, old_size: int, new_size: int) -> list[str]:
    """The RFC 9162 consistency proof from the log's first `old_size` records to its first
    `new_size`, as hex."""
    if not 0 <= old_size <= new_size:
        raise InvalidArgument(f"the old size must be from 0 to the new size, not {old_size}")
    leaves = _leaf_hashes(directory, new_size)
    return [p.hex() for p in merkle.consistency_proof(leaves, old_size, new_size)]


def prove_inclusion(directory: Path, index: int, size: int) -> list[str]:
    """The RFC 9162 inclusion proof of record `index` in the log's first `size` records."""
    if not 0 <= index < size:
        raise InvalidArgument(f"record {index} is not among the first {size}")
    leaves = _leaf_hashes(directory, size)
    return [p.hex() for p in merkle.inclusion_proof(leaves, index, size)]


# Archiving --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Archived:
    start: int                 # the first record the log folder holds now
    moved: tuple[str, ...]     # the segment files moved
    records: int               # the records they hold


def archive(directory: Path, destination: Path, before: int, public_keys: PublicKeys, *,
            city: str | None = None) -> Archived:
    """Move the segments that hold only records below `before` from a log folder into
    `destination`, up to the last segment start at or below `before` that a checkpoint signed
    (the current segment is never moved). The log folder keeps, in `start.json`, that checkpoint
    with the Merkle frontier and the last record before it, so that what remains still verifies;
    `destination` becomes (or goes on as) a log folder of the moved records that verifies on
    its own. Both are verified first; the segments are deleted only once their copies verify.
    Safe while the node appends, and to run again after an interruption."""
    directory, destination = Path(directory), Path(destination)
    try:
        current = read_state(directory / START_FILE)
    except ValueError as error:
        raise AuditCorrupt(str(error)) from None
    first = current.size if current is not None else 0
    found = [(number, path) for number, path in segments(directory) if number >= first]
    signed = {checkpoint.get("size") for checkpoint in export_checkpoints(directory)}
    boundary = max((number for number, _ in found[1:] if number <= before and number in signed),
                   default=None)
    if boundary is None:
        return Archived(first, (), 0)
    scan = _scan(directory, city=city, public_keys=public_keys, capture=[boundary])
    if not scan.report.ok:
        raise AuditCorrupt(f"{directory}: the log does not verify, so nothing is archived: "
                           f"{scan.report.problem} ({scan.report.kind})", scan.report)
    at = scan.captured[boundary]
    start = LogState(at.checkpoint, at.frontier, at.last_record, boundary, 0)

    destination.mkdir(parents=True, exist_ok=True, mode=0o700)
    if has_log(destination):
        before_copy = _scan(destination, city=city, public_keys=public_keys)
        if not before_copy.report.ok or before_copy.size not in (first, boundary):
            raise ConfigError(f"{destination} holds another log (records up to "
                              f"{before_copy.size}, {before_copy.report.problem or 'verified'}); "
                              f"archive records from {first} on into an empty folder or the "
                              "one holding the records before them")
    elif current is not None:
        write_state(destination / START_FILE, current)
    moving = [(number, path) for number, path in found if number < boundary]
    for number, path in moving:
        target = destination / segment_name(number)
        if target.exists() and _same_file(path, target):
            continue
        target.unlink(missing_ok=True)
        _copy_prefix(path, target, None)
    lines = [line + b"\n" for line, complete in _lines(directory / CHECKPOINT_FILE)
             if complete and decode(line).get("size", 0) <= boundary]
    write_file_atomically(destination / CHECKPOINT_FILE, b"".join(lines), FILE_MODE)
    copied = _scan(destination, city=city, public_keys=public_keys)
    if not copied.report.ok or copied.size != boundary:
        raise AuditUnavailable(f"{destination}: the copy does not verify "
                               f"({copied.report.problem or f'{copied.size} records'}); "
                               f"{directory} is left as it was")
    write_state(directory / START_FILE, start)
    for _, path in moving:
        path.unlink()
    _fsync_directory(directory)
    return Archived(boundary, tuple(path.name for _, path in moving), boundary - first)


def _same_file(first: Path, second: Path) -> bool:
    if first.stat().st_size != second.stat().st_size:
        return False
    with first.open("rb") as one, second.open("rb") as other:
        return hashlib.file_digest(one, "sha256").digest() == \
            hashlib.file_digest(other, "sha256").digest()


# The log a node appends to ----------------------------------------------------------------------

def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


_datasync = getattr(os, "fdatasync", os.fsync)
_APPEND_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class AuditLog:
    """A node's audit log, open for appending (see the module docstring).

    Opening is O(1) in the log's length: it checks the state `head.json` keeps at the last
    checkpoint (its signature, that its frontier gives the signed root, that the last record it
    covers is still in place) and verifies every record and checkpoint written after it. When
    that state is missing or does not line up (a log of an older version, a crash between a
    checkpoint and its state, tampering), opening verifies the whole log instead. A log that
    does not verify is refused (AuditCorrupt). A last line cut short by a crash is truncated
    away when no checkpoint covers it (the answer leaves only after the whole line is written,
    so nobody was answered); when a checkpoint covers it, the log is refused. One process at a
    time may hold a log open.

    Records go to segment files of about `segment_bytes` each: once the current one is that
    large, the next checkpoint ends it, so that every segment starts at a signed checkpoint.

    `public_keys` resolves the kids of existing checkpoints (pass the manifest after the city's
    key was rotated); by default only this node's own key is known.
    """

    def __init__(self, directory: Path, *, city: str, signing_key: Ed25519PrivateKey, kid: str,
                 checkpoint_every: int = 1000, checkpoint_seconds: float = 10.0,
                 clock: Callable[[], float] = time.time, sync: bool = False,
                 public_keys: PublicKeys | None = None,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        if kid != key_id(signing_key.public_key()):
            raise ConfigError(f"audit log: key id {kid!r} is not the id of the signing key")
        if checkpoint_every < 1 or not checkpoint_seconds > 0:
            raise ConfigError("audit log: checkpoints need a positive record count and period")
        if segment_bytes < 1:
            raise ConfigError("audit log: segments need a positive size")
        self.directory = Path(directory)
        self.city = city
        self._key = signing_key
        self._kid = kid
        self._every = checkpoint_every
        self._seconds = checkpoint_seconds
        self._segment_bytes = segment_bytes
        self._clock = clock
        self._sync = sync
        self._lock = threading.Lock()             # the record file and the chain
        self._checkpoint_lock = threading.Lock()  # one checkpoint at a time, in order
        self._sync_lock = threading.Lock()        # one fsync of records at a time
        self._wake = threading.Event()
        self._closed = False
        self._broken: str | None = None
        self.recovered: tuple[str, ...] = ()      # what opening repaired, for the operator

        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._cp_fd = os.open(self.directory / CHECKPOINT_FILE, _APPEND_FLAGS, FILE_MODE)
        try:
            try:
                fcntl.flock(self._cp_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise AuditUnavailable(f"{self.directory}: the audit log is already open "
                                       "(another node process?)") from None
            self._recover(public_keys)
        except BaseException:
            os.close(self._cp_fd)
            raise
        _fsync_directory(self.directory)
        if self._count > self._checkpointed:
            # Records the last run left uncovered (it was killed, say): sign them now that they
            # are verified, rather than leave them to the chain alone until the next checkpoint.
            try:
                self._checkpoint()
            except AuditUnavailable as error:
                log.error("%s: a checkpoint after opening failed: %s", self.directory,
                          error.detail)
        self._thread = threading.Thread(target=self._run_checkpoints, daemon=True,
                                        name=f"audit-checkpoints-{city}")
        self._thread.start()

    def _recover(self, public_keys: PublicKeys | None) -> None:
        keys = public_keys if public_keys is not None else key_lookup(self._key.public_key())
        unknown_ok = public_keys is None
        try:
            head = read_state(self.directory / HEAD_FILE)
        except ValueError as error:
            log.warning("%s; verifying the whole log instead", error)
            head = None
        scan = None
        if head is not None:
            scan = _scan(self.directory, city=self.city, public_keys=keys,
                         unknown_keys_ok=unknown_ok, resume=head)
            if not scan.report.ok:
                log.warning("%s: %s does not line up with the log (%s); verifying the whole "
                            "log instead", self.directory, HEAD_FILE, scan.report.problem)
                scan = None
        if scan is None:
            # A head whose checkpoint the city signed is a checkpoint like any other: the log
            # must still hold what it signs.
            held = ([head.checkpoint] if head is not None
                    and _signature_problem(head.checkpoint, keys) is None else [])
            scan = _scan(self.directory, city=self.city, public_keys=keys,
                         unknown_keys_ok=unknown_ok, held=held)
        for note in scan.report.notes:
            if "signature was not checked" in note:
                log.warning("%s: %s; pass the manifest as public_keys", self.directory, note)
        report = scan.report
        if not report.ok:
            raise AuditCorrupt(f"{self.directory}: refusing to append to an audit log that does "
                               f"not verify: {report.problem} ({report.kind})", report)
        repaired = []
        if scan.checkpoint_torn:
            os.ftruncate(self._cp_fd, scan.checkpoint_bytes)
            os.fsync(self._cp_fd)
            repaired.append(f"removed an incomplete last line of {CHECKPOINT_FILE}")
        self._segment = scan.segment
        self._fd = os.open(self.directory / segment_name(self._segment), _APPEND_FLAGS,
                           FILE_MODE)
        try:
            if scan.torn_bytes:
                os.ftruncate(self._fd, scan.good_bytes)
                os.fsync(self._fd)
                repaired.append(f"removed an incomplete last record ({scan.torn_bytes} bytes) "
                                f"after record {scan.size - 1}: a write cut by a crash")
            self._offset = os.fstat(self._fd).st_size
        except BaseException:
            os.close(self._fd)
            raise
        for note in repaired:
            log.warning("%s: %s", self.directory, note)
        self.recovered = tuple(repaired)
        self._count = scan.size
        self._last_hash = scan.last_hash
        self._last_leaf = scan.last_leaf
        self._last_line = scan.last_line
        self._tree = scan.tree
        self._synced = self._count
        self._last_checkpoint = scan.checkpoints[-1] if scan.checkpoints else None
        self._checkpointed = self._last_checkpoint.size if self._last_checkpoint else 0
        self._checkpoints_end = scan.checkpoint_bytes
        self._head = scan.head
        self._pending_since = time.monotonic()
        if scan.head is not None and scan.head != head:
            self._write_head(scan.head)

    # Appending ----------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Records in the log, archived ones included: the index the next record gets."""
        return self._count

    @property
    def last_checkpoint(self) -> Checkpoint | None:
        return self._last_checkpoint

    def checkpoint_with_proof(self, known_size: int) -> tuple[Checkpoint, list[str]]:
        """The last checkpoint and the consistency proof from a log of `known_size` records (the
        size of a checkpoint the asker holds) to it; no proof for 0 or the same size."""
        checkpoint = self._last_checkpoint
        if checkpoint is None:
            raise NoCheckpoint("the audit log has no signed checkpoint yet")
        if known_size > checkpoint.size:
            raise InvalidArgument(f"known_size {known_size} is above the last checkpoint's size "
                                  f"{checkpoint.size}")
        if known_size in (0, checkpoint.size):
            return checkpoint, []
        if (self.directory / START_FILE).exists():
            raise RecordsArchived("the records a proof from that size needs were archived")
        return checkpoint, consistency_proof_between(self.directory, known_size, checkpoint.size)

    def _fields(self, record: dict) -> dict:
        if not isinstance(record, dict):
            raise TypeError("an audit record is a dict")
        unknown = sorted(set(record) - set(RECORD_FIELDS))
        if unknown:
            raise ValueError(f"audit records hold only the fields of RECORD_FIELDS, not "
                             f"{unknown[0]!r}")
        for name, value in record.items():
            _check_value(name, value)
        if record.get("decision") not in (None, *DECISIONS):
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
        if record.get("event") not in (None, *EVENTS):
            raise ValueError(f"event must be one of {', '.join(EVENTS)}")
        if record.get("city", self.city) != self.city:
            raise ValueError(f"a record of {record['city']!r} in the log of {self.city!r}")
        fields = {name: _writable(value) for name, value in record.items()}
        fields.setdefault("time", format_time(self._clock()))
        fields.setdefault("city", self.city)
        return fields

    def append(self, record: dict) -> int:
        """Write one record; return its index once the line is written (and, with sync=True,
        fsynced). Raises AuditUnavailable when it cannot be written: do not answer then."""
        fields = self._fields(record)
        with self._lock:
            if self._closed or self._broken:
                raise AuditUnavailable(self._broken or "the audit log is closed")
            index = self._count
            fields["index"] = index
            fields["prev"] = self._last_hash
            line = encode(fields)
            data = line + b"\n"
            try:
                written = os.write(self._fd, data)
            except OSError as error:
                self._undo_write(f"writing record {index} failed: {error.strerror}")
                raise AuditUnavailable(f"writing record {index} failed: {error}") from None
            if written != len(data):
                self._undo_write(f"record {index} was written only in part ({written} of "
                                 f"{len(data)} bytes)")
                raise AuditUnavailable(f"record {index} was written only in part")
            self._offset += len(data)
            self._count = index + 1
            self._last_hash = line_hash(line)
            leaf = merkle.leaf_hash(line)
            self._last_leaf = leaf
            self._last_line = line
            self._tree.append(leaf)
            pending = self._count - self._checkpointed
            if pending == 1:
                self._pending_since = time.monotonic()
            full = self._offset >= self._segment_bytes
        if pending == 1 or pending >= self._every or full:
            self._wake.set()
        if self._sync:
            self._sync_records(index)
        return index

    def _undo_write(self, detail: str) -> None:
        """After a failed or partial write: cut the file back to the last whole record, or, if
        that fails too, refuse every further append until the log is opened again."""
        log.error("%s: %s", self.directory, detail)
        try:
            os.ftruncate(self._fd, self._offset)
        except OSError as error:
            self._broken = (f"{detail}, and cutting the partial record away failed "
                            f"({error.strerror}); reopen the log")
            log.error("%s: %s", self.directory, self._broken)

    def _sync_records(self, index: int) -> None:
        """fsync up to record `index`; one fsync serves every thread waiting (group commit).
        A record in a segment the log has moved on from was fsynced when the segment ended."""
        with self._sync_lock:
            if self._synced > index:
                return
            with self._lock:
                target, fd = self._count, self._fd  # every record below target is written
            try:
                _datasync(fd)
            except OSError as error:
                # After a failed fsync the kernel may have dropped the pages: stop appending.
                self._broken = f"fsync failed: {error}"
                log.error("%s: %s", self.directory, self._broken)
                raise AuditUnavailable(self._broken) from None
            self._synced = target

    # Checkpoints --------------------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint | None:
        """Sign and durably write a checkpoint of every record so far (none when nothing was
        appended since the last one); return the checkpoint covering the whole log (None while
        the log is empty)."""
        with self._lock:
            if self._closed:
                raise AuditUnavailable("the audit log is closed")
        return self._checkpoint()

    def _checkpoint(self) -> Checkpoint | None:
        with self._checkpoint_lock:
            return self._checkpoint_locked()

    def _checkpoint_locked(self, *, even_empty: bool = False) -> Checkpoint | None:
        with self._sync_lock:
            with self._lock:
                size, root, last = self._count, self._tree.root(), self._last_leaf
                frontier, line = self._tree.frontier, self._last_line
                if size == self._checkpointed and not (even_empty and
                                                       self._last_checkpoint is None):
                    return self._last_checkpoint
                ended = self._end_segment(size)
                segment, offset = self._segment, self._offset
            try:
                # The records first: a durable checkpoint must never cover records a power
                # loss could take back.
                _datasync(ended if ended is not None else self._fd)
            except OSError as error:
                raise AuditUnavailable(f"fsync before a checkpoint failed: {error}") from None
            finally:
                if ended is not None:
                    os.close(ended)
            self._synced = max(self._synced, size)
        if ended is not None:
            try:
                _fsync_directory(self.directory)
            except OSError as error:
                raise AuditUnavailable(f"fsync of the new segment failed: {error}") from None
        moment = format_time(self._clock())
        if self._last_checkpoint is not None and moment < self._last_checkpoint.time:
            moment = self._last_checkpoint.time  # a clock stepping back must not show
        unsigned = Checkpoint(self.city, size, root.hex(), moment,
                              last.hex() if last is not None else None, self._kid, "")
        checkpoint = Checkpoint(**{**unsigned.to_json(), "signature": b64url_encode(
            self._key.sign(unsigned.signed_bytes()))})
        data = encode(checkpoint.to_json()) + b"\n"
        start = os.fstat(self._cp_fd).st_size
        try:
            written = os.write(self._cp_fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "the checkpoint was written only in part")
            os.fsync(self._cp_fd)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.ftruncate(self._cp_fd, start)
            raise AuditUnavailable(f"writing a checkpoint failed: {error}") from None
        with self._lock:
            self._last_checkpoint = checkpoint
            self._checkpointed = size
            self._checkpoints_end = start + len(data)
            if self._count > size:
                self._pending_since = time.monotonic()
        self._head = LogState(checkpoint, frontier, line, segment, offset)
        self._write_head(self._head)
        return checkpoint

    def _end_segment(self, size: int) -> int | None:
        """With the lock held: when the current segment is full, start the next one at record
        `size` and return the descriptor of the ended one (to fsync and close)."""
        if self._offset < self._segment_bytes or size == self._segment or self._broken:
            return None
        try:
            fd = os.open(self.directory / segment_name(size), _APPEND_FLAGS, FILE_MODE)
        except OSError as error:
            log.error("%s: cannot start a new segment, going on in this one: %s",
                      self.directory, error)
            return None
        ended, self._fd = self._fd, fd
        self._segment, self._offset = size, 0
        return ended

    def _write_head(self, state: LogState) -> None:
        try:
            write_state(self.directory / HEAD_FILE, state)
        except OSError as error:
            # Only opening is slower without it: it then verifies the whole log.
            log.warning("%s: cannot write %s: %s", self.directory, HEAD_FILE, error)

    def _run_checkpoints(self) -> None:
        while True:
            self._wake.clear()
            with self._lock:
                if self._closed:
                    return
                pending = self._count - self._checkpointed
                since = self._pending_since
                full = self._offset >= self._segment_bytes and not self._broken
            due = since + self._seconds - time.monotonic()
            if pending and (pending >= self._every or due <= 0 or full):
                try:
                    self._checkpoint()
                except AuditUnavailable as error:
                    log.error("%s: %s", self.directory, error.detail)
                    self._wake.wait(min(self._seconds, 1.0))
                except Exception:
                    log.exception("%s: taking a checkpoint failed", self.directory)
                    self._wake.wait(min(self._seconds, 1.0))
                continue
            self._wake.wait(due if pending else None)

    # Backups ------------------------------------------------------------------------------------

    def snapshot(self, destination: Path) -> LogState:
        """Copy the log, up to a checkpoint taken now, into the empty folder `destination`: a
        log folder that verifies on its own and opens where this log stood at that checkpoint.
        Records appended meanwhile are not copied; appending goes on while the files are copied
        (a segment only grows, so the bytes up to the checkpoint do not change)."""
        with self._checkpoint_lock:
            with self._lock:
                if self._closed:
                    raise AuditUnavailable("the audit log is closed")
            self._checkpoint_locked(even_empty=True)
            head, checkpoints_end = self._head, self._checkpoints_end
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True, mode=0o700)
        start = read_state(self.directory / START_FILE)
        first = start.size if start is not None else 0
        if start is not None:
            write_state(destination / START_FILE, start)
        copied = [(number, path) for number, path in segments(self.directory)
                  if first <= number <= head.segment]
        if head.segment not in {number for number, _ in copied}:
            copied.append((head.segment, self.directory / segment_name(head.segment)))
        for number, path in copied:
            _copy_prefix(path, destination / segment_name(number),
                         head.offset if number == head.segment else None)
        _copy_prefix(self.directory / CHECKPOINT_FILE, destination / CHECKPOINT_FILE,
                     checkpoints_end)
        write_state(destination / HEAD_FILE, head)
        _fsync_directory(destination)
        return head

    # Closing ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop appending, take a last checkpoint, release the files. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        self._thread.join()
        try:
            self._checkpoint()
        except AuditUnavailable as error:
            log.error("%s: the last checkpoint could not be written: %s", self.directory,
                      error.detail)
        with self._checkpoint_lock, self._lock:
            os.close(self._fd)
            os.close(self._cp_fd)  # releases the lock

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _copy_prefix(source: Path, target: Path, length: int | None) -> None:
    """Copy the first `length` bytes of a file (all of it for None), fsynced, owner-only."""
    with source.open("rb") as reading:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     FILE_MODE)
        with os.fdopen(fd, "wb") as writing:
            remaining = length
            while remaining is None or remaining > 0:
                chunk = reading.read(1 << 20 if remaining is None else min(1 << 20, remaining))
                if not chunk:
                    break
                writing.write(chunk)
                if remaining is not None:
                    remaining -= len(chunk)
            writing.flush()
            os.fsync(writing.fileno())
    if remaining:
        raise AuditUnavailable(f"{source} is shorter than the {length} bytes to copy")
