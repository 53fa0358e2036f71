"""Backups of a running node, and restoring one on another host (docs/operations.md).

A backup is a folder the node writes while it goes on answering:

    backup.json                 what is in it and the SHA-256 of every file, signed by the city
    database.duckdb             the city's database, checkpointed and copied with loads held off
                                (none for a Spark node: its data is the city's own, in its
                                Spark, backed up with the city's tools; row_counts say what
                                the engine held)
    state/manifest.json         the manifest the node held
    state/budget.sqlite         the privacy budget      } SQLite's online backup:
    state/seen_tokens.sqlite    the token ids seen      } one consistent snapshot each
    state/audit/                the audit log up to a checkpoint signed for the backup
    state/spark_rank_seed       a Spark node's secret order of each person's rows
    policy.toml                 the owner's policy, when the node has one

Taken in that order: the records of everything the database holds come before the audit log's
checkpoint, and the budget and token ids, taken after it, include at least every charge and
token its records show (a restore forgets nothing it must keep; it may keep a little more).

A restore verifies everything first: the signature on backup.json, every file's hash, the audit
log record by record, the database's row counts. It never reuses an audit index: the backup ends
at checkpoint N, but the node may have gone on to N+k, and receipts name those indices. The
operator states the last index any receipt or checkpoint names (the authority's collected
checkpoints give it with `--checkpoints`); the restore writes a `lost` record at every index from
N to it, then a `restored` record, signed by a checkpoint, and the restored node goes on after.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import node
from federation.errors import CityfedError, ConfigError, InvalidArgument
from federation.query.sandbox import sandboxed_connection
from federation.trust.canonical import canonical_json, strict_loads
from federation.trust.keys import (
    b64url_decode,
    b64url_encode,
    key_id,
    read_private_key,
    read_public_key,
    write_file_atomically,
)
from federation.trust.manifest import (
    Manifest,
    ManifestRejected,
    load_manifest,
    verify_held_manifest,
)
from federation.trust.private_files import owner_only
from node.audit import (
    AuditLog,
    Checkpoint,
    format_time,
    read_state,
    verify_checkpoint,
    verify_log,
)
from node.config import NodeConfig
from node.stores.spark import SEED_FILE

FORMAT = 1
BACKUP_FILE = "backup.json"
DATABASE_FILE = "database.duckdb"
STATE_DIR = "state"
AUDIT_DIR = f"{STATE_DIR}/audit"
MANIFEST_FILE = f"{STATE_DIR}/manifest.json"
SQLITE_FILES = ("budget.sqlite", "seen_tokens.sqlite")
POLICY_FILE = "policy.toml"
RANK_SEED_FILE = SEED_FILE


class BackupInvalid(CityfedError):
    """A backup that is incomplete, altered, or not this city's: nothing was restored."""

    status = grpc.StatusCode.DATA_LOSS
    reason = "BACKUP_INVALID"


@dataclass(frozen=True)
class Backup:
    """What backup.json says (its signature checked by `read_backup`)."""

    city: str
    created: str
    checkpoint: Checkpoint       # the audit log's last: the backup holds its records exactly
    first_record: int            # the first record the backup's log holds (earlier: archived)
    row_counts: dict[str, int]
    files: dict[str, dict[str, Any]]  # relative path: {"sha256", "bytes"}
    kid: str
    store: str = "duckdb"        # "spark": no database file, the data being the city's own

    @property
    def records(self) -> int:
        return self.checkpoint.size


# Taking a backup (in the node) ------------------------------------------------------------------

def take_backup(destination: Path, *, config: NodeConfig, store, audit: AuditLog,
                signing_key: Ed25519PrivateKey, timeout: float) -> Backup:
    """Write a backup of the running node into `destination`, an absolute path on its host that
    does not exist yet or is an empty folder. `store` is the node's Store; loads wait for the
    database's copy (a load under way is waited for, up to `timeout` seconds)."""
    destination = Path(destination)
    if not destination.is_absolute():
        raise InvalidArgument("the backup folder must be an absolute path on the node's host")
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise InvalidArgument(f"{destination} exists and is not an empty folder: a backup goes "
                              "into a new one")
    with owner_only():
        destination.mkdir(parents=True, exist_ok=True, mode=0o700)
        row_counts = store.snapshot(destination / DATABASE_FILE, timeout=timeout)
        (destination / STATE_DIR).mkdir(mode=0o700)
        head = audit.snapshot(destination / AUDIT_DIR)
        for name in SQLITE_FILES:
            _sqlite_copy(config.state_path / name, destination / STATE_DIR / name)
        shutil.copyfile(config.state_path / "manifest.json", destination / MANIFEST_FILE)
        if (config.state_path / RANK_SEED_FILE).exists():
            shutil.copyfile(config.state_path / RANK_SEED_FILE,
                            destination / STATE_DIR / RANK_SEED_FILE)
        if config.policy is not None:
            shutil.copyfile(config.policy, destination / POLICY_FILE)
    start = read_state(destination / AUDIT_DIR / "start.json")
    body = {
        "format": FORMAT, "city": config.city, "created": format_time(datetime.now(UTC)
                                                                      .timestamp()),
        "software_version": node.__version__,
        "audit": {"checkpoint": head.checkpoint.to_json(),
                  "first_record": start.size if start is not None else 0},
        "row_counts": row_counts,
        "store": store.engine,
        "files": {name: _describe(destination / name) for name in _files(destination)},
    }
    kid = key_id(signing_key.public_key())
    signed = {**body, "kid": kid,
              "signature": b64url_encode(signing_key.sign(canonical_json(body)))}
    write_file_atomically(destination / BACKUP_FILE, canonical_json(signed) + b"\n", 0o600)
    return _backup_of(signed)


def _sqlite_copy(source: Path, target: Path) -> None:
    """One consistent snapshot of a SQLite database in use, by SQLite's backup API."""
    reading = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        writing = sqlite3.connect(target)
        try:
            reading.backup(writing)
            # A single file, which reading does not change (the node turns WAL on again).
            writing.execute("PRAGMA journal_mode=DELETE")
        finally:
            writing.close()
    finally:
        reading.close()
    with open(target, "rb+") as file:
        os.fsync(file.fileno())


def _files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")
                  if path.is_file() and path.name != BACKUP_FILE)


def _describe(path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    return {"sha256": digest, "bytes": path.stat().st_size}


def _backup_of(signed: dict) -> Backup:
    try:
        if signed.get("format") != FORMAT:
            raise ValueError(f"format {signed.get('format')!r} is not {FORMAT}")
        audit = signed["audit"]
        return Backup(signed["city"], signed["created"],
                      Checkpoint.from_json(audit["checkpoint"]), int(audit["first_record"]),
                      dict(signed["row_counts"]), dict(signed["files"]), signed["kid"],
                      str(signed.get("store", "duckdb")))
    except (KeyError, TypeError, ValueError) as error:
        raise BackupInvalid(f"{BACKUP_FILE} is not a cityfed backup description "
                            f"({str(error)[:120]})") from None


# Restoring --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Restored:
    backup: Backup
    lost: int          # indices written as lost between the backup and the stated last index
    next_index: int    # the index the restored node's first record gets
    records: int       # records in the restored log (from its first one)


def read_backup(source: Path, manifests: Iterable[Manifest]) -> Backup:
    """backup.json, its signature checked with a key one of the manifests lists for its city at
    the time it was made. Raises BackupInvalid."""
    try:
        signed = strict_loads((Path(source) / BACKUP_FILE).read_bytes())
    except FileNotFoundError:
        raise BackupInvalid(f"{source}: no {BACKUP_FILE}: not a backup") from None
    except ValueError:
        raise BackupInvalid(f"{source}: {BACKUP_FILE} is not JSON") from None
    if not isinstance(signed, dict):
        raise BackupInvalid(f"{source}: {BACKUP_FILE} is not a backup description")
    backup = _backup_of(signed)
    body = {name: value for name, value in signed.items() if name not in ("kid", "signature")}
    moment = datetime.fromisoformat(backup.created.replace("Z", "+00:00"))
    for manifest in manifests:
        found = manifest.signing_key(backup.kid, moment)
        if found is None or found[0].id != backup.city:
            continue
        try:
            found[1].public_key.verify(b64url_decode(str(signed.get("signature"))),
                                       canonical_json(body))
            return backup
        except (InvalidSignature, ValueError):
            raise BackupInvalid(f"{source}: the signature on {BACKUP_FILE} does not verify: "
                                "it was altered after the node wrote it") from None
    raise BackupInvalid(f"{source}: {BACKUP_FILE} is signed by key {backup.kid[:40]!r}, not a "
                        f"key the manifest lists for {backup.city!r} at {backup.created}")


def verify_backup(source: Path, manifests: list[Manifest]) -> Backup:
    """Check a backup folder completely, changing nothing: its signed description, every file's
    hash and size, the audit log record by record up to the checkpoint it names, the database's
    row counts. Raises BackupInvalid naming the first problem."""
    source = Path(source)
    backup = read_backup(source, manifests)
    present = set(_files(source))
    for name in sorted(present | set(backup.files)):
        if name not in backup.files:
            raise BackupInvalid(f"{source}: {name} is not part of the backup")
        if name not in present:
            raise BackupInvalid(f"{source}: {name} is missing")
        if _describe(source / name) != backup.files[name]:
            raise BackupInvalid(f"{source}: {name} is not the file the node backed up (its "
                                "SHA-256 differs)")
    keys = manifests[0]
    report = verify_log(source / AUDIT_DIR, keys, city=backup.city,
                        held_checkpoints=[backup.checkpoint])
    if not report.ok:
        raise BackupInvalid(f"{source}: the audit log does not verify: {report.problem} "
                            f"({report.kind})")
    if report.start + report.records != backup.records:
        raise BackupInvalid(f"{source}: the audit log holds {report.start + report.records} "
                            f"records, the backup names {backup.records}")
    if backup.store != "duckdb":
        return backup  # no database copy: the row counts are what the city's engine held
    connection = sandboxed_connection(source / DATABASE_FILE, memory_limit="256MB", threads=1,
                                      read_only=True)
    try:
        counts = {name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                  for name in backup.row_counts}
    except Exception as error:
        raise BackupInvalid(f"{source}: the database copy cannot be read "
                            f"({type(error).__name__})") from None
    finally:
        connection.close()
    if counts != backup.row_counts:
        raise BackupInvalid(f"{source}: the database copy holds {counts} rows, the backup "
                            f"names {backup.row_counts}")
    return backup


def restore(source: Path, config: NodeConfig, *, last_index: int | None,
            held_checkpoints: Iterable[dict] = ()) -> Restored:
    """Verify the backup in `source`, install it where `config` keeps the node's database and
    state (neither may exist yet), write the audit log's `lost` and `restored` records, and
    verify the result. `last_index` is the highest audit index any receipt names; checkpoints
    the authority collected (`held_checkpoints`) must be signed by the city and consistent with
    the backup, and their sizes count too."""
    source = Path(source)
    root = read_public_key(config.root_public_key)
    manifests = [load_manifest(config.manifest, root)]
    key = read_private_key(config.signing_key)
    found = manifests[0].signing_key(key_id(key.public_key()), datetime.now(UTC))
    if found is None or found[0].id != config.city:
        raise ConfigError(f"{config.signing_key}: not a key {config.manifest} lists for "
                          f"{config.city} now: the restored log's records would not verify")
    with contextlib.suppress(OSError, ManifestRejected):  # then only the configured one can
        manifests.append(verify_held_manifest((source / MANIFEST_FILE).read_bytes(), root))
    backup = verify_backup(source, manifests)
    if len(manifests) > 1 and manifests[1].version > manifests[0].version:
        raise ConfigError(f"the backup's node held manifest version {manifests[1].version}, "
                          f"newer than {config.manifest} (version {manifests[0].version}): "
                          "the restored node would refuse it; configure the region's current "
                          "manifest")
    if backup.city != config.city:
        raise BackupInvalid(f"{source} is a backup of {backup.city}, not of {config.city}")
    known = last_index if last_index is not None else -1
    later = []
    for number, checkpoint in enumerate(held_checkpoints):
        if not any(verify_checkpoint(checkpoint, manifest) for manifest in manifests) or \
                checkpoint.get("log") != config.city:
            raise BackupInvalid(f"held checkpoint {number} is not a checkpoint {config.city} "
                                "signed")
        if checkpoint["size"] > backup.records:
            later.append(checkpoint)
            known = max(known, checkpoint["size"] - 1)
    earlier = [c for c in held_checkpoints if c["size"] <= backup.records]
    if earlier:
        report = verify_log(source / AUDIT_DIR, manifests[0], city=config.city,
                            held_checkpoints=earlier)
        if not report.ok:
            raise BackupInvalid(f"the backup's audit log is not the one the held checkpoints "
                                f"sign: {report.problem} ({report.kind})")
    if last_index is None and not later:
        raise InvalidArgument(
            f"the backup's audit log ends at record {backup.records - 1}, but the node may have "
            "gone on: give --last-index, the highest audit index any receipt or checkpoint "
            "names (or --checkpoints with the authority's), so that no index is used twice")
    _install(source, config, backup)
    lost = max(0, known + 1 - backup.records)
    log = AuditLog(config.state_path / "audit", city=config.city, signing_key=key,
                   kid=key_id(key.public_key()), public_keys=manifests[0],
                   segment_bytes=config.audit_segment_bytes,
                   checkpoint_every=config.audit_checkpoint_every)
    try:
        for _ in range(lost):
            log.append({"event": "lost"})
        log.append({"event": "restored", "restored_from": backup.records,
                    "lost_records": lost})
        log.checkpoint()
        next_index = log.size
    finally:
        log.close()
    report = verify_log(config.state_path / "audit", manifests[0], city=config.city)
    if not report.ok:
        raise BackupInvalid(f"the restored audit log does not verify: {report.problem}")
    return Restored(backup, lost, next_index, report.records)


def _install(source: Path, config: NodeConfig, backup: Backup) -> None:
    """Copy the verified backup to where the config keeps the node's files, owner-only."""
    if backup.store != config.store:
        raise ConfigError(f"the backup is of a node with store = \"{backup.store}\", the config "
                          f"says store = \"{config.store}\": restore it with a config like the "
                          "backed-up node's")
    state = config.state_path
    database = backup.store == "duckdb"
    taken = [path for path in (config.database, Path(f"{config.database}.wal"))
             if database and path.exists()]
    if state.exists() and any(state.iterdir()):
        taken.append(state)
    if taken:
        raise ConfigError(f"{', '.join(map(str, taken))} already exist: a restore installs a "
                          "node's database and state where there are none (move them away "
                          "first)")
    with owner_only():
        if database:
            config.database.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / DATABASE_FILE, config.database)
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copytree(source / STATE_DIR, state, dirs_exist_ok=True)
        if config.policy is not None and not config.policy.exists() and \
                (source / POLICY_FILE).exists():
            shutil.copyfile(source / POLICY_FILE, config.policy)
    for path in ([config.database] if database else []) + list(state.rglob("*")):
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    os.chmod(state, 0o700)

