"""`cityfed node backup`, `verify-backup` and `restore` (docs/operations.md): the running node
writes the backup; restoring verifies it and installs it for a node that has no files yet."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import grpc
from cityfed.v1 import admin_pb2, admin_pb2_grpc

from cli.audit import checkpoint_file
from federation.errors import ConfigError, FileMissing, InvalidArgument
from federation.trust.keys import read_public_key
from federation.trust.manifest import load_manifest
from node.backup import restore, verify_backup
from node.config import load_config


def add_commands(node: argparse._SubParsersAction) -> None:
    backup = node.add_parser(
        "backup", help="write a consistent backup of the running node into a new folder")
    backup.add_argument("directory", type=Path,
                        help="a folder on the node's host that does not exist yet or is empty")
    backup.add_argument("--config", type=Path, required=True, help="the node's TOML config")
    backup.set_defaults(run=run_backup)

    check = node.add_parser(
        "verify-backup", help="check a backup completely, changing nothing (exit 0 intact, 1 "
                              "not)")
    check.add_argument("directory", type=Path)
    check.add_argument("--manifest", type=Path, required=True,
                       help="the region's signed manifest (lists the city's keys)")
    check.add_argument("--root-public-key", type=Path, required=True,
                       help="the region's pinned root public key (root/root.pub)")
    check.set_defaults(run=run_verify_backup)

    put_back = node.add_parser(
        "restore", help="verify a backup and install it where the config keeps the node's "
                        "files (on this or another host); the node then starts as usual")
    put_back.add_argument("directory", type=Path, help="the backup folder")
    put_back.add_argument("--config", type=Path, required=True,
                          help="the config of the node to restore; its database and state "
                               "must not exist yet")
    put_back.add_argument("--last-index", type=int, metavar="INDEX",
                          help="the highest audit index any receipt or checkpoint of the node "
                               "names: the indices after the backup up to it are written as "
                               "lost, never used again")
    put_back.add_argument("--checkpoints", type=Path,
                          help="checkpoints of the node the authority collected "
                               "(`cityfed audit export-checkpoints`): checked against the "
                               "backup, and the largest counts as known")
    put_back.set_defaults(run=run_restore)


def run_backup(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    config = load_config(args.config)
    socket = config.admin_socket_path
    if not socket.exists():
        raise FileMissing(f"{socket}: no admin socket; the running node takes its backups, so "
                          "start it first")
    directory = args.directory.resolve()
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        response = admin_pb2_grpc.AdminServiceStub(channel).Backup(
            admin_pb2.BackupRequest(directory=str(directory)), timeout=3600)
    rows = ", ".join(f"{name} {count}" for name, count in sorted(response.row_counts.items()))
    print(f"backed up {config.city} into {directory}: {response.files} files, "
          f"{response.bytes / 1e6:.1f} MB; audit log records 0..{response.audit_records - 1} "
          f"up to the checkpoint with root {response.audit_root}; rows: {rows}", file=out)
    return 0


def run_verify_backup(args: argparse.Namespace, out: io.TextIOBase,
                      err: io.TextIOBase) -> int:
    manifest = load_manifest(args.manifest, read_public_key(args.root_public_key))
    backup = verify_backup(args.directory, [manifest])
    print(f"OK: {args.directory}: backup of {backup.city} made {backup.created}, "
          f"{len(backup.files)} files as signed, audit log records {backup.first_record}.."
          f"{backup.records - 1} verified, database rows as recorded", file=out)
    return 0


def run_restore(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    config = load_config(args.config)
    if args.last_index is not None and args.last_index < -1:
        raise InvalidArgument("--last-index must be an audit index (or -1 for none)")
    held = checkpoint_file(args.checkpoints) if args.checkpoints else []
    if config.admin_socket_path.exists():
        raise ConfigError(f"{config.admin_socket_path} exists: is the node running? Stop it and "
                          "move its files away before restoring")
    restored = restore(args.directory, config, last_index=args.last_index,
                       held_checkpoints=held)
    backup = restored.backup
    lost = (f"records {backup.records}..{backup.records + restored.lost - 1} written as lost, "
            if restored.lost else "")
    print(f"restored {config.city} from {args.directory} (made {backup.created}): backup "
          f"verified ({len(backup.files)} files, audit records {backup.first_record}.."
          f"{backup.records - 1}); database {config.database}, state {config.state_path}; "
          f"audit log: {lost}record {restored.next_index - 1} says where the node goes on, "
          f"its next record is {restored.next_index}; the log verifies "
          f"({restored.records} records). Start the node as usual.", file=out)
    return 0
