"""The node's audit log: records survive a killed process, every kind of tampering is found and
named, the node refuses to append to a tampered log, a write that fails fails the request, and an
authority holding only the manifest can check that the log only grew."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from cli import audit as audit_cli
from federation.trust import merkle
from federation.trust.identity import RegionDirectory
from federation.trust.keys import (
    b64url_encode,
    generate_signing_key,
    key_id,
    read_private_key,
    read_public_key,
    write_private_key,
    write_public_key,
)
from federation.trust.manifest import load_manifest
from federation.trust.region_init import init_region, rotate_member_key
from node.audit import (
    CHECKPOINT_FILE,
    HEAD_FILE,
    KINDS,
    LOG_FILE,
    RECORD_FIELDS,
    START_FILE,
    ZERO_HASH,
    AuditCorrupt,
    AuditLog,
    AuditUnavailable,
    Checkpoint,
    consistency_proof_between,
    encode,
    export_checkpoints,
    key_lookup,
    line_hash,
    prove_inclusion,
    read_records,
    segment_name,
    segments,
    verify_checkpoint,
    verify_consistency_between,
    verify_log,
    verify_record_inclusion,
)

ROOT = Path(__file__).resolve().parent.parent
CITY = "tianjin"
PATIENT = 10**9  # checkpoint_every / checkpoint_seconds that never trigger in a test


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    """A real region folder: root key, manifest, a signing key per member."""
    directory = tmp_path_factory.mktemp("region")
    init_region(directory, region="test", cities=[(CITY, CITY), ("beijing", "beijing")],
                authorities=[("auditor", "auditor")])
    manifest, _ = RegionDirectory(directory).open_as("auditor")
    return directory, manifest


@pytest.fixture
def benchlib(monkeypatch):
    """scripts/benchlib/auditlog.py: a large log written fast."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from benchlib import auditlog

    return auditlog


@pytest.fixture(scope="module")
def key(region):
    return read_private_key(region[0] / "members" / CITY / "signing.key")


@pytest.fixture(scope="module")
def manifest(region):
    return region[1]


def record(number: int = 0, **changes) -> dict:
    """A record as the node fills it."""
    digest = hashlib.sha256(str(number).encode()).hexdigest()
    return {
        "time": f"2026-11-26T10:00:{number % 60:02d}.{number % 1000:03d}Z",
        "city": CITY,
        "caller": "auditor" if number % 3 else "beijing",
        "peer_fingerprint": digest,
        "purpose": "population-statistics" if number % 2 else "transit-planning",
        "method": "/cityfed.v1.NodeService/Aggregate",
        "plan_sha256": digest,
        "jti": f"jti-{number:016d}",
        "decision": "refused" if number % 5 == 4 else "granted",
        "status": "PERMISSION_DENIED" if number % 5 == 4 else "OK",
        "reason": "POLICY_DENIED: population.name needs row" if number % 5 == 4 else "",
        "groups_returned": 0 if number % 5 == 4 else 12,
        "groups_suppressed": 0 if number % 5 == 4 else 3,
        "duration_ms": 1.5 + number,
        "request_sha256": digest,
        "response_sha256": None if number % 5 == 4 else digest,
        **changes,
    }


def open_log(directory: Path, key, **options) -> AuditLog:
    settings = {"checkpoint_every": PATIENT, "checkpoint_seconds": PATIENT, **options}
    return AuditLog(directory, city=CITY, signing_key=key, kid=key_id(key.public_key()),
                    **settings)


def build(directory: Path, key, count: int, checkpoints: tuple[int, ...] = (),
          close: bool = True) -> AuditLog:
    """A log of `count` records with checkpoints after the given sizes; closing it takes a last
    checkpoint over everything."""
    log = open_log(directory, key)
    for number in range(count):
        log.append(record(number))
        if number + 1 in checkpoints:
            log.checkpoint()
    if close:
        log.close()
    return log


def crash(log: AuditLog) -> None:
    """Let go of the files the way a killed process does: no last checkpoint."""
    with log._lock:
        log._closed = True
    log._wake.set()
    log._thread.join()
    os.close(log._cp_fd)
    os.close(log._fd)


def lines(directory: Path, name: str = LOG_FILE) -> list[bytes]:
    return (directory / name).read_bytes().split(b"\n")[:-1]


def write_lines(directory: Path, content: list[bytes], name: str = LOG_FILE) -> None:
    (directory / name).write_bytes(b"".join(line + b"\n" for line in content))


def rechain(content: list[bytes], start: int) -> list[bytes]:
    """Fix every prev from `start` on, as someone rewriting the log would."""
    fixed = list(content)
    for position in range(max(start, 1), len(fixed)):
        fields = json.loads(fixed[position])
        fields["prev"] = line_hash(fixed[position - 1])
        fixed[position] = encode(fields)
    return fixed


def edited(line: bytes, **changes) -> bytes:
    return encode({**json.loads(line), **changes})


# Appending and reopening --------------------------------------------------------------------


def test_records_are_chained_canonical_lines_and_reopening_continues(tmp_path, key):
    log = open_log(tmp_path, key)
    assert [log.append(record(n)) for n in range(5)] == [0, 1, 2, 3, 4]
    log.close()
    stored = lines(tmp_path)
    assert len(stored) == 5
    previous = ZERO_HASH
    for index, line in enumerate(stored):
        fields = json.loads(line)
        assert fields == {**record(index), "index": index, "prev": previous}
        assert encode(fields) == line  # canonical JSON
        previous = hashlib.sha256(line).hexdigest()

    with open_log(tmp_path, key) as log:
        assert log.size == 5 and log.last_checkpoint.size == 5
        assert log.append(record(5)) == 5
    assert json.loads(lines(tmp_path)[5])["prev"] == previous
    report = verify_log(tmp_path, key_lookup(key.public_key()))
    assert report.ok and report.records == 6 and report.checkpoints == 2


def test_the_log_fills_in_time_and_city_and_refuses_anything_else(tmp_path, key):
    moments = iter([1_790_000_000.1234, 1_790_000_001.5])
    with open_log(tmp_path, key, clock=lambda: next(moments)) as log:
        log.append({"caller": "auditor", "decision": "granted", "jti": "x\ud800y"})
        for bad in ({"rows": [[1, "Zhang San"]]}, {"caller": ["a"]}, {"duration_ms": float("nan")},
                    {"decision": "maybe"}, {"city": "beijing"}, {"index": 7}):
            with pytest.raises(ValueError):
                log.append(bad)
        assert log.size == 1
    fields = json.loads(lines(tmp_path)[0])
    assert fields["time"] == "2026-09-21T14:13:20.123Z" and fields["city"] == CITY
    assert fields["jti"] == "x?y"  # a lone surrogate cannot make a record unwritable
    assert set(RECORD_FIELDS) >= set(record()) and "rows" not in RECORD_FIELDS


def test_threads_get_unique_consecutive_indexes(tmp_path, key):
    results: list[int] = []
    with open_log(tmp_path, key, checkpoint_every=50) as log:
        def work(thread: int) -> None:
            results.extend(log.append(record(thread * 1000 + n)) for n in range(100))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(results) == list(range(800))
    report = verify_log(tmp_path, key_lookup(key.public_key()))
    assert report.ok and report.records == 800 and report.checkpoints >= 2


def test_a_second_process_cannot_open_the_same_log(tmp_path, key):
    with open_log(tmp_path, key), pytest.raises(AuditUnavailable):
        open_log(tmp_path, key)


# Checkpoints --------------------------------------------------------------------------------


def test_a_checkpoint_signs_size_root_time_and_last_leaf(tmp_path, key, manifest):
    log = open_log(tmp_path, key)
    assert log.checkpoint() is None  # nothing to sign yet
    for number in range(7):
        log.append(record(number))
    checkpoint = log.checkpoint()
    assert log.checkpoint() == checkpoint  # nothing new: no second checkpoint
    log.close()  # nothing new either
    assert len(lines(tmp_path, CHECKPOINT_FILE)) == 1

    leaves = [merkle.leaf_hash(line) for line in lines(tmp_path)]
    assert checkpoint.size == 7 and checkpoint.log == CITY
    assert checkpoint.root == merkle.root(leaves).hex()
    assert checkpoint.last_leaf == leaves[-1].hex()
    assert checkpoint.kid == key_id(key.public_key())
    stored = json.loads(lines(tmp_path, CHECKPOINT_FILE)[0])
    assert stored == checkpoint.to_json()
    assert set(stored) == {"log", "size", "root", "time", "last_leaf", "kid", "signature"}
    assert verify_checkpoint(stored, manifest)
    assert verify_checkpoint(stored, key_lookup(key.public_key()))
    assert not verify_checkpoint(stored, key_lookup(generate_signing_key().public_key()))
    assert not verify_checkpoint({**stored, "size": 6}, manifest)
    assert not verify_checkpoint({**stored, "log": "beijing"}, manifest)


def wait_for_checkpoints(directory: Path, count: int) -> list[int]:
    deadline = time.monotonic() + 5
    while len(export_checkpoints(directory)) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    return [c["size"] for c in export_checkpoints(directory)]


def test_checkpoints_come_every_n_records_and_every_few_seconds(tmp_path, key):
    with open_log(tmp_path / "count", key, checkpoint_every=10) as log:
        for number in range(9):
            log.append(record(number))
        time.sleep(0.05)
        assert export_checkpoints(tmp_path / "count") == []
        for number in range(9, 20):
            log.append(record(number))
            if number in (9, 19):
                assert wait_for_checkpoints(tmp_path / "count", number // 10 + 1)[-1] >= number
    assert wait_for_checkpoints(tmp_path / "count", 2) == [10, 20]

    with open_log(tmp_path / "time", key, checkpoint_seconds=0.2) as log:
        for number in range(3):
            log.append(record(number))
        assert wait_for_checkpoints(tmp_path / "time", 1) == [3]


# Tampering ----------------------------------------------------------------------------------


def swap(content: list[bytes], first: int, second: int) -> list[bytes]:
    changed = list(content)
    changed[first], changed[second] = changed[second], changed[first]
    return changed


def replace(content: list[bytes], position: int, line: bytes) -> list[bytes]:
    return [*content[:position], line, *content[position + 1:]]


def edit_last_checkpoint(directory: Path, **changes) -> None:
    stored = lines(directory, CHECKPOINT_FILE)
    write_lines(directory, replace(stored, len(stored) - 1, edited(stored[-1], **changes)),
                CHECKPOINT_FILE)


TAMPERING = {
    # name: (how, kind, first bad index)
    "a field of a record edited": (
        lambda d, c: write_lines(d, replace(c, 7, edited(c[7], caller="nobody"))), "edited", 7),
    "a record no longer parses": (
        lambda d, c: write_lines(d, replace(c, 4, c[4][:-9])), "edited", 4),
    "the first record edited": (
        lambda d, c: write_lines(d, replace(c, 0, edited(c[0], decision="refused"))),
        "edited", 0),
    "the last record edited, a checkpoint covers it": (
        lambda d, c: write_lines(d, replace(c, 19, edited(c[19], groups_returned=99))),
        "edited", 19),
    "a record's prev edited": (
        lambda d, c: write_lines(d, replace(c, 9, edited(c[9], prev="ab" * 32))), "edited", 9),
    "the first record's prev edited": (
        lambda d, c: write_lines(d, rechain(replace(c, 0, edited(c[0], prev="ab" * 32)), 1)),
        "edited", 0),
    "a record's index edited": (
        lambda d, c: write_lines(d, replace(c, 9, edited(c[9], index=3))), "edited", 9),
    "a record deleted": (lambda d, c: write_lines(d, c[:12] + c[13:]), "deleted", 12),
    "three records deleted": (lambda d, c: write_lines(d, c[:5] + c[8:]), "deleted", 5),
    "the first record deleted": (lambda d, c: write_lines(d, c[1:]), "deleted", 0),
    "two records swapped": (lambda d, c: write_lines(d, swap(c, 5, 6)), "reordered", 5),
    "two distant records swapped": (lambda d, c: write_lines(d, swap(c, 3, 15)),
                                    "reordered", 3),
    "the last two records swapped": (lambda d, c: write_lines(d, swap(c, 18, 19)),
                                     "reordered", 18),
    "the log truncated below a checkpoint": (
        lambda d, c: write_lines(d, c[:16]), "truncated", 16),
    "the log cut inside a covered record": (
        lambda d, c: (d / LOG_FILE).write_bytes(b"".join(x + b"\n" for x in c[:19]) + c[19][:30]),
        "truncated", 19),
    "the whole chain rewritten consistently": (
        lambda d, c: write_lines(d, rechain([edited(x, caller="nobody") for x in c], 0)),
        "rewritten", 0),
    "the records after a checkpoint rewritten": (
        lambda d, c: write_lines(d, rechain(replace(c, 13, edited(c[13], purpose="x")), 13)),
        "rewritten", 10),
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampering_is_found_and_named(tmp_path, key, manifest, name):
    how, kind, index = TAMPERING[name]
    build(tmp_path, key, 20, checkpoints=(10,))
    assert verify_log(tmp_path, manifest).ok
    how(tmp_path, lines(tmp_path))

    report = verify_log(tmp_path, manifest, city=CITY)
    assert not report.ok
    assert (report.kind, report.first_bad_index) == (kind, index), report.problem
    assert kind in KINDS and str(index) in report.problem
    # A node must not append to a tampered log. Opening verifies the whole log when the state at
    # its last checkpoint is missing (a log of an older version); else only what follows it.
    (tmp_path / HEAD_FILE).unlink()
    with pytest.raises(AuditCorrupt, match=kind) as refused:
        open_log(tmp_path, key)
    assert refused.value.report.first_bad_index == index


def test_a_forged_checkpoint_is_found(tmp_path, key, manifest):
    build(tmp_path, key, 12, checkpoints=(6,))
    edit_last_checkpoint(tmp_path, size=11)  # the signature no longer covers it
    report = verify_log(tmp_path, manifest)
    assert (report.ok, report.kind, report.bad_checkpoint) == (False, "forged", 1)
    with pytest.raises(AuditCorrupt, match="forged"):
        open_log(tmp_path, key)


def test_a_checkpoint_signed_by_another_key_is_found(tmp_path, key, region, manifest):
    """Someone rewrites the log and signs a checkpoint with a key of their own, or with the
    key of another city."""
    build(tmp_path, key, 12)
    content = rechain([edited(x, caller="nobody") for x in lines(tmp_path)], 0)
    write_lines(tmp_path, content)
    beijing = read_private_key(region[0] / "members" / "beijing" / "signing.key")
    for signer in (generate_signing_key(), beijing):
        (tmp_path / CHECKPOINT_FILE).unlink()
        forger = AuditLog(tmp_path, city=CITY, signing_key=signer,
                          kid=key_id(signer.public_key()), checkpoint_every=PATIENT,
                          checkpoint_seconds=PATIENT)
        forger.append(record(12))
        forger.close()
        report = verify_log(tmp_path, manifest, city=CITY)
        assert (report.ok, report.kind, report.bad_checkpoint) == (False, "forged", 0)
        assert "not a key the manifest lists for 'tianjin'" in report.problem


def test_a_rolled_back_checkpoint_is_found(tmp_path, key, manifest):
    build(tmp_path, key, 12, checkpoints=(6,))
    stored = lines(tmp_path, CHECKPOINT_FILE)
    write_lines(tmp_path, [*stored, stored[0]], CHECKPOINT_FILE)  # replay the older one
    report = verify_log(tmp_path, manifest)
    assert (report.ok, report.kind, report.bad_checkpoint) == (False, "rolled-back", 2)
    assert "a log only grows" in report.problem


def test_checkpoints_held_elsewhere_catch_a_rewrite_with_deleted_checkpoints(tmp_path, key,
                                                                            manifest):
    build(tmp_path, key, 12)
    held = export_checkpoints(tmp_path)
    write_lines(tmp_path, rechain([edited(x, caller="nobody") for x in lines(tmp_path)], 0))
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"")
    assert verify_log(tmp_path, manifest).ok  # nothing in the folder tells
    report = verify_log(tmp_path, manifest, held_checkpoints=held)
    assert (report.ok, report.kind) == (False, "rewritten")
    write_lines(tmp_path, lines(tmp_path)[:5])
    assert verify_log(tmp_path, manifest, held_checkpoints=held).kind == "truncated"


def test_records_after_the_last_checkpoint_are_protected_only_by_the_chain(tmp_path, key,
                                                                          manifest):
    log = build(tmp_path, key, 10, checkpoints=(6,), close=False)
    crash(log)
    content = lines(tmp_path)
    write_lines(tmp_path, replace(content, 9, edited(content[9], caller="nobody")))
    report = verify_log(tmp_path, manifest)
    assert report.ok and any("records 6..9 are not covered" in n for n in report.notes)


# Crashes ------------------------------------------------------------------------------------


def test_a_torn_last_line_no_checkpoint_covers_is_cut_away(tmp_path, key, manifest):
    log = build(tmp_path, key, 8, checkpoints=(5,), close=False)
    crash(log)
    with (tmp_path / LOG_FILE).open("ab") as file:
        file.write(encode({**record(8), "index": 8})[:57])  # the write cut by the crash
    report = verify_log(tmp_path, manifest)
    assert report.ok and report.torn_tail and report.records == 8

    with open_log(tmp_path, key) as log:
        assert log.recovered and "incomplete last record" in log.recovered[0]
        assert log.last_checkpoint.size == 8  # what the crash left uncovered is signed at once
        assert log.append(record(8)) == 8
    report = verify_log(tmp_path, manifest)
    assert report.ok and not report.torn_tail and report.records == 9


def test_a_torn_checkpoint_line_is_cut_away(tmp_path, key, manifest):
    log = build(tmp_path, key, 8, checkpoints=(5,), close=False)
    crash(log)
    with (tmp_path / CHECKPOINT_FILE).open("ab") as file:
        file.write(b'{"kid":"abc","last_leaf":')
    assert verify_log(tmp_path, manifest).ok
    with open_log(tmp_path, key) as log:
        assert "incomplete last line" in log.recovered[0]
    assert [c["size"] for c in export_checkpoints(tmp_path)] == [5, 8]
    assert verify_log(tmp_path, manifest).ok


KILLED_WRITER = """
import os, sys, threading
from pathlib import Path
from federation.trust.keys import key_id, read_private_key
from node.audit import AuditLog
key = read_private_key(Path(sys.argv[1]))
log = AuditLog(Path(sys.argv[2]), city="tianjin", signing_key=key,
               kid=key_id(key.public_key()), checkpoint_every=64, checkpoint_seconds=0.05)
def work(thread):
    number = 0
    while True:
        number += 1
        index = log.append({"caller": f"t{thread}", "jti": f"{thread}-{number}",
                            "decision": "granted", "method": "/cityfed.v1.NodeService/Aggregate"})
        os.write(1, f"{index}\\n".encode())
for thread in range(4):
    threading.Thread(target=work, args=(thread,), daemon=True).start()
threading.Event().wait()
"""


def test_every_index_returned_before_sigkill_is_in_the_log(tmp_path, key, manifest):
    key_file = tmp_path / "signing.key"
    write_private_key(key_file, key)
    directory = tmp_path / "audit"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(key_file),
                               str(directory)], cwd=ROOT, stdout=subprocess.PIPE)
    printed = []
    try:
        for line in writer.stdout:
            printed.append(int(line))
            if len(printed) == 3000:
                break
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        rest, _ = writer.communicate(timeout=30)
    printed += [int(line) for line in rest.split()]
    assert writer.returncode == -signal.SIGKILL and len(printed) >= 3000

    report = verify_log(directory, manifest, city=CITY)
    assert report.ok, report.problem
    with open_log(directory, key) as log:
        assert log.size >= max(printed) + 1
        log.append(record(0))
    stored = {r["index"] for r in read_records(directory)}
    assert set(printed) <= stored
    report = verify_log(directory, manifest, city=CITY)
    assert report.ok and report.checkpoints >= 2


# Failing closed -----------------------------------------------------------------------------


def test_an_unwritable_log_fails_the_request(tmp_path, key, manifest):
    log = open_log(tmp_path, key)
    log.append(record(0))
    # The file descriptor now points at something that cannot be written.
    read_only = os.open(os.devnull, os.O_RDONLY)
    os.dup2(read_only, log._fd)
    os.close(read_only)
    for _ in range(2):
        with pytest.raises(AuditUnavailable) as failed:
            log.append(record(1))
        assert failed.value.status == grpc.StatusCode.UNAVAILABLE
        assert failed.value.reason == "AUDIT_UNAVAILABLE"
        assert "no answer" in str(failed.value) and "Errno" not in str(failed.value)
    log.close()
    with pytest.raises(AuditUnavailable):
        log.append(record(1))
    assert verify_log(tmp_path, manifest).ok


FULL_DISK = """
import os, resource, signal, sys
from pathlib import Path
from federation.trust.keys import key_id, read_private_key
from node.audit import AuditLog, AuditUnavailable
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
key = read_private_key(Path(sys.argv[1]))
directory = Path(sys.argv[2])
log = AuditLog(directory, city="tianjin", signing_key=key, kid=key_id(key.public_key()))
record = {"caller": "auditor", "decision": "granted", "reason": "x" * 300}
for _ in range(5):
    log.append(record)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
# The file may grow by one and a half records: the next record is written only in part.
limit = (directory / "audit.log").stat().st_size + 700
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
written = 0
try:
    while True:
        log.append(record)
        written += 1
except AuditUnavailable as error:
    print("refused", written, error.detail)
try:
    log.append(record)
except AuditUnavailable:
    print("still refused", (directory / "audit.log").stat().st_size)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
print("appended", log.append(record))
log.close()
"""


def test_a_full_disk_fails_the_request_and_leaves_no_partial_record(tmp_path, key, manifest):
    key_file = tmp_path / "signing.key"
    write_private_key(key_file, key)
    directory = tmp_path / "audit"
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(key_file), str(directory)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    refused, still, appended = done.stdout.splitlines()
    assert refused.startswith("refused 1 ") and "only in part" in refused
    assert still.startswith("still refused")
    assert appended == "appended 6"
    report = verify_log(directory, manifest, city=CITY)
    assert report.ok and report.records == 7 and not report.torn_tail


# What an authority holding only the manifest can check --------------------------------------


def test_consistency_and_inclusion_proofs_verify_with_only_the_manifest(tmp_path, key, region):
    build(tmp_path, key, 40, checkpoints=(1, 7, 8, 20, 33))
    # The authority loads the manifest with the pinned root key, and nothing of the node's.
    root_key = region[0] / "root" / "root.pub"
    manifest = load_manifest(region[0] / "manifest.json", read_public_key(root_key))
    checkpoints = export_checkpoints(tmp_path)
    assert [c["size"] for c in checkpoints] == [1, 7, 8, 20, 33, 40]
    for old in checkpoints:
        for new in checkpoints:
            if old["size"] > new["size"]:
                continue
            proof = consistency_proof_between(tmp_path, old["size"], new["size"])
            assert verify_consistency_between(old, new, proof, manifest)
            if proof:
                bad = [proof[0][:-1] + ("0" if proof[0][-1] != "0" else "1"), *proof[1:]]
                assert not verify_consistency_between(old, new, bad, manifest)
            if old["size"] < new["size"]:
                assert not verify_consistency_between(new, old, proof, manifest)
    forged = {**checkpoints[-1], "root": "00" * 32}
    proof = consistency_proof_between(tmp_path, 20, 40)
    assert not verify_consistency_between(checkpoints[3], forged, proof, manifest)

    stored = lines(tmp_path)
    for index in (0, 5, 19, 32):
        checkpoint = checkpoints[4]  # size 33
        proof = prove_inclusion(tmp_path, index, 33)
        assert verify_record_inclusion(stored[index], index, checkpoint, proof, manifest)
        assert not verify_record_inclusion(stored[index + 1], index, checkpoint, proof, manifest)
        assert not verify_record_inclusion(stored[index], index, {**checkpoint, "size": 34},
                                           proof, manifest)


def test_a_rotated_key_still_verifies_through_the_manifest(tmp_path, region):
    directory = tmp_path / "region"
    init_region(directory, region="test", cities=[(CITY, CITY)], authorities=[])
    old_key = read_private_key(directory / "members" / CITY / "signing.key")
    build(tmp_path / "audit", old_key, 5)
    rotate_member_key(directory, CITY, now=datetime.now(UTC),
                      old_key_grace=timedelta(days=1))
    new_key = read_private_key(directory / "members" / CITY / "signing.key")
    root_key = directory / "root" / "root.pub"
    manifest = load_manifest(directory / "manifest.json", read_public_key(root_key))
    # The node opens with its new key: the old checkpoint is noted, not refused.
    with open_log(tmp_path / "audit", new_key) as log:
        log.append(record(5))
    with open_log(tmp_path / "audit", new_key, public_keys=manifest) as log:
        log.append(record(6))
    report = verify_log(tmp_path / "audit", manifest, city=CITY)
    assert report.ok and report.checkpoints == 3
    kids = [c["kid"] for c in export_checkpoints(tmp_path / "audit")]
    assert kids == [key_id(old_key.public_key())] + [key_id(new_key.public_key())] * 2


def test_a_checkpoint_is_bound_to_its_log_and_fields():
    with pytest.raises(ValueError):
        Checkpoint.from_json({"log": CITY})
    key = generate_signing_key()
    body = {"log": CITY, "size": 1, "root": "ab" * 32, "time": "2026-11-26T10:00:00.000Z",
            "last_leaf": "ab" * 32, "kid": key_id(key.public_key()), "signature": ""}
    unsigned = Checkpoint(**body)
    signed = {**body, "signature": b64url_encode(key.sign(unsigned.signed_bytes()))}
    assert verify_checkpoint(signed, key_lookup(key.public_key()))
    for change in ({"time": "2026-11-26T10:00:00Z"}, {"extra": 1}, {"size": -1},
                   {"root": "AB" * 32}, {"last_leaf": None}, {"signature": "!"}):
        assert not verify_checkpoint({**signed, **change}, key_lookup(key.public_key()))


# Reading ------------------------------------------------------------------------------------


def test_read_records_filters(tmp_path, key):
    build(tmp_path, key, 30)
    everything = list(read_records(tmp_path))
    assert [r["index"] for r in everything] == list(range(30))
    assert all(r["caller"] == "beijing" for r in read_records(tmp_path, caller="beijing"))
    assert len(list(read_records(tmp_path, caller="beijing"))) == 10
    assert len(list(read_records(tmp_path, decision="refused"))) == 6
    assert len(list(read_records(tmp_path, purpose="transit-planning",
                                 decision="granted"))) == 12
    window = list(read_records(tmp_path, since="2026-11-26T10:00:05Z",
                               until=datetime(2026, 11, 26, 10, 0, 10, tzinfo=UTC)))
    assert [r["index"] for r in window] == [5, 6, 7, 8, 9]
    assert [r["index"] for r in read_records(tmp_path, since="2026-11-26T10:00:28")] == [28, 29]


# Segments, opening in O(1) and archiving ----------------------------------------------------


def segment_log(directory: Path, key, count: int, *, segment_bytes: int = 4000,
                checkpoint_every: int = 5, close: bool = True) -> AuditLog:
    """A log of `count` records in segments of about `segment_bytes` (eight records or so),
    with checkpoints every few records, taken as the node's checkpoint thread takes them."""
    log = open_log(directory, key, segment_bytes=segment_bytes)
    for number in range(count):
        log.append(record(number))
        if (number + 1) % checkpoint_every == 0:
            log.checkpoint()
    if close:
        log.close()
    return log


def checkpoint_sizes(directory: Path) -> list[int]:
    return [c["size"] for c in export_checkpoints(directory)]


def test_records_go_to_segments_that_each_start_at_a_signed_checkpoint(tmp_path, key,
                                                                     manifest):
    with open_log(tmp_path, key, segment_bytes=4000, checkpoint_every=PATIENT) as log:
        for number in range(60):
            log.append(record(number))  # the checkpoint thread ends each full segment
            time.sleep(0.001)
    found = segments(tmp_path)
    assert len(found) >= 4 and found[0] == (0, tmp_path / LOG_FILE)
    assert [path.name for _, path in found[1:]] == [f"audit.{first:012d}.log"
                                                    for first, _ in found[1:]]
    assert {first for first, _ in found[1:]} <= set(checkpoint_sizes(tmp_path))
    for first, path in found:
        if path.stat().st_size:  # the last one may be empty yet
            assert json.loads(path.read_bytes().split(b"\n")[0])["index"] == first
    assert [r["index"] for r in read_records(tmp_path)] == list(range(60))
    report = verify_log(tmp_path, manifest, city=CITY)
    assert report.ok and report.records == 60, report.problem
    with open_log(tmp_path, key, segment_bytes=4000) as log:
        assert log.size == 60 and log.append(record(60)) == 60
    assert verify_log(tmp_path, manifest, city=CITY).records == 61


def test_a_log_of_an_older_version_opens_as_one_segment(tmp_path, key, manifest):
    build(tmp_path, key, 12, checkpoints=(6,))
    (tmp_path / HEAD_FILE).unlink()  # older versions wrote audit.log and checkpoints.log only
    with open_log(tmp_path, key) as log:
        assert log.size == 12 and log.append(record(12)) == 12
    assert (tmp_path / HEAD_FILE).exists() and segments(tmp_path) == [(0, tmp_path / LOG_FILE)]
    assert verify_log(tmp_path, manifest, city=CITY).records == 13


def test_opening_verifies_only_what_follows_the_last_checkpoint(tmp_path, key, manifest):
    """A covered record edited in place is for `verify` to find; everything from the last
    checkpoint on, and the record that checkpoint signs last, are checked on every opening."""
    segment_log(tmp_path / "middle", key, 40)
    content = lines(tmp_path / "middle")
    write_lines(tmp_path / "middle", replace(content, 3, edited(content[3], caller="nobody")))
    with open_log(tmp_path / "middle", key, segment_bytes=4000) as log:
        assert log.size == 40  # not read
    report = verify_log(tmp_path / "middle", manifest)
    assert (report.kind, report.first_bad_index) == ("edited", 3)

    for name, tamper, kind, index in (
            ("tail", lambda c: replace(c, 42, edited(c[42], caller="nobody")), "edited", 42),
            ("covered", lambda c: replace(c, 39, edited(c[39], caller="nobody")), "edited", 39),
            ("truncated", lambda c: c[:-6], "truncated", 38)):
        directory = tmp_path / name
        crash(build(directory, key, 44, checkpoints=(40,), close=False))
        write_lines(directory, tamper(lines(directory)))
        with pytest.raises(AuditCorrupt, match=kind) as refused:
            open_log(directory, key)
        assert refused.value.report.first_bad_index == index

    # The checkpoint ended a full segment: its last record ends the segment before.
    build(tmp_path / "boundary", key, 12)
    with open_log(tmp_path / "boundary", key, segment_bytes=1) as log:
        log.append(record(12))
        log.checkpoint()
    assert segments(tmp_path / "boundary")[-1][0] == 13
    content = lines(tmp_path / "boundary")
    write_lines(tmp_path / "boundary", replace(content, 12, edited(content[12], caller="x")))
    with pytest.raises(AuditCorrupt, match="record 12 was edited"):
        open_log(tmp_path / "boundary", key)


def test_a_head_that_does_not_line_up_falls_back_to_verifying_everything(tmp_path, key,
                                                                         manifest, caplog):
    segment_log(tmp_path, key, 30)
    (tmp_path / HEAD_FILE).write_text('{"checkpoint": "forged"}')
    with open_log(tmp_path, key, segment_bytes=4000) as log:
        assert log.size == 30
    assert "verifying the whole log instead" in caplog.text
    # A head its city signed counts like a held checkpoint: the log must still hold it.
    head = (tmp_path / HEAD_FILE).read_bytes()
    content = b"".join(path.read_bytes() for _, path in segments(tmp_path))
    for _, path in segments(tmp_path):
        path.unlink()
    (tmp_path / LOG_FILE).write_bytes(b"\n".join(content.split(b"\n")[:20]) + b"\n")
    write_lines(tmp_path, [], CHECKPOINT_FILE)
    (tmp_path / HEAD_FILE).write_bytes(head)
    with pytest.raises(AuditCorrupt, match="truncated"):
        open_log(tmp_path, key, segment_bytes=4000)


def open_cpu_seconds(directory: Path, key) -> float:
    """The opening thread's CPU: opening verifies in the caller's thread."""
    started = time.thread_time()
    open_log(directory, key).close()
    return time.thread_time() - started


def test_opening_costs_the_same_for_a_small_and_a_large_log(tmp_path, key, benchlib):
    """O(1) in the log's length: verifying 60,000 records costs about 0.6 s of CPU, opening
    them must cost what opening 1,000 costs (scripts/audit_startup.py measures 1,000,000 at a
    node process)."""
    for name, count in (("small", 1000), ("large", 60_000)):
        benchlib.write_log(tmp_path / name, key=key, city=CITY, records=count,
                           segment_bytes=8_000_000)
    assert len(segments(tmp_path / "large")) >= 4
    small = min(open_cpu_seconds(tmp_path / "small", key) for _ in range(3))
    large = min(open_cpu_seconds(tmp_path / "large", key) for _ in range(3))
    started = time.thread_time()
    assert verify_log(tmp_path / "large", key_lookup(key.public_key())).ok
    whole = time.thread_time() - started
    assert large < small + 0.05 and large < whole / 10, (small, large, whole)


def test_old_segments_are_archived_and_what_remains_still_verifies(tmp_path, key, manifest,
                                                                  region):
    log_dir, archive_dir = tmp_path / "audit", tmp_path / "archive"
    segment_log(log_dir, key, 50)
    starts = [first for first, _ in segments(log_dir)]
    trust = ("--manifest", str(region[0] / "manifest.json"),
             "--root-public-key", str(region[0] / "root" / "root.pub"))
    code, out, _ = cli("audit", "archive", str(log_dir), str(archive_dir), "--before",
                       str(starts[2] + 1), *trust)
    assert code == 0 and f"now starts at record {starts[2]}" in out, out
    assert [first for first, _ in segments(log_dir)] == starts[2:]
    assert [first for first, _ in segments(archive_dir)] == starts[:2]

    code, out, err = cli("audit", "verify", str(log_dir), *trust)
    assert code == 0 and f"{50 - starts[2]} records (records {starts[2]}..49" in out, out
    assert "archived" in err
    assert verify_log(archive_dir, manifest, city=CITY).records == starts[2]
    assert [r["index"] for r in read_records(log_dir)] == list(range(starts[2], 50))
    with open_log(log_dir, key, segment_bytes=4000) as log:  # the node goes on
        assert log.append(record(50)) == 50
    (log_dir / HEAD_FILE).unlink()
    with open_log(log_dir, key, segment_bytes=4000) as log:  # verifying from start.json
        assert log.size == 51

    # Again, into the same archive folder: it goes on holding every record before the log's.
    latest = segments(log_dir)[-1][0]
    code, out, _ = cli("audit", "archive", str(log_dir), str(archive_dir), "--before", "10000",
                       *trust)
    assert code == 0 and verify_log(archive_dir, manifest).records == latest
    assert segments(log_dir) == [(latest, log_dir / segment_name(latest))]
    code, out, _ = cli("audit", "archive", str(log_dir), str(archive_dir), "--before", "10000",
                       *trust)
    assert code == 0 and out.startswith("nothing archived")

    # Tampering with what remains is still named; so is a start that does not verify.
    with open_log(log_dir, key, segment_bytes=4000) as log:
        for number in range(51, 54):
            log.append(record(number))
    last = dict(segments(log_dir))[latest]  # where rotation put 51..53 depends on their size
    content = last.read_bytes().split(b"\n")[:-1]
    last.write_bytes(b"".join(x + b"\n" for x in replace(content, 1, edited(content[1],
                                                                             caller="x"))))
    report = verify_log(log_dir, manifest)
    assert (report.kind, report.first_bad_index) == ("edited", latest + 1)
    start = json.loads((log_dir / START_FILE).read_text())
    start["last_record"] = start["last_record"].replace("auditor", "nobody")
    (log_dir / START_FILE).write_text(json.dumps(start))
    assert verify_log(log_dir, manifest).kind == "forged"


def test_archiving_refuses_a_log_that_does_not_verify(tmp_path, key, region):
    segment_log(tmp_path / "audit", key, 50)
    content = lines(tmp_path / "audit")
    write_lines(tmp_path / "audit", replace(content, 2, edited(content[2], caller="nobody")))
    before = sorted(p.name for p in (tmp_path / "audit").iterdir())
    with pytest.raises(AuditCorrupt, match="record 2 was edited"):
        cli("audit", "archive", str(tmp_path / "audit"), str(tmp_path / "archive"),
            "--before", "40", "--manifest", str(region[0] / "manifest.json"),
            "--root-public-key", str(region[0] / "root" / "root.pub"))
    assert sorted(p.name for p in (tmp_path / "audit").iterdir()) == before


# The command line ---------------------------------------------------------------------------


def cli(*argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="cityfed")
    audit_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = args.run(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli_verify_says_ok_or_names_the_first_bad_record(tmp_path, key, region):
    build(tmp_path / "audit", key, 20, checkpoints=(10,))
    trust = ("--manifest", str(region[0] / "manifest.json"),
             "--root-public-key", str(region[0] / "root" / "root.pub"))
    code, out, _ = cli("audit", "verify", str(tmp_path / "audit"), *trust)
    assert code == 0 and out.startswith("OK") and "20 records, 2 checkpoints" in out
    assert "log of tianjin" in out

    code, _, err = cli("audit", "verify", str(tmp_path / "audit"))
    assert code == 0 and "NOT checked" in err

    public = tmp_path / "tianjin.pub"
    write_public_key(public, key.public_key())
    assert cli("audit", "verify", str(tmp_path / "audit"), "--public-key", str(public))[0] == 0

    held = tmp_path / "held.json"
    assert cli("audit", "export-checkpoints", str(tmp_path / "audit"), "--out", str(held))[0] == 0
    content = lines(tmp_path / "audit")
    write_lines(tmp_path / "audit", content[:12] + content[13:])
    code, out, _ = cli("audit", "verify", str(tmp_path / "audit"), *trust, "--checkpoints",
                       str(held))
    assert code == 1
    assert out.startswith("TAMPERED (deleted)") and "first bad record: 12" in out


def test_cli_show_prints_a_table_or_json_lines(tmp_path, key):
    build(tmp_path, key, 10)
    code, out, _ = cli("audit", "show", str(tmp_path), "--decision", "refused")
    assert code == 0 and "POLICY_DENIED" in out and "2 records" in out
    assert "Aggregate" in out and "/cityfed.v1" not in out
    code, out, _ = cli("audit", "show", str(tmp_path), "--caller", "beijing", "--json")
    shown = [json.loads(line) for line in out.splitlines()]
    assert [r["index"] for r in shown] == [0, 3, 6, 9]
    code, out, _ = cli("audit", "show", str(tmp_path), "--since", "2026-11-26T10:00:08Z",
                       "--json")
    assert [json.loads(line)["index"] for line in out.splitlines()] == [8, 9]


def test_cli_proves_and_an_authority_checks_consistency(tmp_path, key, region):
    build(tmp_path / "audit", key, 25, checkpoints=(9,))
    code, out, _ = cli("audit", "export-checkpoints", str(tmp_path / "audit"))
    old, new = json.loads(out)
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    code, out, _ = cli("audit", "prove-consistency", str(tmp_path / "audit"), "--old-size", "9",
                       "--new-size", "25")
    assert code == 0
    (tmp_path / "proof.json").write_text(out)
    trust = ("--manifest", str(region[0] / "manifest.json"),
             "--root-public-key", str(region[0] / "root" / "root.pub"))
    code, out, _ = cli("audit", "check-consistency", *trust, str(tmp_path / "old.json"),
                       str(tmp_path / "new.json"), str(tmp_path / "proof.json"))
    assert code == 0 and out.startswith("consistent") and "25 records" in out

    proof = json.loads((tmp_path / "proof.json").read_text())["proof"]
    proof[0] = "00" * 32
    code, out, _ = cli("audit", "check-consistency", *trust, str(tmp_path / "old.json"),
                       str(tmp_path / "new.json"), json.dumps(proof))
    assert code == 1 and out.startswith("NOT consistent")
    code, out, _ = cli("audit", "check-consistency", *trust, str(tmp_path / "new.json"),
                       str(tmp_path / "old.json"), str(tmp_path / "proof.json"))
    assert code == 1 and "proof is for old_size 9" in out


# Cost ---------------------------------------------------------------------------------------


def measure(directory: Path, key, *, threads: int, per_thread: int, sync: bool) -> str:
    """Wall-clock latency of append (what a request waits), the CPU the calling thread spends
    on it (what a loaded machine cannot hide), and throughput."""
    latencies: list[float] = []
    cpu: list[float] = []
    with open_log(directory, key, sync=sync, checkpoint_every=1000,
                  checkpoint_seconds=10.0) as log:
        def work(thread: int) -> None:
            mine, spent = [], []
            for number in range(per_thread):
                entry = record(thread * per_thread + number)
                started, started_cpu = time.perf_counter(), time.thread_time()
                log.append(entry)
                spent.append(time.thread_time() - started_cpu)
                mine.append(time.perf_counter() - started)
            latencies.extend(mine)
            cpu.extend(spent)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    assert p50 < 50  # a very loose sanity bound, not a performance assertion
    return (f"{threads} thread(s), fsync {'on ' if sync else 'off'}: {len(latencies):5d} "
            f"records, p50 {p50:.3f} ms, p99 {p99:.3f} ms, CPU p50 "
            f"{statistics.median(cpu) * 1000:.3f} ms, {len(latencies) / elapsed:,.0f} records/s")


def test_append_cost_is_measured(tmp_path, key, capsys):
    results = [
        measure(tmp_path / "a", key, threads=1, per_thread=3000, sync=False),
        measure(tmp_path / "b", key, threads=8, per_thread=400, sync=False),
        measure(tmp_path / "c", key, threads=1, per_thread=150, sync=True),
        measure(tmp_path / "d", key, threads=8, per_thread=40, sync=True),
    ]
    with capsys.disabled():
        print(f"\naudit append cost ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}):")
        for line in results:
            print("  " + line)
    for name in "abcd":
        assert verify_log(tmp_path / name, key_lookup(key.public_key())).ok
